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
