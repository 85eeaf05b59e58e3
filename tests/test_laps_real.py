"""Laps derived from real archive sessions agree with the official results (Jolpica).

For every session that has `TimingData` and a Jolpica race or sprint result: each
classified driver's last lap number and fastest lap (number and time) in our lap
export equal the official classification's.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from f1daemon.cli import main
from f1daemon.feed.timing import parse_time_ms


@dataclass(frozen=True)
class OfficialResult:
    session_folder: str
    jolpica_file: str
    results_key: str
    min_timed_laps: int


SESSIONS = [
    OfficialResult(
        "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race", "2018/4/results.json", "Results", 800
    ),
    OfficialResult(
        "2023-04-30_Azerbaijan_Grand_Prix__2023-04-29_Sprint",
        "2023/4/sprint.json",
        "SprintResults",
        280,
    ),
]


def export_laps_csv(store: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["export", "laps", "--store", store, "--format", "csv"]) == 0
    return capsys.readouterr().out


def ingest(store: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", str(folder), "--store", store]) == 0
    capsys.readouterr()


def classified(testdata: Path, session: OfficialResult) -> list[dict[str, object]]:
    document = orjson.loads((testdata / "jolpica-ergast" / session.jolpica_file).read_bytes())
    (race,) = document["MRData"]["RaceTable"]["Races"]
    results: list[dict[str, object]] = race[session.results_key]
    return [r for r in results if str(r["positionText"]).isdigit()]


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: s.session_folder)
def test_laps_agree_with_official_results(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], session: OfficialResult
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    ingest(store, testdata / "livetiming" / session.session_folder, capsys)
    rows = list(csv.DictReader(io.StringIO(export_laps_csv(store, capsys))))

    timed = [r for r in rows if r["lap_time_ms"]]
    assert len(timed) > session.min_timed_laps
    drivers = classified(testdata, session)
    assert drivers, "the official result lists classified drivers"
    for result in drivers:
        number = str(result["number"])
        laps = [r for r in rows if r["driver"] == number]
        assert max(int(r["lap"]) for r in laps) == int(str(result["laps"])), number
        fastest_official = result["FastestLap"]
        assert isinstance(fastest_official, dict)
        fastest = min((r for r in laps if r["lap_time_ms"]), key=lambda r: int(r["lap_time_ms"]))
        assert int(fastest["lap"]) == int(fastest_official["lap"]), number
        assert int(fastest["lap_time_ms"]) == parse_time_ms(fastest_official["Time"]["time"]), (
            number
        )
    print(
        f"{session.session_folder}: {len(timed)} timed laps, "
        f"{len(drivers)} classified drivers agree"
    )


def test_postgresql_export_is_identical(
    testdata: Path, tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = testdata / "livetiming" / SESSIONS[0].session_folder
    sqlite = f"sqlite:///{tmp_path / 'events.db'}"
    ingest(sqlite, folder, capsys)
    ingest(postgres_url, folder, capsys)
    from_sqlite = export_laps_csv(sqlite, capsys)
    from_postgres = export_laps_csv(postgres_url, capsys)
    assert from_sqlite.count("\n") > 800
    assert from_postgres == from_sqlite
