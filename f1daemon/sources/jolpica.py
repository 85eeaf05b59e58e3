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
body exactly as received). `parse_page` (in `f1daemon.feed.jolpica`, where the decoders
read pages too) turns a payload into rows — `RaceResult`, `QualifyingResult`,
`LapTiming`, `PitStopRow` — and is a pure function of the payload, so a decoder derives
the same rows again from the log.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from f1daemon.domain.events import Fact, MessageReceived, RecordQuarantined
from f1daemon.feed.jolpica import (
    JolpicaParseError,
    Kind,
    LapTiming,
    Page,
    PitStopRow,
    QualifyingResult,
    RaceResult,
    Row,
    parse_page,
    time_ms,
)
from f1daemon.sources.http_fetch import (
    FetchError,
    RateLimit,
    RateLimiter,
    RetryPolicy,
    fetch,
)

# The rows and their parser are f1daemon.feed.jolpica's, re-exported for callers.
__all__ = [
    "BURST",
    "DEFAULT_BASE_URL",
    "MAX_LIMIT",
    "SOURCE",
    "SUSTAINED",
    "Jolpica",
    "JolpicaError",
    "JolpicaFetch",
    "JolpicaParseError",
    "Kind",
    "LapTiming",
    "OnFact",
    "Page",
    "PitStopRow",
    "QualifyingResult",
    "RaceResult",
    "Row",
    "default_limiter",
    "parse_page",
    "resource_path",
    "time_ms",
]

SOURCE = "jolpica"
DEFAULT_BASE_URL = "https://api.jolpi.ca/ergast/f1/"
MAX_LIMIT = 100
"""The largest page the API serves (a larger `limit` is answered with 100)."""

BURST = RateLimit(4, 1.0)
SUSTAINED = RateLimit(500, 3600.0)


def default_limiter() -> RateLimiter:
    """A limiter for Jolpica's documented anonymous limits: 4/s burst, 500/h sustained."""
    return RateLimiter(BURST, SUSTAINED)


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
