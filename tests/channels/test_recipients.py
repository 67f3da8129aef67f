"""E-mail addresses: every syntactically valid address is accepted, internal domains included."""

from __future__ import annotations

import pytest

from datamantri_alerts.channels.base import RecipientError
from datamantri_alerts.channels.recipients import validate_email
from datamantri_alerts.channels.retry import RetryPolicy, deliver
from tests.channels.conftest import SMTPServer, sample_message
from tests.conftest import Cli

INTERNAL = ["oncall@corp.local", "alerts@example.test", "team@intranet.lan"]


@pytest.mark.parametrize(
    "address",
    [*INTERNAL, "ops@mailhost", "root@localhost", "x@svc.home.arpa", "Ops.Team+etl@Corp.Local"],
)
def test_internal_mail_domains_are_accepted(address: str) -> None:
    normalized = validate_email(address)
    local, _, domain = normalized.partition("@")
    assert local == address.partition("@")[0]  # local part kept as written
    assert domain == address.partition("@")[2].lower()


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("not-an-address", "@-sign"),
        ("a b@corp.local", "SPACE"),
        ("x@@corp.local", "invalid characters"),
        ("x@-bad.local", "hyphen"),
        ("x@corp..local", "period"),
        ("", "@-sign"),
    ],
)
def test_syntax_errors_are_still_refused(address: str, problem: str) -> None:
    with pytest.raises(RecipientError) as caught:
        validate_email(address)
    assert problem in str(caught.value)
    assert repr(address) in str(caught.value)


def test_env_reference_is_kept_as_written() -> None:
    assert validate_email("${ONCALL_EMAIL}") == "${ONCALL_EMAIL}"


def test_cli_creates_an_alert_for_internal_addresses(cli: Cli) -> None:
    args = ["create", "--name", "etl", "--type", "pipeline_failure"]
    args += ["--config", "pipeline_id=p1", "--channel", "email"]
    for address in INTERNAL:
        args += ["--email", address]
    assert cli("pipelines", "add", "p1", "--name", "P1").exit_code == 0
    created = cli(*args)
    assert created.exit_code == 0, created.output
    shown = cli("show", "etl", "--json").json()
    assert shown["recipients"]["email"] == INTERNAL


def test_internal_address_is_delivered_by_the_relay(smtp_plain: SMTPServer) -> None:
    result = deliver(
        "email",
        sample_message(state="TEST"),
        "oncall@corp.local",
        environ=smtp_plain.environ,
        policy=RetryPolicy(attempts=1),
    )
    assert result.status == "delivered", result.error
    (sent,) = smtp_plain.recorder.messages
    assert sent.rcpt_tos == ["oncall@corp.local"]
