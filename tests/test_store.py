"""One contract for the event log, run on both backends (SQLite and real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from f1daemon.domain.events import LapCompleted, MessageReceived, StintStarted
from f1daemon.errors import UserError
from f1daemon.store.eventlog import EventLog
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
    with EventLog(parse_store_url(store_url)) as log:
        assert log.latest_derivation("2024/Test_Race") is None
        first = log.record_derivation(
            "2024/Test_Race",
            [stint, lap(1)],
            pipeline_version="1",
            facts=3,
            last_fact_position=3,
            undecodable=0,
            facts_sha256="a" * 64,
        )
        second = log.record_derivation(
            "2024/Test_Race",
            [lap(1), lap(2)],
            pipeline_version="2",
            facts=4,
            last_fact_position=4,
            undecodable=1,
            facts_sha256="b" * 64,
        )
        assert (first.run, second.run) == (1, 2)
        assert first.events_sha256 != second.events_sha256
        assert log.current_run("2024/Test_Race") == 2
        assert log.latest_derivation("2024/Test_Race") == second
        assert log.derived_events("2024/Test_Race", 1) == [stint, lap(1)]
        assert log.derived_events("2024/Test_Race", 2) == [lap(1), lap(2)]


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
