"""Reading what the sink received and what the store holds."""

from __future__ import annotations

import re
from typing import Any


def slack_state(body: Any) -> str:
    """The State field of a Slack Block Kit message (FIRING, REPEAT, RESOLVED, TEST)."""
    for block in body["attachments"][0]["blocks"]:
        for item in block.get("fields", []):
            match = re.match(r"\*State\*\n(\w+)", item["text"])
            if match:
                return match.group(1)
    raise AssertionError(f"no State field in {body!r}")


def slack_alert_name(body: Any) -> str:
    return body["attachments"][0]["blocks"][0]["text"]["text"]


def as_a_new_process() -> None:
    """Forget the per-webhook pacing booked by earlier in-process runs, as a new process would.

    Each cron run is a new `alerts` process in production, and a new process starts with no
    pacing booked (Slack: one send a second per webhook, on the real monotonic clock). Tests
    that play many cron runs in one process call this before each run, instead of waiting out
    a second booked by the previous run; sends within one run are still paced.
    """
    from datamantri_alerts.channels.retry import PACER

    PACER.clear()
