"""Fixtures for the evaluator: a test alert type through a real entry point, an HTTP sink.

The `flag` alert type reads its outcome from a JSON file (`{"<key>": "ok|firing|error"}`), so a
test flips a condition by writing a file. It is registered the way a third-party package would be:
a module plus a `*.dist-info/entry_points.txt` in a directory on the path, which
`importlib.metadata` discovers in this process and in `python -m datamantri_alerts` children.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# The channels work's real local SMTP server (STARTTLS with a private CA, AUTH), reused here.
from tests.channels.conftest import smtp_starttls, tls_material
from tests.evaluator.stores import any_store

__all__ = ["any_store", "smtp_starttls", "tls_material"]

FLAG_MODULE = '''
"""A test alert type: the outcome is read from a JSON file, per alert key."""

import json
import time
from typing import ClassVar

from datamantri_alerts.checks.base import CheckConfig, Outcome


class FlagConfig(CheckConfig):
    file: str
    key: str = "default"


class FlagCheck:
    type_name: ClassVar[str] = "flag"
    config_model: ClassVar[type] = FlagConfig
    default_severity: ClassVar[str] = "warning"
    description: ClassVar[str] = "outcome read from a JSON file (tests)"

    def evaluate(self, config, ctx):
        with open(config.file) as handle:
            data = json.load(handle)
        time.sleep(float(data.get("delay", 0)))  # a check that takes time, as real ones do
        status = data.get(config.key, data.get("default", "ok"))
        summary = f"flag {config.key} is {status}"
        if status == "error":
            return Outcome.error(summary, key=config.key)
        if status == "firing":
            return Outcome.firing(summary, key=config.key, seen=data.get("seen"))
        return Outcome.ok(summary, key=config.key)


CHECK = FlagCheck()
'''


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    (root / "dm_flagcheck.py").write_text(FLAG_MODULE)
    info = root / "dm_flagcheck-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dm-flagcheck\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[datamantri_alerts.checks]\nflag = dm_flagcheck:CHECK\n"
    )
    return root


def _clear_registry_caches() -> None:
    from datamantri_alerts import checks

    checks._entry_points.cache_clear()
    checks.get_check.cache_clear()


@pytest.fixture
def flag_type(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Makes the `flag` type available here (and, through PYTHONPATH, in child processes)."""
    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")]))
    )
    _clear_registry_caches()
    yield plugin_dir
    _clear_registry_caches()


@pytest.fixture
def flags(tmp_path: Path, flag_type: Path) -> Flags:
    return Flags(tmp_path / "flags.json")


class Flags:
    """The JSON file the `flag` checks read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, Any] = {"default": "ok"}
        self._write()

    def set(self, **values: str) -> None:
        self.values.update(values)
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.values))
        tmp.replace(self.path)


def make_alert(store: Any, flags: Flags, name: str, **fields: Any) -> int:
    """Create a `flag` alert through the service layer; returns its id."""
    from datamantri_alerts.clock import SystemClock
    from datamantri_alerts.schema import validate_alert
    from datamantri_alerts.services.alerts import create_alert

    config = {"file": str(flags.path), "key": fields.pop("key", name)}
    config.update(fields.pop("config", {}))
    document = {
        "name": name,
        "condition_type": "flag",
        "condition_config": config,
        "channels": fields.pop("channels", ["slack"]),
        "recipients": fields.pop("recipients", {}),
        **fields,
    }
    clock = fields.pop("clock", None) or SystemClock()
    with store.transaction() as session:
        return create_alert(session, validate_alert(document), clock).id


# --------------------------------------------------------------------------- HTTP sink


@dataclass
class Received:
    path: str
    body: Any
    at: float  # time.monotonic()
    status: int


@dataclass
class Sink:
    """A webhook receiver on 127.0.0.1: records every request; answers as scripted.

    `script[path]` is a list of replies used in turn (then 200 "ok"): each an int status, or a
    (status, headers, body) tuple, or "stall" (hold the request until the sink closes), or a
    float (answer 200 after that many seconds).
    """

    url: str
    received: list[Received] = field(default_factory=list)
    script: dict[str, list[Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)

    def hook(self, name: str) -> str:
        return f"{self.url}/hook/{name}"

    def on(self, name: str, *replies: Any) -> None:
        with self.lock:
            self.script[f"/hook/{name}"] = list(replies)

    def bodies(self, name: str | None = None) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received if name is None or r.path == f"/hook/{name}"]

    def delivered(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.status in (200, 202)]


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            with sink.lock:
                replies = sink.script.get(self.path)
                reply = replies.pop(0) if replies else 200
            if isinstance(reply, float):
                sink.closing.wait(reply)
                reply = 200
            if reply == "stall":
                with sink.lock:
                    sink.received.append(Received(self.path, body, time.monotonic(), 0))
                sink.closing.wait(60)
                return
            status, headers, text = (
                (reply, {}, "ok" if reply == 200 else "error") if isinstance(reply, int) else reply
            )
            with sink.lock:
                sink.received.append(Received(self.path, body, time.monotonic(), status))
            data = text.encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, str(value))
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class _SinkServer(ThreadingHTTPServer):
    # A real webhook service accepts many connections at once; the default listen backlog (5)
    # would refuse some when 8 evaluators x 8 senders connect together, forcing retries.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the crash tests do that) is not a sink failure.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def sink() -> Iterator[Sink]:
    sink = Sink(url="")
    server = _SinkServer(("127.0.0.1", 0), _handler(sink))
    server.daemon_threads = True
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    # shutdown() waits for serve_forever to look at its flag: every poll_interval (0.5 s by
    # default). Requests wake the loop at once either way; only the teardown is quicker.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield sink
    finally:
        sink.closing.set()
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- processes


def alerts_process(
    db_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`python -m datamantri_alerts --db URL ARGS...` as cron would start it."""
    child_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "datamantri_alerts", "--db", db_url, *args],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def make_alerts(store: Any, flags: Flags, specs: list[dict[str, Any]]) -> list[int]:
    """Create many `flag` alerts in one transaction (a spec's `config`: more of the
    condition's settings)."""
    from datamantri_alerts.clock import SystemClock
    from datamantri_alerts.schema import validate_alert
    from datamantri_alerts.services.alerts import create_alert

    clock = SystemClock()
    ids = []
    with store.transaction() as session:
        for spec in specs:
            spec = dict(spec)
            config = {
                "file": str(flags.path),
                "key": spec.pop("key", spec["name"]),
                **spec.pop("config", {}),
            }
            document = {"condition_type": "flag", "condition_config": config, **spec}
            ids.append(create_alert(session, validate_alert(document), clock).id)
    return ids
