"""The rows of the reference exports: Jolpica's results, qualifying, laps and pit stops.

A log session may hold Jolpica pages beside the feed (a results source configured with
the feed session's key, or `f1daemon ingest PAGE.json --session KEY`). Its exports keep
the rows that are about that session — the same season and race weekend, and the
session the kind describes (`results` the race, `sprint-results` the sprint,
`qualifying` the qualifying, `reference-laps` and `reference-pits` the race) — so that
the session key the exports add (from `SessionDescribed`, as for every feed export) is
the key of the session the row is about. Rows of other races or sessions are left out:
they are about sessions this one is not. A session without `SessionDescribed` (Jolpica
alone, e.g. the daemon's own `Results/2021` session) keeps every row, with no key.

When a resource was fetched more than once, the later fetch's row stands (a correction,
such as a penalty, is a new fetch). Lap and pit-stop pages name drivers only by
`driver_id`: their racing number is the one the same race's result (else its
qualifying or sprint) gives.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import timedelta
from typing import Any

from f1daemon.domain.events import DerivedEvent, Event, SessionDescribed
from f1daemon.domain.results import (
    JolpicaRow,
    QualifyingPublished,
    ReferenceLapPublished,
    ReferencePitStopPublished,
    ResultPublished,
)

# The feed's session names (SessionInfo `Name`) each kind of Jolpica row is about.
RACE = frozenset({"Race"})
SPRINT = frozenset({"Sprint"})
QUALIFYING = frozenset({"Qualifying"})
# 2021's sprints were named "Sprint Qualifying" (since 2024 the name of the sprint's
# qualifying, which Jolpica has no results of).
SPRINT_2021 = frozenset({"Sprint Qualifying"})
# A race weekend's first session is at most three days before its race (Thursday
# practice at Monaco); the next race is a week later at the soonest.
WEEKEND_BEFORE = timedelta(days=4)
WEEKEND_AFTER = timedelta(days=1)

Rows = list[dict[str, Any]]
Prepare = Callable[[Sequence[Event], Sequence[DerivedEvent]], Rows]


def described(events: Sequence[DerivedEvent]) -> SessionDescribed | None:
    """The session as SessionInfo last described it, if it did."""
    found = [e for e in events if isinstance(e, SessionDescribed)]
    return found[-1] if found else None


def same_weekend(row: JolpicaRow, session: SessionDescribed) -> bool:
    """Whether the row's race is the race weekend of the described session."""
    if session.year is not None and session.year != row.season:
        return False
    if session.date_start is not None and row.race_start_utc is not None:
        early = row.race_start_utc - WEEKEND_BEFORE
        return early <= session.date_start <= row.race_start_utc + WEEKEND_AFTER
    # Without dates, the names: Jolpica's raceName is the meeting's name.
    return session.meeting_name is not None and session.meeting_name == row.race_name


def about(row: JolpicaRow, session: SessionDescribed | None, names: frozenset[str]) -> bool:
    """Whether the row is about `session` (any row is, when no session is described)."""
    if session is None:
        return True
    name = session.session_name or session.session_type
    if names == SPRINT and row.season == 2021:
        names = SPRINT_2021
    return name in names and same_weekend(row, session)


def _latest(rows: Sequence[JolpicaRow], key: Callable[[Any], Hashable]) -> list[JolpicaRow]:
    """Each row as the last fetch has it, in log order of its first appearance."""
    latest: dict[Hashable, JolpicaRow] = {}
    for row in rows:
        latest[key(row)] = row
    return list(latest.values())


def _numbers(events: Sequence[DerivedEvent]) -> dict[tuple[int, int, str], int]:
    """Racing numbers by (season, round, driver_id): the race's, else qualifying's, sprint's."""
    numbers: dict[tuple[int, int, str], int] = {}
    ranked = sorted(
        (e for e in events if isinstance(e, ResultPublished | QualifyingPublished)),
        key=lambda e: 0 if isinstance(e, QualifyingPublished) else 1 + (e.session_name == "Race"),
    )
    for event in ranked:  # the best source last: it stands
        if event.driver is not None:
            numbers[(event.season, event.round, event.driver_id)] = event.driver
    return numbers


def _results(session_name: str, names: frozenset[str]) -> Prepare:
    """The classification lines of a race or a sprint, by position."""

    def rows(selected: Sequence[Event], events: Sequence[DerivedEvent]) -> Rows:
        session = described(events)
        lines = [
            e
            for e in selected
            if isinstance(e, ResultPublished)
            and e.session_name == session_name
            and about(e, session, names)
        ]
        kept = _latest(lines, lambda e: (e.season, e.round, e.driver_id))
        kept.sort(key=lambda e: (e.season, e.round, getattr(e, "position", 0)))
        return [e.model_dump() for e in kept]

    return rows


def qualifying_rows(selected: Sequence[Event], events: Sequence[DerivedEvent]) -> Rows:
    """Each qualifying line of the session, by position."""
    session = described(events)
    lines = [e for e in selected if isinstance(e, QualifyingPublished)]
    kept = _latest(
        [e for e in lines if about(e, session, QUALIFYING)],
        lambda e: (e.season, e.round, e.driver_id),
    )
    kept.sort(key=lambda e: (e.season, e.round, getattr(e, "position", 0)))
    return [e.model_dump() for e in kept]


def _numbered(kept: list[JolpicaRow], events: Sequence[DerivedEvent]) -> Rows:
    numbers = _numbers(events)
    rows = []
    for event in kept:
        row = event.model_dump()
        if row["driver"] is None:
            row["driver"] = numbers.get((event.season, event.round, event.driver_id))
        rows.append(row)
    rows.sort(
        key=lambda r: (
            r["season"],
            r["round"],
            r["driver"] is None,
            r["driver"] or 0,
            r["driver_id"],
            r.get("lap", 0),
            r.get("stop", 0),
        )
    )
    return rows


def reference_lap_rows(selected: Sequence[Event], events: Sequence[DerivedEvent]) -> Rows:
    """Jolpica's race laps, ordered by driver then lap, as the `laps` export is."""
    session = described(events)
    laps = [e for e in selected if isinstance(e, ReferenceLapPublished) and about(e, session, RACE)]
    kept = _latest(laps, lambda e: (e.season, e.round, e.driver_id, e.lap))
    return _numbered(kept, events)


def reference_pit_rows(selected: Sequence[Event], events: Sequence[DerivedEvent]) -> Rows:
    """Jolpica's race pit stops, ordered by driver then stop."""
    session = described(events)
    stops = [
        e for e in selected if isinstance(e, ReferencePitStopPublished) and about(e, session, RACE)
    ]
    kept = _latest(stops, lambda e: (e.season, e.round, e.driver_id, e.stop))
    return _numbered(kept, events)


PREPARE: dict[str, Prepare] = {
    "results": _results("Race", RACE),
    "sprint-results": _results("Sprint", SPRINT),
    "qualifying": qualifying_rows,
    "reference-laps": reference_lap_rows,
    "reference-pits": reference_pit_rows,
}
