"""Jolpica pages as the decoders read them: a response body into rows, or into events.

Jolpica (the Ergast-compatible F1 results API) answers in pages; each page a source
receives is a fact (see `f1daemon.sources.jolpica`, which fetches them). `parse_page`
turns a payload into rows — `RaceResult`, `QualifyingResult`, `LapTiming`,
`PitStopRow` — and `page_events` into the derived events of
`f1daemon.domain.results`, one per row. Both are pure functions of the payload, so a
replay derives the same rows again from the log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, TypedDict

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from f1daemon.domain.results import (
    QualifyingPublished,
    ReferenceLapPublished,
    ReferencePitStopPublished,
    ResultEvent,
    ResultPublished,
)

TOPIC_PREFIX = "jolpica."


class Kind(StrEnum):
    """What can be fetched: the path segment of the resource."""

    RESULTS = "results"
    QUALIFYING = "qualifying"
    SPRINT = "sprint"
    LAPS = "laps"
    PITSTOPS = "pitstops"

    @property
    def topic(self) -> str:
        """The `MessageReceived` topic of this kind's pages, e.g. `jolpica.results`."""
        return f"{TOPIC_PREFIX}{self.value}"

    @property
    def needs_round(self) -> bool:
        """Laps and pit stops exist only per race (`/{season}/{round}/laps`)."""
        return self in (Kind.LAPS, Kind.PITSTOPS)


# --- rows --------------------------------------------------------------------------


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    season: int
    round: int
    driver: str = Field(description="Ergast driverId, e.g. `max_verstappen`.")


class RaceResult(_Row):
    """One classified line of a race or sprint result."""

    session: Literal["race", "sprint"]
    number: int | None = Field(description="Racing number.")
    constructor: str = Field(description="Ergast constructorId, e.g. `red_bull`.")
    grid: int = Field(description="Grid position (0 = pit lane).")
    position: int = Field(description="Classified position (every line has one).")
    position_text: str = Field(description="`1`…, or R retired, D disqualified, W withdrawn…")
    status: str = Field(description="`Finished`, `+1 Lap`, `Collision`, …")
    laps: int
    time: str | None = Field(description="Race time (winner) or gap, as the API shows it.")
    time_ms: int | None = Field(description="Race time in ms, for finishers on the lead lap.")
    points: float


class QualifyingResult(_Row):
    """One line of a qualifying result."""

    number: int | None
    constructor: str
    position: int
    q1: str | None
    q2: str | None
    q3: str | None


class LapTiming(_Row):
    """A driver's lap: running position at the line and lap time."""

    lap: int
    position: int
    time: str
    time_ms: int | None = Field(description="Lap time in ms (None if the text is not a time).")


class PitStopRow(_Row):
    """A pit stop: lap, time of day and the pit-lane duration the API reports."""

    stop: int
    lap: int
    time: str = Field(description="Local time of day of the stop, e.g. `14:14:23`.")
    duration: str = Field(description="Pit-lane time as the API shows it, e.g. `22.508`.")
    duration_ms: int | None


Row = RaceResult | QualifyingResult | LapTiming | PitStopRow

_TIME = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+)(?:\.(\d{1,3}))?$")


def time_ms(text: str | None) -> int | None:
    """`1:39.019` / `39.019` / `1:58:23.284` in milliseconds; None if not such a time."""
    if text is None:
        return None
    m = _TIME.match(text.strip())
    if m is None:
        return None
    hours, minutes, seconds, frac = m.groups()
    ms = int((frac or "0").ljust(3, "0"))
    return ((int(hours or 0) * 60 + int(minutes or 0)) * 60 + int(seconds)) * 1000 + ms


# --- the API's shape (only what is read; the rest is ignored) ------------------------


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _DriverRef(_Shape):
    driverId: str
    code: str | None = None


class _ConstructorRef(_Shape):
    constructorId: str
    name: str | None = None


class _Time(_Shape):
    time: str | None = None
    millis: int | None = None


class _FastestLap(_Shape):
    rank: int | None = None
    lap: int | None = None
    Time: _Time | None = None


class _Circuit(_Shape):
    circuitId: str


class _Result(_Shape):
    number: int | None = None
    position: int
    positionText: str
    points: float
    Driver: _DriverRef
    Constructor: _ConstructorRef
    grid: int
    laps: int
    status: str
    Time: _Time | None = None
    FastestLap: _FastestLap | None = None


class _Qualifying(_Shape):
    number: int | None = None
    position: int
    Driver: _DriverRef
    Constructor: _ConstructorRef
    Q1: str | None = None
    Q2: str | None = None
    Q3: str | None = None


class _Timing(_Shape):
    driverId: str
    position: int
    time: str


class _Lap(_Shape):
    number: int
    Timings: list[_Timing]


class _PitStop(_Shape):
    driverId: str
    lap: int
    stop: int
    time: str
    duration: str


class _Race(_Shape):
    season: int
    round: int
    raceName: str | None = None
    date: str | None = None
    time: str | None = None
    Circuit: _Circuit | None = None
    Results: list[_Result] = []
    QualifyingResults: list[_Qualifying] = []
    SprintResults: list[_Result] = []
    Laps: list[_Lap] = []
    PitStops: list[_PitStop] = []


class _RaceTable(_Shape):
    Races: list[_Race]


class _MRData(_Shape):
    limit: int = Field(ge=0)
    offset: int = Field(ge=0)
    total: int = Field(ge=0)
    RaceTable: _RaceTable


class _Body(_Shape):
    MRData: _MRData


class JolpicaParseError(ValueError):
    """A body that is not a Jolpica page of the kind asked for."""


@dataclass(frozen=True, slots=True)
class Page:
    """One response page: where it sits in the whole (`offset`, `limit`, `total`) and its rows."""

    kind: Kind
    total: int
    limit: int
    offset: int
    rows: tuple[Row, ...]


def _race_rows(kind: Kind, race: _Race) -> list[Row]:
    s, r = race.season, race.round
    match kind:
        case Kind.RESULTS | Kind.SPRINT:
            lines = race.Results if kind is Kind.RESULTS else race.SprintResults
            session: Literal["race", "sprint"] = "race" if kind is Kind.RESULTS else "sprint"
            return [
                RaceResult(
                    season=s,
                    round=r,
                    session=session,
                    driver=x.Driver.driverId,
                    number=x.number,
                    constructor=x.Constructor.constructorId,
                    grid=x.grid,
                    position=x.position,
                    position_text=x.positionText,
                    status=x.status,
                    laps=x.laps,
                    time=x.Time.time if x.Time else None,
                    time_ms=x.Time.millis if x.Time else None,
                    points=x.points,
                )
                for x in lines
            ]
        case Kind.QUALIFYING:
            return [
                QualifyingResult(
                    season=s,
                    round=r,
                    driver=q.Driver.driverId,
                    number=q.number,
                    constructor=q.Constructor.constructorId,
                    position=q.position,
                    q1=q.Q1,
                    q2=q.Q2,
                    q3=q.Q3,
                )
                for q in race.QualifyingResults
            ]
        case Kind.LAPS:
            return [
                LapTiming(
                    season=s,
                    round=r,
                    driver=t.driverId,
                    lap=lap.number,
                    position=t.position,
                    time=t.time,
                    time_ms=time_ms(t.time),
                )
                for lap in race.Laps
                for t in lap.Timings
            ]
        case Kind.PITSTOPS:
            return [
                PitStopRow(
                    season=s,
                    round=r,
                    driver=p.driverId,
                    stop=p.stop,
                    lap=p.lap,
                    time=p.time,
                    duration=p.duration,
                    duration_ms=time_ms(p.duration),
                )
                for p in race.PitStops
            ]


def _body(kind: Kind, payload: str | bytes) -> _Body:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise JolpicaParseError(f"not JSON: {exc}") from None
    try:
        return _Body.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the body"
        raise JolpicaParseError(
            f"not a Jolpica {kind.value} page: {where}: {first['msg']} "
            f"({exc.error_count()} problem(s))"
        ) from None


def parse_page(kind: Kind, payload: str | bytes) -> Page:
    """A response body as a `Page` of `kind` rows; `JolpicaParseError` if it is not one."""
    body = _body(kind, payload)
    rows = [row for race in body.MRData.RaceTable.Races for row in _race_rows(kind, race)]
    mr = body.MRData
    return Page(kind, mr.total, mr.limit, mr.offset, tuple(rows))


# --- events --------------------------------------------------------------------------


def kind_of_topic(topic: str) -> Kind | None:
    """The kind of a Jolpica fact's topic (`jolpica.results` → RESULTS); None if not one."""
    if not topic.startswith(TOPIC_PREFIX):
        return None
    try:
        return Kind(topic.removeprefix(TOPIC_PREFIX))
    except ValueError:
        return None


def page_events(kind: Kind, payload: str | bytes, session: str) -> list[ResultEvent]:
    """A page's rows as derived events of `session`; `JolpicaParseError` if it is no page."""
    body = _body(kind, payload)
    return [event for race in body.MRData.RaceTable.Races for event in _events(kind, race, session)]


class _Where(TypedDict):
    """The fields every row of a race shares (`f1daemon.domain.results.JolpicaRow`)."""

    session: str
    season: int
    round: int
    race_name: str | None
    circuit_id: str | None
    race_start_utc: datetime | None


def _race_start(race: _Race) -> datetime | None:
    if race.date is None:
        return None
    try:
        start = datetime.fromisoformat(f"{race.date}T{race.time or '00:00:00Z'}")
    except ValueError:
        return None
    return start.astimezone(UTC) if start.tzinfo else start.replace(tzinfo=UTC)


def _events(kind: Kind, race: _Race, session: str) -> list[ResultEvent]:
    where: _Where = {
        "session": session,
        "season": race.season,
        "round": race.round,
        "race_name": race.raceName,
        "circuit_id": race.Circuit.circuitId if race.Circuit else None,
        "race_start_utc": _race_start(race),
    }
    match kind:
        case Kind.RESULTS | Kind.SPRINT:
            lines = race.Results if kind is Kind.RESULTS else race.SprintResults
            name: Literal["Race", "Sprint"] = "Race" if kind is Kind.RESULTS else "Sprint"
            return [_result(where, name, line) for line in lines]
        case Kind.QUALIFYING:
            return [
                QualifyingPublished(
                    **where,
                    driver=q.number,
                    driver_id=q.Driver.driverId,
                    name_acronym=q.Driver.code,
                    constructor_id=q.Constructor.constructorId,
                    constructor_name=q.Constructor.name,
                    position=q.position,
                    q1_ms=time_ms(q.Q1),
                    q2_ms=time_ms(q.Q2),
                    q3_ms=time_ms(q.Q3),
                )
                for q in race.QualifyingResults
            ]
        case Kind.LAPS:
            return [
                ReferenceLapPublished(
                    **where,
                    driver=None,
                    driver_id=t.driverId,
                    lap=lap.number,
                    position=t.position,
                    lap_time_ms=time_ms(t.time),
                )
                for lap in race.Laps
                for t in lap.Timings
            ]
        case Kind.PITSTOPS:
            return [
                ReferencePitStopPublished(
                    **where,
                    driver=None,
                    driver_id=p.driverId,
                    stop=p.stop,
                    lap=p.lap,
                    local_time=p.time,
                    pit_lane_ms=time_ms(p.duration),
                )
                for p in race.PitStops
            ]


def _result(where: _Where, name: Literal["Race", "Sprint"], line: _Result) -> ResultPublished:
    fastest = line.FastestLap
    return ResultPublished(
        **where,
        session_name=name,
        driver=line.number,
        driver_id=line.Driver.driverId,
        name_acronym=line.Driver.code,
        constructor_id=line.Constructor.constructorId,
        constructor_name=line.Constructor.name,
        position=line.position,
        position_text=line.positionText,
        classified=line.positionText.isdigit(),
        grid_position=line.grid or None,  # Jolpica's 0 is a pit-lane start
        number_of_laps=line.laps,
        status=line.status,
        race_time_ms=line.Time.millis if line.Time else None,
        time_text=line.Time.time if line.Time else None,
        points=line.points,
        fastest_lap=fastest.lap if fastest else None,
        fastest_lap_time_ms=time_ms(fastest.Time.time) if fastest and fastest.Time else None,
        fastest_lap_rank=fastest.rank if fastest else None,
    )
