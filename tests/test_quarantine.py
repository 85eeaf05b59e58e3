"""The quarantine end to end, through the command line, on real recordings.

`with_errors.txt` must put exactly its damaged lines in quarantine, each with its
reason; 2021 Mexico qualifying has two green laps timed at 644 s and 215 s that QA
quarantines, one of which an operator then releases.
"""

from __future__ import annotations

import json
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


def test_qa_quarantine_show_and_release_on_a_real_session(
    testdata: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(testdata / MEXICO), "--store", store]) == 0
    capsys.readouterr()
    entries = listed(capsys, store, MEXICO_SESSION)
    assert [(e["stage"], e["rule"], e["record"]) for e in entries] == [
        ("qa", "range.lap_time", "car 31 lap 9"),
        ("qa", "range.lap_time", "car 55 lap 16"),
    ]
    lap_9 = int(str(entries[0]["id"]))

    status, shown, _ = run(capsys, "quarantine", "show", str(lap_9), "--store", store)
    assert status == 0
    assert "rule      range.lap_time" in shown
    assert "record    car 31 lap 9" in shown
    assert '"lap_time_ms": 644106' in shown  # the lap as derived, indented JSON
    assert f"f1daemon quarantine release {lap_9}" in shown

    status, out, _ = run(
        capsys,
        "quarantine",
        "release",
        str(lap_9),
        "--reason",
        "the car stopped in the garage on this lap",
        "--by",
        "strategy",
        "--store",
        store,
    )
    assert status == 0
    assert out.startswith(f"released car 31 lap 9 (range.lap_time) of {MEXICO_SESSION}")
    assert "now 1 quarantined" in out
    assert [e["record"] for e in listed(capsys, store, MEXICO_SESSION)] == ["car 55 lap 16"]

    with EventLog(parse_store_url(store)) as log:
        events = current_events(log, MEXICO_SESSION)
        (lap,) = [e for e in events if isinstance(e, LapCompleted) and (e.driver, e.lap) == (31, 9)]
        assert lap.lap_time_ms == 644_106
        assert "qa:range.lap_time" in lap.flags
        (flag,) = [
            e
            for e in events
            if isinstance(e, AnomalyDetected)
            and (e.record, e.rule) == ("car 31 lap 9", "range.lap_time")
        ]
        assert flag.released
        assert flag.reason.startswith("released by strategy (the car stopped in the garage")
        # The release is a fact of the session, so every run stays verifiable ...
        releases = [f for _, f in log.inputs(MEXICO_SESSION) if isinstance(f, QuarantineReleased)]
        assert [(r.rule, r.record, r.released_by) for r in releases] == [
            ("range.lap_time", "car 31 lap 9", "strategy")
        ]
        for _, completed in log.derivation_runs(MEXICO_SESSION):
            assert verify_run(log, MEXICO_SESSION, completed).problems == ()
        # ... and a replay up to before the release quarantines the lap again.
        before = releases_position(log) - 1
        replayed = replay(log, MEXICO_SESSION, until=str(before))
        report = run_report(log, MEXICO_SESSION, replayed.run)
        assert report is not None
        assert report.quarantined == 2


def releases_position(log: EventLog) -> int:
    return next(p for p, f in log.inputs(MEXICO_SESSION) if isinstance(f, QuarantineReleased))


def test_qa_report_command_prints_the_runs_report(
    testdata: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(testdata / MEXICO), "--store", store]) == 0
    capsys.readouterr()
    status, table, _ = run(capsys, "qa-report", "--store", store)
    assert status == 0
    assert table.startswith(f"QA report: {MEXICO_SESSION}")
    assert "quarantined             2" in table
    status, out, _ = run(capsys, "qa-report", "--store", store, "--format", "json")
    report = json.loads(out)
    assert (report["records_checked"], report["quarantined"]) == (528, 2)
    assert report["passed"] + report["flagged"] + report["quarantined"] == 528
    by_rule = {r["rule"]: r["findings"] for r in report["rules"]}
    assert by_rule["range.lap_time"] == 2
    assert by_rule["race_control.deleted"] == 2  # the two laps deleted for track limits
    # Per batch: a second batch (here a replay of the same facts) changes nothing.
    assert main(["replay", "--store", store]) == 0
    capsys.readouterr()
    status, runs, _ = run(capsys, "qa-report", "--store", store, "--runs")
    assert status == 0
    first, second = runs.splitlines()
    assert first.startswith("run 1: +528 records checked (")
    assert "+2 quarantined" in first
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
