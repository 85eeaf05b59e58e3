"""Deriving a session's events from its facts in the log, as recorded runs; and checking them.

A derivation run is the pipeline's output over a session's facts (up to a position,
for a replay `--until`), appended with digests of what it read and what it wrote:
`verify` derives again and compares, byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from f1daemon.domain.events import (
    DerivationCompleted,
    DerivedEvent,
    Event,
    Input,
    QualityChecked,
    QuarantineReleased,
)
from f1daemon.errors import UserError
from f1daemon.feed.pipeline import PIPELINE_VERSION, Derivation, Pace, derive
from f1daemon.qa.report import QAReport
from f1daemon.qa.verdicts import check_run
from f1daemon.store.eventlog import EventLog, events_digest
from f1daemon.store.persistence import to_stored_event


class _HashedFacts:
    """The facts of a session as the derivation reads them, hashed on the way; the
    operators' releases among them are kept aside for QA."""

    def __init__(self, facts: Iterator[tuple[int, Input]]) -> None:
        self._facts = facts
        self._digest = hashlib.sha256()
        self.releases: list[QuarantineReleased] = []
        self.last_position = 0

    def __iter__(self) -> Iterator[tuple[int, Input]]:
        for position, fact in self._facts:
            self._digest.update(
                f"{position}\0{fact.source}\0{fact.stream}\0{fact.sequence}\0".encode()
            )
            if isinstance(fact, QuarantineReleased):
                self._digest.update(f"{fact.rule}\0{fact.record}".encode())
                self.releases.append(fact)
            else:
                self._digest.update(fact.payload.encode())
            self._digest.update(b"\0")
            self.last_position = max(self.last_position, position)
            yield position, fact

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def derive_checked(
    session: str, facts: _HashedFacts, pace: Pace | None = None
) -> tuple[Derivation, QAReport]:
    """The decoders' events with QA's verdicts applied (see `f1daemon.qa.verdicts`)."""
    derivation = derive(session, facts, pace)
    events, report = check_run(session, derivation.events, facts.releases)
    return replace(derivation, events=events), report


def derive_session(
    log: EventLog, session: str, until: int | None = None, pace: Pace | None = None
) -> DerivationCompleted:
    """Run the current pipeline and QA over a session's facts; append the result as a run.

    `until` limits the facts to a log position; `pace` is called before each fact
    (a replay at a chosen speed).
    """
    facts = _HashedFacts(log.inputs(session, until))
    derivation, _ = derive_checked(session, facts, pace)
    return log.record_derivation(
        session,
        derivation.events,
        pipeline_version=PIPELINE_VERSION,
        facts=derivation.facts,
        # Every input counts (a quarantined line, a release): else a derivation would
        # find them "new" again at every look.
        last_fact_position=facts.last_position,
        undecodable=derivation.undecodable,
        facts_sha256=facts.hexdigest(),
        until_position=until,
    )


def derive_if_changed(log: EventLog, session: str) -> DerivationCompleted | None:
    """Derive a session again only when it has facts its latest run did not read, or the
    pipeline changed; else None. A run that changes nothing would also undo a rollback
    (the newest run is current), so a restarted daemon must not record one."""
    latest = log.latest_derivation(session)
    unchanged = (
        latest is not None
        and latest.pipeline_version == PIPELINE_VERSION
        and latest.until_position is None
        and not log.has_facts_after(session, latest.last_fact_position)
    )
    return None if unchanged else derive_session(log, session)


@dataclass(frozen=True)
class Verification:
    """What `verify` found for one derivation run: problems fail it, notes do not."""

    session: str
    run: int
    problems: tuple[str, ...]
    notes: tuple[str, ...]


def verify_run(log: EventLog, session: str, completed: DerivationCompleted) -> Verification:
    """Derive a run's facts again and compare facts and events with what it recorded."""
    stored = log.derived_events(session, completed.run)  # every stored event must still load
    if not completed.facts_sha256:
        note = "recorded before digests: its events load, nothing else to compare"
        return Verification(session, completed.run, (), (note,))
    # What the run read: the session's facts up to its limit, or up to the last it read
    # (facts appended since then belong to later runs).
    limit = completed.until_position
    facts = _HashedFacts(
        log.inputs(session, completed.last_fact_position if limit is None else limit)
    )
    comparable = completed.pipeline_version == PIPELINE_VERSION
    # Another pipeline's run cannot be derived again here: only read its facts.
    again = derive_checked(session, facts)[0].events if comparable else [f for _, f in facts]
    problems: list[str] = []
    notes: list[str] = []
    if facts.hexdigest() != completed.facts_sha256:
        problems.append(
            f"the facts read now differ from the {completed.facts} the run read "
            "(the log's facts changed)"
        )
    if _digest(stored) != completed.events_sha256:
        problems.append("the stored derived events differ from what the run recorded")
    if not comparable:
        notes.append(
            f"derived by pipeline {completed.pipeline_version}, this is {PIPELINE_VERSION}: "
            "not derived again (replay derives it with this version)"
        )
    elif _digest(again) != completed.events_sha256:
        problems.append("deriving the same facts again gives different events")
    return Verification(session, completed.run, tuple(problems), tuple(notes))


def _digest(events: Sequence[Event]) -> str:
    """The digest `record_derivation` records, of events not (or no longer) stored."""
    return events_digest([to_stored_event("", i, e) for i, e in enumerate(events, start=1)])


def resolve_session(log: EventLog, requested: str | None) -> str:
    """The session a command is about: the one asked for, or the log's only one."""
    sessions = log.sessions()
    if requested is not None:
        if requested not in sessions:
            known = ", ".join(sessions) or "none"
            raise UserError(f"unknown session {requested!r}; the log holds: {known}")
        return requested
    if not sessions:
        raise UserError(f"the log at {log.store.redacted} holds no sessions; ingest some first")
    if len(sessions) > 1:
        raise UserError(
            "the log holds several sessions; choose one with --session: " + ", ".join(sessions)
        )
    return sessions[0]


def current_events(log: EventLog, session: str) -> list[DerivedEvent]:
    """The derived events that are a session's current data (latest run, or rolled back to)."""
    run = log.current_run(session)
    if run is None:
        raise UserError(f"session {session!r} has no current derived data; run replay")
    return log.derived_events(session, run)


def run_report(log: EventLog, session: str, run: int) -> QAReport | None:
    """The QA report a derivation run recorded (None: derived before QA reports)."""
    last = log.last_derived_event(session, run)
    return QAReport.of(last) if isinstance(last, QualityChecked) else None
