"""User and data text reaches every channel escaped for its renderer: data is never markup.

Each test sends through the real channel to its loopback stand-in (the Teams one validates the
Adaptive Card 1.4 schema, the Slack one Block Kit's limits, aiosmtpd receives the e-mail) and
asserts on what arrived.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from datamantri_alerts.channels.retry import RecipientPacer, RetryPolicy, deliver
from datamantri_alerts.escaping import ZERO_WIDTH_SPACE
from tests.channels.conftest import (
    EMAIL_TO,
    SLACK_PATH,
    TEAMS_PATH,
    WHATSAPP_TO,
    LoopbackHTTPServer,
    SMTPServer,
    sample_message,
    twilio_environ,
)

LINK = "[link](https://evil.example)"
FENCE = "```"
ROWS = [{"note": LINK}, {"note": f"{FENCE}\n*boom* <!here> & `x`"}]

#: A markdown link, however it got there: `[text](url)` unescaped.
MARKDOWN_LINK = re.compile(r"(?<!\\)\[[^\]\\]*(?<!\\)\]\((?!\\)")


def _deliver(channel: str, recipient: str, environ: dict[str, str], **message: Any) -> Any:
    result = deliver(
        channel,
        sample_message(**message),
        recipient,
        environ=environ,
        policy=RetryPolicy(attempts=1),
        pacer=RecipientPacer(),
    )
    assert result.status == "delivered", result.error
    return result


def _teams_texts(payload: dict[str, Any]) -> list[str]:
    """Every string Teams renders as markdown in the card: TextBlocks and facts."""
    (attachment,) = payload["attachments"]
    texts = []
    for element in attachment["content"]["body"]:
        if element["type"] == "TextBlock":
            texts.append(element["text"])
        for fact in element.get("facts", []):
            texts.extend((fact["title"], fact["value"]))
    return texts


def test_teams_link_in_name_and_rows_is_not_a_link(teams_server: LoopbackHTTPServer) -> None:
    _deliver(
        "teams",
        teams_server.url(TEAMS_PATH),
        {},
        alert_name=f"orders {LINK}",
        summary=f"2 rows: {LINK}",
        description="_not italic_ **not bold** # not a heading",
        details={"rows": ROWS, LINK: "key too"},
        host=f"runner {LINK}",
    )
    (request,) = teams_server.requests  # the stand-in validated the card against the schema
    texts = _teams_texts(request.json())
    joined = "\n".join(texts)
    assert "orders \\[link\\]\\(https://evil.example\\)" in texts[0]
    assert "2 rows: \\[link\\]\\(https://evil.example\\)" in joined
    assert "\\_not italic\\_ \\*\\*not bold\\*\\* \\# not a heading" in joined
    assert r"\[link\]\(https://evil.example\)" in next(t for t in texts if "rows" in t)
    for text in texts:
        assert not MARKDOWN_LINK.search(text), text
    assert "\\`\\`\\`" in joined  # a fence in the rows is text too
    assert "runner \\[link\\]\\(https://evil.example\\)" in texts  # the Host fact


def test_teams_list_starts_and_card_functions_are_text(teams_server: LoopbackHTTPServer) -> None:
    _deliver(
        "teams",
        teams_server.url(TEAMS_PATH),
        {},
        description="- not a list\n2. not numbered\n+ plus",
        summary="{{DATE(2017-02-14T06:08:00Z, SHORT)}}",
    )
    text = "\n".join(_teams_texts(teams_server.requests[-1].json()))
    assert "\\- not a list\n2\\. not numbered\n\\+ plus" in text
    assert "\\{\\{DATE\\(2017-02-14T06:08:00Z, SHORT\\)\\}\\}" in text


def test_teams_our_own_markup_stays_markup(teams_server: LoopbackHTTPServer) -> None:
    _deliver("teams", teams_server.url(TEAMS_PATH), {}, state="TEST")
    title, text = _teams_texts(teams_server.requests[-1].json())[:2]
    assert title == "[TEST] Nightly ETL failed"
    assert text.startswith("**Test notification (nothing is wrong)**")


def test_slack_link_mentions_and_formatting_are_text(slack_server: LoopbackHTTPServer) -> None:
    _deliver(
        "slack",
        slack_server.url(SLACK_PATH),
        {},
        alert_name=f"orders {LINK} <https://evil.example|click> :thumbsup:",
        summary="<!channel> *urgent* _now_ ~gone~",
        details={"rows": ROWS},
        host="<!here|h> *runner*",
    )
    payload = slack_server.requests[-1].json()
    blocks = payload["attachments"][0]["blocks"]
    header = blocks[0]["text"]
    assert header["emoji"] is False  # `:thumbsup:` stays text in the plain_text header
    assert header["text"].startswith(f"[FIRING] orders {LINK} <https://evil.example|click>")
    everything = json_text(payload)
    assert "<https://evil.example|click>" not in everything.replace(header["text"], "")
    assert "&lt;https://evil.example|click&gt;" in payload["text"]
    assert f":{ZERO_WIDTH_SPACE}thumbsup:" in payload["text"]  # no emoji in mrkdwn either
    section = blocks[1]["text"]["text"]
    assert "&lt;!channel&gt;" in section and "<!channel>" not in section
    z = ZERO_WIDTH_SPACE
    assert f"*{z}urgent*{z}" in section and f"_{z}now_{z}" in section
    assert f"~{z}gone~{z}" in section
    host = "&lt;!here|h&gt; *\u200brunner*\u200b"
    assert host in blocks[-1]["elements"][0]["text"]  # the context line
    assert any(host in field["text"] for field in blocks[2]["fields"])
    assert "<!here" not in json_text(payload)


def json_text(payload: Any) -> str:
    import json

    return json.dumps(payload, ensure_ascii=False)


def test_slack_rows_cannot_close_the_code_block(slack_server: LoopbackHTTPServer) -> None:
    _deliver("slack", slack_server.url(SLACK_PATH), {}, details={"rows": ROWS, "tail": "`"})
    blocks = slack_server.requests[-1].json()["attachments"][0]["blocks"]
    code = [t for t in (b.get("text", {}).get("text", "") for b in blocks) if t.startswith(FENCE)]
    assert code
    for text in code:
        inner = text[len(FENCE) : -len(FENCE)]
        assert text.endswith(FENCE) and "``" not in inner  # only our two fences
        assert not inner.endswith("`")
    joined = "".join(code)
    assert "&lt;!here&gt; &amp;" in joined
    assert "*boom*" in joined  # formatting is literal inside code: left as written


def test_slack_long_rows_are_cut_between_entities(slack_server: LoopbackHTTPServer) -> None:
    _deliver("slack", slack_server.url(SLACK_PATH), {}, details={"rows": ["&" * 5000]})
    blocks = slack_server.requests[-1].json()["attachments"][0]["blocks"]
    code = [t for t in (b.get("text", {}).get("text", "") for b in blocks) if t.startswith(FENCE)]
    assert len(code) >= 2
    for text in code:
        inner = text[len(FENCE) + 1 : -len(FENCE)].rstrip(ZERO_WIDTH_SPACE)
        assert re.fullmatch(r"(?:[^&]|&amp;)*(?:… \[truncated\])?", inner), inner[-20:]


def test_email_html_escapes_and_text_part_keeps_the_words(smtp_plain: SMTPServer) -> None:
    _deliver(
        "email",
        EMAIL_TO,
        smtp_plain.environ,
        alert_name=f"<a href='https://evil.example'>x</a> {LINK}",
        details={"rows": ROWS, "bell": "ding\x07\x1b[2J"},
    )
    (sent,) = smtp_plain.recorder.messages
    email = message_from_bytes(sent.content, policy=policy.default)
    html = email.get_body(("html",)).get_content()
    text = email.get_body(("plain",)).get_content()
    assert "<a href" not in html
    assert "&lt;a href=&#39;https://evil.example&#39;&gt;x&lt;/a&gt;" in html
    assert "&lt;!here&gt; &amp;" in html
    assert f"<a href='https://evil.example'>x</a> {LINK}" in text  # plain text: as written
    for part in (html, text, str(email["Subject"])):
        assert "\x1b" not in part and "\x07" not in part
    assert "ding\\x07\\x1b[2J" in text


def test_whatsapp_formatting_is_text_and_rows_stay_in_their_block(
    twilio_server: LoopbackHTTPServer,
) -> None:
    _deliver(
        "whatsapp",
        WHATSAPP_TO,
        twilio_environ(twilio_server),
        alert_name="*bold* _it_ ~s~ orders_daily",
        details={"rows": ROWS},
    )
    body = twilio_server.requests[-1].form()["Body"]
    z = ZERO_WIDTH_SPACE
    first = body.splitlines()[0]
    assert first == f"*[FIRING] {z}*{z}bold{z}*{z} {z}_{z}it{z}_{z} {z}~{z}s{z}~{z} orders_daily*"
    start = body.index(FENCE)
    end = body.rindex(FENCE)
    assert start < end
    inner = body[start + len(FENCE) : end]
    assert "``" not in inner and "*boom*" in inner and LINK in inner


def test_an_override_template_cannot_skip_escaping(
    tmp_path: Path, teams_server: LoopbackHTTPServer
) -> None:
    """`| e` in a Teams template escapes for Teams (not HTML, which leaves links alone)."""
    (tmp_path / "teams").mkdir()
    (tmp_path / "teams" / "title.txt.j2").write_text("{{ alert_name | e }} {{ alert_name }}")
    _deliver(
        "teams",
        teams_server.url(TEAMS_PATH),
        {"ALERTS_TEMPLATES_DIR": str(tmp_path)},
        alert_name=LINK,
    )
    title = _teams_texts(teams_server.requests[-1].json())[0]
    escaped = "\\[link\\]\\(https://evil.example\\)"
    assert title == f"{escaped} {escaped}"


def test_override_expressions_on_our_own_words_are_escaped_again(
    tmp_path: Path, teams_server: LoopbackHTTPServer
) -> None:
    """`headline + name` is a new string: escaped for Teams as a whole (not HTML-escaped and
    trusted, which `Markup` would do); `code_block` has no ``` in Teams and escapes instead."""
    (tmp_path / "teams").mkdir()
    (tmp_path / "teams" / "title.txt.j2").write_text(
        "{{ headline + ' ' + alert_name }} | {{ alert_name | code_block }}"
    )
    _deliver(
        "teams",
        teams_server.url(TEAMS_PATH),
        {"ALERTS_TEMPLATES_DIR": str(tmp_path)},
        alert_name=LINK,
    )
    title = _teams_texts(teams_server.requests[-1].json())[0]
    escaped = "\\[link\\]\\(https://evil.example\\)"
    assert title == f"Alert firing {escaped} | {escaped}"


def test_whatsapp_template_variables_are_text(twilio_server: LoopbackHTTPServer) -> None:
    import json

    environ = {**twilio_environ(twilio_server), "TWILIO_WHATSAPP_CONTENT_SID": "HX" + "a" * 32}
    _deliver("whatsapp", WHATSAPP_TO, environ, alert_name="*x* \x1b[31m", summary="~gone~")
    variables = json.loads(twilio_server.requests[-1].form()["ContentVariables"])
    z = ZERO_WIDTH_SPACE
    assert variables["1"] == f"{z}*{z}x{z}*{z} \\x1b[31m"
    assert variables["4"] == f"{z}~{z}gone{z}~{z}"
