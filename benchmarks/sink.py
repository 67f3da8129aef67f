"""A local HTTP server for the benchmarks: every GET or POST is answered after --delay-ms.

Runs in its own process (so its threads do not compete with the evaluator for the GIL), binds
127.0.0.1 on a free port and prints the port on its first line of stdout.

    .venv/bin/python benchmarks/sink.py --delay-ms 50
"""

from __future__ import annotations

import argparse
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=50)
    delay = parser.parse_args().delay_ms / 1000

    class Slow(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 4096

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client closing a kept-alive connection is not news

    server = Server(("127.0.0.1", 0), Slow)
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
