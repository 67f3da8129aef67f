"""Slack incoming webhooks: Block Kit inside an attachment coloured by severity.

The payload has a plain `text` (what notifications and old clients show) and one attachment
whose `color` is the severity bar and whose `blocks` are: a header, a section with the
headline, description and summary, a section of fields (type, severity, state, when, host),
the details in as many sections as they need, and a context line. Values from the alert or
the check are escaped for mrkdwn (`escaping.slack`); the details sit in ``` blocks they cannot
close, cut between sections never inside an `&amp;` entity.

Slack's limits are enforced by truncating with a marker: header text 150 characters, section
text 3000, field text 2000 and at most 10 fields, at most 50 blocks.

Replies: 200 with body `ok` is delivered; 429 is retried after `Retry-After`; 5xx retried;
400/403/404/410 are permanent and keep Slack's error string (`invalid_payload`,
`channel_is_archived`, `no_service`, ...). Slack accepts about one message per second per
webhook, so sends to the same webhook in one process are spaced by a second.

Settings: `ALERTS_HTTP_CONNECT_TIMEOUT` (default 5 s), `ALERTS_HTTP_READ_TIMEOUT` (15 s).
"""

from __future__ import annotations

from typing import Any, ClassVar

from datamantri_alerts.channels.base import (
    ChannelBase,
    ChannelConfig,
    DeliveryError,
    Message,
    WebhookConfig,
)
from datamantri_alerts.channels.recipients import validate_webhook_url
from datamantri_alerts.escaping import ZERO_WIDTH_SPACE, fence_safe, slack_chunks
from datamantri_alerts.escaping import slack as escape_mrkdwn

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
FALLBACK_LIMIT = 3000
#: Details beyond this many characters are cut: the message stays readable in a channel.
DETAILS_LIMIT = 12_000


class SlackConfig(WebhookConfig):
    channel: ClassVar[str] = "slack"


class SlackChannel(ChannelBase):
    name: ClassVar[str] = "slack"
    recipient_is_secret: ClassVar[bool] = True
    fallback_env: ClassVar[str | None] = "SLACK_WEBHOOK_URL"
    config_model: ClassVar[type[ChannelConfig]] = SlackConfig
    min_send_interval: ClassVar[float] = 1.0

    def normalize_recipients(self, value: Any) -> str:
        return validate_webhook_url(value)

    def recipient_list(self, value: Any) -> list[str]:
        return [value] if value else []

    def send(self, message: Message, recipient: str, config: SlackConfig) -> None:
        from datamantri_alerts.channels.http import post_json, raise_for_reply
        from datamantri_alerts.channels.recipients import RecipientError

        try:
            validate_webhook_url(recipient)
        except RecipientError as exc:
            raise DeliveryError(f"unusable webhook URL: {exc}", retryable=False) from None
        reply = post_json(recipient, build_payload(message, config), timeout=config.timeout)
        if reply.status == 200 and reply.text.strip() == "ok":
            return
        if 200 <= reply.status < 300:
            raise DeliveryError(
                f"unexpected reply HTTP {reply.status}: {reply.text.strip()[:200]!r}",
                retryable=False,
                status=reply.status,
            )
        # Slack answers errors with a bare code such as `channel_is_archived`.
        raise_for_reply(reply, detail=" ".join(reply.text.split())[:200])

    def preview(self, message: Message, config: SlackConfig) -> dict[str, Any]:
        return {"payload": build_payload(message, config)}


def build_payload(message: Message, config: SlackConfig) -> dict[str, Any]:
    from datamantri_alerts.channels.render import (
        colour_of,
        format_when,
        labels_text,
        render,
        truncate,
    )

    def text(template: str) -> str:
        return render("slack", template, message, templates_dir=config.templates_dir)

    title = " ".join(text("title.txt.j2").split())
    fallback = truncate(text("fallback.txt.j2"), FALLBACK_LIMIT)
    fields = [
        ("Type", message.condition_type),
        ("Severity", message.severity),
        ("State", message.state),
        ("When", format_when(message)),
        ("Host", escape_mrkdwn(message.host or "unknown host")),
    ]
    if message.labels:
        fields.append(("Labels", escape_mrkdwn(labels_text(message))))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(truncate(title, HEADER_LIMIT))},
        {"type": "section", "text": _mrkdwn(truncate(text("text.md.j2"), SECTION_LIMIT))},
        {
            "type": "section",
            "fields": [
                _mrkdwn(truncate(f"*{label}*\n{value}", FIELD_LIMIT))
                for label, value in fields[:MAX_FIELDS]
            ],
        },
    ]
    details = text("details.md.j2") if message.details else ""
    context = {"type": "context", "elements": [_mrkdwn(truncate(text("context.md.j2"), 2000))]}
    room = MAX_BLOCKS - len(blocks) - 1
    blocks.extend(detail_sections(details, room))
    blocks.append(context)
    return {
        "text": fallback,
        "attachments": [{"color": colour_of(message), "fallback": fallback, "blocks": blocks}],
    }


def detail_sections(details: str, room: int) -> list[dict[str, Any]]:
    """The details (already escaped for a Slack code block) as ``` sections of at most 3000
    characters, at most room of them. Nothing in the details can close the block, and no
    `&amp;` entity is cut in two."""
    from datamantri_alerts.channels.render import TRUNCATION_MARKER

    if not details.strip() or room <= 0:
        return []
    fence = "```"
    # Room for the fences, the newline after the opening one, and a guard after a final `.
    chunk = SECTION_LIMIT - 2 * len(fence) - 2
    guarded = fence_safe(details)
    limit = min(DETAILS_LIMIT, chunk * room)
    if len(guarded) > limit:
        # Cut where slack_chunks would (never inside an entity), then mark the cut.
        guarded = slack_chunks(guarded, limit - len(TRUNCATION_MARKER))[0] + TRUNCATION_MARKER
    pieces = slack_chunks(guarded, chunk)[:room]
    return [
        {
            "type": "section",
            "text": _mrkdwn(
                f"{fence}\n{piece}{ZERO_WIDTH_SPACE if piece.endswith('`') else ''}{fence}"
            ),
        }
        for piece in pieces
    ]


def _plain(text: str) -> dict[str, Any]:
    # emoji=False: `:thumbsup:` in an alert name stays text.
    return {"type": "plain_text", "text": text or "-", "emoji": False}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or "-"}


CHANNEL = SlackChannel()
