"""Versions of the derived data: replay, tags, rollback and diff.

A version is a log position (and the pipeline that derived the data there). Replay
derives a session again, up to a tag or position, as a new run; rollback makes the
run that was current at a tag current again, recorded as `RolledBack`; nothing is
ever deleted from the log.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from f1daemon.domain.events import (
    DerivationCompleted,
    DerivedEvent,
    LapCompleted,
    RolledBack,
    VersionTagged,
)
from f1daemon.errors import UserError
from f1daemon.feed.messages import FeedMessage
from f1daemon.feed.pipeline import Pace
from f1daemon.projections.current import session_data
from f1daemon.services.derivation import derive_session
from f1daemon.store.eventlog import EventLog


def find_tag(log: EventLog, name: str) -> VersionTagged:
    """A tag by name; a UserError naming the known ones otherwise."""
    for version in log.versions():
        if version.name == name:
            return version
    known = ", ".join(v.name for v in log.versions()) or "none"
    raise UserError(f"unknown tag {name!r}; the log has: {known}")


def resolve_position(log: EventLog, until: str | None) -> int | None:
    """`--until TAG|POSITION` as a log position (None: the head)."""
    if until is None:
        return None
    if until.isdigit():
        return int(until)
    return find_tag(log, until).position


def replay(
    log: EventLog, session: str, until: str | None = None, speed: float | None = None
) -> DerivationCompleted:
    """Derive a session again from its facts (up to a tag or position), as a new run.

    `speed` replays at that many times real time (the facts' stream offsets); None
    is as fast as possible.
    """
    pace = _paced(speed) if speed is not None else None
    return derive_session(log, session, resolve_position(log, until), pace)


def replay_into(
    log: EventLog, target: EventLog, session: str, until: str | None = None
) -> DerivationCompleted:
    """Replay a session into another store: its facts and releases (up to a tag or
    position) copied there, idempotently, then derived there. The source log is only
    read."""
    target.register_session(session, f"replay from {log.store.redacted}")
    target.append_facts(fact for _, fact in log.inputs(session, resolve_position(log, until)))
    return derive_session(target, session)


def _paced(speed: float) -> Pace:
    if speed <= 0:
        raise UserError(f"--speed must be positive or 'max', not {speed}")
    origin: tuple[float, float] | None = None  # (monotonic time, stream offset s) of the first

    def pace(fact: FeedMessage) -> None:
        nonlocal origin
        if fact.offset_ms is None:
            return
        now, offset = time.monotonic(), fact.offset_ms / 1000
        if origin is None:
            origin = (now, offset)
            return
        due = origin[0] + (offset - origin[1]) / speed
        if due > now:
            time.sleep(due - now)

    return pace


def rollback(log: EventLog, tag_name: str) -> list[RolledBack]:
    """Make every session's current data what it was at a tag."""
    tag = find_tag(log, tag_name)
    return [
        log.record_rollback(s, tag, log.current_run(s, at=tag.position)) for s in log.sessions()
    ]


@dataclass(frozen=True)
class LapDiff:
    """How a session's laps changed between two versions."""

    session: str
    added: int
    removed: int
    changed: int
    unchanged: int


def diff(log: EventLog, first: str, second: str) -> list[LapDiff]:
    """What changed in each session's laps from one tag to another."""
    before, after = find_tag(log, first), find_tag(log, second)
    result = []
    for session in log.sessions():
        old = _laps(log, session, before)
        new = _laps(log, session, after)
        shared = old.keys() & new.keys()
        changed = sum(1 for key in shared if old[key] != new[key])
        result.append(
            LapDiff(
                session=session,
                added=len(new.keys() - old.keys()),
                removed=len(old.keys() - new.keys()),
                changed=changed,
                unchanged=len(shared) - changed,
            )
        )
    return result


def _laps(log: EventLog, session: str, tag: VersionTagged) -> dict[tuple[int, int], LapCompleted]:
    data = session_data(log, session, at=tag.position)
    events: Sequence[DerivedEvent] = [] if data is None else data[1]
    return {(e.driver, e.lap): e for e in events if isinstance(e, LapCompleted)}
