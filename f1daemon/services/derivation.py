"""Deriving a session's events from its facts in the log, as recorded runs; and checking them.

A derivation run is the fold of the pipeline and QA over a session's facts in log
order (`f1daemon.projections.fold`): a batch run over all of them (up to a position,
for a replay `--until`), or the daemon's live run, which grows as they arrive
(`f1daemon.projections.follower`). `verify` derives a run's facts again in one batch
and compares, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from f1daemon.domain.events import (
    DerivationCompleted,
    DerivationStarted,
    DerivedEvent,
    Event,
    QualityChecked,
    SessionDescribed,
)
from f1daemon.errors import UserError
from f1daemon.feed.pipeline import PIPELINE_VERSION, Pace
from f1daemon.projections.current import session_data
from f1daemon.projections.fold import SessionFold
from f1daemon.projections.follower import DerivationFollower, derive_batch, read_order
from f1daemon.qa.report import QAReport
from f1daemon.services import session_names
from f1daemon.store.eventlog import EventLog, events_digest
from f1daemon.store.persistence import to_stored_event


def derive_session(
    log: EventLog, session: str, until: int | None = None, pace: Pace | None = None
) -> DerivationCompleted:
    """Run the current pipeline and QA over a session's facts; append the result as a run.

    `until` limits the facts to a log position; `pace` is called before each fact
    (a replay at a chosen speed).
    """
    return derive_batch(log, session, until, pace)


def open_follower(log: EventLog, session: str) -> DerivationFollower | None:
    """The daemon's follower of a session: its open run resumed, or a new run when the
    session has facts that its latest complete run did not read (or another pipeline
    derived it); None when nothing is new. A run that changes nothing would also undo
    a rollback (the newest run is current), so a restarted daemon must not start one."""
    resumed = DerivationFollower.resume(log, session)
    if resumed is not None:
        return resumed
    latest = log.latest_derivation(session)
    started = log.started_runs(session)
    unchanged = (
        latest is not None
        and (not started or started[-1].run == latest.run)
        and latest.pipeline_version == PIPELINE_VERSION
        and latest.until_position is None
        and not log.has_facts_after(session, latest.last_fact_position)
    )
    return None if unchanged else DerivationFollower.start(log, session)


@dataclass(frozen=True)
class Verification:
    """What `verify` found for one derivation run: problems fail it, notes do not."""

    session: str
    run: int
    problems: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class RunState:
    """A run as the log holds it: complete, or growing (to its tracking position)."""

    run: int
    pipeline_version: str
    started: DerivationStarted | None  # None: a run before pipeline 3.0
    completed: DerivationCompleted | None
    position: int | None  # the last fact its events account for (None: none yet)


def run_states(log: EventLog, session: str) -> list[RunState]:
    """Every run of a session, oldest first: complete ones and growing ones."""
    completed = {c.run: c for _, c in log.derivation_runs(session)}
    states = {
        s.run: RunState(
            s.run,
            s.pipeline_version,
            s,
            completed.get(s.run),
            _read_limit(completed[s.run])
            if s.run in completed
            else log.run_position(session, s.run),
        )
        for s in log.started_runs(session)
    }
    for run, done in completed.items():  # runs before pipeline 3.0 have no start
        states.setdefault(run, RunState(run, done.pipeline_version, None, done, _read_limit(done)))
    return [states[run] for run in sorted(states)]


def refold(log: EventLog, session: str, state: RunState) -> tuple[SessionFold, list[DerivedEvent]]:
    """A run derived again in memory from the facts it read, in its order (nothing is
    appended): the fold and the events, with the end of the stream if it is complete."""
    fold = SessionFold(session)
    events: list[DerivedEvent] = []
    if state.started is not None and state.position is not None:
        for position, fact in read_order(log, state.started, state.position):
            events.extend(fold.feed(position, fact))
    if state.completed is not None:
        events.extend(fold.finish())
    return fold, events


def verify_run(log: EventLog, session: str, run: RunState | DerivationCompleted) -> Verification:
    """Derive a run's facts again in one batch and compare with what it appended."""
    if isinstance(run, DerivationCompleted):
        run = next(s for s in run_states(log, session) if s.run == run.run)
    state = run
    stored = log.derived_events(session, state.run)  # every stored event must still load
    completed = state.completed
    if completed is not None and not completed.facts_sha256:
        note = "recorded before digests: its events load, nothing else to compare"
        return Verification(session, state.run, (), (note,))
    problems: list[str] = []
    notes: list[str] = []
    if completed is not None and log.events_digest(session, state.run) != completed.events_sha256:
        problems.append("the stored derived events differ from what the run recorded")
    if state.pipeline_version != PIPELINE_VERSION or state.started is None:
        notes.append(
            f"derived by pipeline {state.pipeline_version}, this is {PIPELINE_VERSION}: "
            "not derived again (replay derives it with this version)"
        )
        return Verification(session, state.run, tuple(problems), tuple(notes))
    fold, again = refold(log, session, state)
    if completed is not None:
        if fold.facts_sha256() != completed.facts_sha256:
            problems.append(
                f"the facts read now differ from the {completed.facts} the run read "
                "(the log's facts changed)"
            )
    else:
        notes.append(f"growing: {len(stored)} events for the facts up to position {state.position}")
    if _digest(again) != _digest(stored):
        problems.append("deriving the same facts again gives different events")
    return Verification(session, state.run, tuple(problems), tuple(notes))


def _read_limit(completed: DerivationCompleted) -> int:
    # What a complete run read: the session's facts up to its limit, or up to the last
    # it read (facts appended since then belong to later runs).
    limit = completed.until_position
    return completed.last_fact_position if limit is None else limit


def _digest(events: Sequence[Event]) -> str:
    """The digest `append_derived` records, of events not (or no longer) stored."""
    return events_digest([to_stored_event("", i, e) for i, e in enumerate(events, start=1)])


def resolve_session(log: EventLog, requested: str | None) -> str:
    """The session a command is about: the one asked for by any name people use
    (`f1daemon.services.session_names`), or the log's only one."""
    sessions = log.sessions()
    if requested is not None:
        try:
            return session_names.resolve(requested, sessions)
        except session_names.AmbiguousSessionError:
            raise
        except UserError:
            # Not by its key's words: by what SessionInfo said of it (`Baku`, `5090`),
            # which needs the derived data, so only now.

            def described(session: str) -> list[str]:
                data = session_data(log, session)
                events = [] if data is None else data[1]
                last = next((e for e in reversed(events) if isinstance(e, SessionDescribed)), None)
                return session_names.described_names(None if last is None else last.model_dump())

            return session_names.resolve(requested, sessions, described)
    if not sessions:
        raise UserError(f"the log at {log.store.redacted} holds no sessions; ingest some first")
    if len(sessions) > 1:
        raise UserError(
            "the log holds several sessions; choose one with --session: " + ", ".join(sessions)
        )
    return sessions[0]


def current_events(log: EventLog, session: str, *, telemetry: bool = False) -> list[DerivedEvent]:
    """A session's current data: the current run's events (as at a rollback's tag),
    with their corrections applied (`f1daemon.projections.current`), and with
    `telemetry` its telemetry batches."""
    data = session_data(log, session, telemetry=telemetry)
    if data is None:
        raise UserError(f"session {session!r} has no current derived data; run replay")
    return data[1]


def run_report(log: EventLog, session: str, run: int) -> QAReport | None:
    """The QA report of a run: a complete run's `QualityChecked`; a growing run's
    running report, derived again from its facts (None: derived before QA reports)."""
    last = log.last_derived_event(session, run)
    if isinstance(last, QualityChecked):
        return QAReport.of(last)
    state = next((s for s in run_states(log, session) if s.run == run), None)
    if state is None or state.completed is not None or state.pipeline_version != PIPELINE_VERSION:
        return None
    return refold(log, session, state)[0].report()
