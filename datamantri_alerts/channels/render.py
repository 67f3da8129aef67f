"""Message text from Jinja2 templates: shipped in `datamantri_alerts/templates/<channel>/`,
overridable file by file from the directory named by `ALERTS_TEMPLATES_DIR`
(`<dir>/<channel>/<template>`; files not found there come from the package).

Templates see the message's fields plus a few derived values (see `message_context`).
Every `{{ value }}` is escaped for the renderer its template's output is shown in
(`TEMPLATE_RENDERERS`, `datamantri_alerts.escaping`): alert names, summaries and details are
data, never markup. Template text itself is markup. `| safe` marks a value as markup; the
filters `mrkdwn` / `e` / `escape` escape for the template's renderer (so an override that
applies them is neither escaped twice nor left unescaped), and `code_block` makes a ``` block
that data cannot close (Slack, WhatsApp; elsewhere it escapes the text like `e`).
Every channel truncates what it renders to its own limits with `TRUNCATION_MARKER`:
a long message is shortened, never refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from datamantri_alerts.channels.base import DeliveryError, Digest, Message

if TYPE_CHECKING:
    import jinja2

TRUNCATION_MARKER = "… [truncated]"

STATE_HEADLINES = {
    "FIRING": "Alert firing",
    "REPEAT": "Alert still firing",
    "ESCALATED": "Alert escalated (more severe now)",
    "RESOLVED": "Alert resolved",
    "FLAPPING": "Alert flapping (notifications paused)",
    "ACKNOWLEDGED": "Alert acknowledged (someone is on it)",
    "TEST": "Test notification (nothing is wrong)",
}
#: Colours by severity (Slack attachment bar, HTML accents); RESOLVED is always green,
#: ACKNOWLEDGED a neutral grey (nobody needs to act on it).
SEVERITY_COLOURS = {"critical": "#D32F2F", "warning": "#F9A825", "info": "#1E88E5"}
RESOLVED_COLOUR = "#2E7D32"
ACKNOWLEDGED_COLOUR = "#546E7A"


def truncate(text: str, limit: int, marker: str = TRUNCATION_MARKER) -> str:
    """text, cut to at most limit characters with marker at the end when it was longer."""
    if len(text) <= limit:
        return text
    if limit <= len(marker):
        return text[:limit]
    return text[: limit - len(marker)].rstrip() + marker


def colour_of(message: Message) -> str:
    if message.state == "RESOLVED":
        return RESOLVED_COLOUR
    if message.state == "ACKNOWLEDGED":
        return ACKNOWLEDGED_COLOUR
    return SEVERITY_COLOURS[message.severity]


def format_value(value: Any) -> str:
    """A details value as text: scalars as themselves, structures as indented JSON."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def detail_items(message: Message) -> list[tuple[str, str]]:
    return [(str(key), format_value(value)) for key, value in message.details.items()]


def details_text(message: Message) -> str:
    lines = []
    for key, value in detail_items(message):
        if "\n" in value:
            indented = "\n".join("  " + line for line in value.splitlines())
            lines.append(f"{key}:\n{indented}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


def labels_text(message: Message) -> str:
    """`team=data, env=prod` (sorted by name), or "" for an alert without labels."""
    return ", ".join(f"{key}={value}" for key, value in sorted(message.labels.items()))


def format_when(message: Message) -> str:
    return message.at.isoformat(timespec="seconds")


def message_context(message: Message) -> dict[str, Any]:
    """What every template can use."""
    return {
        **message.model_dump(),
        "message": message,
        "type_label": message.condition_type.replace("_", " ").capitalize(),
        # Our own words: shown as written in every renderer.
        "headline": Escaped(STATE_HEADLINES[message.state]),
        "when": format_when(message),
        "triggered": message.triggered_at.isoformat(timespec="seconds")
        if message.triggered_at
        else "",
        "host": message.host or "unknown host",
        "detail_items": detail_items(message),
        "details_text": details_text(message),
        "labels_text": labels_text(message),
        "colour": colour_of(message),
    }


class Escaped(str):
    """Text already in its template's markup (our own words, or a filter's escaped output):
    templates print it as is. A plain str subclass, unlike `Markup`: `+` or `| upper` on it
    give a str that is escaped again, never an HTML-escaped value trusted by a Teams or Slack
    template."""


#: The renderer each template's output is shown in; by file extension otherwise
#: (`.html.j2` HTML, `.md.j2` the channel's markdown, anything else plain text).
TEMPLATE_RENDERERS = {
    "slack/title.txt.j2": "plain",  # a plain_text header block
    "slack/fallback.txt.j2": "slack",  # the message `text`, which Slack reads as mrkdwn
    "slack/details.md.j2": "slack_code",  # placed in ``` blocks by slack.detail_sections
    "teams/title.txt.j2": "teams",  # a TextBlock
    "whatsapp/body.txt.j2": "whatsapp",
    "slack/digest_title.txt.j2": "plain",  # a plain_text header block
    "teams/digest_title.txt.j2": "teams",  # a TextBlock
    "whatsapp/digest_title.txt.j2": "whatsapp",
    "whatsapp/digest_item.txt.j2": "whatsapp",
}
_MARKDOWN_OF = {"slack": "slack", "teams": "teams", "whatsapp": "whatsapp"}


def renderer_for(channel: str, template: str) -> str:
    """The `datamantri_alerts.escaping` renderer for `<channel>/<template>`."""
    name = f"{channel}/{template}"
    if name in TEMPLATE_RENDERERS:
        return TEMPLATE_RENDERERS[name]
    if template.endswith(".html.j2"):
        return "html"
    if template.endswith(".md.j2"):
        return _MARKDOWN_OF.get(channel, "plain")
    return "plain"


@cache
def template_environment(templates_dir: str | None, renderer: str = "plain") -> jinja2.Environment:
    """The Jinja environment for templates whose output renderer shows (cached per pair)."""
    import jinja2
    from markupsafe import Markup

    from datamantri_alerts import escaping

    escaper = escaping.ESCAPERS[renderer]
    is_html = renderer == "html"
    # What a filter returns: Markup for HTML (autoescape trusts it), Escaped elsewhere.
    trusted: Callable[[str], str] = Markup if is_html else Escaped

    def finalize(value: Any) -> Any:
        # Markup here can only come from `| safe` (or a filter below) in the template itself.
        if isinstance(value, Escaped) or hasattr(value, "__html__"):
            return value
        text = str(value)
        # HTML: autoescape escapes after finalize; only the control characters are left.
        return escaping.visible_controls(text) if is_html else escaper(text)

    def escape_filter(value: Any) -> str:
        if isinstance(value, Escaped) or hasattr(value, "__html__"):
            return value
        return trusted(escaper(str(value)))

    def code_block_filter(value: Any) -> str:
        if renderer in escaping.CODE_BLOCK_RENDERERS:
            return trusted(escaping.code_block(str(value), renderer))
        return escape_filter(value)  # Teams markdown, HTML, plain text: no ``` blocks

    loaders: list[jinja2.BaseLoader] = []
    if templates_dir:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.PackageLoader("datamantri_alerts", "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=is_html,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["mrkdwn"] = escape_filter
    env.filters["code_block"] = code_block_filter
    if not is_html:
        env.filters["e"] = env.filters["escape"] = escape_filter
    return env


def render(
    channel: str,
    template: str,
    message: Message,
    *,
    templates_dir: str | None = None,
    **extra: Any,
) -> str:
    """Render `<channel>/<template>` for message, every value escaped for the template's
    renderer (`renderer_for`). A broken (overridden) template is a permanent delivery error
    naming the template."""
    import jinja2

    name = f"{channel}/{template}"
    try:
        environment = template_environment(templates_dir, renderer_for(channel, template))
        compiled = environment.get_template(name)
        return compiled.render(**message_context(message), **extra).strip()
    except jinja2.TemplateError as exc:
        raise DeliveryError(
            f"template {name} failed: {type(exc).__name__}: {exc}", retryable=False
        ) from None


def digest_context(digest: Digest) -> dict[str, Any]:
    """What every digest template can use: `count`, `counts` (by state), `digest_id`, `host`,
    and `items`: each notification's `message_context`."""
    hosts = sorted({m.host for m in digest.messages if m.host})
    return {
        "digest_id": digest.digest_id,
        "count": len(digest.messages),
        "counts": digest.counts,
        "counts_text": Escaped(", ".join(f"{n} {s}" for s, n in digest.counts.items())),
        "host": ", ".join(hosts) or "unknown host",
        "items": [message_context(m) for m in digest.messages],
    }


def render_digest(
    channel: str, template: str, digest: Digest, *, templates_dir: str | None = None
) -> str:
    """Render `<channel>/<template>` for a whole digest (`digest_context`), escaped like
    `render`; a broken template is a permanent delivery error naming it."""
    import jinja2

    name = f"{channel}/{template}"
    try:
        environment = template_environment(templates_dir, renderer_for(channel, template))
        return environment.get_template(name).render(**digest_context(digest)).strip()
    except jinja2.TemplateError as exc:
        raise DeliveryError(
            f"template {name} failed: {type(exc).__name__}: {exc}", retryable=False
        ) from None
