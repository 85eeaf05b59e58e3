"""The Parquet lake: versioned files DuckDB reads as they are, manifests, retention."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import duckdb
import pytest

from f1daemon.cli import main

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
