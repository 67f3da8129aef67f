"""A dead man's switch (healthchecks.io style): `ALERTS_HEARTBEAT_URL` hears from every run.

`<url>/start` when a run begins, `<url>` when it ends well, `<url>/fail` when it does not. Each ping
is bounded by a timeout and never fails the run: a monitoring outage must not stop alerting.
Pings go through the guarded session (`net.session`): the destination policy refuses private
addresses unless `ALERTS_ALLOW_PRIVATE_WEBHOOKS=1`, and a redirect is a failed ping, not followed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from datamantri_alerts.net.destinations import DestinationPolicy, heartbeat_policy

log = logging.getLogger(__name__)

HEARTBEAT_ENV = "ALERTS_HEARTBEAT_URL"
TIMEOUT_SECONDS = 5.0


@dataclass
class Heartbeat:
    url: str | None
    timeout: float = TIMEOUT_SECONDS
    policy: DestinationPolicy | None = None  # None: the heartbeat policy from os.environ

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Heartbeat:
        env = os.environ if environ is None else environ
        return cls(env.get(HEARTBEAT_ENV, "").strip() or None, policy=heartbeat_policy(env))

    def start(self) -> bool:
        return self._ping("/start", "")

    def finish(self, ok: bool, message: str = "") -> bool:
        return self._ping("" if ok else "/fail", message)

    def _ping(self, suffix: str, body: str) -> bool:
        """POST to url + suffix; True when it answered 2xx. Never raises."""
        if not self.url:
            return False
        from datamantri_alerts.channels.http import redact, url_secrets
        from datamantri_alerts.secrets import mask_url

        target = self.url.rstrip("/") + suffix
        try:
            from datamantri_alerts.net.session import guarded_session

            # stream=True: the status line is all a ping needs. Reading the body would be
            # bounded per socket read only, so a reply trickling a byte at a time (or gigabytes
            # of it) would hold the run or its memory; it is never read.
            with (
                guarded_session(self.policy or heartbeat_policy()) as session,
                session.post(
                    target, data=body.encode()[:10_000], timeout=self.timeout, stream=True
                ) as response,
            ):
                status = response.status_code
        except Exception as exc:
            log.warning(
                "heartbeat %s failed: %s",
                mask_url(target),
                # requests names the path alone in its errors: redact the URL's parts too.
                redact(
                    f"{type(exc).__name__}: {exc}", [*url_secrets(target), *url_secrets(self.url)]
                ),
            )
            return False
        if not 200 <= status < 300:
            log.warning("heartbeat %s answered HTTP %s", mask_url(target), status)
            return False
        return True
