"""Labels and the FLAPPING state in what each channel renders (and the Teams card stays valid)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datamantri_alerts.channels.render import render
from tests.channels.conftest import card_validator, sample_message  # noqa: F401

LABELS = {"team": "data", "env": "prod"}


def test_labels_in_slack_fields_and_teams_facts(card_validator: Any) -> None:  # noqa: F811
    from datamantri_alerts.channels.slack import SlackConfig
    from datamantri_alerts.channels.slack import build_payload as slack_payload
    from datamantri_alerts.channels.teams import TeamsConfig
    from datamantri_alerts.channels.teams import build_payload as teams_payload

    message = sample_message(labels=LABELS, state="FLAPPING")
    slack = slack_payload(message, SlackConfig.from_env({}))
    fields = [f["text"] for b in slack["attachments"][0]["blocks"] for f in b.get("fields", [])]
    assert "*Labels*\nenv=prod, team=data" in fields
    assert "*State*\nFLAPPING" in fields
    card = teams_payload(message, TeamsConfig.from_env({}))["attachments"][0]["content"]
    facts = [fact for block in card["body"] for fact in block.get("facts", [])]
    assert {"title": "Labels", "value": "env=prod, team=data"} in facts
    assert list(card_validator.iter_errors({k: v for k, v in card.items() if k != "msteams"})) == []


def test_labels_in_email_and_whatsapp_text_and_absent_without_labels() -> None:
    with_labels = sample_message(labels=LABELS)
    assert "Labels:    env=prod, team=data" in render("email", "body.txt.j2", with_labels)
    assert "Labels: env=prod, team=data" in render("whatsapp", "body.txt.j2", with_labels)
    assert "Labels" not in render("email", "body.txt.j2", sample_message())
    text = render("email", "body.txt.j2", sample_message(state="FLAPPING", labels=LABELS))
    assert text.startswith("Alert flapping (notifications paused)")


def test_labels_usable_in_templates(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "subject.txt.j2").write_text(
        "[{{ labels.team }}] {{ alert_name }} ({{ labels_text }})"
    )
    subject = render(
        "email", "subject.txt.j2", sample_message(labels=LABELS), templates_dir=str(tmp_path)
    )
    assert subject == "[data] Nightly ETL failed (env=prod, team=data)"
