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
from f1daemon.feed.pipeline import derive
from f1daemon.projections.current import standing_anomalies
from f1daemon.qa import Finding, QAReport, RecordRef, check_session
from f1daemon.qa.lap_rules import is_neutralised
from f1daemon.qa.verdicts import check_run
from f1daemon.services.derivation import current_events, run_report
from f1daemon.services.ingest import ingest_paths
from f1daemon.sources.archive import read_messages, topic_files
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.conftest import record_check

BAKU_2018_RACE = Path("livetiming") / "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
MEXICO_2021_QUALIFYING = (
    Path("livetiming") / "2021-11-07_Mexico_City_Grand_Prix__2021-11-06_Qualifying"
)
MONZA_2019_QUALIFYING = Path("livetiming") / "2019-09-08_Italian_Grand_Prix__2019-09-07_Qualifying"
MONACO_2023_FP2_CAPTURE = Path("f1dash-signalr-2023_Monaco") / "fp2.txt"
SHOOTOUT = "2023-04-30_Azerbaijan_Grand_Prix__2023-04-29_Sprint_Shootout"
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
    # Track limits in 2021 Mexico qualifying: car 47 lap 2 and car 22 lap 15 (as
    # FastF1 and OpenF1 number them).
    session = checked[MEXICO_2021_QUALIFYING]
    flagged = {f.record for f in findings_of(session, "race_control.deleted")}
    assert flagged == {
        RecordRef("LapCompleted", driver=47, number=2),
        RecordRef("LapCompleted", driver=22, number=15),
    }
    assert all("TRACK LIMITS" in f.reason for f in findings_of(session, "race_control.deleted"))


def test_laps_that_span_a_stay_in_the_garage_are_untimed_and_no_true_lap_is_quarantined(
    checked: dict[Path, CheckedSession],
) -> None:
    # 2021 Mexico qualifying: the feed "timed" two laps at 644.106 s and 215.177 s. Each
    # LastLapTime spans a stay in the garage: the time since the car last crossed the
    # line, not a lap's. Kept as that (FastF1 and OpenF1 leave the laps untimed), and
    # nothing is quarantined: QA removes only the impossible.
    session = checked[MEXICO_2021_QUALIFYING]
    laps = {(e.driver, e.lap): e for e in session.events if isinstance(e, LapCompleted)}
    assert (laps[(31, 8)].lap_time_ms, laps[(31, 8)].line_to_line_ms) == (None, 644_106)
    assert (laps[(55, 15)].lap_time_ms, laps[(55, 15)].line_to_line_ms) == (None, 215_177)
    for path in SESSIONS:
        assert checked[path].report.quarantined == 0, path
        assert not [e for e in checked[path].events if isinstance(e, RecordQuarantined)]


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


def test_slow_green_laps_of_a_real_session_are_kept(testdata: Path) -> None:
    # The 2023 Baku sprint shootout: 20 green laps of 150-200 s (cool-down and slow
    # preparation laps between pushes). Real laps: none is quarantined, all are in
    # the laps; the unusual among them are flagged, each with its reason.
    folder = (
        testdata / "livetiming" / "2023-04-30_Azerbaijan_Grand_Prix__2023-04-29_Sprint_Shootout"
    )
    derivation = derive("shootout", enumerate(read_messages(topic_files(folder)), start=1))
    slow = {
        (e.driver, e.lap)
        for e in derivation.events
        if isinstance(e, LapCompleted)
        and e.lap_time_ms is not None
        and 150_000 < e.lap_time_ms < 200_000
        and not (e.pit_in or e.pit_out or is_neutralised(e))
    }
    assert len(slow) == 20
    checked, report = check_run("shootout", derivation.events)
    assert report.quarantined == 0
    kept = {(e.driver, e.lap) for e in checked if isinstance(e, LapCompleted)}
    assert slow <= kept
    flags = [
        e for e in checked if isinstance(e, AnomalyDetected) and e.rule == "plausibility.lap_time"
    ]
    assert all(
        "the session's median green lap so far" in e.reason
        or "the fastest tenth of the session's green laps so far" in e.reason
        for e in flags
    )
    record_check(
        "2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint_Shootout",
        f"{len(slow)} slow green laps kept, {len(flags)} flagged as unusual for the session",
    )
