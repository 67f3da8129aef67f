"""Delivery: the one retry policy, per-recipient pacing, and a structured result per send.

`deliver(channel, message, recipient)` resolves the recipient (`${VAR}`), builds the channel's
settings from the environment, and sends, retrying what is retryable:

- exponential backoff with jitter between attempts (1 s, 2 s, 4 s ... capped, plus up to 1 s);
- a `Retry-After` the service gave is honoured instead, up to a cap (60 s by default);
- 3 attempts by default.

The policy comes from the environment when not given: `ALERTS_RETRY_ATTEMPTS`,
`ALERTS_RETRY_INITIAL_DELAY`, `ALERTS_RETRY_MAX_DELAY`, `ALERTS_RETRY_AFTER_CAP` (seconds).

It never raises for a failed delivery: the result says delivered or failed, why, whether a
later retry may help, and how many attempts it took. Sleep and the monotonic clock are
injectable so tests can assert waits without waiting.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from datamantri_alerts.channels.base import (
    Channel,
    DeliveryError,
    Digest,
    DigestChannel,
    Message,
)
from datamantri_alerts.errors import InputError, RuntimeFailure

log = logging.getLogger("datamantri_alerts.channels")

DeliveryStatus = Literal["delivered", "failed"]

#: RetryPolicy field -> the environment variable that sets it.
RETRY_ENV: dict[str, str] = {
    "attempts": "ALERTS_RETRY_ATTEMPTS",
    "initial_delay": "ALERTS_RETRY_INITIAL_DELAY",
    "max_delay": "ALERTS_RETRY_MAX_DELAY",
    "retry_after_cap": "ALERTS_RETRY_AFTER_CAP",
}


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 1.0
    retry_after_cap: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.initial_delay, self.max_delay, self.jitter, self.retry_after_cap) < 0:
            raise ValueError("delays must not be negative")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, var in RETRY_ENV.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            try:
                values[name] = int(raw) if name == "attempts" else float(raw)
            except ValueError:
                raise InputError(f"{var} must be a number, got {raw!r}") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise InputError(f"retry settings: {exc}") from None

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), without a hint."""
        import random

        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return base + random.uniform(0, self.jitter)

    def wait_after(self, error: DeliveryError, attempt: int) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.retry_after_cap)
        return self.backoff(attempt)


class RecipientPacer:
    """At most one send per `interval` seconds to the same key (e.g. a Slack webhook).

    Thread-safe; `reserve` books the next slot and says how long to wait for it.
    """

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, interval: float, now: float) -> float:
        with self._lock:
            slot = max(now, self._next.get(key, now))
            self._next[key] = slot + interval
            return slot - now

    def sent(self, key: str, interval: float, now: float) -> None:
        """A send to key ended at `now`: the next one starts no sooner than `interval` after
        it. Counted from the end, so the service sees its requests at least `interval` apart
        however long one took to reach it (a slot counted from the start alone let a slow first
        request arrive less than `interval` before the next)."""
        with self._lock:
            self._next[key] = max(self._next.get(key, now), now + interval)

    def clear(self) -> None:
        with self._lock:
            self._next.clear()


#: Process-wide pacing shared by every deliver() call.
PACER = RecipientPacer()


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one message for one channel and recipient."""

    channel: str
    #: The recipient as given (may be `${VAR}`); may be secret — show `recipient_display`.
    recipient: str
    recipient_display: str
    status: DeliveryStatus
    attempts: int
    duration_ms: int
    #: Why it failed (redacted, safe to show and store); None when delivered.
    error: str | None = None
    #: For a failure: whether trying again later may succeed.
    retryable: bool = False
    #: HTTP status, SMTP code, Twilio code, or a word such as "timeout" / "config".
    error_status: int | str | None = None
    #: Seconds spent waiting between attempts (backoff, Retry-After, pacing).
    waits: tuple[float, ...] = ()
    #: For a failure: the seconds the service asked to wait (`Retry-After`), if it said.
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"

    def as_json(self) -> dict[str, Any]:
        """The `alerts test --json` shape (recipient masked), plus attempts and retryable."""
        return {
            "channel": self.channel,
            "recipient": self.recipient_display,
            "status": self.status,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "attempts": self.attempts,
            "retryable": self.retryable,
        }


@dataclass(frozen=True)
class RetryNotice:
    """A failed attempt that is about to be retried (for progress display)."""

    channel: str
    recipient: str  # as it may be shown
    attempt: int
    attempts: int
    reason: str  # redacted
    wait_seconds: float


def register_secrets(values: list[str]) -> None:
    """Tell the process-wide redactor about secrets met while sending (a resolved `${VAR}`
    routing key, Apprise URL or signing secret), so no later line of this process shows them."""
    from datamantri_alerts.secrets import register_secret

    for value in values:
        register_secret(value)


def display_recipient(channel: Channel, recipient: str) -> str:
    """A recipient as it may be shown: webhook URLs masked, `${VAR}` as written."""
    return channel.mask_recipient(recipient)


def redacted_message(message: Message | Digest, secrets: Sequence[str] = ()) -> Message | Digest:
    """message with every known secret (`secrets`: this delivery's webhook and settings, plus
    the redactor's registry and environment) masked in all of its text: name, description,
    summary, host and details; for a digest, in each of its messages. Links that are no secret
    stay (`secrets.redact_known`)."""
    from datamantri_alerts.secrets import redact_known, redact_value

    def rule(text: str) -> str:
        return redact_known(text, secrets)

    if isinstance(message, Digest):
        return message.model_copy(
            update={"messages": [_redacted(m, rule, redact_value) for m in message.messages]}
        )
    return _redacted(message, rule, redact_value)


def _redacted(message: Message, rule: Callable[[str], str], redact_value: Any) -> Message:
    return message.model_copy(
        update={
            "alert_name": rule(message.alert_name),
            "description": rule(message.description),
            "summary": rule(message.summary),
            "host": rule(message.host),
            "details": redact_value(message.details, rule),
        }
    )


def deliver(
    channel: Channel | str,
    message: Message | Digest,
    recipient: str,
    *,
    environ: Mapping[str, str] | None = None,
    config: Any = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    pacer: RecipientPacer | None = None,
    on_retry: Callable[[RetryNotice], None] | None = None,
) -> DeliveryResult:
    """Send message (or one page of a digest) to one recipient of one channel, retrying what
    is retryable.

    recipient is as stored (`${VAR}` is resolved here from environ). config defaults to the
    channel's settings built from environ; policy to `RetryPolicy.from_env(environ)`.
    on_retry is told of each failed attempt that will be retried, before the wait.
    Never raises for a delivery failure; returns a DeliveryResult.
    """
    import tenacity

    from datamantri_alerts.channels import get_channel
    from datamantri_alerts.channels.http import redact
    from datamantri_alerts.secrets import secrets_from_env

    chan = get_channel(channel) if isinstance(channel, str) else channel
    env = os.environ if environ is None else environ
    pacer = PACER if pacer is None else pacer
    shown = display_recipient(chan, recipient)
    started = monotonic()
    secrets = list(secrets_from_env(env))
    waits: list[float] = []
    attempts = 0

    def result(error: DeliveryError | None) -> DeliveryResult:
        duration_ms = round((monotonic() - started) * 1000)
        if error is None:
            log.info("%s to %s: delivered (attempts: %d)", chan.name, shown, attempts)
            return DeliveryResult(
                chan.name, recipient, shown, "delivered", attempts, duration_ms, waits=tuple(waits)
            )
        reason = redact(error.reason, secrets)
        log.info("%s to %s: failed after %d attempt(s): %s", chan.name, shown, attempts, reason)
        return DeliveryResult(
            chan.name,
            recipient,
            shown,
            "failed",
            attempts,
            duration_ms,
            error=reason,
            retryable=error.retryable,
            error_status=error.status,
            waits=tuple(waits),
            retry_after=error.retry_after,
        )

    try:
        target = chan.resolve_recipient(recipient, env)
    except RuntimeFailure as exc:
        return result(DeliveryError(str(exc), retryable=False, status="config"))
    secrets.extend(chan.recipient_secrets(target))
    register_secrets(chan.recipient_secrets(target))
    try:
        settings = chan.config_model.from_env(env) if config is None else config
        retry_policy = RetryPolicy.from_env(env) if policy is None else policy
    except DeliveryError as exc:
        return result(exc)
    except InputError as exc:
        return result(DeliveryError(str(exc), retryable=False, status="config"))
    secrets.extend(settings.secret_values())
    register_secrets(settings.secret_values())
    # Every send goes through here (the outbox and `alerts test`): no known secret in any text.
    message = redacted_message(message, secrets)

    def attempt() -> None:
        nonlocal attempts
        paced = chan.min_send_interval > 0
        pacing_key = f"{chan.name}:{target}"
        if paced:
            delay = pacer.reserve(pacing_key, chan.min_send_interval, monotonic())
            if delay > 0:
                waits.append(delay)
                sleep(delay)
        attempts += 1
        try:
            _send()
        finally:
            if paced:
                pacer.sent(pacing_key, chan.min_send_interval, monotonic())

    def _send() -> None:
        try:
            if isinstance(message, Digest):
                if not isinstance(chan, DigestChannel):
                    raise DeliveryError(f"{chan.name} does not send digests", retryable=False)
                chan.send_digest(message, target, settings)
            else:
                chan.send(message, target, settings)
        except DeliveryError:
            raise
        except Exception as exc:  # a library surprise must not stop the other channels
            log.debug("%s send raised %s", chan.name, type(exc).__name__, exc_info=True)
            raise DeliveryError(
                f"unexpected error: {type(exc).__name__}: {exc}", retryable=False
            ) from None

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, DeliveryError):
            seconds = retry_policy.wait_after(error, state.attempt_number)
        else:
            seconds = retry_policy.backoff(state.attempt_number)
        waits.append(seconds)
        return seconds

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        reason = redact(getattr(error, "reason", str(error)), secrets)
        log.info(
            "%s to %s: attempt %d/%d failed (%s); retrying in %.1f s",
            chan.name,
            shown,
            state.attempt_number,
            retry_policy.attempts,
            reason,
            state.upcoming_sleep,
        )
        if on_retry is not None:
            on_retry(
                RetryNotice(
                    chan.name,
                    shown,
                    state.attempt_number,
                    retry_policy.attempts,
                    reason,
                    float(state.upcoming_sleep),
                )
            )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retry_policy.attempts),
        wait=wait,
        retry=tenacity.retry_if_exception(
            lambda exc: isinstance(exc, DeliveryError) and exc.retryable
        ),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        retrying(attempt)
    except DeliveryError as exc:
        return result(exc)
    return result(None)
