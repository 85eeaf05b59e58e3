"""WeatherForecast facts through the pipeline: rows from each provider's real body shape,
and bodies that are not forecasts quarantined with `decode.forecast`.

The bodies come from the fake providers' generators in `tests/http_servers.py`, which
answer in each API's real shape.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from f1daemon.domain.events import MessageReceived, RecordQuarantined, WeatherForecast
from f1daemon.feed.pipeline import derive
from f1daemon.sources.forecast import (
    OPEN_METEO,
    OPEN_METEO_HOURLY,
    OPENWEATHERMAP,
    TOPIC,
    parse_open_meteo,
    parse_openweathermap,
)
from tests import http_servers

SESSION = "2025-07-06_British_Grand_Prix/2025-07-06_Race"
RECEIVED = datetime(2025, 7, 4, 12, 0, 5, tzinfo=UTC)


def open_meteo_body() -> str:
    query = {
        "latitude": "52.0786",
        "longitude": "-1.01694",
        "hourly": ",".join(OPEN_METEO_HOURLY),
        "wind_speed_unit": "ms",
        "forecast_days": "2",
    }
    return http_servers.open_meteo("/v1/forecast", query, "").body.decode()


def owm_body() -> str:
    query = {"appid": "k", "lat": "52.0786", "lon": "-1.01694", "units": "metric"}
    return http_servers.openweathermap("k")("/data/2.5/forecast", query, "").body.decode()


def fact(
    source: str, payload: str, *, sequence: int = 1, received_at: datetime | None = RECEIVED
) -> MessageReceived:
    return MessageReceived(
        session=SESSION,
        source=source,
        stream=f"{source}/silverstone",
        topic=TOPIC,
        sequence=sequence,
        offset_ms=None,
        received_at=received_at,
        payload=payload,
    )


def derived_of(*facts: MessageReceived) -> list[object]:
    return list(derive(SESSION, enumerate(facts, start=1)).events)


@pytest.mark.parametrize(
    ("source", "body", "parse"),
    [
        (OPEN_METEO, open_meteo_body, parse_open_meteo),
        (OPENWEATHERMAP, owm_body, parse_openweathermap),
    ],
    ids=["open-meteo", "openweathermap"],
)
def test_a_forecast_fact_derives_the_parsers_rows(source: str, body: object, parse: object) -> None:
    assert callable(body)
    assert callable(parse)
    payload = body()
    events = derived_of(fact(source, payload))
    rows = [e for e in events if isinstance(e, WeatherForecast)]
    expected = parse(payload, fetched_at=RECEIVED, session=SESSION, circuit="silverstone")
    assert rows == expected
    assert rows, "the body has forecast rows"
    assert all(r.provider == source and r.fetched_at == RECEIVED for r in rows)
    assert all(r.circuit == "silverstone" and r.session == SESSION for r in rows)
    assert not [e for e in events if isinstance(e, RecordQuarantined)]


def test_open_meteo_rows_have_the_values_of_the_body() -> None:
    payload = open_meteo_body()
    body = json.loads(payload)
    rows = [e for e in derived_of(fact(OPEN_METEO, payload)) if isinstance(e, WeatherForecast)]
    assert len(rows) == len(body["hourly"]["time"]) == 48
    first = rows[0]
    assert first.air_temp_c == body["hourly"]["temperature_2m"][0]
    assert first.wind_speed_mps == body["hourly"]["wind_speed_10m"][0]
    assert rows[1].valid_at - rows[0].valid_at == timedelta(hours=1)
    assert first.period_h == 1


def test_openweathermap_rows_have_the_values_of_the_body() -> None:
    payload = owm_body()
    body = json.loads(payload)
    rows = [e for e in derived_of(fact(OPENWEATHERMAP, payload)) if isinstance(e, WeatherForecast)]
    assert len(rows) == body["cnt"] == 40
    assert rows[0].valid_at == datetime.fromtimestamp(body["list"][0]["dt"], UTC)
    assert rows[0].air_temp_c == body["list"][0]["main"]["temp"]
    assert rows[0].period_h == 3


def test_forecasts_derive_beside_the_feed_and_in_order() -> None:
    om, owm = fact(OPEN_METEO, open_meteo_body()), fact(OPENWEATHERMAP, owm_body(), sequence=2)
    events = derived_of(om, owm)
    providers = [e.provider for e in events if isinstance(e, WeatherForecast)]
    assert providers == [OPEN_METEO] * 48 + [OPENWEATHERMAP] * 40


@pytest.mark.parametrize(
    ("source", "payload", "reason"),
    [
        (OPEN_METEO, "<html>Bad Gateway</html>", "not JSON"),
        (OPEN_METEO, '{"error": true, "reason": "Parameter \'latitude\' must be set"}', "latitude"),
        (OPEN_METEO, '{"latitude": 52, "longitude": -1, "hourly": {"time": "x"}}', "time"),
        (OPENWEATHERMAP, '{"cod": 401, "message": "Invalid API key"}', "401"),
        (OPENWEATHERMAP, '{"cod": "200", "list": [{"dt": "soon"}]}', "not a forecast"),
        (OPENWEATHERMAP, "", "not JSON"),
        ("met-office", "{}", "no forecast decoder for source 'met-office'"),
    ],
)
def test_a_body_that_is_not_a_forecast_is_quarantined(
    source: str, payload: str, reason: str
) -> None:
    events = derived_of(fact(source, payload))
    assert not [e for e in events if isinstance(e, WeatherForecast)]
    [quarantined] = [e for e in events if isinstance(e, RecordQuarantined)]
    assert quarantined.rule == "decode.forecast"
    assert reason in quarantined.reason
    assert quarantined.payload == payload
    assert (quarantined.source, quarantined.topic, quarantined.sequence) == (source, TOPIC, 1)
    assert derive(SESSION, enumerate([fact(source, payload)], start=1)).undecodable == 1


def test_a_forecast_without_its_receipt_time_is_quarantined() -> None:
    events = derived_of(fact(OPEN_METEO, open_meteo_body(), received_at=None))
    [quarantined] = [e for e in events if isinstance(e, RecordQuarantined)]
    assert quarantined.rule == "decode.forecast"
    assert "receipt time" in quarantined.reason


def test_a_bad_forecast_does_not_stop_the_next() -> None:
    events = derived_of(fact(OPEN_METEO, "{}"), fact(OPEN_METEO, open_meteo_body(), sequence=2))
    assert len([e for e in events if isinstance(e, RecordQuarantined)]) == 1
    assert len([e for e in events if isinstance(e, WeatherForecast)]) == 48
