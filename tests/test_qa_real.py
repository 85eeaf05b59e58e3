"""The QA rules over real sessions: ingested into a temporary log, checked as derived.

Run with `-s` to see each session's report table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from f1daemon.domain.events import (
    AnomalyDetected,
    DerivedEvent,
    LapCompleted,
    LapDeleted,
    RecordQuarantined,
)
from f1daemon.projections.current import standing_anomalies
from f1daemon.qa import Finding, QAReport, RecordRef, check_session
from f1daemon.services.derivation import current_events, run_report
from f1daemon.services.ingest import ingest_paths
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.conftest import record_check

BAKU_2018_RACE = Path("livetiming") / "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
MEXICO_2021_QUALIFYING = (
    Path("livetiming") / "2021-11-07_Mexico_City_Grand_Prix__2021-11-06_Qualifying"
)
MONZA_2019_QUALIFYING = Path("livetiming") / "2019-09-08_Italian_Grand_Prix__2019-09-07_Qualifying"
MONACO_2023_FP2_CAPTURE = Path("f1dash-signalr-2023_Monaco") / "fp2.txt"
SESSIONS = [BAKU_2018_RACE, MEXICO_2021_QUALIFYING, MONZA_2019_QUALIFYING, MONACO_2023_FP2_CAPTURE]


@dataclass(frozen=True)
class CheckedSession:
    session: str
    events: list[DerivedEvent]
    findings: list[Finding]
    report: QAReport


@pytest.fixture(scope="module")
def checked(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Path, CheckedSession]:
    """Each session ingested once into one temporary SQLite log, and checked."""
    store = parse_store_url(f"sqlite:///{tmp_path_factory.mktemp('qa') / 'events.db'}")
    results: dict[Path, CheckedSession] = {}
    with EventLog(store) as log:
        for path in SESSIONS:
            (ingested,) = ingest_paths(log, [testdata / path])
            events = current_events(log, ingested.session, telemetry=True)
            # The findings on the records the run kept, and the report the run recorded.
            findings, kept = check_session(events)
            run = log.current_run(ingested.session)
            assert run is not None
            report = run_report(log, ingested.session, run)
            assert report is not None
            # Checking the run's output again finds the same, less what it quarantined.
            assert (kept.passed, kept.flagged, kept.quarantined) == (
                report.passed,
                report.flagged,
                0,
            )
            assert kept.records_checked == report.records_checked - report.quarantined
            results[path] = CheckedSession(ingested.session, events, findings, report)
    return results


def laps_deleted_in(events: list[DerivedEvent]) -> set[RecordRef]:
    """Laps race control deleted, read from the derived events without the QA code."""
    laps = {(e.driver, e.lap): e for e in events if isinstance(e, LapCompleted)}
    deleted = {key for key, lap in laps.items() if lap.deleted}
    for event in events:  # log order: a later decision replaces an earlier one
        if isinstance(event, LapDeleted) and event.lap is not None:
            key = (event.driver, event.lap)
            if key not in laps:
                continue
            if event.reinstated:
                deleted.discard(key)
            else:
                deleted.add(key)
    return {RecordRef("LapCompleted", driver=d, number=n) for d, n in deleted}


def findings_of(session: CheckedSession, rule: str) -> list[Finding]:
    return [f for f in session.findings if f.rule == rule]


@pytest.mark.parametrize("path", SESSIONS, ids=lambda p: p.name)
def test_real_session_report(
    checked: dict[Path, CheckedSession], path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = checked[path]
    report = session.report
    with capsys.disabled():
        print(f"\n{report.to_table()}")
    assert report.session == session.session
    assert report.records_checked > 0
    assert 0 < report.quality_score <= 1
    assert report.passed + report.flagged + report.quarantined == report.records_checked
    # Every lap race control deleted is flagged as such, and nothing else is.
    deleted = laps_deleted_in(session.events)
    assert {f.record for f in findings_of(session, "race_control.deleted")} == deleted
    # ... in the derived data itself: a flag on the lap, and an AnomalyDetected event.
    flagged_laps = {
        RecordRef("LapCompleted", driver=e.driver, number=e.lap)
        for e in session.events
        if isinstance(e, LapCompleted) and "qa:race_control.deleted" in e.flags
    }
    assert flagged_laps == deleted
    anomalies = {
        (e.driver, e.number)
        for e in session.events
        if isinstance(e, AnomalyDetected) and e.rule == "race_control.deleted"
    }
    assert anomalies == {(r.driver, r.number) for r in deleted}
    # Every non-blocking finding is an AnomalyDetected of the run (not withdrawn since).
    assert len(standing_anomalies(session.events)) == len(session.findings)
    record_check(
        session.session,
        f"QA: {report.records_checked} records, quality {report.quality_score:.4f}, "
        f"{len(deleted)} deleted laps flagged",
    )


def test_baku_2018_race_is_not_quarantined_and_its_findings_are_laps(
    checked: dict[Path, CheckedSession],
) -> None:
    session = checked[BAKU_2018_RACE]
    laps = {
        RecordRef("LapCompleted", driver=e.driver, number=e.lap)
        for e in session.events
        if isinstance(e, LapCompleted)
    }
    # A real, official race: every green lap time is plausible, pit stops are in order.
    assert session.report.quarantined == 0
    assert session.report.flagged > 0  # ... but the feed left gaps worth flagging
    assert {f.record for f in session.findings if f.record.kind == "LapCompleted"} <= laps
    # Race control deleted no lap times in this race (its messages name none).
    assert laps_deleted_in(session.events) == set()


def test_deletions_race_control_made_in_qualifying_are_flagged(
    checked: dict[Path, CheckedSession],
) -> None:
    # Track limits in 2021 Mexico qualifying: car 47 lap 3 and car 22 lap 16.
    session = checked[MEXICO_2021_QUALIFYING]
    flagged = {f.record for f in findings_of(session, "race_control.deleted")}
    assert flagged == {
        RecordRef("LapCompleted", driver=47, number=3),
        RecordRef("LapCompleted", driver=22, number=16),
    }
    assert all("TRACK LIMITS" in f.reason for f in findings_of(session, "race_control.deleted"))


def test_impossible_green_lap_times_are_quarantined_with_the_lap_as_derived(
    checked: dict[Path, CheckedSession],
) -> None:
    # 2021 Mexico qualifying: two laps the feed timed at 644.106 s and 215.177 s,
    # neither marked as an in- or out-lap nor run under a neutralisation.
    session = checked[MEXICO_2021_QUALIFYING]
    quarantined = {e.record: e for e in session.events if isinstance(e, RecordQuarantined)}
    assert set(quarantined) == {"car 31 lap 9", "car 55 lap 16"}
    assert session.report.quarantined == 2
    for record, lap_time in (("car 31 lap 9", 644_106), ("car 55 lap 16", 215_177)):
        event = quarantined[record]
        assert (event.source, event.rule, event.topic) == ("qa", "range.lap_time", "LapCompleted")
        assert event.reason.startswith(f"lap time {lap_time / 1000:.3f} s is outside 30-150 s")
        lap = LapCompleted.model_validate_json(event.payload)  # the lap, kept whole
        assert lap.lap_time_ms == lap_time
    # ... and they are no longer in the lap table.
    laps = {(e.driver, e.lap) for e in session.events if isinstance(e, LapCompleted)}
    assert not laps & {(31, 9), (55, 16)}


def test_telemetry_of_the_monaco_capture_is_checked(checked: dict[Path, CheckedSession]) -> None:
    session = checked[MONACO_2023_FP2_CAPTURE]
    samples = [f for f in session.findings if f.record.kind == "TelemetrySample"]
    assert session.report.records_checked > 20_000  # the capture's telemetry samples
    # Telemetry in the capture: the feed's throttle value 104 (a missing reading) on
    # 1,698 samples, and 8 samples that spike against both neighbours; flagged, not
    # quarantined.
    by_rule: dict[str, list[Finding]] = {}
    for finding in samples:
        by_rule.setdefault(finding.rule, []).append(finding)
    assert set(by_rule) == {"completeness.throttle_unavailable", "anomaly.telemetry"}
    assert len(by_rule["completeness.throttle_unavailable"]) == 1_698
    assert all(
        f.reason.startswith("throttle 104:") for f in by_rule["completeness.throttle_unavailable"]
    )
    assert len(by_rule["anomaly.telemetry"]) == 8
    assert all("(spike " in f.reason for f in by_rule["anomaly.telemetry"])
