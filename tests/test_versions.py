"""Replay, verify, tags, rollback and diff — on both stores, through the command line."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from f1daemon.cli import main
from f1daemon.store.eventlog import EventLog
from f1daemon.store.persistence import plain_state
from f1daemon.store.url import parse_store_url

BAKU = "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
SESSION = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(argv)
    out = capsys.readouterr().out
    return status, out


def laps(store: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    status, out = run(["export", "laps", "--format", "json", "--store", store], capsys)
    assert status == 0
    records: list[dict[str, object]] = json.loads(out)
    return records


def test_tag_diff_rollback_and_replay_to_the_head(
    store_url: str, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = testdata / "livetiming" / BAKU
    # v1: timing only (no tyres); v2: the whole session.
    assert (
        run(["ingest", str(folder / "TimingData.jsonStream"), "--store", store_url], capsys)[0] == 0
    )
    assert run(["tag", "v1", "--message", "timing only", "--store", store_url], capsys)[0] == 0
    at_v1 = laps(store_url, capsys)
    assert run(["ingest", str(folder), "--store", store_url], capsys)[0] == 0
    assert run(["tag", "v2", "--store", store_url], capsys)[0] == 0
    at_v2 = laps(store_url, capsys)
    assert at_v1 != at_v2
    assert {lap["compound"] for lap in at_v1} == {None}

    status, out = run(["versions", "--store", store_url], capsys)
    assert status == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == ["v1", "v2"]
    assert "timing only" in out

    status, out = run(["diff", "v1", "v2", "--store", store_url], capsys)
    assert status == 0
    assert f"{SESSION}: laps 0 added, 0 removed, 841 changed, 0 unchanged" in out

    # Rollback: the data is exactly what it was at v1; nothing was deleted.
    with EventLog(parse_store_url(store_url)) as log:
        head = log.head_position()
    status, out = run(["rollback", "v1", "--store", store_url], capsys)
    assert status == 0
    assert "current data is now run 1, as at v1" in out
    assert laps(store_url, capsys) == at_v1
    status, out = run(["sessions", "--store", store_url], capsys)
    assert ", run 1 (" in out  # the rolled-back-to run, not the latest
    with EventLog(parse_store_url(store_url)) as log:
        assert log.head_position() == head + 1  # one RolledBack event, appended

    # Replay to the head: back to the head's data.
    assert run(["replay", "--store", store_url], capsys)[0] == 0
    assert laps(store_url, capsys) == at_v2

    # Replay until v1: the facts of v1 derived again give v1's data.
    status, out = run(["replay", "--until", "v1", "--store", store_url], capsys)
    assert status == 0
    assert laps(store_url, capsys) == at_v1

    status, out = run(["verify", "--store", store_url], capsys)
    assert status == 0
    assert "4 runs checked, 0 with problems" in out


def test_replay_is_deterministic_byte_for_byte(
    store_url: str, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = testdata / "livetiming" / BAKU
    assert run(["ingest", str(folder), "--store", store_url], capsys)[0] == 0
    assert run(["replay", "--store", store_url], capsys)[0] == 0
    with EventLog(parse_store_url(store_url)) as log:
        runs = [completed for _, completed in log.derivation_runs(SESSION)]
        first, second = (log.derived_events(SESSION, r.run) for r in runs)
    assert [r.run for r in runs] == [1, 2]
    assert runs[0].events_sha256 == runs[1].events_sha256
    assert runs[0].facts_sha256 == runs[1].facts_sha256
    assert first == second


def test_verify_finds_a_tampered_event(
    tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "events.db"
    store = f"sqlite:///{db}"
    folder = testdata / "livetiming" / BAKU
    assert run(["ingest", str(folder / "TimingData.jsonStream"), "--store", store], capsys)[0] == 0
    with sqlite3.connect(db) as connection:
        # One lap of the run, its number changed behind the log's back (a lap is
        # stored deflated: it is written back as plain JSON, which the log reads too).
        (rowid, state) = next(
            (rowid, plain_state(bytes(state)))
            for rowid, state in connection.execute(
                "SELECT rowid, state FROM stored_events WHERE originator_id = ? ORDER BY rowid",
                (f"derived:{SESSION}:1",),
            )
            if b'"lap":' in plain_state(bytes(state))
        )
        tampered = bytes(state).replace(b'"lap":', b'"lap":1', 1)
        assert tampered != bytes(state)
        connection.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (tampered, rowid))
    status, out = run(["verify", "--store", store], capsys)
    assert status == 1
    assert "the stored derived events differ from what the run recorded" in out


def test_verify_finds_a_changed_fact(
    tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "events.db"
    store = f"sqlite:///{db}"
    folder = testdata / "livetiming" / BAKU
    assert run(["ingest", str(folder / "TrackStatus.jsonStream"), "--store", store], capsys)[0] == 0
    with sqlite3.connect(db) as connection:
        connection.execute(
            "UPDATE stored_events SET state = replace(state, 'AllClear', 'AllClean') "
            "WHERE originator_id LIKE 'facts:%'"
        )
    status, out = run(["verify", "--store", store], capsys)
    assert status == 1
    assert "the log's facts changed" in out


def test_replay_at_a_speed_follows_the_stream_offsets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "2024-01-01_Test_Grand_Prix__2024-01-01_Race"
    folder.mkdir()
    lines = [
        f"00:00:0{s}.000" + json.dumps({"Status": "1", "Message": "AllClear"}) for s in (0, 1, 2)
    ]
    (folder / "TrackStatus.jsonStream").write_text("\r\n".join(lines) + "\r\n")
    store = f"sqlite:///{tmp_path / 'events.db'}"
    assert run(["ingest", str(folder), "--store", store], capsys)[0] == 0
    started = time.monotonic()
    assert run(["replay", "--speed", "10", "--store", store], capsys)[0] == 0
    # Two seconds of stream at ten times real time: at least 0.2 s.
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rollback", "nope"], "unknown tag 'nope'"),
        (["replay", "--until", "nope"], "unknown tag 'nope'"),
        (["replay", "--speed", "fast"], "--speed must be a number or 'max'"),
        (["diff", "a", "b"], "unknown tag 'a'"),
    ],
)
def test_version_commands_reject_what_they_cannot_do(
    argv: list[str],
    message: str,
    tmp_path: Path,
    testdata: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    folder = testdata / "livetiming" / BAKU
    assert run(["ingest", str(folder / "TrackStatus.jsonStream"), "--store", store], capsys)[0] == 0
    assert main([*argv, "--store", store]) == 2
    assert message in capsys.readouterr().err


def test_a_tag_is_never_moved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    assert main(["tag", "v1", "--store", store]) == 2  # no log to tag yet
    assert "no event log" in capsys.readouterr().err
    EventLog(parse_store_url(store)).close()  # an empty log
    assert main(["tag", "v1", "--store", store]) == 0
    assert main(["tag", "v1", "--store", store]) == 2
    assert "exists already" in capsys.readouterr().err


def test_replay_into_another_store_gives_the_same_data(
    tmp_path: Path, postgres_url: str, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path / 'events.db'}"
    assert run(["ingest", str(testdata / "livetiming" / BAKU), "--store", source], capsys)[0] == 0
    assert run(["replay", "--into", postgres_url, "--store", source], capsys)[0] == 0
    assert run(["replay", "--into", postgres_url, "--store", source], capsys)[0] == 0
    assert laps(postgres_url, capsys) == laps(source, capsys)
    with EventLog(parse_store_url(postgres_url)) as target:
        assert len(list(target.facts(SESSION))) == 24_237  # copied once, however often


def test_a_rollback_outlives_a_restarted_daemon(
    tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon follows a session only when it has new facts: re-sending what is logged
    (a restarted replay) must not start a run, which would undo a rollback."""
    from f1daemon.services.derivation import open_follower

    store = f"sqlite:///{tmp_path / 'events.db'}"
    folder = testdata / "livetiming" / BAKU
    assert run(["ingest", str(folder / "TimingData.jsonStream"), "--store", store], capsys)[0] == 0
    assert run(["tag", "v1", "--store", store], capsys)[0] == 0
    assert run(["ingest", str(folder), "--store", store], capsys)[0] == 0
    assert run(["rollback", "v1", "--store", store], capsys)[0] == 0
    with EventLog(parse_store_url(store)) as log:
        assert log.current_run(SESSION) == 1
        assert open_follower(log, SESSION) is None  # nothing new: nothing recorded
        assert log.current_run(SESSION) == 1
    # A new fact is worth a run.
    assert run(["ingest", str(folder / "TimingData.jsonStream"), "--store", store], capsys)[0] == 0
    extra = tmp_path / "Heartbeat.jsonStream"
    extra.write_text('00:00:01.000{"Utc": "2018-04-29T11:00:00Z"}\n', encoding="utf-8")
    with EventLog(parse_store_url(store)) as log:
        from f1daemon.sources.archive import read_facts, topic_files

        log.append_facts(read_facts(SESSION, topic_files(extra)))
        follower = open_follower(log, SESSION)
        assert follower is not None
        follower.catch_up()
        assert log.current_run(SESSION) == follower.run == 3
