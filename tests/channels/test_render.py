"""Templates: shipped defaults, overrides from ALERTS_TEMPLATES_DIR, truncation."""

from __future__ import annotations

from pathlib import Path

from datamantri_alerts.channels.render import TRUNCATION_MARKER, render, truncate
from datamantri_alerts.channels.retry import RecipientPacer, RetryPolicy, deliver
from tests.channels.conftest import (
    SLACK_PATH,
    TWILIO_FROM,
    WHATSAPP_TO,
    LoopbackHTTPServer,
    sample_message,
    twilio_environ,
)


def test_truncate() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("x" * 100, 30)
    assert len(cut) == 30
    assert cut.endswith(TRUNCATION_MARKER)
    assert truncate("abcdef", 3) == "abc"


def test_every_state_has_its_words() -> None:
    for state, words in {
        "FIRING": "Alert firing",
        "REPEAT": "Alert still firing",
        "RESOLVED": "Alert resolved",
        "TEST": "Test notification",
    }.items():
        text = render("email", "body.txt.j2", sample_message(state=state))
        assert text.startswith(words)
        assert f"State:     {state}" in text


def test_override_from_templates_dir(tmp_path: Path, twilio_server: LoopbackHTTPServer) -> None:
    (tmp_path / "whatsapp").mkdir()
    (tmp_path / "whatsapp" / "body.txt.j2").write_text(
        "ALERT {{ alert_name }} is {{ state }} on {{ host }}"
    )
    environ = {**twilio_environ(twilio_server), "ALERTS_TEMPLATES_DIR": str(tmp_path)}
    result = deliver(
        "whatsapp", sample_message(), WHATSAPP_TO, environ=environ, pacer=RecipientPacer()
    )
    assert result.status == "delivered", result.error
    form = twilio_server.requests[-1].form()
    assert form["Body"] == "ALERT Nightly ETL failed is FIRING on etl-runner-1"
    assert form["From"] == f"whatsapp:{TWILIO_FROM}"
    # Templates the directory does not have still come from the package.
    assert render("email", "subject.txt.j2", sample_message(), templates_dir=str(tmp_path))


def test_broken_override_is_a_permanent_error_naming_the_template(
    tmp_path: Path, slack_server: LoopbackHTTPServer
) -> None:
    (tmp_path / "slack").mkdir()
    (tmp_path / "slack" / "title.txt.j2").write_text("{{ alert_name | nosuchfilter }}")
    result = deliver(
        "slack",
        sample_message(),
        slack_server.url(SLACK_PATH),
        environ={"ALERTS_TEMPLATES_DIR": str(tmp_path)},
        policy=RetryPolicy(attempts=3),
        pacer=RecipientPacer(),
    )
    assert result.status == "failed"
    assert result.retryable is False
    assert result.attempts == 1
    assert "slack/title.txt.j2" in result.error
    assert slack_server.requests == []


def test_html_escapes_and_text_does_not() -> None:
    message = sample_message(alert_name="<b>x</b> & y")
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in render("email", "body.html.j2", message)
    assert "<b>x</b> & y" in render("email", "body.txt.j2", message)
