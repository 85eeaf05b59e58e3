"""The quarantine of a session, for operators: what is held back, why, and releasing it.

A record is quarantined at one of three stages, told apart by where its
`RecordQuarantined` is:

* `source` — a line that could not be framed as a message (a fact of the log);
* `decoder` — a message whose content the decoders could not read (derived);
* `qa` — a derived record that broke a blocking QA rule (derived, `source` = `qa`).

Only `qa` quarantines can be released: the record exists and only a rule's verdict
holds it back. A release is a `QuarantineReleased` fact naming the rule and the
record; the session is then derived again, and from that run on the record is kept,
flagged with who released it and why. The earlier runs still show it quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from f1daemon.domain.events import (
    AnomalyDetected,
    DerivationCompleted,
    QuarantineReleased,
    RecordQuarantined,
)
from f1daemon.errors import UserError
from f1daemon.qa.verdicts import QA_SOURCE
from f1daemon.services.derivation import derive_session
from f1daemon.store.eventlog import EventLog

Stage = Literal["source", "decoder", "qa"]

# The releases' stream: `facts:{session}:operator:quarantine-releases`.
RELEASES_SOURCE, RELEASES_STREAM = "operator", "quarantine-releases"


@dataclass(frozen=True)
class Quarantined:
    """One quarantined record and where it is in the log."""

    position: int
    stage: Stage
    event: RecordQuarantined

    @property
    def what(self) -> str:
        """The record (QA) or the input (source, decoder) as an operator finds it."""
        if self.event.record is not None:
            return self.event.record
        topic = f" ({self.event.topic})" if self.event.topic else ""
        return f"{self.event.stream} #{self.event.sequence}{topic}"

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.position,
            "stage": self.stage,
            "what": self.what,
            **self.event.model_dump(mode="json"),
        }


def quarantined(log: EventLog, session: str, at: int | None = None) -> list[Quarantined]:
    """What a session's current data holds back (as at a log position), oldest first:
    a record an operator released (the run's released `AnomalyDetected` for it) is
    back in the data."""
    run = log.current_run(session, at)
    released = {
        e.record
        for e in (log.derived_events_at(session, run, at) if run is not None else ())
        if isinstance(e, AnomalyDetected) and e.released
    }
    return [
        Quarantined(position, _stage(derived, event), event)
        for position, derived, event in log.quarantined(session, at)
        if not (derived and event.record in released)
    ]


def _stage(derived: bool, event: RecordQuarantined) -> Stage:
    if not derived:
        return "source"
    return "qa" if event.source == QA_SOURCE and event.record is not None else "decoder"


def find(log: EventLog, session: str, position: int) -> Quarantined:
    """The quarantined record with this id (log position) in the session's current data."""
    for entry in quarantined(log, session):
        if entry.position == position:
            return entry
    raise UserError(
        f"no quarantined record {position} in the current data of {session}; "
        "`f1daemon quarantine list` shows them"
    )


def session_of(log: EventLog, position: int, session: str | None) -> str:
    """The session a quarantined record's id is in: an id is a log position, unique in
    the whole log, so the session need not be given (when it is, it is checked)."""
    if session is not None:
        return session
    for candidate in log.sessions():
        if any(entry.position == position for entry in quarantined(log, candidate)):
            return candidate
    raise UserError(
        f"no quarantined record {position} in the current data of any session; "
        "`f1daemon quarantine list` shows them"
    )


def release(
    log: EventLog, session: str, position: int, *, reason: str, released_by: str
) -> tuple[QuarantineReleased, DerivationCompleted]:
    """Release a QA quarantine: record the release, then derive the session again."""
    if not reason.strip():
        raise UserError("a release needs a reason (--reason): it is kept in the log")
    entry = find(log, session, position)
    if entry.stage != "qa" or entry.event.record is None:
        raise UserError(
            f"quarantined record {position} was held back by its {entry.stage} "
            f"({entry.event.rule}): it is not a record that could be derived, so there "
            "is nothing to release; it stays in the log as received"
        )
    released = log.record_release(
        QuarantineReleased(
            session=session,
            source=RELEASES_SOURCE,
            stream=RELEASES_STREAM,
            sequence=1,  # numbered by the log
            rule=entry.event.rule,
            record=entry.event.record,
            reason=reason.strip(),
            released_by=released_by,
            quarantine_position=position,
            at=datetime.now(UTC),
        )
    )
    return released, derive_session(log, session)
