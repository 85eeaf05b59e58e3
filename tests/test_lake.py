"""The Parquet lake: versioned files DuckDB reads as they are, manifests, retention."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from f1daemon.cli import main
from f1daemon.domain.events import DerivedEvent, LapCompleted, LapDeleted, StintStarted
from f1daemon.projections.features import FEATURES
from f1daemon.projections.lake import write_lake
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

BAKU = "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
SPRINT = "2023-04-30_Azerbaijan_Grand_Prix__2023-04-29_Sprint"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_duckdb_reads_laps_across_sessions_and_versions(
    tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    root = tmp_path / "lake"
    baku, sprint = testdata / "livetiming" / BAKU, testdata / "livetiming" / SPRINT
    # v1: Baku 2018 on timing alone; v2: with its tyres, and the 2023 sprint.
    run(["ingest", str(baku / "TimingData.jsonStream"), "--store", store], capsys)
    run(["tag", "v1", "--store", store], capsys)
    run(["ingest", str(baku), str(sprint), "--store", store], capsys)
    run(["tag", "v2", "--store", store], capsys)
    run(["lake", "--dir", str(root), "--version", "v1", "--store", store], capsys)
    out = run(["lake", "--dir", str(root), "--version", "v2", "--store", store], capsys)
    assert f"{root}/processed/laps/2018-04-29/v2.parquet: 841 rows" in out

    laps = f"{root}/processed/laps/*/*.parquet"
    query = duckdb.connect()
    counts = query.execute(
        "SELECT version, session, count(*) AS laps, count(compound) AS with_tyres "
        "FROM read_parquet(?) GROUP BY ALL ORDER BY ALL",
        [laps],
    ).fetchall()
    assert [row[:3] for row in counts] == [
        ("v1", "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race", 841),
        ("v2", "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race", 841),
        ("v2", "2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint", 308),
    ]
    # v1 knew nothing of tyres; v2 knows them for nearly every lap.
    assert counts[0][3] == 0
    assert all(with_tyres > 0.97 * laps for _, _, laps, with_tyres in counts[1:])
    fastest = query.execute(
        "SELECT driver, min(lap_time_ms) FROM read_parquet(?) "
        "WHERE version = 'v2' AND session LIKE '2018%' GROUP BY driver ORDER BY 2 LIMIT 1",
        [laps],
    ).fetchone()
    assert fastest == (77, 105_149)  # Bottas, 1:45.149, as the official result has it
    raw = query.execute(
        "SELECT count(*) FROM read_parquet(?)", [f"{root}/raw/archive/*/v2.parquet"]
    ).fetchone()
    assert raw == (24_237 + 18_218,)


def test_manifests_describe_their_files(
    tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    root = tmp_path / "lake"
    run(["ingest", str(testdata / "livetiming" / BAKU), "--store", store], capsys)
    run(["lake", "--dir", str(root), "--store", store], capsys)
    (manifest_path,) = (root / "processed" / "neutralisations" / "2018-04-29").glob(
        "*.manifest.json"
    )
    manifest = json.loads(manifest_path.read_text())
    assert manifest["rows"] == 2
    assert [c["name"] for c in manifest["schema"]][:3] == ["session", "version", "kind"]
    assert manifest["log_positions"]["last"] > manifest["log_positions"]["first"] >= 1
    for described in manifest["files"].values():
        data = (manifest_path.parent / described["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == described["sha256"]
    assert {Path(f["file"]).suffix for f in manifest["files"].values()} == {
        ".parquet",
        ".csv",
        ".json",
    }


def test_retention_prunes_old_versions_of_the_lake_never_the_log(
    tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    root = tmp_path / "lake"
    run(
        [
            "ingest",
            str(testdata / "livetiming" / BAKU / "TrackStatus.jsonStream"),
            "--store",
            store,
        ],
        capsys,
    )
    for name in ("v1", "v2", "v3"):
        run(["tag", name, "--store", store], capsys)
        run(["lake", "--dir", str(root), "--version", name, "--store", store], capsys)
        time.sleep(0.01)
    folder = root / "processed" / "track-status" / "2018-04-29"
    out = run(
        ["lake", "--dir", str(root), "--version", "v3", "--keep", "2", "--store", store], capsys
    )
    assert "pruned" in out
    assert sorted(p.name for p in folder.glob("*.parquet")) == ["v2.parquet", "v3.parquet"]
    # Older than a day: backdate v2's manifest and prune by age.
    manifest = folder / "v2.manifest.json"
    text = json.loads(manifest.read_text())
    text["created_at"] = "2026-01-01T00:00:00+00:00"
    manifest.write_text(json.dumps(text))
    run(
        ["lake", "--dir", str(root), "--version", "v3", "--older-than", "1", "--store", store],
        capsys,
    )
    assert sorted(p.name for p in folder.glob("*")) == [
        "v3.csv",
        "v3.json",
        "v3.manifest.json",
        "v3.parquet",
    ]
    assert run(["verify", "--store", store], capsys).endswith("0 with problems\n")
    assert os.path.getsize(tmp_path / "events.db") > 0


# The clean-lap rule of `f1daemon.projections.features`, written again in SQL over the
# processed laps: DuckDB's aggregates check the Python ones.
CLEAN_STINTS_SQL = """
WITH laps AS (
    SELECT *, string_split(coalesce(track_statuses, ''), ';') AS statuses,
           string_split(coalesce(flags, ''), ';') AS lap_flags
    FROM read_parquet(?) WHERE stint IS NOT NULL
)
SELECT driver, stint, count(*) AS laps, count(lap_time_ms) AS timed,
       count(lap_time_ms) FILTER (WHERE clean) AS clean,
       avg(lap_time_ms) FILTER (WHERE clean) AS mean,
       median(lap_time_ms) FILTER (WHERE clean) AS median,
       min(lap_time_ms) FILTER (WHERE clean) AS best,
       regr_slope(lap_time_ms, lap) FILTER (WHERE clean) / 1000 AS slope
FROM (
    SELECT *, lap_time_ms IS NOT NULL AND lap > 1 AND NOT pit_in AND NOT pit_out
              AND NOT deleted AND NOT list_has_any(statuses, ['4', '5', '6', '7'])
              AND NOT list_has_any(lap_flags, ['faster_than_personal_best_but_not_marked_one',
                                               'lap_count_never_moved_on']) AS clean
    FROM laps
)
GROUP BY driver, stint ORDER BY driver, stint
"""


def test_stint_features_of_the_2018_baku_race_account_for_every_stint_and_lap(
    tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    run(["ingest", str(testdata / "livetiming" / BAKU), "--store", store], capsys)
    run(["tag", "v1", "--store", store], capsys)
    out = run(
        ["lake", "--dir", str(tmp_path / "lake"), "--version", "v1", "--store", store], capsys
    )
    features = tmp_path / "lake" / "features" / "stints" / "2018-04-29"
    assert f"{features}/v1.parquet: 56 rows" in out
    with EventLog(parse_store_url(store)) as log:
        (session,) = log.sessions()
        run_number = log.current_run(session)
        assert run_number is not None
        events = log.derived_events(session, run_number)
        # The same log written again gives the same files, byte for byte.
        write_lake(log, tmp_path / "again", "v1")
    for fmt in ("parquet", "csv", "json"):
        again = tmp_path / "again" / "features" / "stints" / "2018-04-29" / f"v1.{fmt}"
        assert again.read_bytes() == (features / f"v1.{fmt}").read_bytes()

    table = pq.read_table(features / "v1.parquet")
    assert table.schema.names == ["session", "version", *FEATURES["stints"].schema().names]
    rows = table.to_pylist()
    # One row per stint the feed started, and every lap it assigned to one.
    stints = [e for e in events if isinstance(e, StintStarted)]
    assert [(r["driver"], r["stint"]) for r in rows] == sorted((e.driver, e.stint) for e in stints)
    # Lap 1 ends before TimingAppData's first stint comes: it is on that stint.
    laps = [e for e in events if isinstance(e, LapCompleted)]
    assert sum(r["laps"] for r in rows) == len(laps) == 841
    assert sum(r["timed_laps"] for r in rows) == sum(e.lap_time_ms is not None for e in laps)
    # Two safety cars: many timed laps are not clean, but most are.
    clean, timed = sum(r["clean_laps"] for r in rows), sum(r["timed_laps"] for r in rows)
    assert 0.6 * timed < clean < timed - 150
    # Hamilton: supersofts from qualifying, softs at his stop, ultrasofts under the
    # second safety car; each stint begins the lap after the last one ended.
    hamilton = [r for r in rows if r["driver"] == 44]
    assert [(r["compound"], r["tyre_age_at_start"]) for r in hamilton] == [
        ("SUPERSOFT", 5),
        ("SOFT", 0),
        ("ULTRASOFT", 0),
    ]
    assert [(r["first_lap"], r["last_lap"]) for r in hamilton] == [(1, 22), (23, 40), (41, 51)]
    for row in rows:
        if row["laps"]:
            assert row["laps"] <= row["last_lap"] - row["first_lap"] + 1
            assert row["clean_laps"] <= row["timed_laps"] <= row["laps"]

    # DuckDB reads the layer with a glob, and its own aggregates over the processed
    # laps agree with every stint's figures.
    query = duckdb.connect()
    glob = f"{tmp_path}/lake/features/stints/*/*.parquet"
    by_duckdb = query.execute(
        CLEAN_STINTS_SQL, [f"{tmp_path}/lake/processed/laps/*/v1.parquet"]
    ).fetchall()
    ours = query.execute(
        "SELECT driver, stint, laps, timed_laps, clean_laps, mean_clean_lap_ms,"
        " median_clean_lap_ms, best_clean_lap_ms, degradation_s_per_lap"
        " FROM read_parquet(?) WHERE laps > 0 ORDER BY driver, stint",
        [glob],
    ).fetchall()
    assert len(ours) == len(by_duckdb) > 40
    for mine, theirs in zip(ours, by_duckdb, strict=True):
        assert mine[:5] == theirs[:5]
        assert mine[5:8] == pytest.approx(theirs[5:8])
        if mine[4] >= 3:  # a slope needs three clean laps
            assert mine[8] == pytest.approx(theirs[8], abs=1e-9)
        else:
            assert mine[8] is None
    (bottas,) = query.execute(
        "SELECT best_clean_lap_ms FROM read_parquet(?) WHERE driver = 77 AND stint = 1", [glob]
    ).fetchall()
    assert bottas == (105_149,)  # the race's fastest lap: clean, on his long first stint


def lap(number: int, time_ms: int | None, **fields: object) -> LapCompleted:
    values: dict[str, object] = {
        "session": "2024/Synthetic",
        "session_time_ms": number * 90_000,
        "utc": None,
        "driver": 16,
        "lap": number,
        "lap_time_ms": time_ms,
        "sector1_ms": None,
        "sector2_ms": None,
        "sector3_ms": None,
        "pit_in": False,
        "pit_out": False,
        "compound": "MEDIUM",
        "stint": 1,
        "track_statuses": ("1",),
    }
    return LapCompleted.model_validate({**values, **fields})


def test_the_degradation_of_a_synthetic_stint_is_recovered_from_its_clean_laps() -> None:
    slope_ms = 85  # 0.085 s a lap

    def on_the_line(number: int) -> int:
        return 90_000 + slope_ms * number

    # Laps 2-19 on the line, but for those that must not count: each is far off it,
    # so that any of them counted would bend the fit.
    off_the_line = {
        1: lap(1, 120_000),  # the standing start
        4: lap(4, 130_000, track_statuses=("1", "4")),  # the safety car came out
        6: lap(6, 125_000, track_statuses=("6",)),  # a virtual safety car
        10: lap(10, 60_000),  # a track-limits lap, deleted below
        20: lap(20, 140_000, pit_in=True),
        21: lap(21, 150_000, pit_out=True),
        22: lap(22, None),  # untimed
    }
    laps = [off_the_line.get(n) or lap(n, on_the_line(n)) for n in range(1, 23)]
    laps[8 - 1] = lap(8, on_the_line(8), track_statuses=("1", "2"))  # a yellow flag: kept
    events: list[DerivedEvent] = [
        StintStarted(
            session="2024/Synthetic",
            session_time_ms=0,
            utc=None,
            driver=16,
            stint=1,
            compound="MEDIUM",
            new_tyres=True,
            tyre_age_laps=0,
        ),
        *laps,
        LapDeleted(
            session="2024/Synthetic",
            session_time_ms=999_000,
            utc=None,
            driver=16,
            lap=10,
            lap_time_ms=60_000,
            reinstated=False,
            reason="CAR 16 TIME 1:00.000 DELETED - TRACK LIMITS",
        ),
    ]
    (row,) = FEATURES["stints"].table_of_events(events).to_pylist()
    clean = [n for n in range(2, 20) if n not in off_the_line]
    assert len(clean) == 15
    assert row["degradation_s_per_lap"] == pytest.approx(0.085, abs=1e-12)
    assert (row["laps"], row["timed_laps"], row["clean_laps"]) == (22, 21, 15)
    assert (row["first_lap"], row["last_lap"]) == (1, 22)
    assert row["mean_clean_lap_ms"] == pytest.approx(sum(map(on_the_line, clean)) / 15)
    assert row["median_clean_lap_ms"] == on_the_line(clean[7])  # the 8th of 15: lap 12
    assert row["best_clean_lap_ms"] == on_the_line(2)
    assert (row["compound"], row["new_tyres"], row["tyre_age_at_start"]) == ("MEDIUM", True, 0)
