"""Invariants of the QA rules and report, over generated events.

Events are built through the pydantic models (so they are events the log could hold),
with values well outside what a feed sends: huge numbers, NaN, unequal telemetry
columns, repeated keys.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon.domain.events import (
    AnomalyDetected,
    DerivedEvent,
    Event,
    LapCompleted,
    LapDeleted,
    PitStop,
    QualityChecked,
    QuarantineReleased,
    RecordQuarantined,
    SessionStateChanged,
    TelemetryBatch,
    WeatherObserved,
)
from f1daemon.projections.current import current_data
from f1daemon.qa import RULES, QAReport, QASettings, SessionRecords, check_session, outcomes
from f1daemon.qa.rules import Finding, check_records
from f1daemon.qa.verdicts import StreamingQA, check_run

SESSION = "2024-01-01_Test_Grand_Prix/2024-01-01_Race"

# Small ranges make repeated keys (same car, lap, time) likely; the wide ones test limits.
# (Hypothesis picks each alternative of `one_of` about as often: the small one twice.)
drivers = st.one_of(st.integers(1, 2), st.integers(1, 2), st.integers())
lap_numbers = st.one_of(st.integers(1, 4), st.integers(1, 4), st.integers(min_value=1))
times_ms = st.one_of(st.integers(0, 20_000), st.integers())
lap_times = st.one_of(st.none(), st.integers(85_000, 95_000), st.integers())
sectors = st.one_of(st.none(), st.integers(20_000, 40_000), st.integers())
utcs = st.one_of(st.none(), st.datetimes(timezones=st.one_of(st.none(), st.just(UTC))))
statuses = st.lists(
    st.one_of(st.sampled_from(["1", "2", "4", "5", "6", "7"]), st.text(max_size=2)), max_size=3
).map(tuple)
temperatures = st.one_of(st.none(), st.floats(-20, 80), st.floats())
channel_values = st.lists(st.one_of(st.none(), st.integers(-5, 20_000), st.integers()), max_size=6)

laps = st.builds(
    LapCompleted,
    session=st.just(SESSION),
    session_time_ms=times_ms,
    utc=utcs,
    driver=drivers,
    lap=lap_numbers,
    lap_time_ms=lap_times,
    sector1_ms=sectors,
    sector2_ms=sectors,
    sector3_ms=sectors,
    pit_in=st.booleans(),
    pit_out=st.booleans(),
    compound=st.none(),
    stint=st.none(),
    track_statuses=statuses,
    deleted=st.booleans(),
)
lap_deletions = st.builds(
    LapDeleted,
    session=st.just(SESSION),
    session_time_ms=times_ms,
    utc=utcs,
    driver=drivers,
    lap=st.one_of(st.none(), lap_numbers),
    lap_time_ms=lap_times,
    reinstated=st.booleans(),
    reason=st.sampled_from(["DELETED - TRACK LIMITS", "REINSTATED"]),
)
pit_stops = st.builds(
    PitStop,
    session=st.just(SESSION),
    session_time_ms=times_ms,
    utc=utcs,
    driver=drivers,
    stop=st.integers(1, 3),
    in_lap=st.one_of(st.none(), lap_numbers),
    out_lap=st.one_of(st.none(), lap_numbers),
    pit_exit_time_ms=st.none(),
    pit_lane_ms=st.none(),
)
weather = st.builds(
    WeatherObserved,
    session=st.just(SESSION),
    session_time_ms=times_ms,
    utc=utcs,
    air_temp_c=temperatures,
    track_temp_c=temperatures,
    humidity_pct=temperatures,
    pressure_mbar=st.none(),
    rainfall=st.none(),
    wind_direction_deg=st.none(),
    wind_speed_mps=st.none(),
)
telemetry = st.builds(
    TelemetryBatch,
    session=st.just(SESSION),
    session_time_ms=times_ms,
    utc=utcs,
    utc_ms=st.lists(times_ms, max_size=6).map(tuple),
    driver=st.lists(drivers, max_size=6).map(tuple),
    rpm=channel_values.map(tuple),
    speed=channel_values.map(tuple),
    gear=channel_values.map(tuple),
    throttle=channel_values.map(tuple),
    brake=channel_values.map(tuple),
    drs=channel_values.map(tuple),
)
session_states = st.builds(
    SessionStateChanged,
    session=st.just(SESSION),
    session_time_ms=times_ms,
    utc=utcs,
    state=st.sampled_from(["PRE_SESSION", "ACTIVE", "POST_SESSION", "COMPLETED"]),
    feed_status=st.just("Started"),
)
events = st.lists(
    st.one_of(laps, lap_deletions, pit_stops, weather, telemetry, session_states), max_size=40
)
# Small windows so that the anomaly detector scores the few laps generated.
qa_settings = st.builds(
    QASettings,
    telemetry_interval_ms=st.integers(0, 10_000),
    anomaly_window=st.integers(2, 8),
    anomaly_min_samples=st.just(2),
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(events=events, chosen=qa_settings)
def test_every_rule_runs_on_any_events_and_reports_only_checked_records(
    events: list[Event], chosen: QASettings
) -> None:
    records = SessionRecords.of(events)
    checked = records.records()
    for rule in RULES:
        for finding in rule.check(records, chosen):  # never raises
            assert finding.rule == rule.name
            assert finding.severity == ("blocking" if rule.blocking else "flag")
            assert finding.record in checked
            assert finding.reason


@SETTINGS
@given(events=events, chosen=qa_settings)
def test_every_checked_record_ends_in_exactly_one_outcome(
    events: list[Event], chosen: QASettings
) -> None:
    findings, report = check_session(events, settings=chosen)
    checked = SessionRecords.of(events).records()
    blocked = {f.record for f in findings if f.severity == "blocking"}
    found = {f.record for f in findings}
    # Recounted independently of the report's own bookkeeping.
    assert report.records_checked == len(checked)
    assert report.quarantined == len(blocked)
    assert report.flagged == len(found - blocked)
    assert report.passed == len(checked - found)
    assert report.passed + report.flagged + report.quarantined == report.records_checked
    verdicts = outcomes(checked, findings)
    assert set(verdicts) == checked
    assert {r for r, v in verdicts.items() if v == "quarantined"} == blocked
    assert sum(r.findings for r in report.rules) == len(findings)
    if checked:
        usable = report.passed + report.flagged
        assert report.quality_score == usable / report.records_checked
    else:
        assert report.quality_score == 1.0
    assert 0.0 <= report.quality_score <= 1.0


@SETTINGS
@given(events=events, chosen=qa_settings)
def test_the_report_is_deterministic(events: list[Event], chosen: QASettings) -> None:
    first = check_session(events, settings=chosen)
    second = check_session(list(events), settings=chosen)
    assert first == second
    assert first[1].to_json() == second[1].to_json()
    assert first[1].to_table() == second[1].to_table()


ORDER_INDEPENDENT = [rule for rule in RULES if not rule.depends_on_order]


@SETTINGS
# Laps alone as well: many laps of few cars make the cross-lap rules' cases likely.
@given(data=st.data(), events=st.one_of(events, st.lists(laps, max_size=20)), chosen=qa_settings)
def test_order_independent_rules_do_not_depend_on_the_order_of_events(
    data: st.DataObject, events: list[Event], chosen: QASettings
) -> None:
    expected = check_session(events, rules=ORDER_INDEPENDENT, settings=chosen)
    # Reversed: surely another order (a drawn permutation shrinks towards the identity).
    for order in (events[::-1], data.draw(st.permutations(events))):
        assert check_session(order, rules=ORDER_INDEPENDENT, settings=chosen) == expected


def test_only_the_arrival_order_rule_depends_on_order() -> None:
    # If another rule started to depend on order, it must say so (and leave the test above).
    assert [rule.name for rule in RULES if rule.depends_on_order] == [
        "temporal.telemetry_backwards"
    ]


# -- the verdicts applied to a run's events (f1daemon.qa.verdicts) ---------------------


def kept_and_quarantined(checked: list[DerivedEvent]) -> tuple[set[str], list[str]]:
    """The records a checked run kept (as the projections read it: its corrections
    applied), and those it quarantined (one entry each)."""
    kept = {record.describe() for record in SessionRecords.of(current_data(checked)).records()}
    quarantined = [
        e.record for e in checked if isinstance(e, RecordQuarantined) and e.record is not None
    ]
    return kept, quarantined


def samples_in(events: list[Event]) -> int:
    return sum(len(SessionRecords.of([e]).telemetry) for e in events)


@SETTINGS
@given(events=events, chosen=qa_settings)
def test_every_record_is_either_kept_or_quarantined_never_both_never_neither(
    events: list[DerivedEvent], chosen: QASettings
) -> None:
    checked, report = check_run(SESSION, events, settings=chosen)
    before = {record.describe() for record in SessionRecords.of(events).records()}
    kept, quarantined = kept_and_quarantined(checked)
    assert kept.isdisjoint(quarantined)  # never both
    assert kept | set(quarantined) == before  # never neither
    assert report.quarantined == len(set(quarantined))
    assert report.records_checked == len(before)
    # Nothing is dropped: every telemetry row is in a batch or in the quarantine, and
    # every other event is still there (perhaps as its quarantine).
    rows_before = samples_in(list(events))
    rows_kept = samples_in(list(checked))
    quarantined_rows = sum(
        isinstance(e, RecordQuarantined) and e.topic == "TelemetrySample" for e in checked
    )
    assert rows_kept + quarantined_rows == rows_before
    others = [e for e in events if not isinstance(e, TelemetryBatch)]
    assert len([e for e in checked if not isinstance(e, AnomalyDetected | QualityChecked)]) >= len(
        others
    )
    # The run ends with its report; each non-blocking finding on a kept record is an event.
    assert isinstance(checked[-1], QualityChecked)
    assert QAReport.of(checked[-1]) == report
    # Streaming, a car's telemetry gaps are judged against its latest sample: a sample
    # that arrives out of time order may leave a gap of the whole-session view unseen.
    gap = "temporal.telemetry_gap"
    flags = sum(isinstance(e, AnomalyDetected) and e.rule != gap for e in checked)
    findings, _ = check_session(events, settings=chosen)
    expected = [
        f for f in findings if f.severity == "flag" and f.record.describe() not in quarantined
    ]
    assert flags == sum(f.rule != gap for f in expected)
    gaps = sum(isinstance(e, AnomalyDetected) and e.rule == gap for e in checked)
    assert gaps <= sum(f.rule == gap for f in expected)


@SETTINGS
@given(events=events, chosen=qa_settings, data=st.data())
def test_a_released_record_is_kept_flagged_and_nothing_else_changes(
    events: list[DerivedEvent], chosen: QASettings, data: st.DataObject
) -> None:
    checked, report = check_run(SESSION, events, settings=chosen)
    held = sorted({e.record or "" for e in checked if isinstance(e, RecordQuarantined)})
    if not held:
        return
    record = data.draw(st.sampled_from(held))
    rules = {e.rule for e in checked if isinstance(e, RecordQuarantined) and e.record == record}
    releases = [
        QuarantineReleased(
            session=SESSION,
            source="operator",
            stream="quarantine-releases",
            sequence=i,
            rule=rule,
            record=record,
            reason="checked by hand",
            released_by="tester",
            quarantine_position=1,
            at=datetime(2024, 1, 1, tzinfo=UTC),
        )
        for i, rule in enumerate(
            # Every blocking rule that holds it (a record may break several).
            sorted(
                f.rule
                for f in check_session(events, settings=chosen)[0]
                if f.severity == "blocking" and f.record.describe() == record
            ),
            start=1,
        )
    ]
    assert rules <= {r.rule for r in releases}
    again, after = check_run(SESSION, events, releases, settings=chosen)
    kept, quarantined = kept_and_quarantined(again)
    assert record in kept
    assert record not in quarantined
    assert set(quarantined) == set(held) - {record}  # the others stay quarantined
    assert after.quarantined == report.quarantined - 1
    assert after.flagged == report.flagged + 1
    assert any(isinstance(e, AnomalyDetected) and e.record == record and e.released for e in again)


@SETTINGS
@given(events=events, chosen=qa_settings)
def test_checking_a_run_is_deterministic(events: list[DerivedEvent], chosen: QASettings) -> None:
    first = check_run(SESSION, events, settings=chosen)
    second = check_run(SESSION, list(events), settings=chosen)
    assert first == second


def _race_laps(draw: st.DrawFn) -> list[DerivedEvent]:
    """Two cars' laps of a race in the order they are completed, mostly: around 90 s
    with a few outliers, some pit laps, a few laps late or twice, race control's
    deletions among them."""
    laps: list[LapCompleted] = []
    for driver in (1, 44):
        for number in range(1, draw(st.integers(2, 30)) + 1):
            laps.append(
                LapCompleted(
                    session=SESSION,
                    session_time_ms=number * 90_000 + driver,
                    utc=None,
                    driver=driver,
                    lap=number,
                    lap_time_ms=draw(st.one_of(st.integers(89_000, 91_000), lap_times)),
                    sector1_ms=30_000,
                    sector2_ms=30_000,
                    sector3_ms=30_000,
                    pit_in=number % 9 == 0,
                    pit_out=False,
                    compound=None,
                    stint=None,
                    track_statuses=("1",),
                    deleted=draw(st.integers(0, 20)) == 0,
                )
            )
    laps.sort(key=lambda e: e.session_time_ms)
    out: list[DerivedEvent] = list(laps)
    for _ in range(draw(st.integers(0, 4))):  # a lap arrives late, or twice
        moved = out.pop(draw(st.integers(0, len(out) - 1)))
        out.insert(draw(st.integers(0, len(out))), moved)
        if draw(st.booleans()):
            out.append(moved)
    for _ in range(draw(st.integers(0, 3))):
        target = draw(st.sampled_from(laps))
        out.insert(
            draw(st.integers(0, len(out))),
            LapDeleted(
                session=SESSION,
                session_time_ms=draw(times_ms),
                utc=None,
                driver=target.driver,
                lap=target.lap,
                lap_time_ms=target.lap_time_ms,
                reinstated=draw(st.booleans()),
                reason="DELETED - TRACK LIMITS",
            ),
        )
    return out


race_laps = st.composite(_race_laps)()
lap_side_rules = [r for r in RULES if not r.name.startswith(("temporal.", "anomaly.telemetry"))]


@SETTINGS
@given(events=st.one_of(events, race_laps), chosen=qa_settings)
def test_lap_side_findings_streamed_one_record_at_a_time_equal_the_whole_sessions(
    events: list[DerivedEvent], chosen: QASettings
) -> None:
    # Each rule's verdicts are extended record by record (f1daemon.qa.car_checks);
    # after every record they must be what the rules say over everything so far.
    qa = StreamingQA(SESSION, lap_side_rules, chosen)
    for count, event in enumerate(events, start=1):
        qa.on_events([event])
        if count % 7 == 0 or count == len(events):
            whole = check_records(SessionRecords.of(events[:count]), lap_side_rules, chosen)
            assert sorted(qa.findings(), key=Finding.sort_key) == whole
