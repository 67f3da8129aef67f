"""Outgoing-request test fixtures (a pytest plugin, see tests/conftest.py): connects, fake DNS.

`connects` records the address of every `socket.connect` the interpreter makes (through the
`socket.connect` audit event, so nothing of ours or of the libraries is replaced). `fake_dns`
scripts what `socket.getaddrinfo` answers for chosen names - the resolver is the external
boundary a DNS-rebinding attacker controls; every other name resolves for real.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest


class ConnectRecorder:
    """Addresses passed to socket.connect while recording (host strings only)."""

    def __init__(self) -> None:
        self.active = False
        self.addresses: list[str] = []
        self._lock = threading.Lock()

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.active and event == "socket.connect":
            address = args[1]
            if isinstance(address, tuple) and address:
                with self._lock:
                    self.addresses.append(str(address[0]))


_RECORDER = ConnectRecorder()
_hook_installed = False


def _install_hook() -> None:
    """Install the recorder's audit hook, once, when a test first asks for `connects`.

    Audit hooks cannot be removed (recording is switched on and off instead), and once one is
    installed, every audited event of the interpreter calls it: not only `socket.connect` but
    `builtins.id` (each object `copy.deepcopy` visits), `sys._getframe`, `open`, `import`...
    A Python hook made id() about twenty times slower, so it is installed only when needed, and
    `pytest_collection_modifyitems` runs the tests that use `connects` last.
    """
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_RECORDER.hook)
        _hook_installed = True


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests using `connects` after every other test (stable otherwise): see
    `_install_hook`."""
    uses = ["connects" in getattr(item, "fixturenames", ()) for item in items]
    items[:] = [i for i, used in zip(items, uses, strict=True) if not used] + [
        i for i, used in zip(items, uses, strict=True) if used
    ]


@pytest.fixture
def connects() -> Iterator[list[str]]:
    """The addresses connected to during the test."""
    _install_hook()
    _RECORDER.addresses = []
    _RECORDER.active = True
    try:
        yield _RECORDER.addresses
    finally:
        _RECORDER.active = False


class FakeDNS:
    """Scripted answers: each lookup of a name pops the next answer list (the last one repeats)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def add(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = [list(answer) for answer in answers]

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(name)
        queue = self.answers[name]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        out = []
        for ip in answer:
            if ":" in ip:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port or 0, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0)))
        return out


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    return dns
