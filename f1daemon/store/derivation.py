"""Deriving a session's events from its facts in the log, as one recorded run."""

from __future__ import annotations

from f1daemon.domain.events import DerivationCompleted, DerivedEvent
from f1daemon.errors import UserError
from f1daemon.feed.pipeline import PIPELINE_VERSION, derive
from f1daemon.store.eventlog import EventLog


def derive_session(log: EventLog, session: str) -> DerivationCompleted:
    """Run the current pipeline over a session's facts and append the result as a run."""
    derivation = derive(session, log.facts(session))
    return log.record_derivation(
        session,
        derivation.events,
        pipeline_version=PIPELINE_VERSION,
        facts=derivation.facts,
        last_fact_position=derivation.last_fact_position,
        undecodable=derivation.undecodable,
    )


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
    """The derived events of a session's latest derivation run."""
    latest = log.latest_derivation(session)
    if latest is None:
        raise UserError(f"session {session!r} has not been derived yet; run ingest again")
    return log.derived_events(session, latest.run)
