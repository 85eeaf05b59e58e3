"""The HTTP API: OpenF1's fields and types (against OpenF1's own documents), our
exports' values, OpenF1's filters, `latest`, CSV, versions, and its errors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import f1daemon
from f1daemon.api import Store
from f1daemon.cli import main
from f1daemon.http.app import APISettings, create_app
from f1daemon.http.openf1 import ENDPOINTS, UNFILLED

BAKU = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"
MEXICO_Q = "2021-11-07_Mexico_City_Grand_Prix/2021-11-06_Qualifying"
MONACO_FP2 = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"
KEYS = {BAKU: 5090, MEXICO_Q: 6565, MONACO_FP2: 9088}
MEETINGS = {BAKU: 982, MEXICO_Q: 1103, MONACO_FP2: 1210}
# What each session's recording supports: the archive folders have no telemetry and
# Baku's no weather; the capture is six minutes of practice without a pit stop.
SUPPORTED = {
    BAKU: set(ENDPOINTS) - {"car_data", "location", "weather"},
    # Gaps and intervals are a race's (OpenF1 has them for races only).
    MEXICO_Q: set(ENDPOINTS) - {"car_data", "location", "intervals"},
    MONACO_FP2: set(ENDPOINTS) - {"pit", "intervals"},
}
# OpenF1's date fields are stored as epoch milliseconds in its documents and served
# as ISO 8601 text; a field its documents hold only as null has the documented type.
DATE_FIELDS = {"date", "date_start", "date_end"}
DOCUMENTED = {
    ("race_control", "driver_number"): {"integer"},
    ("race_control", "lap_number"): {"integer"},
    ("race_control", "sector"): {"integer"},
    ("laps", "duration_sector_1"): {"number"},
    ("laps", "lap_duration"): {"number"},
    ("pit", "pit_duration"): {"number"},
}
OURS = {"qa_flags"}  # our addition on every row of the tables QA checks
# Our additions to `intervals`: the laps behind where OpenF1 writes "+1 LAP".
LAPS_DOWN = {"gap_to_leader_laps", "interval_laps"}


@pytest.fixture(scope="module")
def store_url(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The three sessions; tagged `full`, then Baku replayed up to half its facts."""
    url = f"sqlite:///{tmp_path_factory.mktemp('http') / 'events.db'}"
    sessions = [
        testdata / "livetiming" / BAKU.replace("/", "__"),
        testdata / "livetiming" / MEXICO_Q.replace("/", "__"),
        testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt",
    ]
    assert main(["ingest", *map(str, sessions), "--store", url]) == 0
    assert main(["tag", "full", "--store", url]) == 0
    with f1daemon.open(url) as data:
        positions = [p for p, _ in data.reader.log.facts(BAKU)]
    half = str(positions[len(positions) // 2])
    assert main(["replay", "--session", BAKU, "--until", half, "--store", url]) == 0
    return url


@pytest.fixture(scope="module")
def data(store_url: str) -> Iterator[Store]:
    with f1daemon.open(store_url) as opened:
        yield opened


def client(data: Store, settings: APISettings | None = None) -> httpx.AsyncClient:
    app = create_app(data.reader, settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f1")


async def get(data: Store, url: str, status: int = 200) -> Any:
    async with client(data) as http:
        response = await http.get(url)
    assert response.status_code == status, response.text
    return response.json()


def _openf1_type(endpoint: str, name: str, value: object) -> str:
    if isinstance(value, dict):
        return {"$numberDouble": "number", "$numberInt": "integer", "$numberLong": "integer"}[
            next(iter(value))
        ]
    if name in DATE_FIELDS and isinstance(value, int):
        return "string"
    return _json_type(value)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "list"
    return "string"


def openf1_documents(testdata: Path, endpoint: str) -> dict[str, set[str]]:
    """Each field of an endpoint's OpenF1 documents and the JSON types it has there."""
    (folder,) = testdata.glob("openf1-tests-*")
    types: dict[str, set[str]] = {}
    for document in json.loads((folder / f"{endpoint}.json").read_text()):
        for name, value in document.items():
            if name != "_id":  # MongoDB's, not the API's
                types.setdefault(name, set()).add(_openf1_type(endpoint, name, value))
    return types


@pytest.mark.parametrize("session", [BAKU, MEXICO_Q, MONACO_FP2])
async def test_each_endpoint_has_openf1s_fields_and_types(
    session: str, data: Store, testdata: Path
) -> None:
    key = KEYS[session]
    for endpoint in ENDPOINTS:
        # Telemetry is large: one car's samples.
        car = "&driver_number=1" if endpoint in ("car_data", "location") else ""
        meeting = endpoint == "meetings"  # a meeting has no session key
        which = f"meeting_key={MEETINGS[session]}" if meeting else f"session_key={key}"
        rows = await get(data, f"/v1/{endpoint}?{which}{car}")
        if endpoint in SUPPORTED[session]:
            assert rows, f"{endpoint} of {session} has no rows"
        documented = openf1_documents(testdata, endpoint)
        for row in rows:
            assert set(row) - OURS - LAPS_DOWN == set(documented), endpoint
            for name, value in row.items():
                if name in LAPS_DOWN:
                    assert value is None or isinstance(value, int)
                    continue
                if name in OURS:
                    assert isinstance(value, list)
                    assert all(isinstance(flag, str) for flag in value)
                    continue
                allowed = (documented[name] - {"null"}) or DOCUMENTED[(endpoint, name)]
                if value is None:
                    continue  # OpenF1 has nulls too (an untimed sector, a missing code)
                assert name not in UNFILLED.get(endpoint, {}), name
                assert _json_type(value) in allowed, (endpoint, name, value)
            if not meeting:
                assert row["session_key"] == key
        assert all(set(row) == set(rows[0]) for row in rows)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _flags(text: str | None) -> list[str]:
    return [] if not text else text.split(";")


def expected_rows(data: Store, session: str, endpoint: str) -> list[dict[str, Any]]:
    """An endpoint's rows worked out here from the session's exports, row by row."""
    handle = data.session(session)
    if endpoint == "laps":
        return [
            {
                "date_start": _iso(lap["date_start"]),
                "driver_number": lap["driver"],
                "duration_sector_1": _seconds(lap["sector1_ms"]),
                "duration_sector_2": _seconds(lap["sector2_ms"]),
                "duration_sector_3": _seconds(lap["sector3_ms"]),
                "i1_speed": lap["speed_i1_kmh"],
                "i2_speed": lap["speed_i2_kmh"],
                "st_speed": lap["speed_st_kmh"],
                "is_pit_out_lap": lap["pit_out"],
                "lap_duration": _seconds(lap["lap_time_ms"]),
                "lap_number": lap["lap"],
                "qa_flags": _flags(lap["flags"]),
            }
            for lap in handle.laps().to_pylist()
        ]
    if endpoint == "stints":
        return [
            {
                "compound": stint["compound"],
                "driver_number": stint["driver"],
                "stint_number": stint["stint"],
                "tyre_age_at_start": stint["tyre_age_at_start"],
                "lap_start": stint["lap_start"],
                "lap_end": stint["lap_end"],
            }
            for stint in handle.stints().to_pylist()
        ]
    simple: dict[str, tuple[Any, dict[str, str]]] = {
        "pit": (handle.pits, {"date": "utc", "driver_number": "driver", "lap_number": "in_lap"}),
        "position": (handle.positions, {"date": "utc", "driver_number": "driver"}),
        "intervals": (
            handle.intervals,
            {
                "date": "date",
                "driver_number": "driver",
                "gap_to_leader": "gap_to_leader",
                "interval": "interval",
                "gap_to_leader_laps": "gap_to_leader_laps",
            },
        ),
        "drivers": (handle.drivers, {"driver_number": "driver", "team_name": "team_name"}),
        "race_control": (
            handle.race_control,
            {"date": "utc", "driver_number": "driver", "lap_number": "lap", "message": "message"},
        ),
        "weather": (
            handle.weather,
            {
                "date": "utc",
                "air_temperature": "air_temp_c",
                "track_temperature": "track_temp_c",
                "humidity": "humidity_pct",
                "pressure": "pressure_mbar",
                "wind_direction": "wind_direction_deg",
                "wind_speed": "wind_speed_mps",
            },
        ),
    }
    read, names = simple[endpoint]
    rows = []
    for source in read().to_pylist():
        row = {ours: source[theirs] for ours, theirs in names.items()}
        for name in ("date",):
            if name in row:
                row[name] = _iso(row[name])
        if endpoint == "pit":
            row["pit_duration"] = _seconds(source["pit_lane_ms"])
        if endpoint == "weather":
            row["rainfall"] = None if source["rainfall"] is None else int(source["rainfall"])
        rows.append(row)
    return rows


def _dated(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: datetime.fromisoformat(v) if k in DATE_FIELDS and isinstance(v, str) else v
        for k, v in row.items()
    }


@pytest.mark.parametrize("session", [BAKU, MEXICO_Q, MONACO_FP2])
async def test_the_values_are_the_exports(session: str, data: Store) -> None:
    key = KEYS[session]
    tables = ("laps", "stints", "pit", "position", "intervals", "drivers", "race_control")
    for endpoint in (*tables, "weather"):
        served = await get(data, f"/v1/{endpoint}?session_key={key}")
        expected = expected_rows(data, session, endpoint)
        assert len(served) == len(expected), endpoint
        for got, want in zip(served, expected, strict=True):
            assert _dated({k: got[k] for k in want}) == _dated(want), endpoint
    # Telemetry: one car's samples, as the export has them.
    if session == MONACO_FP2:
        samples = data.session(session).telemetry(driver=1).to_pylist()
        served = await get(data, f"/v1/car_data?session_key={key}&driver_number=1")
        assert [(r["speed"], r["n_gear"], r["rpm"]) for r in served] == [
            (s["speed"], s["gear"], s["rpm"]) for s in samples
        ]
        assert [datetime.fromisoformat(r["date"]).timestamp() * 1000 for r in served] == [
            pytest.approx(s["utc_ms"]) for s in samples
        ]
        places = data.session(session).car_positions(driver=1).to_pylist()
        served = await get(data, f"/v1/location?session_key={key}&driver_number=1")
        assert [(r["x"], r["y"], r["z"]) for r in served] == [
            (p["x"], p["y"], p["z"]) for p in places
        ]


async def test_sessions_and_meetings_are_the_logs(data: Store) -> None:
    sessions = await get(data, "/v1/sessions")
    assert [s["session_key"] for s in sessions] == [5090, 6565, 9088]
    assert sessions[0]["session_name"] == "Race"
    assert sessions[0]["circuit_short_name"] == "Baku"
    meetings = await get(data, "/v1/meetings?year>=2021")
    assert [(m["meeting_key"], m["meeting_name"]) for m in meetings] == [
        (1103, "Mexico City Grand Prix"),
        (1210, "Monaco Grand Prix"),
    ]


async def test_filters_compare_as_openf1s_do(data: Store) -> None:
    laps = data.session(BAKU).laps().to_pylist()
    hamilton = [lap for lap in laps if lap["driver"] == 44]
    rows = await get(
        data, "/v1/laps?session_key=5090&driver_number=44&lap_number>=10&lap_number<13"
    )
    assert [r["lap_number"] for r in rows] == [10, 11, 12]
    # Several `=` on one field: any of them.
    rows = await get(
        data, "/v1/laps?session_key=5090&driver_number=44&driver_number=5&lap_number=3"
    )
    assert sorted(r["driver_number"] for r in rows) == [5, 44]
    # Numbers in OpenF1's units (seconds), booleans, and the URL-encoded operators.
    fast = await get(data, "/v1/laps?session_key=5090&lap_duration%3C107")
    assert sorted((r["driver_number"], r["lap_number"]) for r in fast) == sorted(
        (lap["driver"], lap["lap"])
        for lap in laps
        if lap["lap_time_ms"] is not None and lap["lap_time_ms"] < 107_000
    )
    assert len(fast) >= 2
    out_laps = await get(data, "/v1/laps?session_key=5090&driver_number=44&is_pit_out_lap=true")
    assert [r["lap_number"] for r in out_laps] == [lap["lap"] for lap in hamilton if lap["pit_out"]]
    # ISO 8601 dates: a time without an offset is UTC; with one, as it says.
    after = await get(data, "/v1/race_control?session_key=5090&date>2018-04-29T12:40:00")
    later = await get(data, "/v1/race_control?session_key=5090&date>2018-04-29T16:40:00%2B04:00")
    assert after == later
    assert after
    assert all(r["date"] > "2018-04-29T12:40:00" for r in after)
    whole_day = await get(
        data, "/v1/race_control?session_key=5090&date>=2018-04-29&date<2018-04-30"
    )
    assert len(whole_day) == data.session(BAKU).race_control().num_rows
    # Text is matched whole.
    green = await get(data, "/v1/race_control?session_key=5090&flag=GREEN")
    assert green
    assert {r["flag"] for r in green} == {"GREEN"}


async def test_latest_is_the_session_that_started_last(data: Store) -> None:
    assert await get(data, "/v1/sessions?session_key=latest") == await get(
        data, "/v1/sessions?session_key=9088"
    )
    drivers = await get(data, "/v1/drivers?meeting_key=latest&driver_number=14")
    assert [(d["session_key"], d["name_acronym"]) for d in drivers] == [(9088, "ALO")]


async def test_csv_holds_the_same_rows(data: Store) -> None:
    async with client(data) as http:
        response = await http.get("/v1/laps?session_key=9088&driver_number=1&csv=true")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    served = await get(data, "/v1/laps?session_key=9088&driver_number=1")
    assert [int(r["lap_number"]) for r in rows] == [r["lap_number"] for r in served]
    assert [r["qa_flags"] for r in rows] == [";".join(r["qa_flags"]) for r in served]
    assert [float(r["lap_duration"]) for r in rows] == [r["lap_duration"] for r in served]


async def test_a_version_serves_the_data_as_at_its_tag(data: Store) -> None:
    head = await get(data, "/v1/laps?session_key=5090")
    full = await get(data, "/v1/laps?session_key=5090&version=full")
    assert len(full) == data.session(BAKU).laps(version="full").num_rows
    assert len(head) == data.session(BAKU).laps().num_rows
    assert len(head) < len(full) - 300  # replayed up to half its facts
    versions = await get(data, "/v1/versions")
    assert [v["name"] for v in versions] == ["full"]


async def test_qa_flags_quarantine_and_the_qa_report(data: Store) -> None:
    # Car 27's lap out of the garage: its LastLapTime is the time since the line.
    laps = await get(data, "/v1/laps?session_key=9088&driver_number=27&lap_number=16")
    assert "qa:completeness.missing_lap_time" in laps[0]["qa_flags"]
    report = await get(data, "/v1/qa_report?session_key=6565")
    assert [(r["rule"], r["findings"]) for r in report] == [
        (r["rule"], r["findings"]) for r in data.session(MEXICO_Q).qa_report().to_pylist()
    ]
    flagged = await get(data, "/v1/qa_report?session_key=6565&findings>0&severity=flag")
    assert flagged
    assert all(r["findings"] > 0 and r["severity"] == "flag" for r in flagged)
    held = await get(data, "/v1/quarantine?session_key=5090")
    assert len(held) == data.session(BAKU).quarantine().num_rows
    # No session with that key: no rows (the filters still checked against the fields).
    assert await get(data, "/v1/quarantine?session_key=1&rule=framing.syntax") == []
    assert await get(data, "/v1/qa_report?session_key=1&findings>0") == []
    assert await get(data, "/v1/laps?session_key=1&lap_number>3") == []
    missing = await get(data, "/v1/qa_report?session_key=1&finding>0", 400)
    assert "qa_report has no field 'finding'" in missing["detail"]


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/v1/laps?lap_number>=ten", 400, "lap_number is of type int64; cannot read 'ten'"),
        ("/v1/laps?pit_stops=1", 400, "laps has no field 'pit_stops'"),
        ("/v1/laps?lap_number", 400, "cannot read 'lap_number'"),
        ("/v1/laps?lap_number>=", 400, "lap_number>= needs a value"),
        ("/v1/laps?date_start>yesterday", 400, "date_start is a date (ISO 8601)"),
        ("/v1/laps?qa_flags=x", 400, "qa_flags is a list"),
        ("/v1/laps?csv=maybe", 400, "csv is true or false"),
        ("/v1/laps?limit=-1", 400, "limit is a whole number"),
        ("/v1/laps?session_key=Baku", 400, "session_key is F1's number, or latest"),
        ("/v1/laps?version=v9", 400, "unknown tag 'v9'"),
        ("/v1/team_radio", 404, "not served: the feed we record carries no team radio"),
        ("/v1/lap", 404, "no endpoint /v1/lap"),
        ("/v2/laps", 404, "Not Found"),
    ],
)
async def test_a_malformed_query_gets_a_4xx_with_a_message(
    data: Store, url: str, status: int, message: str
) -> None:
    body = await get(data, url, status)
    assert message in body["detail"]


async def test_a_response_holds_at_most_its_row_limit(data: Store) -> None:
    async with client(data, APISettings(max_rows=100)) as http:
        too_many = await http.get("/v1/laps?session_key=5090")
        assert too_many.status_code == 422
        assert "more than the 100 a response holds" in too_many.json()["detail"]
        page = await http.get("/v1/laps?session_key=5090&limit=100&offset=100")
        assert page.status_code == 200
        assert int(page.headers["x-total-count"]) == data.session(BAKU).laps().num_rows
        whole = await get(data, "/v1/laps?session_key=5090")
        assert page.json() == whole[100:200]
        over = await http.get("/v1/laps?limit=101")
        assert over.status_code == 400
        assert (await http.post("/v1/laps")).json() == {"detail": "Method Not Allowed"}
