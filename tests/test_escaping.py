"""`datamantri_alerts.escaping`: each renderer's escaper, and the CLI's data console."""

from __future__ import annotations

import io

import pytest

from datamantri_alerts import escaping
from datamantri_alerts.escaping import ZERO_WIDTH_SPACE as Z


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("a\rb", "a\\x0db"),  # a lone CR would overwrite the line
        ("a\r\nb", "a\nb"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("\x9b2J", "\\x9b2J"),  # the 8-bit CSI
        ("\x7f\x00\x07\x08", "\\x7f\\x00\\x07\\x08"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),  # right-to-left override
        ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
        ("[bold]x[/bold] :thumbsup: é 👍", "[bold]x[/bold] :thumbsup: é 👍"),
    ],
)
def test_terminal_shows_control_characters_escaped(text: str, shown: str) -> None:
    assert escaping.terminal(text) == shown
    assert escaping.terminal(shown) == shown  # idempotent: safe to apply twice


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("[link](https://evil.example)", "\\[link\\]\\(https://evil.example\\)"),
        ("**b** _i_ ~s~ `c`", "\\*\\*b\\*\\* \\_i\\_ \\~s\\~ \\`c\\`"),
        ("orders_daily_load", "orders_daily_load"),  # intraword _ is not emphasis
        ("a*b*c", "a\\*b\\*c"),  # intraword * is
        ("- item\n  * item\n3. three\n10) ten", "\\- item\n  \\* item\n3\\. three\n10\\) ten"),
        ("# h\n> q", "\\# h\n\\> q"),
        ("<b>&amp;</b>", "\\<b\\>\\&amp;\\</b\\>"),
        ("C:\\path", "C:\\\\path"),
        ("{{DATE(2017-02-14T06:08:00Z)}}", "\\{\\{DATE\\(2017-02-14T06:08:00Z\\)\\}\\}"),
        ("![img](x)", "\\!\\[img\\]\\(x\\)"),
        ("plain words 1.5 - x", "plain words 1.5 - x"),
    ],
)
def test_teams_markdown(text: str, escaped: str) -> None:
    assert escaping.teams(text) == escaped


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("<!here> & <https://x|y>", "&lt;!here&gt; &amp; &lt;https://x|y&gt;"),
        ("*b* _i_ ~s~", f"*{Z}b*{Z} _{Z}i_{Z} ~{Z}s~{Z}"),
        ("orders_daily", "orders_daily"),
        ("> not a quote", "&gt; not a quote"),
        (":thumbsup: :+1: at 12:30", f":{Z}thumbsup: :{Z}+1: at 12:30"),
    ],
)
def test_slack_mrkdwn(text: str, escaped: str) -> None:
    assert escaping.slack(text) == escaped


def test_whatsapp_formatting_is_neutralised() -> None:
    assert escaping.whatsapp("*b* x_y") == f"{Z}*{Z}b{Z}*{Z} x_y"
    assert escaping.whatsapp("```code```") == "".join(f"{Z}`{Z}" for _ in range(3)) + (
        "code" + "".join(f"{Z}`{Z}" for _ in range(3))
    )


def test_html() -> None:
    assert escaping.html("<a href='x'>&\x1b") == "&lt;a href=&#39;x&#39;&gt;&amp;\\x1b"


@pytest.mark.parametrize("renderer", ["slack", "whatsapp"])
@pytest.mark.parametrize("data", ["```", "a```b", "x`", "````", "`", "``\n``"])
def test_code_blocks_cannot_be_closed_by_data(renderer: str, data: str) -> None:
    block = escaping.code_block(data, renderer)
    assert block.startswith("```\n") and block.endswith("```")
    inner = block[4:-3]
    assert "``" not in inner
    assert not inner.endswith("`")
    assert inner.replace(Z, "") == data


def test_no_code_blocks_for_other_renderers() -> None:
    with pytest.raises(ValueError, match="teams"):
        escaping.code_block("x", "teams")


def test_slack_chunks_never_split_an_entity() -> None:
    text = escaping.slack_code("a&" * 50)
    for size in range(5, 30):
        pieces = escaping.slack_chunks(text, size)
        assert "".join(pieces) == text
        for piece in pieces:
            assert len(piece) <= size
            assert piece.count("&") == piece.count("&amp;")


def test_data_console_prints_data_literally() -> None:
    from rich.table import Table
    from rich.text import Text

    from datamantri_alerts.cli.context import data_console_class, data_text

    out = io.StringIO()
    # markup/emoji/highlight asked for: the data console keeps them off anyway.
    console = data_console_class()(
        file=out, force_terminal=True, markup=True, emoji=True, highlight=True, width=120
    )
    table = Table(title="t [/bold] \x1b[2J")
    table.add_column("name")
    table.add_row("x [/bold] y :thumbsup: \x1b[31mred")
    table.add_row(data_text("\x1b]0;title\x07", style="bold"))
    console.print(table)
    console.print("[red]plain[/red] \x9b31m", markup=True)
    console.print(Text("built elsewhere \x1b[5m"))  # the segment-level guard
    written = out.getvalue()
    for shown in (
        "t [/bold] \\x1b[2J",
        "x [/bold] y :thumbsup: \\x1b[31mred",
        "\\x1b]0;title\\x07",
        "[red]plain[/red] \\x9b31m",
        "built elsewhere \\x1b[5m",
    ):
        assert shown in written
    assert "👍" not in written
    # Styles still work: rich's own escape sequences are there, data's are not.
    assert "\x1b[1m" in written
    assert "\x1b[31m" not in written and "\x1b[2J" not in written and "\x1b]0" not in written
    assert "\x9b" not in written and "\x07" not in written


def test_plain_table_escapes_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    from datamantri_alerts.cli.table import Column, render_table

    text = render_table(
        [Column("Alert", flexible=True), Column("State")],
        [("a\x1b[2Jb\tc\r\nd", "ok")],
        title="n \x1b[31m",
    )
    assert "\x1b" not in text
    assert "a\\x1b[2Jb c d" in text and "n \\x1b[31m" in text


def test_warnings_are_data(capsys: pytest.CaptureFixture[str]) -> None:
    from datamantri_alerts.cli.context import AppContext
    from datamantri_alerts.settings import Settings

    app = AppContext(settings=Settings("sqlite://", None, 0, "host"))
    app.warn("alert x [/bold] y :thumbsup: \x1b[2J")
    assert capsys.readouterr().err == "warning: alert x [/bold] y :thumbsup: \\x1b[2J\n"
