"""One contract for the event log, run on both backends (SQLite and real PostgreSQL)."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from f1daemon.domain.events import (
    DerivationCompleted,
    DerivationStarted,
    LapCompleted,
    MessageReceived,
    StintStarted,
)
from f1daemon.errors import UserError
from f1daemon.store.eventlog import SQLITE_PAGE_SIZE, EventLog, events_digest, fact_stream_id
from f1daemon.store.persistence import envelope_of, plain_state
from f1daemon.store.url import parse_store_url


def fact(
    sequence: int, *, session: str = "2024/Test_Race", stream: str = "TimingData"
) -> MessageReceived:
    return MessageReceived(
        session=session,
        source="archive",
        stream=stream,
        topic=stream,
        sequence=sequence,
        offset_ms=sequence * 100,
        payload=f'{{"n": {sequence}, "text": "exact \\u00e9 text"}}',
    )


def lap(number: int) -> LapCompleted:
    return LapCompleted(
        session="2024/Test_Race",
        driver=44,
        lap=number,
        session_time_ms=number * 90_000,
        utc=None,
        lap_time_ms=90_000,
        sector1_ms=30_000,
        sector2_ms=30_000,
        sector3_ms=30_000,
        pit_in=False,
        pit_out=False,
        compound="SOFT",
        stint=1,
    )


def test_facts_round_trip_exactly_and_in_order(store_url: str) -> None:
    facts = [fact(i) for i in range(1, 8)] + [fact(i, stream="TimingAppData") for i in range(1, 4)]
    with EventLog(parse_store_url(store_url)) as log:
        assert log.append_facts(facts).appended == 10
        read = list(log.facts("2024/Test_Race"))
    assert [f for _, f in read] == facts
    positions = [p for p, _ in read]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)


def test_appending_the_same_facts_again_adds_nothing(store_url: str) -> None:
    with EventLog(parse_store_url(store_url)) as log:
        first = log.append_facts(fact(i) for i in range(1, 6))
        head = log.head_position()
        again = log.append_facts(fact(i) for i in range(1, 6))
        more = log.append_facts(fact(i) for i in range(1, 9))
        assert (first.appended, first.already_logged) == (5, 0)
        assert (again.appended, again.already_logged) == (0, 5)
        assert (more.appended, more.already_logged) == (3, 5)
        assert log.head_position() == head + 3
        assert [f.sequence for _, f in log.facts("2024/Test_Race")] == list(range(1, 9))


def test_sessions_are_registered_once_and_kept_apart(store_url: str) -> None:
    with EventLog(parse_store_url(store_url)) as log:
        assert log.register_session("2024/Test_Race", "here")
        assert not log.register_session("2024/Test_Race", "again")
        assert log.register_session("2024/Other_Race", "there")
        log.append_facts([fact(1), fact(1, session="2024/Other_Race")])
        assert log.sessions() == ["2024/Test_Race", "2024/Other_Race"]
        assert [f.session for _, f in log.facts("2024/Other_Race")] == ["2024/Other_Race"]


def test_derivation_runs_are_recorded_and_the_latest_is_read(store_url: str) -> None:
    stint = StintStarted(
        session="2024/Test_Race",
        driver=44,
        stint=1,
        compound="SOFT",
        new_tyres=True,
        tyre_age_laps=0,
        session_time_ms=0,
        utc=datetime(2024, 3, 2, 15, 0, tzinfo=UTC),
    )
    session = "2024/Test_Race"
    with EventLog(parse_store_url(store_url)) as log:
        assert log.latest_derivation(session) is None
        # A growing run: started, then two commits, each with its tracking position.
        first = log.start_run(session, pipeline_version="3")
        assert first.run == 1
        assert log.current_run(session) == 1  # current from its start
        log.append_derived(session, 1, [stint], first=1, position=3)
        log.append_derived(session, 1, [lap(1)], first=2, position=7)
        assert log.run_position(session, 1) == 7
        assert log.derived_count(session, 1) == 2
        # The tracking record never moves back: a second writer at a position cannot
        # append the same events twice.
        with pytest.raises(IntegrityError):
            log.append_derived(session, 1, [lap(2)], first=3, position=7)
        assert log.derived_events(session, 1) == [stint, lap(1)]
        assert log.completion(session, 1) is None
        # A complete run in one transaction: start, events, completion.
        second = DerivationCompleted(
            session=session,
            run=2,
            pipeline_version="3",
            facts=4,
            last_fact_position=8,
            derived=2,
            undecodable=1,
        )
        started = DerivationStarted(session=session, run=2, pipeline_version="3")
        log.append_derived(
            session, 2, [lap(1), lap(2)], first=1, position=8, completed=second, started=started
        )
        assert log.next_run(session) == 3
        assert log.current_run(session) == 2
        assert log.latest_derivation(session) == second
        assert [s.run for s in log.started_runs(session)] == [1, 2]
        assert log.derived_events(session, 2) == [lap(1), lap(2)]


def test_the_log_survives_reopening(store_url: str) -> None:
    with EventLog(parse_store_url(store_url)) as log:
        log.append_facts(fact(i) for i in range(1, 4))
    with EventLog(parse_store_url(store_url)) as log:
        assert log.append_facts(fact(i) for i in range(1, 4)).appended == 0
        assert len(list(log.facts("2024/Test_Race"))) == 3


@pytest.mark.parametrize(
    "url",
    [
        "mysql://host/db",
        "sqlite://relative.db",
        "postgresql:///nodb",
        "postgresql://host:port/db",
        "nonsense",
    ],
)
def test_bad_store_urls_are_user_errors(url: str) -> None:
    with pytest.raises(UserError, match="store URL"):
        parse_store_url(url)


def test_an_unreachable_postgresql_server_is_a_user_error() -> None:
    with pytest.raises(UserError, match="cannot open the store"):
        EventLog(parse_store_url("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=1"))


def test_passwords_are_redacted_in_messages() -> None:
    url = parse_store_url("postgresql://user:secret@db.example:5432/f1")
    assert url.redacted == "postgresql://user:***@db.example:5432/f1"


def test_large_states_are_stored_deflated_and_read_back_exactly(store_url: str) -> None:
    # A CarData.z-sized payload: stored deflated, read back as appended, and the
    # digest is over the JSON (as for logs written before states were deflated).
    big = fact(1, stream="CarData.z").model_copy(update={"payload": "eJy" + "QUJD" * 400})
    small = fact(2)
    with EventLog(parse_store_url(store_url)) as log:
        log.append_facts([big, small])
        assert [f for _, f in log.facts("2024/Test_Race")] == [big, small]
        stored = log._recorder.select_events(
            fact_stream_id("2024/Test_Race", "archive", "CarData.z")
        )
    assert stored[0].state[:1] == b"\x78"
    assert plain_state(stored[0].state) == envelope_of(big)
    assert plain_state(stored[0].state) != stored[0].state
    assert len(stored[0].state) < len(envelope_of(big)) / 2
    digest = hashlib.sha256(stored[0].topic.encode() + b"\0" + envelope_of(big) + b"\0")
    assert events_digest(stored) == digest.hexdigest()


def test_a_new_sqlite_log_has_large_pages(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventLog(parse_store_url(f"sqlite:///{path}")) as log:
        log.append_facts([fact(1)])
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA page_size").fetchone() == (SQLITE_PAGE_SIZE,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
