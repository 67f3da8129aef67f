"""User and data text, escaped for the renderer it is shown in: text is data, never markup.

Alert names, descriptions, summaries, details, query rows, error text, job output and entity
names come from users and from watched systems. Each renderer below turns such a string into
something that renderer shows literally:

- `terminal`: control characters (C0 except newline and tab, DEL, C1, and the bidirectional
  overrides) become visible `\\xNN` / `\\uNNNN` escapes, so data cannot move the cursor,
  recolour the terminal or reorder a line. Rich markup and emoji codes are switched off by
  the console in `cli/context.py`, so `[bold]` and `:thumbsup:` stay literal.
- `slack`: Slack mrkdwn; `&`, `<`, `>` as entities (so no `<!here>` mention, `<url|link>` or
  quote), the formatting characters ``*_~` `` and `:emoji:` codes neutralised (Slack has no
  escape character).
- `slack_code`: text inside a Slack code block: only the entities.
- `teams`: Adaptive Card TextBlock / Fact markdown (a CommonMark subset): ASCII punctuation
  that can start markup is backslash-escaped, including list starts at the beginning of a
  line, so `[link](https://x)` is text, not a link.
- `whatsapp`: WhatsApp formatting ``*_~` `` neutralised (WhatsApp has no escape character).
- `html`: HTML text and attribute values (`&`, `<`, `>`, `"`, `'`), as Jinja's autoescape.
- `json_text`: JSON printed by `--json`, where JSON's own escaping leaves C1 and bidi raw.
- `plain`: e-mail text parts, subjects and notification fallbacks: only control characters
  other than newline and tab are made visible.

Code blocks: `code_block(text, renderer)` gives the text fenced with ``` for Slack and WhatsApp
such that nothing inside can close the fence.

"Neutralised" means a zero-width space (U+200B) is put next to the character: the text reads
and copies the same, but the character no longer pairs up into markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

ZERO_WIDTH_SPACE: Final = "\u200b"
FENCE: Final = "```"

#: C0 controls except tab and newline, DEL, C1 controls, and the bidi embeddings/overrides/
#: isolates (the "Trojan Source" characters) plus the line/paragraph separators.
_UNSAFE_CONTROLS: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)

#: Markdown punctuation the Adaptive Card renderers (CommonMark subset plus `{{DATE()}}`
#: functions) could read as markup; CommonMark allows a backslash before any ASCII punctuation.
#: `_` only where it can open or close emphasis (CommonMark leaves `a_b_c` alone; not `a*b*c`).
_TEAMS_SPECIAL: Final = re.compile(r"([\\`*~\[\]()<>#!|{}&]|(?<![^\W_])_|_(?![^\W_]))")
#: A list item or heading start at the beginning of a line: `- x`, `+ x`, `1. x`, `1) x`, `= x`.
_TEAMS_LINE_START: Final = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))", re.MULTILINE)
#: A formatting character that could open or close markup: not between two letters/digits
#: (`orders_daily` is left alone; `_x_`, `*x*`, `` `x` `` are not).
_FORMATTING_RUN: Final = re.compile(r"(?<![^\W_])[*_~`]|[*_~`](?![^\W_])")
#: The opening colon of a Slack emoji code such as `:thumbsup:`.
_EMOJI_CODE: Final = re.compile(r":(?=[\w+'-]+:)")
_BACKTICKS: Final = re.compile(r"`(?=`)")


def visible_controls(text: str) -> str:
    """text with every unsafe control character replaced by its Python escape (`\\x1b`);
    CRLF line ends become plain newlines, a lone CR (which overwrites a line) is escaped."""
    if text.isprintable():  # the common case, at C speed: every unsafe character is unprintable
        return text
    return _UNSAFE_CONTROLS.sub(_escape_code, text.replace("\r\n", "\n"))


def _escape_code(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def json_text(dumped: str) -> str:
    """A JSON document (from `json.dumps(..., ensure_ascii=False)`) with the control and bidi
    characters JSON leaves raw (DEL, C1, U+2028, U+202E, ...) written as `\\uXXXX` escapes:
    the same data, safe to show on a terminal."""
    return _UNSAFE_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


def terminal(text: str) -> str:
    """For a terminal (through rich with markup and emoji off, or written directly)."""
    return visible_controls(str(text))


def plain(text: str) -> str:
    """For plain text shown by a mail or chat client: newlines and tabs are kept."""
    return visible_controls(str(text))


def slack(text: str) -> str:
    """For Slack mrkdwn text outside code blocks."""
    escaped = _slack_entities(visible_controls(str(text)))
    escaped = _FORMATTING_RUN.sub(lambda m: m.group() + ZERO_WIDTH_SPACE, escaped)
    return _EMOJI_CODE.sub(":" + ZERO_WIDTH_SPACE, escaped)


def _slack_entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_code(text: str) -> str:
    """For text inside a Slack code block (formatting is literal there; entities are not)."""
    return _slack_entities(visible_controls(str(text)))


def teams(text: str) -> str:
    """For Adaptive Card TextBlock text and FactSet titles/values (Teams markdown)."""
    escaped = _TEAMS_SPECIAL.sub(r"\\\1", visible_controls(str(text)))
    return _TEAMS_LINE_START.sub(_teams_line_start, escaped)


def _teams_line_start(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    if marker.isdigit():
        # `1. x` is a list; `1\. x` is text. The `.`/`)` follows the digits: escape it.
        return f"{indent}{marker}\\"
    return f"{indent}\\{marker}"


def whatsapp(text: str) -> str:
    """For WhatsApp message text outside code blocks."""
    return _FORMATTING_RUN.sub(
        lambda m: ZERO_WIDTH_SPACE + m.group() + ZERO_WIDTH_SPACE, visible_controls(str(text))
    )


def html(text: str) -> str:
    """For HTML text and quoted attribute values."""
    from markupsafe import escape

    return str(escape(visible_controls(str(text))))


def fence_safe(text: str) -> str:
    """text that cannot close (or open) a ``` code block: no two backticks stay adjacent,
    and a backtick at the end is kept off the closing fence."""
    safe = _BACKTICKS.sub("`" + ZERO_WIDTH_SPACE, text)
    return safe + ZERO_WIDTH_SPACE if safe.endswith("`") else safe


CODE_BLOCK_RENDERERS: Final = frozenset({"slack", "slack_code", "whatsapp"})


def code_block(text: str, renderer: str) -> str:
    """text as a ``` code block for a renderer in CODE_BLOCK_RENDERERS (ValueError otherwise).

    Inside Slack code blocks `&`, `<` and `>` are still entities; formatting characters are
    literal in both, so only the fence itself needs guarding."""
    if renderer in ("slack", "slack_code"):
        body = slack_code(text)
    elif renderer == "whatsapp":
        body = visible_controls(str(text))
    else:
        raise ValueError(f"no code blocks for renderer {renderer!r}")
    return f"{FENCE}\n{fence_safe(body)}{FENCE}"


ESCAPERS: Final[dict[str, Callable[[str], str]]] = {
    "terminal": terminal,
    "plain": plain,
    "slack": slack,
    "slack_code": slack_code,
    "teams": teams,
    "whatsapp": whatsapp,
    "html": html,
}


def escape(text: object, renderer: str) -> str:
    """str(text) escaped for renderer (a key of ESCAPERS); KeyError for an unknown one."""
    return ESCAPERS[renderer](str(text))


def slack_chunks(text: str, size: int) -> list[str]:
    """Slack-escaped text cut into pieces of at most size characters, never inside an
    `&amp;`/`&lt;`/`&gt;` entity (a cut one would show as text)."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            amp = text.rfind("&", max(start, end - 4), end)
            if amp > start and ";" not in text[amp:end]:
                end = amp
        pieces.append(text[start:end])
        start = end
    return pieces
