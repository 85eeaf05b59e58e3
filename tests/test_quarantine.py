"""The quarantine end to end, through the command line, on real recordings.

`with_errors.txt` must put exactly its damaged lines in quarantine, each with its
reason; a copy of 2021 Mexico qualifying with one lap time damaged to 0 has that lap
quarantined by QA, and an operator then releases it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from f1daemon.cli import main
from f1daemon.domain.events import AnomalyDetected, LapCompleted, QuarantineReleased
from f1daemon.services.derivation import current_events, run_report, verify_run
from f1daemon.services.versions import replay
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.test_recording import WITH_ERRORS, WITH_ERRORS_QUARANTINED

MEXICO = Path("livetiming") / "2021-11-07_Mexico_City_Grand_Prix__2021-11-06_Qualifying"
MEXICO_SESSION = "2021-11-07_Mexico_City_Grand_Prix/2021-11-06_Qualifying"
BAHRAIN = "2021-03-28_Bahrain_Grand_Prix/x"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def listed(capsys: pytest.CaptureFixture[str], store: str, session: str) -> list[dict[str, object]]:
    status, out, _ = run(
        capsys, "quarantine", "list", "--store", store, "--session", session, "--format", "json"
    )
    assert status == 0
    entries: list[dict[str, object]] = json.loads(out)
    return entries


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


def test_with_errors_puts_exactly_its_damaged_lines_in_quarantine(
    testdata: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["ingest", str(testdata / WITH_ERRORS), "--store", store, "--session", BAHRAIN]) == 0
    )
    capsys.readouterr()
    entries = listed(capsys, store, BAHRAIN)
    # Exactly the damaged lines, by line number and rule, all held back by the source.
    assert {e["sequence"]: e["rule"] for e in entries} == WITH_ERRORS_QUARANTINED
    assert len(entries) == len(WITH_ERRORS_QUARANTINED)
    assert {e["stage"] for e in entries} == {"source"}
    raw = (testdata / WITH_ERRORS).read_text(encoding="utf-8").split("\n")
    for entry in entries:
        assert isinstance(entry["reason"], str)
        assert entry["reason"].strip()
        assert entry["payload"] == raw[int(str(entry["sequence"])) - 1]  # the line, whole
    # The table says the same, one row per line, and the count.
    status, table, _ = run(capsys, "quarantine", "list", "--store", store, "--session", BAHRAIN)
    assert status == 0
    assert table.splitlines()[-1] == f"32 quarantined in {BAHRAIN}"
    assert "truncated: unterminated list" in table
    # A line no source could frame cannot be released: there is no record to keep.
    line_10 = next(e["id"] for e in entries if e["sequence"] == 10)
    status, _, err = run(
        capsys, "quarantine", "release", str(line_10), "--reason", "x", "--store", store
    )
    assert status == 2
    assert "held back by its source (framing.syntax)" in err
    assert "nothing to release" in err


# One of the session's lines damaged on the way: car 31's lap 6 (1:18.507) comes as
# "0.000", a lap time that is not a time. The real session has no record QA may
# remove (tests/test_qa_real.py); this copy has one.
DAMAGED_LINE = 3869
DAMAGED_FROM, DAMAGED_TO = '"LastLapTime":{"Value":"1:18.507"}', '"LastLapTime":{"Value":"0.000"}'


@pytest.fixture
def damaged_mexico(testdata: Path, tmp_path: Path) -> Path:
    """The 2021 Mexico qualifying folder, copied, with one lap time damaged."""
    folder = tmp_path / MEXICO.name
    shutil.copytree(testdata / MEXICO, folder)
    timing = folder / "TimingData.jsonStream"
    lines = timing.read_bytes().split(b"\n")
    line = lines[DAMAGED_LINE - 1].decode()
    assert DAMAGED_FROM in line
    assert '"31":' in line
    lines[DAMAGED_LINE - 1] = line.replace(DAMAGED_FROM, DAMAGED_TO).encode()
    timing.write_bytes(b"\n".join(lines))
    return folder


def test_qa_quarantine_show_and_release(
    damaged_mexico: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(damaged_mexico), "--store", store]) == 0
    capsys.readouterr()
    entries = listed(capsys, store, MEXICO_SESSION)
    assert [(e["stage"], e["rule"], e["record"]) for e in entries] == [
        ("qa", "range.lap_time", "car 31 lap 6"),
    ]
    lap_6 = int(str(entries[0]["id"]))

    status, shown, _ = run(capsys, "quarantine", "show", str(lap_6), "--store", store)
    assert status == 0
    assert "rule      range.lap_time" in shown
    assert "record    car 31 lap 6" in shown
    assert '"lap_time_ms": 0' in shown  # the lap as derived, indented JSON
    assert f"f1daemon quarantine release {lap_6}" in shown

    status, out, _ = run(
        capsys,
        "quarantine",
        "release",
        str(lap_6),
        "--reason",
        "keep the lap's sectors",
        "--by",
        "strategy",
        "--store",
        store,
    )
    assert status == 0
    assert out.startswith(f"released car 31 lap 6 (range.lap_time) of {MEXICO_SESSION}")
    assert "now 0 quarantined" in out
    assert listed(capsys, store, MEXICO_SESSION) == []

    with EventLog(parse_store_url(store)) as log:
        events = current_events(log, MEXICO_SESSION)
        (lap,) = [e for e in events if isinstance(e, LapCompleted) and (e.driver, e.lap) == (31, 6)]
        assert lap.lap_time_ms == 0
        assert "qa:range.lap_time" in lap.flags
        (flag,) = [
            e
            for e in events
            if isinstance(e, AnomalyDetected)
            and (e.record, e.rule) == ("car 31 lap 6", "range.lap_time")
        ]
        assert flag.released
        assert flag.reason.startswith("released by strategy (keep the lap's sectors")
        # The release is a fact of the session, so every run stays verifiable ...
        releases = [f for _, f in log.inputs(MEXICO_SESSION) if isinstance(f, QuarantineReleased)]
        assert [(r.rule, r.record, r.released_by) for r in releases] == [
            ("range.lap_time", "car 31 lap 6", "strategy")
        ]
        for _, completed in log.derivation_runs(MEXICO_SESSION):
            assert verify_run(log, MEXICO_SESSION, completed).problems == ()
        # ... and a replay up to before the release quarantines the lap again.
        before = releases_position(log) - 1
        replayed = replay(log, MEXICO_SESSION, until=str(before))
        report = run_report(log, MEXICO_SESSION, replayed.run)
        assert report is not None
        assert report.quarantined == 1


def releases_position(log: EventLog) -> int:
    return next(p for p, f in log.inputs(MEXICO_SESSION) if isinstance(f, QuarantineReleased))


def test_qa_report_command_prints_the_runs_report(
    damaged_mexico: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(damaged_mexico), "--store", store]) == 0
    capsys.readouterr()
    status, table, _ = run(capsys, "qa-report", "--store", store)
    assert status == 0
    assert table.startswith(f"QA report: {MEXICO_SESSION}")
    assert "quarantined             1" in table
    status, out, _ = run(capsys, "qa-report", "--store", store, "--format", "json")
    report = json.loads(out)
    assert (report["records_checked"], report["quarantined"]) == (508, 1)
    assert report["passed"] + report["flagged"] + report["quarantined"] == 508
    by_rule = {r["rule"]: r["findings"] for r in report["rules"]}
    assert by_rule["range.lap_time"] == 1
    assert by_rule["race_control.deleted"] == 2  # the two laps deleted for track limits
    # Per batch: a second batch (here a replay of the same facts) changes nothing.
    assert main(["replay", "--store", store]) == 0
    capsys.readouterr()
    status, runs, _ = run(capsys, "qa-report", "--store", store, "--runs")
    assert status == 0
    first, second = runs.splitlines()
    assert first.startswith("run 1: +508 records checked (")
    assert "+1 quarantined" in first
    assert second.startswith("run 2: +0 records checked (+0 passed, +0 flagged, +0 quarantined)")
    assert "findings: unchanged" in second


def test_qa_report_counts_every_quarantined_input_by_stage_and_rule(
    testdata: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The 32 damaged lines are held back by the source, before there is a derived
    # record for QA to count: the report counts them too, by stage and rule.
    assert (
        main(["ingest", str(testdata / WITH_ERRORS), "--store", store, "--session", BAHRAIN]) == 0
    )
    capsys.readouterr()
    status, table, _ = run(capsys, "qa-report", "--store", store, "--session", BAHRAIN)
    assert status == 0
    assert "quarantined in the session: 32" in table
    status, out, _ = run(
        capsys, "qa-report", "--store", store, "--session", BAHRAIN, "--format", "json"
    )
    assert status == 0
    held = json.loads(out)["quarantined_by_stage"]
    expected: dict[str, int] = {}
    for rule in WITH_ERRORS_QUARANTINED.values():
        expected[rule] = expected.get(rule, 0) + 1
    assert held == {"source": expected}
    for rule, count in expected.items():
        assert any(line.split()[1:] == [rule, str(count)] for line in table.splitlines())


def test_an_id_needs_no_session_in_a_log_of_several(
    damaged_mexico: Path, testdata: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An id is a log position, unique in the log: show and release find its session."""
    bahrain = testdata / WITH_ERRORS
    assert main(["ingest", str(bahrain), "--session", BAHRAIN, "--store", store]) == 0
    assert main(["ingest", str(damaged_mexico), "--store", store]) == 0
    capsys.readouterr()
    (lap_6,) = [int(str(e["id"])) for e in listed(capsys, store, MEXICO_SESSION)]
    status, shown, _ = run(capsys, "quarantine", "show", str(lap_6), "--store", store)
    assert status == 0
    assert "record    car 31 lap 6" in shown
    status, out, _ = run(
        capsys, "quarantine", "release", str(lap_6), "--reason", "sectors", "--store", store
    )
    assert status == 0
    assert out.startswith(f"released car 31 lap 6 (range.lap_time) of {MEXICO_SESSION}")
    status, _, err = run(capsys, "quarantine", "show", "999999", "--store", store)
    assert status == 2
    assert "no quarantined record 999999 in the current data of any session" in err
