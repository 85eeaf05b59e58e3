"""Forecast source: Open-Meteo and OpenWeatherMap against local servers, keys, faults, parsers."""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import traceback
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from f1daemon.actors.backoff import Backoff
from f1daemon.sources.forecast import (
    CIRCUITS,
    ForecastError,
    ForecastParseError,
    OpenMeteo,
    OpenWeatherMap,
    circuit,
    forecast_providers,
    parse_open_meteo,
    parse_openweathermap,
)
from f1daemon.sources.http_fetch import RetryPolicy, redact_url
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.http_servers import (
    OPEN_METEO_START,
    Fault,
    Handler,
    Response,
    TestServer,
    open_meteo,
    open_meteo_value,
    openweathermap,
    owm_entry,
    serve,
)

KEY = "0123456789abcdef0123456789abcdef"
F1DAEMON = str(Path(sys.executable).with_name("f1daemon"))
FAST = RetryPolicy(
    attempts=4, backoff=Backoff(initial=0.5, factor=2.0, cap=4.0, jitter=0.2), timeout=2.0
)
FETCHED = datetime(2025, 7, 4, 10, 30, tzinfo=UTC)
SILVERSTONE = circuit("silverstone")
VARIABLES = (
    "temperature_2m",
    "relative_humidity_2m",
    "precipitation_probability",
    "precipitation",
    "wind_speed_10m",
    "wind_direction_10m",
    "surface_pressure",
)


def meteo(server: TestServer, http: httpx.AsyncClient, **kwargs: Any) -> OpenMeteo:
    return OpenMeteo(
        http,
        url=f"{server.url}/v1/forecast",
        session="s",
        policy=FAST,
        rng=random.Random(3),
        **kwargs,
    )


def owm(server: TestServer, http: httpx.AsyncClient, key: str = KEY) -> OpenWeatherMap:
    return OpenWeatherMap(
        http,
        key,
        url=f"{server.url}/data/2.5/forecast",
        session="s",
        policy=FAST,
        rng=random.Random(3),
    )


async def test_open_meteo_rows_are_the_served_forecast(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serve(open_meteo) as server, httpx.AsyncClient() as http:
        got = await meteo(server, http, forecast_days=2).fetch(SILVERSTONE)

    (request,) = server.requests
    assert set(request.query["hourly"].split(",")) == set(VARIABLES)
    assert request.query["wind_speed_unit"] == "ms"
    assert float(request.query["latitude"]) == SILVERSTONE.latitude
    body = open_meteo(request.path, request.query, request.raw_query).body
    assert got.fact.payload == body.decode()
    assert (got.fact.source, got.fact.topic, got.fact.stream, got.fact.sequence) == (
        "open-meteo",
        "WeatherForecast",
        "open-meteo/silverstone",
        1,
    )
    assert len(got.rows) == 48
    lat, lon = SILVERSTONE.latitude, SILVERSTONE.longitude
    for h, row in enumerate(got.rows):
        assert row.valid_at == OPEN_METEO_START + timedelta(hours=h)
        assert row.fetched_at == got.fact.received_at
        assert row.air_temp_c == open_meteo_value("temperature_2m", lat, lon, h, 48)
        assert row.humidity_pct == open_meteo_value("relative_humidity_2m", lat, lon, h, 48)
        assert row.rain_probability_pct == open_meteo_value(
            "precipitation_probability", lat, lon, h, 48
        )
        assert row.rain_mm == open_meteo_value("precipitation", lat, lon, h, 48)
        assert row.wind_speed_mps == open_meteo_value("wind_speed_10m", lat, lon, h, 48)
        assert row.wind_direction_deg == open_meteo_value("wind_direction_10m", lat, lon, h, 48)
        assert row.pressure_hpa == open_meteo_value("surface_pressure", lat, lon, h, 48)
        assert (row.provider, row.circuit, row.period_h) == ("open-meteo", "silverstone", 1.0)
    assert got.rows[-1].rain_probability_pct is None  # the far range's gaps stay gaps


def test_open_meteo_units_and_time_zone_are_honoured() -> None:
    body: dict[str, object] = {
        "latitude": 45.62,
        "longitude": 9.28,
        "utc_offset_seconds": 7200,
        "timezone": "Europe/Rome",
        "hourly_units": {
            "time": "iso8601",
            "temperature_2m": "°F",
            "wind_speed_10m": "km/h",
            "precipitation": "inch",
            "relative_humidity_2m": "%",
        },
        "hourly": {
            "time": ["2025-09-07T14:00", "2025-09-07T15:00"],
            "temperature_2m": [86.0, None],
            "wind_speed_10m": [36.0, 18.0],
            "precipitation": [0.1, 0.0],
            "relative_humidity_2m": [40, 42],
        },
    }
    units: dict[str, str] = body["hourly_units"]  # type: ignore[assignment]
    rows = parse_open_meteo(json.dumps(body), fetched_at=FETCHED, circuit="monza")
    assert [r.valid_at for r in rows] == [
        datetime(2025, 9, 7, 12, tzinfo=UTC),
        datetime(2025, 9, 7, 13, tzinfo=UTC),
    ]
    assert rows[0].air_temp_c == pytest.approx(30.0)
    assert rows[1].air_temp_c is None
    assert [r.wind_speed_mps for r in rows] == pytest.approx([10.0, 5.0])
    assert rows[0].rain_mm == pytest.approx(2.54)
    assert rows[0].pressure_hpa is None  # not asked for: absent, not invented
    with pytest.raises(ForecastParseError, match="unknown unit 'furlong/fortnight'"):
        parse_open_meteo(
            json.dumps({**body, "hourly_units": {**units, "wind_speed_10m": "furlong/fortnight"}}),
            fetched_at=FETCHED,
        )


async def test_open_meteo_asks_at_most_once_a_minute_per_circuit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serve(open_meteo) as server, httpx.AsyncClient() as http:
        client = meteo(server, http, forecast_days=1)
        first = await client.fetch(SILVERSTONE)
        await client.fetch(circuit("monza"))
        second = await client.fetch(SILVERSTONE)
    at = [r.at for r in server.requests]
    assert at[1] - at[0] < 1.0  # another circuit does not wait
    assert at[2] - at[0] >= 60.0
    assert (first.fact.sequence, second.fact.sequence) == (1, 2)


async def test_faults_are_retried_and_give_the_same_rows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serve(open_meteo) as server, httpx.AsyncClient() as http:
        clean = await meteo(server, http, forecast_days=1, min_interval_s=1).fetch(SILVERSTONE)
        server.inject(Fault.too_many("5"), Fault.truncated(), Fault.cut_json())
        again = await meteo(server, http, forecast_days=1, min_interval_s=1).fetch(SILVERSTONE)
    strip = {"fetched_at"}
    assert [r.model_dump(exclude=strip) for r in again.rows] == [
        r.model_dump(exclude=strip) for r in clean.rows
    ]
    assert again.fact.payload == clean.fact.payload
    assert len(server.requests) == 5
    assert server.requests[2].at - server.requests[1].at >= 5.0  # Retry-After: 5


async def test_persistent_faults_end_in_a_clear_error_with_the_body_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serve(open_meteo) as server, httpx.AsyncClient() as http:
        server.inject(*[Fault.server_error(503)] * FAST.attempts)
        with pytest.raises(ForecastError) as caught:
            await meteo(server, http).fetch(SILVERSTONE)
        server.inject(*[Fault.garbage()] * FAST.attempts)
        with pytest.raises(ForecastError) as garbage:
            await meteo(server, http, min_interval_s=1).fetch(SILVERSTONE)
    err = caught.value
    assert "open-meteo forecast for silverstone" in str(err)
    assert f"failed after {FAST.attempts} attempts: HTTP 503" in str(err)
    assert "/v1/forecast?latitude=52.0786" in str(err)
    assert err.quarantined is not None
    assert err.quarantined.payload == '{"detail": "injected 503"}'
    assert "not JSON" in str(garbage.value)
    assert garbage.value.quarantined is not None
    assert garbage.value.quarantined.payload.startswith("<html>")
    assert len(server.requests) == 2 * FAST.attempts


async def test_openweathermap_only_with_a_key() -> None:
    async with httpx.AsyncClient() as http:
        assert [p.provider for p in forecast_providers(http)] == ["open-meteo"]
        assert [p.provider for p in forecast_providers(http, openweathermap_key="  ")] == [
            "open-meteo"
        ]
        with_key = forecast_providers(http, openweathermap_key=KEY)
    assert [p.provider for p in with_key] == ["open-meteo", "openweathermap"]
    assert KEY not in repr(with_key)


async def test_openweathermap_rows_and_the_key_never_shows(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(openweathermap(KEY)) as server, httpx.AsyncClient() as http:
        client = owm(server, http)
        server.inject(Fault.server_error(502))
        got = await client.fetch(SILVERSTONE)
        with pytest.raises(ForecastError) as caught:
            await owm(server, http, key="wrong" + KEY).fetch(SILVERSTONE)

    assert server.requests[0].query["appid"] == KEY  # it was sent...
    assert server.requests[0].query["units"] == "metric"
    assert len(got.rows) == 40
    for i, row in enumerate(got.rows):
        entry = owm_entry(i)
        assert row.valid_at == datetime.fromtimestamp(entry["dt"], UTC)
        assert row.air_temp_c == entry["main"]["temp"]
        assert row.humidity_pct == entry["main"]["humidity"]
        assert row.pressure_hpa == entry["main"]["grnd_level"]
        assert row.rain_probability_pct == pytest.approx(entry["pop"] * 100)
        assert row.rain_mm == entry.get("rain", {}).get("3h", 0.0)
        assert row.wind_speed_mps == entry["wind"]["speed"]
        assert row.wind_direction_deg == entry["wind"]["deg"]
        assert (row.provider, row.period_h) == ("openweathermap", 3.0)
    assert got.fact.source == "openweathermap"
    # ... and shown nowhere: logs (httpx's own request log included), reprs, errors.
    messages = [r.getMessage() for r in caplog.records]
    assert any("HTTP Request" in m and "appid=***" in m for m in messages)
    assert any("retrying" in m for m in messages)
    assert not [m for m in messages if KEY in m]
    assert KEY not in repr(client)
    assert KEY not in str(client.__dict__.get("_key"))
    err = caught.value
    shown = "".join(traceback.format_exception(err)) + repr(err) + str(err.quarantined)
    assert "HTTP 401" in shown
    assert "appid=***" in shown
    assert KEY not in shown
    assert len(server.requests) == 3  # 502 retried, 401 not


def echoing_error(status: int) -> Handler:
    """An error page that echoes the request, as proxies' and some APIs' do."""

    def handle(path: str, query: dict[str, str], raw_query: str) -> Response:
        body = f"<html><p>{status}: GET {path}?{raw_query} failed</p><p>appid={query['appid']}</p>"
        return Response(status, body.encode(), content_type="text/html")

    return handle


@pytest.mark.parametrize("status", [401, 502])
async def test_an_error_body_that_echoes_the_key_is_stored_without_it(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    status: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(echoing_error(status)) as server, httpx.AsyncClient() as http:
        with pytest.raises(ForecastError) as caught:
            await owm(server, http).fetch(SILVERSTONE)
    assert server.requests[0].query["appid"] == KEY
    quarantined = caught.value.quarantined
    assert quarantined is not None
    assert quarantined.payload == (
        f"<html><p>{status}: GET /data/2.5/forecast?lat=52.0786&lon=-1.01694&appid=***"
        "&units=metric failed</p><p>appid=***</p>"
    )
    assert KEY not in quarantined.reason
    assert not [r for r in caplog.records if KEY in r.getMessage()]
    # Stored as the daemon stores it, then shown to an operator: no key.
    store = f"sqlite:///{tmp_path / 'events.db'}"
    with EventLog(parse_store_url(store)) as log:
        log.register_session(quarantined.session, "test")
        log.append_facts([quarantined])
    env = {k: v for k, v in os.environ.items() if k != "F1DAEMON_STORE"}
    listed = await trio.run_process(
        [F1DAEMON, "quarantine", "list", "--format", "json", "--store", store],
        capture_stdout=True, env=env,
    )  # fmt: skip
    (entry,) = json.loads(listed.stdout)
    shown = await trio.run_process(
        [F1DAEMON, "quarantine", "show", str(entry["id"]), "--store", store],
        capture_stdout=True, capture_stderr=True, env=env,
    )  # fmt: skip
    assert b"appid=***" in shown.stdout
    assert KEY.encode() not in listed.stdout + shown.stdout + shown.stderr


def test_redact_url() -> None:
    url = f"https://x.test/f?lat=1&appid={KEY}&units=metric"
    assert redact_url(url) == "https://x.test/f?lat=1&appid=***&units=metric"


def test_circuit_table_matches_jolpicas_calendar(testdata: Path) -> None:
    """The coordinates are Jolpica's: every 2024 circuit, as the recorded schedule has it."""
    races = json.loads((testdata / "jolpica-ergast/2024.json").read_text())["MRData"]
    for race in races["RaceTable"]["Races"]:
        c = race["Circuit"]
        mine = CIRCUITS[c["circuitId"]]
        assert (mine.latitude, mine.longitude) == (
            float(c["Location"]["lat"]),
            float(c["Location"]["long"]),
        ), c["circuitId"]
    with pytest.raises(KeyError, match="unknown circuit 'nurburgring'"):
        circuit("nurburgring")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)
SMALL = st.none() | st.integers(-5, 5) | st.floats(-1e3, 1e3) | st.text(max_size=4)
OM_LIKE = st.fixed_dictionaries(
    {
        "latitude": SMALL,
        "longitude": SMALL,
        "hourly_units": st.dictionaries(st.sampled_from(VARIABLES), st.sampled_from(
            ["°C", "°F", "km/h", "m/s", "%", "mm", "hPa", "?"])),
        "hourly": st.fixed_dictionaries(
            {"time": st.lists(st.sampled_from(["2025-07-04T00:00", 1751587200, "x", 10**20]),
                              max_size=3)},
            optional={v: st.lists(SMALL, max_size=3) for v in VARIABLES},
        ),
    },
    optional={"utc_offset_seconds": st.integers(-(10**12), 10**12)},
)  # fmt: skip
OWM_LIKE = st.fixed_dictionaries(
    {
        "cod": st.sampled_from(["200", 200, "401", None]),
        "city": st.fixed_dictionaries(
            {"coord": st.fixed_dictionaries({"lat": SMALL, "lon": SMALL})}
        ),
        "list": st.lists(
            st.fixed_dictionaries(
                {"dt": st.integers(-(10**13), 10**13) | SMALL,
                 "main": st.dictionaries(
                     st.sampled_from(["temp", "humidity", "grnd_level"]), SMALL
                 )},
                optional={"pop": SMALL, "rain": st.dictionaries(st.text(max_size=2), SMALL),
                          "wind": st.dictionaries(st.sampled_from(["speed", "deg"]), SMALL)},
            ),
            max_size=3,
        ),
    }
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(body=JSON_VALUES | OM_LIKE | OWM_LIKE, which=st.sampled_from(["open-meteo", "owm"]))
def test_arbitrary_json_never_crashes_the_parsers(body: Any, which: str) -> None:
    parse = parse_open_meteo if which == "open-meteo" else parse_openweathermap
    error: ForecastParseError | None = None
    try:
        rows = parse(json.dumps(body), fetched_at=FETCHED)
    except ForecastParseError as exc:
        error = exc
    if error is not None:
        assert str(error).startswith(("open-meteo:", "openweathermap:"))
        return
    assert all(r.fetched_at == FETCHED and r.valid_at.tzinfo is not None for r in rows)


@settings(max_examples=100, deadline=None)
@given(text=st.text())
def test_arbitrary_text_never_crashes_the_parsers(text: str) -> None:
    for parse in (parse_open_meteo, parse_openweathermap):
        with suppress(ForecastParseError):
            parse(text, fetched_at=FETCHED)
