"""Benchmark: `alerts evaluate --dry-run` on 200 alerts whose checks each wait 0.2 s.

Each alert is a datasource_failure check on an HTTP data source (a local server on 127.0.0.1
that answers after 200 ms). With the default concurrency (16) the target is under 4 s for the
whole command, process start included. Prints the median of several runs.

    .venv/bin/python benchmarks/dry_run_concurrency.py [--alerts 200] [--runs 5] [--delay-ms 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: F401  (writes the package's bytecode, as an install would)

TARGET_SECONDS = 4.0


def serve(delay: float) -> ThreadingHTTPServer:
    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    server = Server(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_config(path: Path, base_url: str, count: int) -> None:
    import yaml

    document = {
        "datasources": [{"id": "slow-api", "name": "Slow API", "url": f"{base_url}/health"}],
        "alerts": [
            {
                "name": f"slow api {i:03d}",
                "condition_type": "datasource_failure",
                "condition_config": {"datasource_id": "slow-api", "timeout_seconds": 5},
            }
            for i in range(count)
        ],
    }
    path.write_text(yaml.safe_dump(document))


def alerts(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datamantri_alerts", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay-ms", type=int, default=200)
    options = parser.parse_args()

    server = serve(options.delay_ms / 1000)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ALERTS_DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        config = Path(tmp) / "alerts.yaml"
        write_config(config, base_url, options.alerts)
        synced = alerts("sync", str(config), env=env)
        if synced.returncode != 0:
            print(synced.stderr, file=sys.stderr)
            return 1

        timings = []
        for _ in range(options.runs):
            started = time.perf_counter()
            done = alerts("evaluate", "--dry-run", "--json", env=env)
            timings.append(time.perf_counter() - started)
            report = json.loads(done.stdout)
            outcomes = {r["outcome"] for r in report["results"]}
            if done.returncode != 0 or report["evaluated"] != options.alerts or outcomes != {"ok"}:
                print(f"unexpected result: exit {done.returncode}, {outcomes}", file=sys.stderr)
                return 1
    server.shutdown()

    median = statistics.median(timings)
    serial = options.alerts * options.delay_ms / 1000
    print(
        f"evaluate --dry-run: {options.alerts} alerts x {options.delay_ms} ms checks, "
        f"default concurrency 16"
    )
    print(f"runs: {', '.join(f'{t:.2f}s' for t in timings)}")
    print(
        f"median wall time {median:.2f}s (process start included; serial would be {serial:.0f}s); "
        f"target < {TARGET_SECONDS:.0f}s: {'PASS' if median < TARGET_SECONDS else 'FAIL'}"
    )
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
