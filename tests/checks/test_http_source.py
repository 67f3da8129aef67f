"""HTTP data sources: the destination policy, redirects as failures, and `${VAR}` http URLs."""

from __future__ import annotations

import pytest

from datamantri_alerts.checks.http_source import MAX_REDIRECTS, shown_location
from tests.checks.conftest import Harness
from tests.conftest import Cli
from tests.net.fixtures import FakeDNS


@pytest.fixture(autouse=True)
def _no_opt_outs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERTS_ALLOW_PRIVATE_DATASOURCES", raising=False)
    monkeypatch.delenv("ALERTS_ALLOW_PRIVATE_WEBHOOKS", raising=False)


def test_metadata_address_refused_before_connecting(harness: Harness, connects: list[str]) -> None:
    harness.add_datasource("meta", "http://169.254.169.254/latest/meta-data/")
    result = harness.run("datasource_failure", {"datasource_id": "meta"})
    assert result.outcome == "error", result.summary
    assert "destination policy refused data source connection to 169.254.169.254" in (
        result.summary
    )
    assert "a link-local address" in result.summary
    assert "ALERTS_ALLOW_PRIVATE_DATASOURCES=1" in result.summary
    assert "meta-data" not in result.summary
    assert connects == []


@pytest.mark.parametrize(
    "url",
    [
        "http://100.100.100.200/latest/meta-data/",
        "http://10.0.0.8:8080/health",
        "http://[::ffff:169.254.169.254]/latest/",
        "http://[64:ff9b::a9fe:a9fe]/latest/",
        "https://[2002:a9fe:a9fe::]/latest/",
        "http://0.0.0.0:9/health",
    ],
)
def test_private_data_sources_are_errors_not_connections(
    harness: Harness, connects: list[str], url: str
) -> None:
    harness.add_datasource("inner", url)
    result = harness.run("datasource_failure", {"datasource_id": "inner"})
    assert result.outcome == "error" and "destination policy" in result.summary
    assert connects == []


def test_name_resolving_to_metadata_refused(
    harness: Harness, fake_dns: FakeDNS, connects: list[str], http_base: str
) -> None:
    port = http_base.rsplit(":", 1)[1]
    fake_dns.add("health.rebind.test", ["127.0.0.1"], ["169.254.169.254"])
    harness.add_datasource("web", f"http://health.rebind.test:{port}/health")
    first = harness.run("datasource_failure", {"datasource_id": "web"})
    assert first.outcome == "ok", first.summary
    second = harness.run("datasource_failure", {"datasource_id": "web"})
    assert second.outcome == "error"
    assert "health.rebind.test (169.254.169.254)" in second.summary
    assert connects == ["127.0.0.1"]


def test_opt_out_allows_private_data_sources(
    harness: Harness, http_base: str, monkeypatch: pytest.MonkeyPatch, connects: list[str]
) -> None:
    """0.0.0.0 is refused; with ALERTS_ALLOW_PRIVATE_DATASOURCES=1 it reaches the loopback
    server (Linux connects 0.0.0.0 to the local host). The webhook opt-out does not count."""
    harness.add_datasource("local", http_base.replace("127.0.0.1", "0.0.0.0") + "/health")
    config = {"datasource_id": "local"}
    monkeypatch.setenv("ALERTS_ALLOW_PRIVATE_WEBHOOKS", "1")
    assert harness.run("datasource_failure", config).outcome == "error"
    assert connects == []
    monkeypatch.setenv("ALERTS_ALLOW_PRIVATE_DATASOURCES", "1")
    allowed = harness.run("datasource_failure", config)
    assert allowed.outcome == "ok", allowed.summary
    assert connects == ["0.0.0.0"]


def test_loopback_allowed(harness: Harness, http_base: str) -> None:
    harness.add_datasource("web", http_base.replace("127.0.0.1", "localhost") + "/health")
    result = harness.run("datasource_failure", {"datasource_id": "web"})
    assert result.outcome == "ok", result.summary


def test_redirect_to_login_is_a_failure_naming_the_location(
    harness: Harness, http_base: str, connects: list[str]
) -> None:
    """The issue's example: /health answers 302 to /login, which answers 200."""
    harness.add_datasource("web", f"{http_base}/redirect?to=/login%3Fnext%3D%252Fhealth")
    result = harness.run("datasource_failure", {"datasource_id": "web"})
    assert result.outcome == "firing", result.summary
    assert "returned 200" not in result.summary
    assert "answered HTTP 302 redirecting to" in result.summary
    assert f"{http_base}/login?next=***" in result.summary
    assert "(redirect not followed)" in result.summary
    assert result.details["status_code"] == 302
    assert result.details["location"] == f"{http_base}/login?next=***"
    assert len(connects) == 1  # /login was never requested


@pytest.mark.parametrize("status", [301, 303, 307, 308])
def test_every_redirect_status_fails(harness: Harness, http_base: str, status: int) -> None:
    harness.add_datasource("web", f"{http_base}/redirect?to=/health&status={status}")
    result = harness.run("datasource_failure", {"datasource_id": "web"})
    assert result.outcome == "firing" and f"HTTP {status}" in result.summary


def test_location_secrets_are_masked(harness: Harness, http_base: str) -> None:
    token = "sEcReT0123456789abcdefXYZ"
    target = f"https://sso.example.com/auth/{token}/start?state=s3cr3t-state-99&code=abc"
    harness.add_datasource("web", f"{http_base}/redirect?to={target.replace('&', '%26')}")
    result = harness.run("datasource_failure", {"datasource_id": "web"})
    everything = result.summary + repr(result.details)
    assert token not in everything and "s3cr3t-state-99" not in everything
    assert "https://sso.example.com/auth/***/start?state=***&code=***" in result.summary


def test_shown_location_drops_user_info_and_known_secrets() -> None:
    shown = shown_location("http://bob:pw-1234@127.0.0.1:8080/x/hunter2abc/y?k=v", ["hunter2"])
    assert shown == "http://127.0.0.1:8080/x/***/y?k=***"


def test_follow_redirects_opt_in(harness: Harness, http_base: str) -> None:
    harness.add_datasource("web", f"{http_base}/redirect?to=/login")
    result = harness.run("datasource_failure", {"datasource_id": "web", "follow_redirects": True})
    assert result.outcome == "ok", result.summary
    assert "returned 200 after 1 redirect(s)" in result.summary
    assert result.details["redirects"] == 1


def test_followed_redirect_hops_pass_the_policy(
    harness: Harness, http_base: str, connects: list[str]
) -> None:
    harness.add_datasource("web", f"{http_base}/redirect?to=http://169.254.169.254/latest/")
    result = harness.run("datasource_failure", {"datasource_id": "web", "follow_redirects": True})
    assert result.outcome == "firing", result.summary
    assert "redirected to a refused destination" in result.summary
    assert "169.254.169.254: a link-local address" in result.summary
    assert len(connects) == 1 and connects[0] == "127.0.0.1"


def test_redirect_loops_stop_after_the_bound(harness: Harness, http_base: str) -> None:
    harness.add_datasource("web", f"{http_base}/loop")
    result = harness.run("datasource_failure", {"datasource_id": "web", "follow_redirects": True})
    assert result.outcome == "firing"
    assert "(too many redirects)" in result.summary
    assert result.details["redirects"] == MAX_REDIRECTS


def test_env_reference_holding_an_http_url_is_probed_over_http(
    harness: Harness, http_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`url: ${HEALTH_URL}` holding http://... is an HTTP source, not a SQLAlchemy dialect."""
    monkeypatch.setenv("HEALTH_URL", f"{http_base}/health")
    harness.add_datasource("web", "${HEALTH_URL}")
    result = harness.run("datasource_failure", {"datasource_id": "web"})
    assert result.outcome == "ok", result.summary
    assert "Can't load plugin" not in result.summary
    assert result.summary.startswith("GET http://127.0.0.1:")
    monkeypatch.setenv("HEALTH_URL", "http://169.254.169.254/latest/")
    refused = harness.run("datasource_failure", {"datasource_id": "web"})
    assert refused.outcome == "error" and "destination policy" in refused.summary


def test_env_reference_http_source_is_not_a_database(
    harness: Harness, http_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTH_URL", f"{http_base}/health")
    harness.add_datasource("web", "${HEALTH_URL}")
    sql = harness.run("sql", {"datasource_id": "web", "query": "SELECT 1"})
    sla = harness.run(
        "sla_breach",
        {
            "datasource_id": "web",
            "expected_load_time": "06:00",
            "table": "orders",
            "timestamp_column": "loaded_at",
        },
    )
    for result in (sql, sla):
        assert result.outcome == "error"
        assert "is an HTTP endpoint, not a database" in result.summary, result.summary
        assert "Can't load plugin" not in result.summary


def test_datasources_check_command(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, http_base: str
) -> None:
    monkeypatch.setenv("HEALTH_URL", f"{http_base}/health")
    monkeypatch.setenv("MOVED_URL", f"{http_base}/redirect?to=/login")
    for entity_id, url in (
        ("env", "${HEALTH_URL}"),
        ("moved", "${MOVED_URL}"),
        ("meta", "http://169.254.169.254/latest/meta-data/"),
    ):
        added = cli("datasources", "add", entity_id, "--name", entity_id, "--url", url)
        assert added.exit_code == 0, added.output

    env = cli("datasources", "check", "env")
    assert env.exit_code == 0, env.output
    assert env.stdout.startswith("ok: GET http://127.0.0.1:")

    moved = cli("datasources", "check", "moved")
    assert moved.exit_code == 1
    assert "FAILED" in moved.stdout and f"{http_base}/login" in moved.stdout
    followed = cli("datasources", "check", "moved", "--follow-redirects")
    assert followed.exit_code == 0, followed.output

    meta = cli("datasources", "check", "meta")
    assert meta.exit_code == 1
    assert meta.stdout.startswith("error: ") and "destination policy" in meta.stdout


def test_checks_share_a_session_that_keeps_no_cookies(harness: Harness) -> None:
    """One run, one HTTP session for its data sources: a cookie one server sets is never sent
    back, by the same check or another one."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str | None] = []

    class SetsCookies(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the session's connections are reused

        def do_GET(self) -> None:
            seen.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Set-Cookie", "session=abc123; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SetsCookies)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        harness.add_datasource("a", f"{base}/a")
        harness.add_datasource("b", f"{base}/b")
        results = harness.run_many(
            [("datasource_failure", {"datasource_id": s}) for s in ("a", "b", "a", "b")],
            concurrency=1,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert [r.outcome for r in results] == ["ok"] * 4
    assert seen == [None] * 4
