"""Loopback servers for checks: an HTTP server, a black hole, a closed port, scratch databases."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    """`/status/503` answers 503; `/sleep?ms=200` answers 200 after 200 ms; `/redirect?to=URL`
    answers 302 to URL (`&status=301` another 3xx); `/loop` redirects to itself; else 200."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        status = 200
        if parts.path in ("/redirect", "/loop"):
            query = parse_qs(parts.query)
            self.send_response(int(query.get("status", ["302"])[0]))
            self.send_header("Location", query.get("to", ["/loop"])[0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path.startswith("/status/"):
            status = int(parts.path.rsplit("/", 1)[1])
        if parts.path.startswith("/sleep"):
            time.sleep(int(parse_qs(parts.query).get("ms", ["200"])[0]) / 1000)
        body = b"ok\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


@contextmanager
def http_server() -> Iterator[str]:
    """A threading HTTP server on 127.0.0.1; yields its base URL."""
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    # poll_interval: how soon shutdown() is noticed (0.5 s by default); requests wake it at once.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never says a word; yields the port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once); kept bound by
    this process, see tests.conftest.closed_port."""
    from tests.conftest import closed_port

    return closed_port()


@contextmanager
def mariadb_scratch_database(server_url: str) -> Iterator[str]:
    """A uniquely named MariaDB database, dropped afterwards; yields its URL."""
    from tests.conftest import scratch_mariadb_database

    with scratch_mariadb_database("alerts_checks", server_url) as url:
        yield url
