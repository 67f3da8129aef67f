"""`alerts test`: send a TEST notification on an alert's channels now.

Reads the alert and nothing else: no state, trigger count, history or outbox row changes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datamantri_alerts.clock import Clock
from datamantri_alerts.errors import InputError

if TYPE_CHECKING:
    from datamantri_alerts.channels.base import Message
    from datamantri_alerts.channels.retry import DeliveryResult, RetryNotice, RetryPolicy
    from datamantri_alerts.store.models import Alert

TEST_NOTE = "This is a test notification sent by `alerts test`; nothing is wrong."


@dataclass(frozen=True)
class TestPlan:
    """What a test sends, taken from the alert so no session is held during the sends."""

    __test__ = False  # not a pytest test class

    message: Message
    targets: list[tuple[str, str]]


def plan_test(alert: Alert, *, clock: Clock, host: str, channel: str | None = None) -> TestPlan:
    """The TEST message and the (channel, recipient) pairs for alert; InputError when the
    asked channel is not one of the alert's or the alert has no channel."""
    from datamantri_alerts.channels import delivery_targets
    from datamantri_alerts.channels.base import Message

    channels = list(alert.channels or [])
    if channel is not None:
        channel = channel.strip().lower()
        if channel not in channels:
            have = ", ".join(channels) or "none"
            raise InputError(
                f"alert {alert.name!r} does not use channel {channel!r} (it uses: {have})",
                field="--channel",
            )
    targets = delivery_targets(channels, alert.recipients or {}, only=channel)
    if not targets:
        raise InputError(f"alert {alert.name!r} has no channels to test")
    message = Message(
        alert_id=alert.id,
        alert_name=alert.name,
        description=alert.description or "",
        condition_type=alert.condition_type,
        severity=alert.severity,  # type: ignore[arg-type]
        state="TEST",
        at=clock.now(),
        summary=TEST_NOTE,
        details={"note": TEST_NOTE, "channels": ", ".join(sorted({c for c, _ in targets}))},
        host=host,
    )
    return TestPlan(message, targets)


def run_test(
    plan: TestPlan,
    *,
    environ: Mapping[str, str] | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_start: Callable[[str, str], None] | None = None,
    on_retry: Callable[[RetryNotice], None] | None = None,
) -> list[DeliveryResult]:
    """Send the plan's message to every target with the usual retry policy, one result each.

    on_start(channel, recipient as shown) is called before each target is sent to, on_retry
    for each attempt that failed and is retried (progress on a terminal)."""
    from datamantri_alerts.channels import get_channel
    from datamantri_alerts.channels.retry import deliver, display_recipient

    env = os.environ if environ is None else environ
    results = []
    for name, recipient in plan.targets:
        if on_start is not None:
            on_start(name, display_recipient(get_channel(name), recipient))
        results.append(
            deliver(
                name,
                plan.message,
                recipient,
                environ=env,
                policy=policy,
                sleep=sleep,
                on_retry=on_retry,
            )
        )
    return results
