"""The sync plan shows every secret recipient the way its channel masks it, whatever its form:
an Apprise URL (`discord://***`, not `mask_url`'s path-keeping form for non-HTTP schemes), a list
of webhook URLs and mappings (masked item by item), and a webhook mapping's `format`, which is a
setting and is shown as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli

TOKENS = ("APPRISE-TOKEN-ONE", "APPRISE-TOKEN-TWO", "HOOK-TOKEN-ONE", "HOOK-TOKEN-TWO", "MAP-TOKEN")


def document(apprise: str, hook: str, fmt: str) -> str:
    return f"""
pipelines: [{{id: p, name: P}}]
alerts:
  - name: apprise
    condition_type: pipeline_failure
    condition_config: {{pipeline_id: p}}
    channels: [apprise]
    recipients: {{apprise: "discord://1234567890/{apprise}"}}
  - name: hooks
    condition_type: pipeline_failure
    condition_config: {{pipeline_id: p}}
    channels: [webhook]
    recipients:
      webhook:
        - https://hooks.example.com/a/{hook}
        - url: https://hooks.example.com/b/MAP-TOKEN
          secret: "${{HOOK_SECRET}}"
          format: alertmanager
  - name: one hook
    condition_type: pipeline_failure
    condition_config: {{pipeline_id: p}}
    channels: [webhook]
    recipients:
      webhook: {{url: "https://hooks.example.com/c/MAP-TOKEN", secret: "${{HOOK_SECRET}}",
                format: {fmt}}}
"""


@pytest.fixture
def changed_file(cli: Cli, tmp_path: Path) -> Path:
    first = tmp_path / "first.yaml"
    first.write_text(document("APPRISE-TOKEN-ONE", "HOOK-TOKEN-ONE", "alertmanager"))
    assert cli("sync", str(first)).exit_code == 0
    second = tmp_path / "second.yaml"
    second.write_text(document("APPRISE-TOKEN-TWO", "HOOK-TOKEN-TWO", "native"))
    return second


def test_plan_text_masks_every_secret_recipient(cli: Cli, changed_file: Path) -> None:
    plan = cli("sync", str(changed_file), "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert not [t for t in TOKENS if t in plan.output]
    flat = " ".join(plan.stdout.replace("│", " ").split())
    assert "recipients.apprise: discord://*** -> discord://*** (changed)" in flat
    assert "recipients.webhook.format: alertmanager -> -" in flat


def test_plan_json_masks_item_by_item(cli: Cli, changed_file: Path) -> None:
    plan = cli("sync", str(changed_file), "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    assert not [t for t in TOKENS if t in plan.stdout]
    diffs = {c["name"]: c["diff"] for c in plan.json()["changes"] if c["kind"] == "alert"}
    assert diffs["apprise"] == [
        {
            "field": "recipients.apprise",
            "old": "discord://***",
            "new": "discord://***",
            "secret": True,
        }
    ]
    masked = [
        "https://hooks.example.com/***",
        {
            "url": "https://hooks.example.com/***",
            "secret": "${HOOK_SECRET}",
            "format": "alertmanager",
        },
    ]
    assert diffs["hooks"] == [
        {"field": "recipients.webhook", "old": masked, "new": masked, "secret": True}
    ]
    assert diffs["one hook"] == [
        {"field": "recipients.webhook.format", "old": "alertmanager", "new": None, "secret": False}
    ]
