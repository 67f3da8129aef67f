"""A check's "could not evaluate" text is exception text: redacted by the runner, whoever wrote
the check, and the registered data source secrets are masked wherever the text goes."""

from __future__ import annotations

from pathlib import Path

from tests.checks.conftest import Harness


def test_cannot_evaluate_text_from_any_check_is_redacted(
    harness: Harness, third_party_checks: Path
) -> None:
    message = (
        "GET https://status.example.com/health?sig=PLUGINsig42 failed: Max retries exceeded "
        "with url: /health?sig=PLUGINsig42 via postgresql://bob:PLUGINpass9@db/x"
    )
    result = harness.run("refuse", {"message": message})
    assert result.outcome == "error"
    assert result.summary.startswith("GET https://status.example.com/*** failed")
    assert "PLUGINsig42" not in result.summary and "PLUGINpass9" not in result.summary
    assert result.details["error"] == result.summary
    # What the plugin passed along with its error is redacted the same way.
    assert result.details["endpoint"] == result.summary


def test_http_source_error_is_masked_in_the_summary(harness: Harness) -> None:
    harness.add_datasource("api", "http://127.0.0.1:1/health?sig=SIG&api_key=KEY")
    result = harness.run("datasource_failure", {"datasource_id": "api", "timeout_seconds": 2})
    assert result.outcome == "firing"
    assert "127.0.0.1:1" in result.summary
    for leak in ("sig=SIG", "api_key=KEY", "/health?"):
        assert leak not in result.summary, result.summary
        assert leak not in str(result.details), result.details
