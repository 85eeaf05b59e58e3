"""Official results (Jolpica) as exports with the feed's keys: real sessions, joined.

Each corpus session with TimingData and a Jolpica result is ingested with its Jolpica
page (`ingest PAGE.json --session KEY`). DuckDB joins the `results`, `sprint-results`
and `qualifying` exports to the `laps` export on (`session_key`, `driver`) with no
mapping table, and what the join gives equals Jolpica: each classified driver's laps
and fastest lap, each qualifier's Q1, Q2 and Q3 bests. A key mapped wrongly (another
session's key, a permanent number for a racing number, a row of another race) makes
these joins come out short or unequal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from f1daemon.cli import main
from f1daemon.domain.events import MessageReceived, RecordQuarantined
from f1daemon.domain.results import ResultPublished
from f1daemon.feed.pipeline import derive
from f1daemon.sources.jolpica_saved import read_saved_page
from tests.test_jolpica import PITSTOPS_2021_10

BAKU_2018 = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"
SPRINT_2023 = "2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint"
SAUDI_2022 = "2022-03-27_Saudi_Arabian_Grand_Prix/2022-03-27_Race"
BRITISH_2021 = "2021-07-18_British_Grand_Prix/2021-07-18_Race"
# (session, Jolpica page, export) of every corpus session with TimingData and a result.
RACES = [
    (BAKU_2018, "2018/4/results.json", "results"),
    (SPRINT_2023, "2023/4/sprint.json", "sprint-results"),
]
QUALIFYING = [
    ("2019-09-08_Italian_Grand_Prix/2019-09-07_Qualifying", "2019/14/qualifying.json"),
    ("2021-11-07_Mexico_City_Grand_Prix/2021-11-06_Qualifying", "2021/18/qualifying.json"),
    ("2022-03-27_Saudi_Arabian_Grand_Prix/2022-03-26_Qualifying", "2022/2/qualifying.json"),
    ("2023-04-30_Azerbaijan_Grand_Prix/2023-04-28_Qualifying", "2023/4/qualifying.json"),
]


def ingest(store: str, paths: list[Path], session: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", *map(str, paths), "--session", session, "--store", store]) == 0
    capsys.readouterr()


def export(
    store: str, session: str, kinds: list[str], where: Path, capsys: pytest.CaptureFixture[str]
) -> duckdb.DuckDBPyConnection:
    """The session's exports as Parquet files, registered in DuckDB under their names."""
    connection = duckdb.connect()
    for kind in kinds:
        path = where / f"{kind}.parquet"
        argv = ["export", kind, "--session", session, "--format", "parquet", "-o", str(path)]
        assert main([*argv, "--store", store]) == 0
        connection.register(kind.replace("-", "_"), connection.read_parquet(str(path)))
    capsys.readouterr()
    return connection


def rows(connection: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    result = connection.execute(query)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def session_key(connection: duckdb.DuckDBPyConnection) -> int:
    ((key,),) = connection.execute("SELECT session_key FROM sessions").fetchall()
    assert isinstance(key, int)
    return key


@pytest.mark.parametrize("race", RACES, ids=[r[2] for r in RACES])
def test_results_join_the_laps_on_the_feeds_keys_and_equal_jolpica(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], race: tuple[str, str, str]
) -> None:
    session, page, kind = race
    store = f"sqlite:///{tmp_path / 'events.db'}"
    folder = testdata / "livetiming" / session.replace("/", "__")
    ingest(store, [folder, testdata / "jolpica-ergast" / page], session, capsys)
    db = export(store, session, [kind, "laps", "sessions"], tmp_path, capsys)
    db.register("official", db.read_parquet(str(tmp_path / f"{kind}.parquet")))
    assert {r["session_key"] for r in rows(db, "SELECT session_key FROM official")} == {
        session_key(db)
    }
    joined = rows(
        db,
        """
        SELECT r.driver, r.number_of_laps, r.fastest_lap, r.fastest_lap_time_ms,
               count(l.lap) AS laps, max(l.lap) AS last_lap,
               arg_min(l.lap, l.lap_time_ms) FILTER (l.lap_time_ms IS NOT NULL) AS fastest,
               min(l.lap_time_ms) AS fastest_ms
        FROM official r LEFT JOIN laps l USING (session_key, driver)
        WHERE r.classified
        GROUP BY ALL ORDER BY r.driver
        """,
    )
    official = json.loads((testdata / "jolpica-ergast" / page).read_text())
    (published,) = official["MRData"]["RaceTable"]["Races"]
    lines = published["Results" if kind == "results" else "SprintResults"]
    assert len(joined) == sum(1 for line in lines if line["positionText"].isdigit()) >= 13
    for driver in joined:
        assert driver["laps"] == driver["last_lap"] == driver["number_of_laps"], driver
        assert (driver["fastest"], driver["fastest_ms"]) == (
            driver["fastest_lap"],
            driver["fastest_lap_time_ms"],
        ), driver


@pytest.mark.parametrize(("session", "page"), QUALIFYING, ids=[q[1] for q in QUALIFYING])
def test_qualifying_joins_the_laps_and_its_bests_are_q1_q2_q3(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], session: str, page: str
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    folder = testdata / "livetiming" / session.replace("/", "__")
    ingest(store, [folder, testdata / "jolpica-ergast" / page], session, capsys)
    db = export(store, session, ["qualifying", "laps", "sessions"], tmp_path, capsys)
    joined = rows(
        db,
        """
        SELECT q.driver, q.session_key, q.q1_ms, q.q2_ms, q.q3_ms,
               min(l.lap_time_ms) FILTER (l.session_part = 1) AS q1,
               min(l.lap_time_ms) FILTER (l.session_part = 2) AS q2,
               min(l.lap_time_ms) FILTER (l.session_part = 3) AS q3
        FROM qualifying q LEFT JOIN laps l
          ON l.session_key = q.session_key AND l.driver = q.driver
         AND l.lap_time_ms IS NOT NULL AND NOT l.pit_out AND NOT l.deleted
         AND coalesce(l.flags, '') = ''
        GROUP BY ALL ORDER BY q.driver
        """,
    )
    assert len(joined) >= 19
    assert {d["session_key"] for d in joined} == {session_key(db)}
    compared = 0
    for driver in joined:
        for part in ("q1", "q2", "q3"):
            if driver[f"{part}_ms"] is not None:
                assert driver[part] == driver[f"{part}_ms"], (driver["driver"], part)
                compared += 1
    assert compared >= 40


def test_rows_of_other_races_and_sessions_get_no_key_of_this_one(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A season page and another weekend's qualifying, logged with the 2022 Saudi race:
    only the Saudi race's lines are its results, and each is the feed's driver."""
    store = f"sqlite:///{tmp_path / 'events.db'}"
    jolpica = testdata / "jolpica-ergast"
    folder = testdata / "livetiming" / SAUDI_2022.replace("/", "__")
    # The season page holds round 1 and the first 10 lines of round 2; the race's own
    # page, fetched later, all 20.
    pages = [jolpica / "2022/results.json", jolpica / "2019/14/qualifying.json"]
    ingest(store, [folder, *pages, jolpica / "2022/2/qualifying.json"], SAUDI_2022, capsys)
    db = export(
        store, SAUDI_2022, ["results", "qualifying", "drivers", "sessions"], tmp_path, capsys
    )
    assert rows(db, "SELECT * FROM qualifying") == []  # Saturday's session, not this one
    partial = rows(db, "SELECT * FROM results")
    assert len(partial) == 10
    assert {(r["season"], r["round"]) for r in partial} == {(2022, 2)}
    ingest(store, [jolpica / "2022/2/results.json"], SAUDI_2022, capsys)
    db = export(store, SAUDI_2022, ["results", "drivers", "sessions"], tmp_path, capsys)
    results = rows(
        db,
        "SELECT r.*, d.name_acronym AS feed_code "
        "FROM results r LEFT JOIN drivers d USING (session_key, driver) ORDER BY position",
    )
    assert [r["position"] for r in results] == list(range(1, 21))
    assert {r["session_key"] for r in results} == {session_key(db)}
    # Racing numbers, not permanent ones: Verstappen raced as 1 (permanently 33).
    assert next(r for r in results if r["driver_id"] == "max_verstappen")["driver"] == 1
    # Every driver the feed lists is the driver Jolpica names; Schumacher, withdrawn
    # after his qualifying crash, is not in the race's DriverList.
    unlisted = [r for r in results if r["feed_code"] is None]
    assert [(r["name_acronym"], r["position_text"]) for r in unlisted] == [("MSC", "W")]
    for result in results:
        if result not in unlisted:
            assert result["feed_code"] == result["driver_code"] == result["name_acronym"], result


def test_reference_laps_and_pit_stops_take_the_races_numbers(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    jolpica = testdata / "jolpica-ergast"
    baku = testdata / "livetiming" / BAKU_2018.replace("/", "__")
    ingest(store, [baku, jolpica / "2018/4/laps/1.json", jolpica / "2018/4/results.json"],
           BAKU_2018, capsys)  # fmt: skip
    db = export(store, BAKU_2018, ["reference-laps", "laps"], tmp_path, capsys)
    # Jolpica's lap 1 of every car that completed it is our lap 1 of that car.
    joined = rows(
        db,
        "SELECT r.driver, r.position AS official, l.position AS ours, l.lap "
        "FROM reference_laps r LEFT JOIN laps l USING (session_key, driver, lap)",
    )
    assert len(joined) == 18
    assert all(j["lap"] == 1 for j in joined), joined
    assert [j["official"] for j in sorted(joined, key=lambda j: j["official"])] == list(
        range(1, 19)
    )
    # Pit stops (an illustrative page in the API's shape: none are recorded) of a race
    # whose result is logged too: numbered as the result numbers the drivers.
    stops = tmp_path / "pitstops.json"
    stops.write_text(json.dumps({"MRData": PITSTOPS_2021_10}))
    british = testdata / "livetiming" / BRITISH_2021.replace("/", "__")
    ingest(store, [british, stops, jolpica / "2021/10/results.json"], BRITISH_2021, capsys)
    db = export(store, BRITISH_2021, ["reference-pits", "drivers"], tmp_path, capsys)
    pits = rows(db, "SELECT * FROM reference_pits")
    assert [(p["driver"], p["driver_code"], p["lap"]) for p in pits] == [
        (4, "NOR", 25),
        (14, "ALO", 3),
        (16, "LEC", 29),
        (44, "HAM", 27),
        (77, "BOT", 28),
    ]
    assert pits[1]["pit_lane_ms"] == 1004718


def test_a_page_that_is_no_page_is_quarantined_and_a_refetch_corrects(testdata: Path) -> None:
    page = (testdata / "jolpica-ergast" / "2018/4/results.json").read_text()
    corrected = page.replace('"points": "25"', '"points": "26"', 1)
    assert corrected != page

    def fact(stream: str, payload: str) -> MessageReceived:
        return MessageReceived(
            session="Results/2018-04",
            source="jolpica",
            stream=stream,
            topic="jolpica.results",
            sequence=1,
            offset_ms=None,
            received_at=datetime(2018, 4, 30, tzinfo=UTC),
            payload=payload,
        )

    facts = [
        fact("2018/4/results@1", page),
        fact("2018/4/results@2", '{"MRData": {"total": "x"}}'),
        fact("2018/4/results@3", corrected),
    ]
    events = derive("Results/2018-04", enumerate(facts, start=1)).events
    (bad,) = [e for e in events if isinstance(e, RecordQuarantined)]
    assert (bad.rule, bad.stream) == ("decode.jolpica", "2018/4/results@2")
    assert len([e for e in events if isinstance(e, ResultPublished)]) == 40
    from f1daemon.projections.exports import export_table

    table = export_table("results", events).to_pylist()
    assert len(table) == 20  # the later fetch's lines stand
    assert (table[0]["driver_id"], table[0]["points"]) == ("hamilton", 26.0)
    assert table[0]["session_key"] is None  # no feed session described here


def test_saved_pages_are_told_by_content_with_their_resource_and_page(testdata: Path) -> None:
    root = testdata / "jolpica-ergast"
    laps = read_saved_page((root / "2023/1/laps.json__limit=1200").read_bytes(), "laps.json")
    assert laps is not None
    assert (laps.kind.value, laps.resource, laps.page) == ("laps", "2023/1/laps", 1)
    lap1 = read_saved_page((root / "2018/4/laps/1.json").read_bytes(), "1.json")
    assert lap1 is not None
    assert (lap1.resource, lap1.default_session()) == ("2018/4/laps/1", "Results/2018-04")
    quali = read_saved_page((root / "2019/14/qualifying.json").read_bytes(), "q.json")
    assert quali is not None
    assert quali.kind.value == "qualifying"
    # A schedule and a driver list are Jolpica documents but no results page.
    assert read_saved_page((root / "2023.json").read_bytes(), "2023.json") is None
    assert read_saved_page((root / "2023/drivers.json").read_bytes(), "drivers.json") is None
    assert read_saved_page(b"00:00:00.000{}", "x") is None


def test_results_are_projected_into_postgresql_tables_keyed_alike(
    testdata: Path, tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    jolpica = testdata / "jolpica-ergast"
    baku = testdata / "livetiming" / BAKU_2018.replace("/", "__")
    pages = [jolpica / "2018/4/results.json", jolpica / "2018/4/laps/1.json"]
    ingest(store, [baku, *pages], BAKU_2018, capsys)
    assert main(["project", "--into", postgres_url, "--store", store]) == 0
    capsys.readouterr()
    with psycopg.connect(postgres_url) as db:
        joined = db.execute(
            "SELECT r.driver_code, count(*) FROM results r "
            "JOIN timing_data l USING (session_key, driver) WHERE r.classified "
            "GROUP BY r.driver_code, r.number_of_laps HAVING count(*) = r.number_of_laps"
        ).fetchall()
        reference = db.execute("SELECT count(*) FROM reference_laps").fetchone()
    assert len(joined) == 13  # every classified driver, all his laps
    assert reference == (18,)
