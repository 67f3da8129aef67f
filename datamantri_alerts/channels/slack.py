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
    Digest,
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
#: One digest line (an alert's state, severity, name and summary) is cut to this.
DIGEST_ITEM_LIMIT = 600


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
        self._post(build_payload(message, config), recipient, config)

    def digest_pages(self, digest: Digest, config: SlackConfig) -> list[list[int]]:
        return [[i for section in page for i in section] for page in _digest_layout(digest, config)]

    def send_digest(self, digest: Digest, recipient: str, config: SlackConfig) -> None:
        self._post(build_digest_payload(digest, config), recipient, config)

    def _post(self, payload: dict[str, Any], recipient: str, config: SlackConfig) -> None:
        from datamantri_alerts.channels.http import post_json, raise_for_reply
        from datamantri_alerts.channels.recipients import RecipientError

        try:
            validate_webhook_url(recipient)
        except RecipientError as exc:
            raise DeliveryError(f"unusable webhook URL: {exc}", retryable=False) from None
        reply = post_json(recipient, payload, timeout=config.timeout)
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


def _digest_lines(digest: Digest, config: SlackConfig) -> list[str]:
    from datamantri_alerts.channels.render import render, truncate

    return [
        truncate(
            " ".join(
                render("slack", "digest_item.md.j2", m, templates_dir=config.templates_dir).split()
            ),
            DIGEST_ITEM_LIMIT,
        )
        for m in digest.messages
    ]


def _digest_layout(digest: Digest, config: SlackConfig) -> list[list[list[int]]]:
    """Pages of sections of message indices: each section's lines joined stay within
    SECTION_LIMIT, each page within MAX_BLOCKS (with its header and context blocks)."""
    lines = _digest_lines(digest, config)
    per_page = MAX_BLOCKS - 2
    pages: list[list[list[int]]] = [[]]
    size = 0
    for index, line in enumerate(lines):
        page = pages[-1]
        if page and size + 1 + len(line) <= SECTION_LIMIT:
            page[-1].append(index)
            size += 1 + len(line)
            continue
        if len(page) == per_page:
            pages.append([])
            page = pages[-1]
        page.append([index])
        size = len(line)
    return [page for page in pages if page]


def build_digest_payload(digest: Digest, config: SlackConfig) -> dict[str, Any]:
    """One Slack message listing every notification of digest (one page of it): a header
    with the counts, the items as mrkdwn lines packed into sections, a context line."""
    from datamantri_alerts.channels.render import (
        RESOLVED_COLOUR,
        SEVERITY_COLOURS,
        render_digest,
        truncate,
    )

    def text(template: str) -> str:
        return render_digest("slack", template, digest, templates_dir=config.templates_dir)

    title = " ".join(text("digest_title.txt.j2").split())
    lines = _digest_lines(digest, config)
    layout = _digest_layout(digest, config)[0] if digest.messages else []
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(truncate(title, HEADER_LIMIT))}
    ]
    blocks.extend(
        {"type": "section", "text": _mrkdwn("\n".join(lines[i] for i in section))}
        for section in layout
    )
    blocks.append(
        {"type": "context", "elements": [_mrkdwn(truncate(text("digest_context.md.j2"), 2000))]}
    )
    firing = [m for m in digest.messages if m.state != "RESOLVED"]
    order = ["critical", "warning", "info"]
    colour = (
        SEVERITY_COLOURS[min((m.severity for m in firing), key=order.index)]
        if firing
        else RESOLVED_COLOUR
    )
    fallback = truncate(escape_mrkdwn(title), FALLBACK_LIMIT)
    return {
        "text": fallback,
        "attachments": [{"color": colour, "fallback": fallback, "blocks": blocks}],
    }


def _plain(text: str) -> dict[str, Any]:
    # emoji=False: `:thumbsup:` in an alert name stays text.
    return {"type": "plain_text", "text": text or "-", "emoji": False}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or "-"}


CHANNEL = SlackChannel()
