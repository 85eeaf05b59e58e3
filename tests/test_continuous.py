"""The continuous derivation: however a session's facts arrive, its run is the batch's.

Real sessions of the corpus are appended to a real SQLite log in commits split as
hypothesis chooses (one big commit, many small ones, one by one for the capture);
after each commit the follower catches up, as the daemon's follower does when the
writer's commit wakes it. Its run, once closed, must hold exactly the events of one
batch derivation of the same log, in the same order, byte for byte — and `verify`
must pass on it. A follower dropped half-way and resumed from the log (a restart)
must continue without appending anything twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon.cli import main
from f1daemon.domain.events import Fact
from f1daemon.projections.follower import DerivationFollower, derive_batch
from f1daemon.services.derivation import run_states, verify_run
from f1daemon.sources.archive import read_facts, topic_files
from f1daemon.sources.recording import read_recording
from f1daemon.store.eventlog import EventLog
from f1daemon.store.persistence import to_stored_event
from f1daemon.store.url import parse_store_url
from tests.conftest import TESTDATA

ARCHIVE = (
    "livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race",
    "livetiming/2021-11-07_Mexico_City_Grand_Prix__2021-11-06_Qualifying",
    "livetiming/2023-04-30_Azerbaijan_Grand_Prix__2023-04-29_Sprint",
)
CAPTURE = Path("f1dash-signalr-2023_Monaco") / "fp2.txt"
SESSION = "test/continuous"

_FACTS: dict[str, list[Fact]] = {}


def session_facts(name: str) -> list[Fact]:
    """A session's facts as an ingest appends them (read once per test run)."""
    if name not in _FACTS:
        path = TESTDATA / name
        if path.is_dir():
            _FACTS[name] = list(read_facts(SESSION, topic_files(path)))
        else:
            _FACTS[name] = list(read_recording(path).facts(SESSION))
    return _FACTS[name]


def stored(log: EventLog, run: int) -> list[tuple[str, bytes]]:
    """A run's events as stored: topic and state, in order."""
    return [
        (s.topic, s.state)
        for s in (
            to_stored_event("", i, e)
            for i, e in enumerate(log.derived_events(SESSION, run), start=1)
        )
    ]


def commits(facts: list[Fact], cuts: list[int]) -> Iterator[list[Fact]]:
    """The facts split at the given indices."""
    edges = [0, *sorted({c % len(facts) for c in cuts}), len(facts)]
    for start, end in pairwise(edges):
        if end > start:
            yield facts[start:end]


def follow(
    tmp_path: Path, facts: list[Fact], cuts: list[int], restart_at: int | None = None
) -> tuple[EventLog, int]:
    """Append the facts commit by commit, the follower catching up after each; return
    the log and the follower's (closed) run."""
    log = EventLog(parse_store_url(f"sqlite:///{tmp_path / 'events.db'}"))
    log.register_session(SESSION, "test")
    follower = DerivationFollower.start(log, SESSION)
    for number, commit in enumerate(commits(facts, cuts)):
        log.append_facts(commit)
        follower.catch_up()
        if number == restart_at:
            resumed = DerivationFollower.resume(log, SESSION)
            assert resumed is not None
            assert resumed.run == follower.run
            assert resumed.derived == follower.derived
            follower = resumed
    follower.close()
    return log, follower.run


def check_equals_batch(log: EventLog, run: int) -> None:
    batch = derive_batch(log, SESSION)
    assert batch.run == run + 1
    continuous, reference = stored(log, run), stored(log, batch.run)
    assert len(continuous) == len(reference)
    assert continuous == reference
    for state in run_states(log, SESSION):
        result = verify_run(log, SESSION, state)
        assert result.problems == (), (state.run, result.problems)


splits = st.lists(st.integers(min_value=0, max_value=10**9), min_size=0, max_size=40)


@pytest.mark.parametrize("name", [*ARCHIVE, str(CAPTURE)])
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cuts=splits)
def test_any_split_into_commits_derives_the_batch_run(
    name: str, cuts: list[int], tmp_path_factory: pytest.TempPathFactory, testdata: Path
) -> None:
    facts = session_facts(name)
    log, run = follow(tmp_path_factory.mktemp("split"), facts, cuts)
    with log:
        check_equals_batch(log, run)


@pytest.mark.parametrize("name", ARCHIVE)
def test_all_at_once_and_with_a_restart(
    name: str, tmp_path_factory: pytest.TempPathFactory, testdata: Path
) -> None:
    facts = session_facts(name)
    log, run = follow(tmp_path_factory.mktemp("once"), facts, [])
    with log:
        check_equals_batch(log, run)
    cuts = list(range(0, len(facts), max(1, len(facts) // 12)))
    log, run = follow(tmp_path_factory.mktemp("restart"), facts, cuts, restart_at=6)
    with log:
        check_equals_batch(log, run)


def test_the_capture_one_fact_a_commit(tmp_path: Path, testdata: Path) -> None:
    facts = session_facts(str(CAPTURE))
    log, run = follow(tmp_path, facts, list(range(len(facts))), restart_at=len(facts) // 2)
    with log:
        check_equals_batch(log, run)
        # Stored rows grow with the feed: one copy of each event (no re-derivation).
        completed = log.completion(SESSION, run)
        assert completed is not None
        assert log.derived_count(SESSION, run) == completed.derived


def test_facts_out_of_stream_order_start_a_new_run(tmp_path: Path, testdata: Path) -> None:
    # The race's timing first, its other topics ingested later: they belong before
    # facts the run has read, so the run stops growing and a new run reads them in
    # their place — and equals a batch derivation of the whole session.
    folder = testdata / ARCHIVE[0]
    files = topic_files(folder)
    timing = [f for f in files if f.topic == "TimingData"]
    rest = [f for f in files if f.topic != "TimingData"]
    with EventLog(parse_store_url(f"sqlite:///{tmp_path / 'events.db'}")) as log:
        log.register_session(SESSION, "test")
        follower = DerivationFollower.start(log, SESSION)
        log.append_facts(read_facts(SESSION, timing))
        assert not follower.catch_up().reordered
        log.append_facts(read_facts(SESSION, rest))
        stopped = follower.catch_up()
        assert stopped.reordered
        assert stopped.facts == 0  # the first fact of the rest is already out of order
        head = log.head_position()
        again = DerivationFollower.start(log, SESSION)
        assert again.sorted_until == head  # what was logged is read in stream-time order
        again.catch_up()
        again.close()
        check_equals_batch(log, again.run)
        # The first run verifies too, as it stood.
        assert verify_run(log, SESSION, run_states(log, SESSION)[0]).problems == ()


def test_sessions_shows_a_run_that_grows(
    tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The daemon's run has no completion while it grows: `sessions` said "not derived".
    url = f"sqlite:///{tmp_path / 'events.db'}"
    log = EventLog(parse_store_url(url))
    log.register_session(SESSION, "test")
    follower = DerivationFollower.start(log, SESSION)
    log.append_facts(session_facts(str(CAPTURE)))
    follower.catch_up()
    with log:
        derived, position = log.derived_count(SESSION, 1), log.run_position(SESSION, 1)
        assert derived > 1000
        assert position is not None
        assert main(["sessions", "--store", url]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"{SESSION}\trun 1, growing ({derived} derived events, "
        f"facts read up to log position {position})\n"
    )
