"""The requests session every outgoing HTTP request of ours goes through.

`guarded_session(policy)` returns a `requests.Session` whose connections check each resolved
address with the destination policy just before connecting (a urllib3 connection subclass doing
its own `getaddrinfo` → check → `connect`), so the address judged is the address connected to.
It never follows redirects, whatever `allow_redirects` says (a caller that wants to follow one
does it itself, hop by hop, through the same session), and always has a timeout. A refused
address raises `DestinationRefused` (not a requests exception: it is final, never retried).

Proxies from the environment (`HTTPS_PROXY`, ...) still work: the proxy is the operator's own
configuration, so the connection to it is not judged; the destination's host name is resolved
and checked before the request instead (the proxy resolves it again, which this side cannot see).
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.poolmanager import PoolManager
from urllib3.util.connection import allowed_gai_family

from datamantri_alerts.net.destinations import DestinationPolicy, parse_address

#: (connect, read) seconds, when a caller gives none.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 15.0)


def connect_checked(
    host: str,
    port: int,
    policy: DestinationPolicy,
    timeout: Any,
    *,
    source_address: tuple[str, int] | None = None,
    socket_options: Any = None,
) -> socket.socket:
    """A TCP socket connected to host:port, every resolved address checked first.

    Resolves once; if any address is refused, raises DestinationRefused without connecting
    anywhere; otherwise connects to the first address that accepts (as
    `urllib3.util.connection.create_connection` does). OSError as from `socket.connect`.
    """
    bare = host.strip("[]")
    infos = socket.getaddrinfo(bare, port, allowed_gai_family(), socket.SOCK_STREAM)
    for *_rest, sockaddr in infos:
        address = parse_address(str(sockaddr[0]))
        if address is None:
            raise OSError(f"unusable address {sockaddr[0]!r} for {bare}")
        policy.check_address(bare, address)
    error: OSError | None = None
    for family, socktype, proto, _canonname, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is None or isinstance(timeout, int | float):  # else urllib3's "default"
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error if error is not None else OSError(f"{bare} resolved to no address")


class _GuardedConnectionMixin:
    """Replaces urllib3's `_new_conn` with one that checks addresses before connecting."""

    _destination_policy: DestinationPolicy
    _dns_host: str
    host: str
    port: int
    timeout: Any
    source_address: tuple[str, int] | None
    socket_options: Any

    def __init__(self, *args: Any, destination_policy: DestinationPolicy, **kwargs: Any) -> None:
        self._destination_policy = destination_policy
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        # The error mapping mirrors urllib3's own _new_conn, so requests reports as usual.
        try:
            sock = connect_checked(
                self._dns_host,
                self.port,
                self._destination_policy,
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(  # type: ignore[arg-type]
                self, f"Failed to establish a new connection: {exc}"
            ) from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    """An urllib3 HTTP connection that connects only to addresses its policy allows."""


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    """An urllib3 HTTPS connection that connects only to addresses its policy allows."""


class GuardedPoolManager(PoolManager):
    """A PoolManager whose pools make guarded connections."""

    def __init__(self, policy: DestinationPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.destination_policy = policy

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        # The pool's keyword arguments are checked against urllib3's pool key, so the policy
        # cannot travel through them: it is attached to the pool's connection arguments here.
        pool.ConnectionCls = GuardedHTTPSConnection if scheme == "https" else GuardedHTTPConnection
        pool.conn_kw = {**pool.conn_kw, "destination_policy": self.destination_policy}
        return pool


class GuardedAdapter(HTTPAdapter):
    """A requests transport adapter applying a destination policy to every connection."""

    def __init__(self, policy: DestinationPolicy, **kwargs: Any) -> None:
        self.destination_policy = policy  # before super(), which builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = GuardedPoolManager(
            self.destination_policy,
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            **pool_kwargs,
        )

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        if proxies and request.url and select_proxy(request.url, proxies):
            self.destination_policy.check_url(request.url)
        return super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )


class GuardedSession(requests.Session):
    """A requests session that never follows redirects and never waits without a timeout."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = DEFAULT_TIMEOUT
        return super().send(request, **kwargs)

    def resolve_redirects(self, resp: requests.Response, req: Any, **kwargs: Any) -> Any:
        """No redirect is followed, whatever `allow_redirects` says (requests asks this for
        every 3xx; the stock one also reads the whole 3xx body, which a health probe must not)."""
        return iter(())


def guarded_session(
    policy: DestinationPolicy,
    *,
    pool_maxsize: int = 10,
    session_class: type[GuardedSession] = GuardedSession,
) -> GuardedSession:
    """A session for one kind of outgoing request; close it (or use `with`) when done.

    `pool_maxsize`: connections kept per host (set it to the number of threads sharing it);
    `session_class`: a GuardedSession subclass (a client library's session that must bound
    how replies are read, `channels.twilio_client`).
    """
    session = session_class()
    adapter = GuardedAdapter(policy, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
