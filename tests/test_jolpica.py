"""Jolpica source: paging over real recorded responses, faults, rate limits, parsing."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from f1daemon.actors.backoff import Backoff
from f1daemon.domain.events import MessageReceived, RecordQuarantined
from f1daemon.sources.http_fetch import RateLimit, RateLimiter, RetryPolicy
from f1daemon.sources.jolpica import (
    Jolpica,
    JolpicaError,
    JolpicaParseError,
    Kind,
    LapTiming,
    PitStopRow,
    QualifyingResult,
    RaceResult,
    default_limiter,
    parse_page,
    resource_path,
    time_ms,
)
from tests.http_servers import GARBAGE, Fault, JolpicaData, TestServer, count_rows, serve

FAST = RetryPolicy(
    attempts=5, backoff=Backoff(initial=0.5, factor=2.0, cap=4.0, jitter=0.2), timeout=2.0
)

# Pit stops are not in the recordings: a resource in the API's shape for 2021 round 10,
# with illustrative (not real) values.
PITSTOPS_2021_10: dict[str, Any] = {
    "xmlns": "",
    "series": "f1",
    "url": "https://api.jolpi.ca/ergast/f1/2021/10/pitstops.json",
    "limit": "30",
    "offset": "0",
    "total": "5",
    "RaceTable": {
        "season": "2021",
        "round": "10",
        "Races": [
            {
                "season": "2021",
                "round": "10",
                "raceName": "British Grand Prix",
                "date": "2021-07-18",
                "PitStops": [
                    {"driverId": "leclerc", "lap": "29", "stop": "1", "time": "15:47:00",
                     "duration": "24.510"},
                    {"driverId": "hamilton", "lap": "27", "stop": "1", "time": "15:44:11",
                     "duration": "23.712"},
                    {"driverId": "bottas", "lap": "28", "stop": "1", "time": "15:45:33",
                     "duration": "23.980"},
                    {"driverId": "norris", "lap": "25", "stop": "1", "time": "15:41:02",
                     "duration": "27.301"},
                    {"driverId": "alonso", "lap": "3", "stop": "1", "time": "15:08:30",
                     "duration": "16:44.718"},
                ],
            }
        ],
    },
}  # fmt: skip


def jolpica_root(testdata: Path) -> Path:
    return testdata / "jolpica-ergast"


@asynccontextmanager
async def jolpica_server(testdata: Path) -> AsyncIterator[TestServer]:
    data = JolpicaData(jolpica_root(testdata), extra={"2021/10/pitstops": PITSTOPS_2021_10})
    async with serve(data) as server:
        yield server


def client_for(
    server: TestServer,
    http: httpx.AsyncClient,
    *,
    page_size: int = 100,
    limiter: RateLimiter | None = None,
) -> Jolpica:
    return Jolpica(
        http,
        base_url=f"{server.url}/ergast/f1/",
        session="jolpica-test",
        page_size=page_size,
        limiter=limiter,
        policy=FAST,
        rng=random.Random(7),
    )


def recorded_rows(root: Path, kind: Kind, files: list[str]) -> list[Any]:
    return [row for f in files for row in parse_page(kind, (root / f).read_bytes()).rows]


def without_time(facts: list[MessageReceived]) -> list[dict[str, Any]]:
    return [f.model_dump(exclude={"received_at"}) for f in facts]


ROUNDS_2021 = ["2021/1/results.json", "2021/10/results.json", "2021/14/results.json"]


async def test_season_results_paged_equal_the_recordings(
    testdata: Path, autojump_clock: trio.testing.MockClock
) -> None:
    root = jolpica_root(testdata)
    expected = recorded_rows(root, Kind.RESULTS, ROUNDS_2021)
    async with jolpica_server(testdata) as server, httpx.AsyncClient() as http:
        got = await client_for(server, http, page_size=7).results(2021)

    assert got.total == len(got.rows) == len(expected) == 60
    assert got.rows == expected
    assert {(r.season, r.round) for r in got.rows} == {(2021, 1), (2021, 10), (2021, 14)}
    # Every page asked for once, in order, and nothing else.
    offsets = [int(r.query["offset"]) for r in server.requests]
    assert offsets == list(range(0, 60, 7))
    assert all(r.query["limit"] == "7" for r in server.requests)
    # One fact per page: the body exactly as served.
    assert [f.sequence for f in got.facts] == list(range(1, 10))
    for fact in got.facts:
        assert (fact.source, fact.topic, fact.stream) == (
            "jolpica",
            "jolpica.results",
            "2021/results",
        )
        page = parse_page(Kind.RESULTS, fact.payload)
        assert page.offset == (fact.sequence - 1) * 7
        assert fact.received_at is not None
    # A race cut by a page boundary is whole again in the rows: round 1 has 20 lines.
    assert Counter(r.round for r in got.rows) == {1: 20, 10: 20, 14: 20}


def test_the_server_cuts_pages_as_the_real_api_did(testdata: Path) -> None:
    """Recorded real pages are what the test server's slicing of the whole gives."""
    root = jolpica_root(testdata)
    data = JolpicaData(root)
    # 2022 season results, first default page (30 rows: round 1 whole, round 2 cut at 10).
    real = json.loads((root / "2022/results.json").read_text())["MRData"]
    whole = data.whole("2022/results")
    assert whole is not None
    from tests.http_servers import slice_page

    mine = slice_page(whole, 0, 30)
    assert mine["RaceTable"]["Races"] == real["RaceTable"]["Races"]
    assert [len(r["Results"]) for r in real["RaceTable"]["Races"]] == [20, 10]
    # 2023 round 1 laps asked with limit=1200: the API capped it at 100 and cut lap 5.
    real_laps = json.loads((root / "2023/1/laps.json__limit=1200").read_text())["MRData"]
    assert real_laps["limit"] == "100"
    assert count_rows(real_laps) == 100
    lap1 = data.whole("2023/1/laps")
    assert lap1 is not None
    assert (
        slice_page(lap1, 0, 100)["RaceTable"]["Races"][0]["Laps"][0]
        == (real_laps["RaceTable"]["Races"][0]["Laps"][0])
    )


async def test_recorded_pages_are_served_byte_for_byte(testdata: Path) -> None:
    root = jolpica_root(testdata)
    async with serve(JolpicaData(root)) as server, httpx.AsyncClient() as http:
        got = await http.get(f"{server.url}/ergast/f1/seasons.json?limit=3")
        cut = await http.get(f"{server.url}/ergast/f1/seasons.json?limit=2&offset=1")
    assert got.content == (root / "seasons.json__limit=3").read_bytes()
    # Not recorded, and the recording is not the whole resource (3 of 77): not served.
    assert cut.status_code == 404


async def test_faults_give_exactly_the_same_rows_and_facts(
    testdata: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with jolpica_server(testdata) as server, httpx.AsyncClient() as http:
        clean = await client_for(server, http, page_size=20).results(2021)
        server.requests.clear()
        server.inject(
            Fault.server_error(500),
            None,
            Fault.too_many(retry_after="3"),
            Fault.garbage(),
            Fault.slow(delay=30),
            None,
            Fault.truncated(),
            Fault.cut_json(),
            Fault.server_error(503),
        )
        start = trio.current_time()
        faulty = await client_for(server, http, page_size=20).results(2021)

    assert faulty.rows == clean.rows
    assert without_time(faulty.facts) == without_time(clean.facts)
    assert len(faulty.facts) == 3
    # Every fault was met, and each page was answered normally exactly once.
    assert [r.fault for r in server.requests if r.fault] == [
        Fault.server_error(500),
        Fault.too_many(retry_after="3"),
        Fault.garbage(),
        Fault.slow(delay=30),
        Fault.truncated(),
        Fault.cut_json(),
        Fault.server_error(503),
    ]
    assert sorted(int(r.query["offset"]) for r in server.served()) == [0, 20, 40]
    # Retry-After was honoured: the next request came at least 3 s after the 429.
    i = next(i for i, r in enumerate(server.requests) if r.status == 429)
    assert server.requests[i + 1].at - server.requests[i].at >= 3.0
    # The slow answer was abandoned at the timeout, not waited for.
    assert trio.current_time() - start < 30


async def test_a_page_that_stays_garbage_is_quarantined_and_reported(
    testdata: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with jolpica_server(testdata) as server, httpx.AsyncClient() as http:
        server.inject(None, *[Fault.garbage()] * FAST.attempts)
        with pytest.raises(JolpicaError) as caught:
            await client_for(server, http, page_size=30).results(2021)

    err = caught.value
    assert "2021/results" in str(err)
    assert "page 2 (offset 30)" in str(err)
    assert "not JSON" in str(err)
    assert f"after {FAST.attempts} attempts" in str(err)
    # Nothing received is lost: page 1 as a fact, page 2's body quarantined whole.
    first, quarantined = err.facts
    assert isinstance(first, MessageReceived)
    assert first.sequence == 1
    assert isinstance(quarantined, RecordQuarantined)
    assert quarantined.sequence == 2
    assert quarantined.payload == GARBAGE.decode()
    assert quarantined.stream == "2021/results"
    assert len(server.requests) == 1 + FAST.attempts
    assert sum("retrying" in r.getMessage() for r in caplog.records) == FAST.attempts - 1


async def test_a_client_error_is_not_retried(
    testdata: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with jolpica_server(testdata) as server, httpx.AsyncClient() as http:
        with pytest.raises(JolpicaError, match="HTTP 404"):
            await client_for(server, http).results(1999)
    assert len(server.requests) == 1


async def test_rate_limits_hold_at_the_server(
    testdata: Path, autojump_clock: trio.testing.MockClock
) -> None:
    limiter = RateLimiter(RateLimit(4, 1.0), RateLimit(10, 60.0))
    async with jolpica_server(testdata) as server, httpx.AsyncClient() as http:
        jolpica = client_for(server, http, page_size=3, limiter=limiter)
        got = await jolpica.results(2021)
        # A second resource shares the limiter (and its budget).
        await jolpica.sprint(2023, 4)
    assert len(got.rows) == 60
    times = sorted(r.at for r in server.requests)
    assert len(times) == 27
    for count, period in ((4, 1.0), (10, 60.0)):
        # No window of `period` seconds holds more than `count` requests.
        assert all(b - a >= period for a, b in zip(times, times[count:], strict=False))
    # The limits bound: 27 requests at 10 a minute take at least two minutes.
    assert times[-1] - times[0] >= 120


async def test_default_limiter_keeps_to_jolpicas_documented_limits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = default_limiter()
    times = []
    for _ in range(520):
        await limiter.acquire()
        times.append(trio.current_time())
    assert all(b - a >= 1.0 for a, b in zip(times, times[4:], strict=False))
    assert all(b - a >= 3600.0 for a, b in zip(times, times[500:], strict=False))
    # ... and no slower than that: the first 4 go at once, the 501st an hour after the 1st.
    assert times[3] - times[0] == 0
    assert times[500] - times[0] == pytest.approx(3600.0)


def test_parsed_2021_british_grand_prix(testdata: Path) -> None:
    page = parse_page(Kind.RESULTS, (jolpica_root(testdata) / "2021/10/results.json").read_text())
    assert page.total == len(page.rows) == 20
    winner = page.rows[0]
    assert winner == RaceResult(
        season=2021,
        round=10,
        session="race",
        driver="hamilton",
        number=44,
        constructor="mercedes",
        grid=2,
        position=1,
        position_text="1",
        status="Finished",
        laps=52,
        time="1:58:23.284",
        time_ms=7103284,
        points=25.0,
    )
    verstappen = next(r for r in page.rows if isinstance(r, RaceResult) and r.number == 33)
    assert (verstappen.grid, verstappen.position_text, verstappen.status, verstappen.laps) == (
        1,
        "R",
        "Collision",
        0,
    )
    assert verstappen.time is None


def test_parsed_qualifying_sprint_and_laps(testdata: Path) -> None:
    root = jolpica_root(testdata)
    quali = parse_page(Kind.QUALIFYING, (root / "2019/14/qualifying.json").read_text())
    pole = quali.rows[0]
    assert isinstance(pole, QualifyingResult)
    assert (pole.driver, pole.constructor, pole.position) == ("leclerc", "ferrari", 1)
    assert pole.q3 is not None
    sprint = parse_page(Kind.SPRINT, (root / "2023/4/sprint.json").read_text())
    first = sprint.rows[0]
    assert isinstance(first, RaceResult)
    assert (first.session, first.driver, first.points) == ("sprint", "perez", 8.0)
    laps = parse_page(Kind.LAPS, (root / "2023/1/laps.json__limit=1200").read_text())
    assert (laps.total, laps.limit, len(laps.rows)) == (1055, 100, 100)
    lead = laps.rows[0]
    assert lead == LapTiming(
        season=2023,
        round=1,
        driver="max_verstappen",
        lap=1,
        position=1,
        time="1:39.019",
        time_ms=99019,
    )
    assert {r.lap for r in laps.rows if isinstance(r, LapTiming)} == {1, 2, 3, 4, 5}


async def test_race_laps_and_pit_stops_through_paging(
    testdata: Path, autojump_clock: trio.testing.MockClock
) -> None:
    root = jolpica_root(testdata)
    async with jolpica_server(testdata) as server, httpx.AsyncClient() as http:
        jolpica = client_for(server, http, page_size=6)
        laps = await jolpica.laps(2023, 1)
        stops = await jolpica.pitstops(2021, 10)
    assert laps.rows == recorded_rows(root, Kind.LAPS, ["2023/1/laps/1.json"])
    assert [f.stream for f in laps.facts] == ["2023/1/laps"] * 4
    assert laps.facts[0].topic == "jolpica.laps"
    assert len(stops.rows) == 5
    alonso = stops.rows[-1]
    assert alonso == PitStopRow(
        season=2021,
        round=10,
        driver="alonso",
        stop=1,
        lap=3,
        time="15:08:30",
        duration="16:44.718",
        duration_ms=1004718,
    )


def test_resource_paths() -> None:
    assert resource_path(Kind.RESULTS, 2021) == "2021/results"
    assert resource_path(Kind.LAPS, 2021, 10) == "2021/10/laps"
    with pytest.raises(ValueError, match="need a round"):
        resource_path(Kind.PITSTOPS, 2021)
    assert time_ms("1:58:23.284") == 7103284
    assert time_ms("23.7") == 23700
    assert time_ms("+1 Lap") is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def _page_like(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Bodies near the real shape, so the parser's deeper checks are reached too."""
    race = st.fixed_dictionaries(
        {"season": values, "round": values},
        optional={k: st.lists(values, max_size=3) for k in ("Results", "Laps", "PitStops")},
    )
    return st.fixed_dictionaries(
        {
            "MRData": st.fixed_dictionaries(
                {
                    "limit": values,
                    "offset": values,
                    "total": values,
                    "RaceTable": st.fixed_dictionaries({"Races": st.lists(race, max_size=3)}),
                }
            )
        }
    )


@settings(max_examples=300, deadline=None)
@given(
    body=JSON_VALUES
    | _page_like(JSON_VALUES)
    | _page_like(st.integers(-2, 3) | st.text(max_size=3)),
    kind=st.sampled_from(list(Kind)),
)
def test_arbitrary_json_never_crashes_the_parser(body: Any, kind: Kind) -> None:
    error: JolpicaParseError | None = None
    try:
        page = parse_page(kind, json.dumps(body))
    except JolpicaParseError as exc:
        error = exc
    if error is not None:
        assert "page" in str(error) or "not JSON" in str(error)
        return
    assert page.total >= 0
    assert all(isinstance(r.season, int) for r in page.rows)


@settings(max_examples=100, deadline=None)
@given(text=st.text() | st.binary().map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_never_crashes_the_parser(text: str) -> None:
    with suppress(JolpicaParseError):
        parse_page(Kind.RESULTS, text)


async def test_data_changing_while_paging_is_an_error_not_a_mix(
    testdata: Path, autojump_clock: trio.testing.MockClock
) -> None:
    stops = json.loads(json.dumps(PITSTOPS_2021_10))
    data = JolpicaData(jolpica_root(testdata), extra={"2021/10/pitstops": stops})

    def handler(path: str, query: dict[str, str], raw_query: str) -> Any:
        answer = data(path, query, raw_query)
        # The API publishes a late stop between our first and second page.
        race = stops["RaceTable"]["Races"][0]
        race["PitStops"].append({**race["PitStops"][0], "driverId": "gasly"})
        stops["total"] = str(len(race["PitStops"]))
        return answer

    async with serve(handler) as server, httpx.AsyncClient() as http:
        with pytest.raises(JolpicaError, match="total changed from 5 to 6") as caught:
            await client_for(server, http, page_size=2).pitstops(2021, 10)
    assert [f.sequence for f in caught.value.facts] == [1, 2]  # both pages kept as facts
