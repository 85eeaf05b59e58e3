"""Jolpica, the Ergast-compatible F1 results API: results, qualifying, sprint, laps, pit stops.

Responses are paged (`limit`, at most 100, and `offset`); `MRData.total` counts the
innermost rows (result lines, lap timings, pit stops), and a page may end in the middle
of a race or a lap — the next page carries on with the same race. `Jolpica.fetch` asks
for every page of a resource once, in order, under the API's documented limits (4
requests a second, 500 an hour: share one `RateLimiter` between everything that calls
it), and checks that the pages add up: each page has the rows its offset and `total`
promise, and `total` does not change under it.

Every page is a fact: a `MessageReceived` (source `jolpica`, topic `jolpica.<kind>`,
stream the resource path such as `2021/results`, sequence the page number, payload the
body exactly as received). `parse_page` turns a payload into rows — `RaceResult`,
`QualifyingResult`, `LapTiming`, `PitStopRow` — and is a pure function of the payload,
so a decoder can derive the same rows again from the log.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from f1daemon.domain.events import Fact, MessageReceived, RecordQuarantined
from f1daemon.sources.http_fetch import (
    FetchError,
    RateLimit,
    RateLimiter,
    RetryPolicy,
    fetch,
)

SOURCE = "jolpica"
DEFAULT_BASE_URL = "https://api.jolpi.ca/ergast/f1/"
MAX_LIMIT = 100
"""The largest page the API serves (a larger `limit` is answered with 100)."""

BURST = RateLimit(4, 1.0)
SUSTAINED = RateLimit(500, 3600.0)


def default_limiter() -> RateLimiter:
    """A limiter for Jolpica's documented anonymous limits: 4/s burst, 500/h sustained."""
    return RateLimiter(BURST, SUSTAINED)


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
        return f"jolpica.{self.value}"

    @property
    def needs_round(self) -> bool:
        """Laps and pit stops exist only per race (`/{season}/{round}/laps`)."""
        return self in (Kind.LAPS, Kind.PITSTOPS)


def resource_path(kind: Kind, season: int, round_: int | None = None) -> str:
    """The resource path, e.g. `2021/results` or `2021/10/laps` (no `.json`)."""
    if season < 1950:
        raise ValueError(f"no F1 season {season}")
    if round_ is None:
        if kind.needs_round:
            raise ValueError(f"{kind.value} need a round: Jolpica serves them per race")
        return f"{season}/{kind.value}"
    if round_ < 1:
        raise ValueError(f"round must be >= 1, got {round_}")
    return f"{season}/{round_}/{kind.value}"


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


class _ConstructorRef(_Shape):
    constructorId: str


class _Time(_Shape):
    time: str | None = None
    millis: int | None = None


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


def parse_page(kind: Kind, payload: str | bytes) -> Page:
    """A response body as a `Page` of `kind` rows; `JolpicaParseError` if it is not one."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise JolpicaParseError(f"not JSON: {exc}") from None
    try:
        body = _Body.model_validate(data)
        rows = [row for race in body.MRData.RaceTable.Races for row in _race_rows(kind, race)]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the body"
        raise JolpicaParseError(
            f"not a Jolpica {kind.value} page: {where}: {first['msg']} "
            f"({exc.error_count()} problem(s))"
        ) from None
    mr = body.MRData
    return Page(kind, mr.total, mr.limit, mr.offset, tuple(rows))


# --- fetching ----------------------------------------------------------------------


@dataclass
class JolpicaFetch:
    """Every page of one resource: the facts (one per page, in order) and all rows."""

    kind: Kind
    path: str
    total: int
    facts: list[MessageReceived] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)


class JolpicaError(Exception):
    """A resource could not be fetched whole.

    `facts` holds what did arrive, in order — the pages fetched before the failure and,
    when the failing page's body was received, a `RecordQuarantined` with that body —
    so that the caller logs them: nothing received is lost.
    """

    def __init__(self, path: str, reason: str, facts: list[Fact]) -> None:
        self.path = path
        self.reason = reason
        self.facts = facts
        super().__init__(f"jolpica {path}: {reason}")


OnFact = Callable[[Fact], Awaitable[None]]


class Jolpica:
    """A Jolpica client: every page of a resource, as facts and rows.

    `client` is an `httpx.AsyncClient` the caller owns (and closes). `session` is the
    log session the facts belong to.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: str = "",
        page_size: int = MAX_LIMIT,
        limiter: RateLimiter | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if not 1 <= page_size <= MAX_LIMIT:
            raise ValueError(f"page_size must be in 1..{MAX_LIMIT}, got {page_size}")
        self.client = client
        self.base_url = base_url.rstrip("/") + "/"
        self.session = session
        self.page_size = page_size
        self.limiter = limiter if limiter is not None else default_limiter()
        self.policy = policy or RetryPolicy()
        self._rng = rng
        self._now = now

    def __repr__(self) -> str:
        return f"Jolpica({self.base_url!r}, page_size={self.page_size}, {self.limiter!r})"

    async def results(self, season: int, round_: int | None = None) -> JolpicaFetch:
        """Race results of a season, or of one race."""
        return await self.fetch(Kind.RESULTS, season, round_)

    async def qualifying(self, season: int, round_: int | None = None) -> JolpicaFetch:
        """Qualifying results of a season, or of one race."""
        return await self.fetch(Kind.QUALIFYING, season, round_)

    async def sprint(self, season: int, round_: int | None = None) -> JolpicaFetch:
        """Sprint results of a season, or of one race."""
        return await self.fetch(Kind.SPRINT, season, round_)

    async def laps(self, season: int, round_: int) -> JolpicaFetch:
        """Every lap timing of one race."""
        return await self.fetch(Kind.LAPS, season, round_)

    async def pitstops(self, season: int, round_: int) -> JolpicaFetch:
        """Every pit stop of one race."""
        return await self.fetch(Kind.PITSTOPS, season, round_)

    async def fetch(
        self,
        kind: Kind,
        season: int,
        round_: int | None = None,
        *,
        on_fact: OnFact | None = None,
    ) -> JolpicaFetch:
        """Every page of a resource, each fetched once, in order.

        `on_fact` (if given) is awaited with each fact as soon as it exists, so that a
        source actor can log pages as they come. Raises `JolpicaError` (carrying the
        facts received) when a page cannot be fetched or the pages do not add up.
        """
        path = resource_path(kind, season, round_)
        url = f"{self.base_url}{path}.json"
        result = JolpicaFetch(kind, path, total=0)
        facts: list[Fact] = []

        async def record(fact: Fact) -> None:
            facts.append(fact)
            if on_fact is not None:
                await on_fact(fact)

        def fail(reason: str) -> JolpicaError:
            return JolpicaError(path, reason, facts)

        total: int | None = None
        offset = 0
        number = 1
        while True:
            try:
                got = await fetch(
                    self.client,
                    url,
                    lambda text: parse_page(kind, text),
                    params={"limit": self.page_size, "offset": offset},
                    limiter=self.limiter,
                    policy=self.policy,
                    rng=self._rng,
                    now=self._now,
                )
            except FetchError as exc:
                if exc.body is not None:
                    await record(
                        RecordQuarantined(
                            session=self.session,
                            source=SOURCE,
                            stream=path,
                            sequence=number,
                            topic=kind.topic,
                            rule="http.response",
                            reason=str(exc),
                            payload=exc.body,
                        )
                    )
                raise fail(f"page {number} (offset {offset}): {exc}") from None
            page = got.value
            fact = MessageReceived(
                session=self.session,
                source=SOURCE,
                stream=path,
                topic=kind.topic,
                sequence=number,
                offset_ms=None,
                received_at=got.received_at,
                payload=got.text,
            )
            await record(fact)
            result.facts.append(fact)
            if total is None:
                total = page.total
            elif page.total != total:
                raise fail(
                    f"page {number}: total changed from {total} to {page.total} while "
                    "paging (the data is being updated; fetch again later)"
                )
            if page.offset != offset:
                raise fail(f"page {number}: asked for offset {offset}, got {page.offset}")
            expected = min(page.limit, max(total - offset, 0))
            if len(page.rows) != expected:
                raise fail(
                    f"page {number} (offset {offset}, limit {page.limit}) has "
                    f"{len(page.rows)} rows; total {total} means {expected}"
                )
            result.rows.extend(page.rows)
            offset += page.limit
            if offset >= total or page.limit == 0:
                break
            number += 1
        result.total = total
        if len(result.rows) != total:
            raise fail(f"{len(result.rows)} rows in all, but total is {total}")
        return result
