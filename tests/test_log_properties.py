"""Properties of the log under any mix of appends, duplicates, restarts, replays and rollbacks.

Facts come from a small simulated race; the store is SQLite (one file per example).
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon.domain.events import Fact, MessageReceived
from f1daemon.projections.exports import export_table
from f1daemon.services.derivation import current_events, derive_session
from f1daemon.services.versions import replay, rollback
from f1daemon.sources.archive import read_facts, topic_files
from f1daemon.sources.simulator import write_race
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

SESSION = "Simulated/Race"
PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@cache
def race_facts() -> tuple[MessageReceived, ...]:
    with tempfile.TemporaryDirectory() as folder:
        write_race(Path(folder), track="spa", seed=3, cars=3, laps=4, telemetry_hz=1.0)
        facts = read_facts(SESSION, topic_files(Path(folder)))
        return tuple(f for f in facts if isinstance(f, MessageReceived))  # all are


def key(fact: Fact) -> tuple[str, int]:
    return (fact.stream, fact.sequence)


operation = st.one_of(
    st.tuples(st.just("append"), st.lists(st.integers(min_value=0, max_value=10_000), max_size=60)),
    st.tuples(st.just("append prefix"), st.integers(min_value=0, max_value=10_000)),
    st.tuples(st.just("restart"), st.just(0)),
    st.tuples(st.just("replay"), st.just(0)),
)


@PROPERTY
@given(operations=st.lists(operation, max_size=12))
def test_the_log_holds_each_distinct_fact_once_in_the_order_first_appended(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, object]]
) -> None:
    facts = race_facts()
    store = parse_store_url(f"sqlite:///{tmp_path_factory.mktemp('log') / 'events.db'}")
    expected: list[tuple[str, int]] = []
    seen: set[tuple[str, int]] = set()
    log = EventLog(store)
    log.register_session(SESSION, "test")
    digests = []
    try:
        for name, argument in operations:
            if name == "append" and isinstance(argument, list):
                chosen = [facts[i % len(facts)] for i in argument]
            elif name == "append prefix" and isinstance(argument, int):
                chosen = list(facts[: argument % (len(facts) + 1)])
            elif name == "restart":
                log.close()
                log = EventLog(store)
                continue
            else:
                run = derive_session(log, SESSION)
                digests.append((run.facts_sha256, run.events_sha256))
                continue
            result = log.append_facts(chosen)
            new = []
            for fact in chosen:
                if key(fact) not in seen:
                    seen.add(key(fact))
                    new.append(key(fact))
            expected.extend(new)
            assert result.appended == len(new)
            assert result.already_logged == len(chosen) - len(new)
        assert [key(f) for _, f in log.facts(SESSION)] == expected
        # Replay is deterministic: the same facts derive to the same events.
        first, second = derive_session(log, SESSION), derive_session(log, SESSION)
        assert (first.facts_sha256, first.events_sha256) == (
            second.facts_sha256,
            second.events_sha256,
        )
        for facts_sha256, events_sha256 in digests:
            if facts_sha256 == first.facts_sha256:
                assert events_sha256 == first.events_sha256
    finally:
        log.close()


@PROPERTY
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=4),
    pick=st.integers(0, 3),
)
def test_rollback_to_a_tag_then_replay_to_the_head_returns_to_the_head(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int], pick: int
) -> None:
    facts = race_facts()
    points = sorted({c % len(facts) for c in cuts} | {len(facts)})
    store = parse_store_url(f"sqlite:///{tmp_path_factory.mktemp('log') / 'events.db'}")
    with EventLog(store) as log:
        log.register_session(SESSION, "test")
        laps_at: dict[str, object] = {}
        for index, point in enumerate(points):
            log.append_facts(facts[:point])
            derive_session(log, SESSION)
            tag = f"v{index}"
            log.tag(tag, pipeline_version="test")
            laps_at[tag] = export_table("laps", current_events(log, SESSION)).to_pylist()
        head = laps_at[f"v{len(points) - 1}"]
        target = f"v{pick % len(points)}"
        rollback(log, target)
        assert export_table("laps", current_events(log, SESSION)).to_pylist() == laps_at[target]
        replay(log, SESSION)
        assert export_table("laps", current_events(log, SESSION)).to_pylist() == head
