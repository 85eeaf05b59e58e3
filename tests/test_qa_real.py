"""The QA rules over real sessions: ingested into a temporary log, checked as derived.

Run with `-s` to see each session's report table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from f1daemon.domain.events import DerivedEvent, LapCompleted, LapDeleted
from f1daemon.ingest import ingest_paths
from f1daemon.qa import Finding, QAReport, RecordRef, check_session
from f1daemon.store.derivation import current_events
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
            events = current_events(log, ingested.session)
            findings, report = check_session(events)
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


def test_telemetry_of_the_monaco_capture_is_checked(checked: dict[Path, CheckedSession]) -> None:
    session = checked[MONACO_2023_FP2_CAPTURE]
    samples = [f for f in session.findings if f.record.kind == "TelemetrySample"]
    assert session.report.records_checked > 20_000  # the capture's telemetry samples
    # The only out-of-range telemetry in the capture is the feed's throttle value 104.
    assert samples
    assert {f.rule for f in samples} == {"range.throttle"}
    assert all(f.reason.startswith("throttle 104 %") for f in samples)
