"""Acknowledgement on a frozen clock, SQLite and PostgreSQL, against the loopback Slack sink:
`alerts ack` stops the episode's REPEATs, the RESOLVED still goes, a new episode is not
acknowledged, `--for` runs out, `alerts unack` takes it back; who/when/note shown everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.models import AlertHistory
from tests.conftest import Cli, dump_store
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.evaluator.helpers import as_a_new_process, slack_state


class ScenarioClock(FrozenClock):
    """A frozen clock that remembers where its scenario started. The CLI records
    acknowledgements on the real clock, so each scenario starts at the real minute its test
    runs (not when the module was imported: a long suite would put them minutes apart)."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC).replace(second=0, microsecond=0)
        super().__init__(self.start)


USER = {"ALERTS_USER": "alice"}


@pytest.fixture
def cli(store_url: str) -> Cli:
    return Cli(store_url)


def scripted(store: Any, flags: Flags, steps: list[tuple[int, str]], clock: ScenarioClock) -> None:
    for minutes, flag in steps:
        clock.set(clock.start + timedelta(minutes=minutes))
        flags.set(etl=flag)
        as_a_new_process()
        summary = run_evaluation(store, clock, RunOptions(host="test-host", environ={}))
        assert summary.ok, summary.problems


def setup(store: Any, flags: Flags, sink: Sink, repeat: int = 60) -> ScenarioClock:
    make_alert(
        store, flags, "etl", recipients={"slack": sink.hook("etl")}, repeat_interval_minutes=repeat
    )
    clock = ScenarioClock()
    scripted(store, flags, [(0, "firing")], clock)
    return clock


def states(sink: Sink) -> list[str]:
    return [slack_state(b) for b in sink.bodies("etl")]


def episodes(store: Any) -> list[AlertHistory]:
    with store.session() as session:
        return list(session.scalars(select(AlertHistory).order_by(AlertHistory.id)))


def test_ack_stops_repeats_resolved_still_goes_new_episode_not_acknowledged(
    store: Any, cli: Cli, flags: Flags, sink: Sink
) -> None:
    clock = setup(store, flags, sink)
    done = cli("ack", "etl", "--note", "looking into it", env=USER)
    assert done.exit_code == 0, done.output
    assert "acknowledged episode" in done.stdout and "alice" in done.stdout

    # (A recovery is confirmed on the second ok evaluation in a row.)
    scripted(store, flags, [(70, "firing"), (130, "firing"), (135, "ok"), (140, "ok")], clock)
    assert states(sink) == ["FIRING", "RESOLVED"]
    # A new episode starts unacknowledged: its REPEAT goes.
    scripted(store, flags, [(145, "firing"), (210, "firing")], clock)
    assert states(sink) == ["FIRING", "RESOLVED", "FIRING", "REPEAT"]

    first, second = episodes(store)
    assert (first.acknowledged_by, first.ack_note) == ("alice", "looking into it")
    assert first.acknowledged_at is not None and first.ack_until is None
    assert second.acknowledged_at is None

    shown = cli("history", "show", str(first.id))
    assert "acked" in shown.stdout and "by alice" in shown.stdout
    assert "looking into it" in shown.stdout
    data = cli("history", "show", str(first.id), "--json").json()
    assert data["acknowledged_by"] == "alice" and data["ack_note"] == "looking into it"


def test_ack_for_a_duration_runs_out_and_repeats_resume(
    store: Any, cli: Cli, flags: Flags, sink: Sink
) -> None:
    clock = setup(store, flags, sink, repeat=20)
    assert cli("ack", "etl", "--for", "1h", env=USER).exit_code == 0
    scripted(store, flags, [(25, "firing"), (50, "firing"), (65, "firing")], clock)
    assert states(sink) == ["FIRING", "REPEAT"]  # the REPEAT is the one after the hour
    [episode] = episodes(store)
    assert episode.ack_until is not None
    assert timedelta(minutes=59) < episode.ack_until - clock.start <= timedelta(minutes=61)


def test_unack_lets_repeats_go_again(store: Any, cli: Cli, flags: Flags, sink: Sink) -> None:
    clock = setup(store, flags, sink)
    [episode] = episodes(store)
    assert cli("ack", f"#{episode.id}", env=USER).exit_code == 0
    undone = cli("unack", "etl")
    assert undone.exit_code == 0 and "no longer acknowledged" in undone.stdout
    scripted(store, flags, [(70, "firing")], clock)
    assert states(sink) == ["FIRING", "REPEAT"]
    assert episodes(store)[0].acknowledged_at is None


def test_list_and_show_say_who_acknowledged(store: Any, cli: Cli, flags: Flags, sink: Sink) -> None:
    setup(store, flags, sink)
    assert cli("ack", "etl", "--note", "on it", "--for", "2h", env=USER).exit_code == 0
    listed = cli("list")
    assert "firing (acked)" in listed.stdout
    [row] = cli("list", "--json").json()
    assert row["acknowledged"]["by"] == "alice" and row["acknowledged"]["active"] is True
    assert row["acknowledged"]["note"] == "on it"
    shown = cli("show", "etl")
    assert "acknowledged by alice" in shown.stdout and "on it" in shown.stdout
    assert cli("show", "etl", "--json").json()["acknowledged"]["until"] is not None


def test_the_os_login_name_is_used_without_alerts_user(
    store: Any, cli: Cli, flags: Flags, sink: Sink
) -> None:
    import getpass

    setup(store, flags, sink)
    assert cli("ack", "etl", env={"ALERTS_USER": ""}).exit_code == 0
    assert episodes(store)[0].acknowledged_by == getpass.getuser()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["ack", "nope"], "REF"),
        (["ack", "#999"], "REF"),
        (["ack", "etl", "--for", "soon"], "--for"),
        (["ack", "quiet"], "REF"),  # no open episode
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(
    store: Any, store_url: str, cli: Cli, flags: Flags, sink: Sink, args: list[str], field: str
) -> None:
    setup(store, flags, sink)
    make_alert(store, flags, "quiet", recipients={"slack": sink.hook("quiet")})
    before = dump_store(store_url)
    result = cli(*args, env=USER)
    assert result.exit_code == 2, result.output
    assert field in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert dump_store(store_url) == before
