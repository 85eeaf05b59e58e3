"""Every export kind in every format, from real sessions, through the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pandas
import polars
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from f1daemon.cli import EXPORT_KINDS, main
from f1daemon.domain.events import MessageReceived
from f1daemon.feed.forecast import OPEN_METEO, OPEN_METEO_HOURLY, TOPIC
from f1daemon.services.derivation import derive_session
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests import http_servers
from tests.test_jolpica import PITSTOPS_2021_10

BAKU = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"
MONACO_FP2 = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"
MONZA_Q = "2019-09-08_Italian_Grand_Prix/2019-09-07_Qualifying"
BRITISH_2021 = "2021-07-18_British_Grand_Prix/2021-07-18_Race"
SPRINT_RESULTS_2023 = "Results/2023-04"  # a saved Jolpica page's own session
# Where each kind has rows: telemetry and car positions come only with the live capture.
SESSION_OF_KIND = dict.fromkeys(EXPORT_KINDS, BAKU) | {
    "weather": MONACO_FP2,
    "telemetry": MONACO_FP2,
    "car-positions": MONACO_FP2,
    "qualifying": MONZA_Q,
    "sprint-results": SPRINT_RESULTS_2023,
    "reference-pits": BRITISH_2021,
}


@pytest.fixture(scope="module")
def store(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('exports') / 'events.db'}"
    baku = testdata / "livetiming" / BAKU.replace("/", "__")
    monza = testdata / "livetiming" / MONZA_Q.replace("/", "__")
    fp2 = testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt"
    assert main(["ingest", str(baku), str(monza), str(fp2), "--store", url]) == 0
    # Official results (Jolpica pages) with the sessions they are of, and a forecast.
    jolpica = testdata / "jolpica-ergast"
    pages = [jolpica / "2018/4/results.json", jolpica / "2018/4/laps/1.json"]
    assert main(["ingest", *map(str, pages), "--session", BAKU, "--store", url]) == 0
    quali = str(jolpica / "2019/14/qualifying.json")
    assert main(["ingest", quali, "--session", MONZA_Q, "--store", url]) == 0
    assert main(["ingest", str(jolpica / "2023/4/sprint.json"), "--store", url]) == 0
    stops = tmp_path_factory.mktemp("pages") / "pitstops.json"
    stops.write_text(json.dumps({"MRData": PITSTOPS_2021_10}))  # none are recorded
    british = [testdata / "livetiming" / BRITISH_2021.replace("/", "__"), stops]
    british.append(jolpica / "2021/10/results.json")
    assert main(["ingest", *map(str, british), "--session", BRITISH_2021, "--store", url]) == 0
    with EventLog(parse_store_url(url)) as log:
        log.append_facts([forecast_fact(BAKU)])
        derive_session(log, BAKU)
    return url


def forecast_fact(session: str) -> MessageReceived:
    """An Open-Meteo answer for Baku in the API's shape, as the forecast source logs it."""
    query = {
        "latitude": "40.3725",
        "longitude": "49.8533",
        "hourly": ",".join(OPEN_METEO_HOURLY),
        "wind_speed_unit": "ms",
        "forecast_days": "2",
    }
    return MessageReceived(
        session=session,
        source=OPEN_METEO,
        stream=f"{OPEN_METEO}/baku",
        topic=TOPIC,
        sequence=1,
        offset_ms=None,
        received_at=datetime(2018, 4, 28, 9, tzinfo=UTC),
        payload=http_servers.open_meteo("/v1/forecast", query, "").body.decode(),
    )


@pytest.mark.parametrize("kind", EXPORT_KINDS)
def test_every_kind_exports_alike_in_every_format(
    kind: str, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = SESSION_OF_KIND[kind]
    outputs = {fmt: tmp_path / f"{kind}.{fmt}" for fmt in ("csv", "parquet", "json", "ndjson")}
    for fmt, path in outputs.items():
        argv = ["export", kind, "--session", session, "--format", fmt, "-o", str(path)]
        assert main([*argv, "--store", store]) == 0
    capsys.readouterr()
    table = pq.read_table(outputs["parquet"])
    records = json.loads(outputs["json"].read_text())
    assert table.num_rows > 0, f"{kind} of {session} has no rows"
    assert len(records) == table.num_rows
    assert list(records[0]) == table.column_names
    # The same values in every format: Parquet as written, JSON as orjson spells it,
    # and the CSV read back with the export's own schema.
    assert json.loads(orjson.dumps(table.to_pylist(), option=orjson.OPT_UTC_Z)) == records
    # (A null is an empty field, an empty list `""`.)
    options = pa_csv.ConvertOptions(
        column_types=table.schema, strings_can_be_null=True, quoted_strings_can_be_null=False
    )
    assert pa_csv.read_csv(outputs["csv"], convert_options=options).cast(table.schema).equals(table)
    lines = outputs["ndjson"].read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    # What notebooks read them with: polars and pandas, every file, as they infer types
    # by default (polars from the first 100 rows: a sparse column must not be null there).
    for frame in (
        polars.read_parquet(outputs["parquet"]),
        polars.read_json(outputs["json"]),
        polars.read_ndjson(outputs["ndjson"]),
    ):
        assert frame.height == table.num_rows
        # (polars' JSON reader may order the columns its own way.)
        assert {c: frame[c].null_count() for c in frame.columns} == {
            c: table.column(c).null_count for c in table.column_names
        }
    assert polars.read_csv(outputs["csv"]).height == table.num_rows
    assert len(pandas.read_parquet(outputs["parquet"])) == table.num_rows
    assert len(pandas.read_json(outputs["json"])) == table.num_rows
    assert len(pandas.read_json(outputs["ndjson"], lines=True)) == table.num_rows
    assert len(pandas.read_csv(outputs["csv"])) == table.num_rows


def test_drivers_and_the_session_with_f1s_keys_join_the_laps_without_a_mapping(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {}
    for kind in ("laps", "drivers", "sessions"):
        files[kind] = tmp_path / f"{kind}.parquet"
        argv = ["export", kind, "--session", MONZA_Q, "--format", "parquet", "-o", str(files[kind])]
        assert main([*argv, "--store", store]) == 0
    capsys.readouterr()
    (session,) = pq.read_table(files["sessions"]).to_pylist()
    assert (session["session_key"], session["meeting_key"]) == (5502, 1013)  # SessionInfo.Key
    assert session["session_type"] == "Qualifying"
    assert session["circuit_short_name"] == "Monza"
    assert session["date_start"].isoformat() == "2019-09-07T13:00:00+00:00"  # 15:00 local
    drivers = {d["driver"]: d for d in pq.read_table(files["drivers"]).to_pylist()}
    assert len(drivers) == 20
    assert (drivers[44]["name_acronym"], drivers[44]["team_name"]) == ("HAM", "Mercedes")
    assert drivers[16]["last_name"] == "Leclerc"
    # DuckDB joins the laps to the drivers on (session_key, driver): nothing to map.
    connection = duckdb.connect()
    connection.register("laps", connection.read_parquet(str(files["laps"])))
    connection.register("drivers", connection.read_parquet(str(files["drivers"])))
    joined = connection.execute(
        "SELECT d.name_acronym, count(*) FROM laps JOIN drivers d USING (session_key, driver) "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    laps = pq.read_table(files["laps"])
    assert sum(n for _, n in joined) == laps.num_rows
    assert set(laps.column("driver_code").to_pylist()) == {
        d["name_acronym"] for d in drivers.values()
    }


def test_neutralisations_have_the_columns_engineers_read(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["export", "neutralisations", "--session", BAKU, "--format", "json", "--store", store])
        == 0
    )
    periods = json.loads(capsys.readouterr().out)
    assert [p["kind"] for p in periods] == ["SC", "SC"]
    for period in periods:
        assert {"kind", "start_utc", "end_utc", "first_lap", "last_lap"} <= period.keys()
        assert period["start_utc"] < period["end_utc"]
        assert period["first_lap"] <= period["last_lap"]


def test_race_control_messages_carry_their_own_stamps(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "race-control", "--session", BAKU, "--format", "json", "--store", store]
    assert main(argv) == 0
    messages = json.loads(capsys.readouterr().out)
    assert len(messages) == 109
    assert all(m["utc"].startswith("2018-04-29T") for m in messages)


def test_laps_carry_race_controls_later_deletions(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "laps", "--session", MONZA_Q, "--format", "json", "--store", store]
    assert main(argv) == 0
    laps = json.loads(capsys.readouterr().out)
    # "CAR 23 (ALB) TIME 1:20.456 DELETED - TRACK LIMITS AT TURN 11", 35 minutes in.
    (deleted,) = [lap for lap in laps if lap["deleted"]]
    # Lap 4 as FastF1 numbers it (tests/data/fastf1-laps).
    assert (deleted["driver"], deleted["lap"], deleted["lap_time_ms"]) == (23, 4, 80_456)
