"""The Python API reads what the exports write: the same tables, at the head and at a tag."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import f1daemon
from f1daemon.cli import EXPORT_KINDS, main
from f1daemon.errors import UserError

BAKU = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"
MEXICO_Q = "2021-11-07_Mexico_City_Grand_Prix/2021-11-06_Qualifying"
MONACO_FP2 = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"
REPO = Path(__file__).resolve().parent.parent

# The API's method of each export kind.
METHODS = {
    "laps": "laps",
    "stints": "stints",
    "pits": "pits",
    "drivers": "drivers",
    "weather": "weather",
    "race-control": "race_control",
    "track-status": "track_status",
    "neutralisations": "neutralisations",
    "positions": "positions",
    "intervals": "intervals",
    "telemetry": "telemetry",
    "car-positions": "car_positions",
    "results": "results",
    "sprint-results": "sprint_results",
    "qualifying": "qualifying",
    "reference-laps": "reference_laps",
    "reference-pits": "reference_pits",
    "forecasts": "forecasts",
}


@pytest.fixture(scope="module")
def store(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Baku's race, tagged `full`, then replayed up to half its facts (the head has
    fewer laps than the tag); Mexico's qualifying and the Monaco capture beside it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'events.db'}"
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
    assert main(["tag", "half", "--store", url]) == 0
    return url


def _exported(store: str, kind: str, session: str, tmp_path: Path, version: str | None) -> pa.Table:
    output = tmp_path / f"{kind}-{version}.parquet"
    argv = ["export", kind, "--session", session, "--format", "parquet", "-o", str(output)]
    assert main([*argv, "--store", store, *(["--version", version] if version else [])]) == 0
    return pq.read_table(output)


@pytest.mark.parametrize("version", [None, "full", "half"])
@pytest.mark.parametrize("session", [BAKU, MEXICO_Q, MONACO_FP2])
def test_every_table_equals_its_export_at_the_head_and_at_tags(
    store: str, session: str, version: str | None, tmp_path: Path
) -> None:
    with f1daemon.open(store) as data:
        handle = data.session(session)
        for kind in EXPORT_KINDS:
            if kind == "sessions":
                api = data.sessions(version=version).filter(pc.equal(pc.field("session"), session))
                api = api.drop_columns(["session"])
            else:
                api = getattr(handle, METHODS[kind])(version=version)
            exported = _exported(store, kind, session, tmp_path, version)
            assert api.schema.equals(exported.schema), kind
            assert api.equals(exported), f"{kind} of {session} at {version}"


def test_a_tag_reads_the_data_as_it_was(store: str) -> None:
    with f1daemon.open(store) as data:
        baku = data.session(5090)  # F1's session key
        assert baku.key == BAKU
        full, half, head = (baku.laps(version=v).num_rows for v in ("full", None, "half"))
        # The replay up to half the facts derived about half the laps, and is current.
        assert 300 < half < full - 300
        assert head == half
        assert data.session(MEXICO_Q).laps(version="full").equals(data.session(6565).laps())
        assert [v["name"] for v in data.versions().to_pylist()] == ["full", "half"]
        with pytest.raises(UserError, match="unknown tag 'nope'"):
            baku.laps(version="nope")


def test_one_lap_of_telemetry_is_the_samples_between_its_line_crossings(store: str) -> None:
    with f1daemon.open(store) as data:
        monaco = data.session("monaco")
        laps = {(lap["driver"], lap["lap"]): lap for lap in monaco.laps().to_pylist()}
        # Verstappen's lap 16 starts where his lap 15 ended; Alonso's lap 18 is his first
        # in the capture: it starts its lap time before its end.
        for driver, number, start in [
            (1, 16, laps[(1, 15)]["utc"]),
            (14, 18, laps[(14, 18)]["utc"] - timedelta(milliseconds=laps[(14, 18)]["lap_time_ms"])),
        ]:
            lap = monaco.telemetry(driver=driver, lap=number)
            whole = monaco.telemetry(driver=driver)
            low, high = start.timestamp() * 1000, laps[(driver, number)]["utc"].timestamp() * 1000
            assert lap.to_pylist() == [r for r in whole.to_pylist() if low < r["utc_ms"] <= high]
            # A 72 to 90 s lap at ~2 samples a second, at Monaco's speeds.
            assert 100 < lap.num_rows < 300
            assert 240 < pc.max(lap["speed"]).as_py() < 300
            assert set(pc.unique(whole["driver"]).to_pylist()) == {driver}
        with pytest.raises(UserError, match="no lap 99"):
            monaco.telemetry(driver=14, lap=99)


def test_quarantine_and_qa_report_are_tables(store: str) -> None:
    with f1daemon.open(store) as data:
        mexico = data.session(MEXICO_Q)
        report = mexico.qa_report()
        assert report.num_rows > 5
        assert set(report["severity"].to_pylist()) == {"blocking", "flag"}
        checked = report["records_checked"][0].as_py()
        passed, flagged = report["passed"][0].as_py(), report["flagged"][0].as_py()
        assert report["quality_score"][0].as_py() == pytest.approx((passed + flagged) / checked)
        held = data.session(BAKU).quarantine()
        assert held.column_names[:3] == ["id", "stage", "record"]
        # pandas (the optional extra) reads them as frames.
        assert len(report.to_pandas()) == report.num_rows


def test_an_unknown_session_or_a_missing_log_is_a_user_error(store: str, tmp_path: Path) -> None:
    with f1daemon.open(store) as data, pytest.raises(UserError, match="unknown session"):
        data.session("Silverstone")
    with pytest.raises(UserError, match="no event log"):
        f1daemon.open(f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()  # reading never creates a log


def test_the_example_script_runs(store: str) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "race_summary.py"), "--store", store, "9088"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == f"{MONACO_FP2}: 56 laps of 19 drivers"
    # Verstappen's 1:12.737 (NumberOfLaps 16 with LastLapTime 1:12.737 in the feed) was
    # the fastest lap of the capture; Alonso's 1:12.682 came before it began.
    assert lines[2] == "  VER lap 16: 72.737 s"
    assert "telemetry of VER lap 16: " in result.stdout


def test_a_postgresql_log_reads_as_its_exports(
    testdata: Path, postgres_url: str, tmp_path: Path
) -> None:
    mexico = testdata / "livetiming" / MEXICO_Q.replace("/", "__")
    assert main(["ingest", str(mexico), "--store", postgres_url]) == 0
    assert main(["tag", "v1", "--store", postgres_url]) == 0
    with f1daemon.open(postgres_url) as data:
        session = data.session(6565)
        for kind, table in [("laps", session.laps()), ("stints", session.stints(version="v1"))]:
            exported = _exported(postgres_url, kind, MEXICO_Q, tmp_path, "v1")
            assert table.equals(exported), kind
        assert session.laps().num_rows > 300
