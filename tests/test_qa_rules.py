"""Each QA rule on hand-built events: one case it must report and one it must pass."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from f1daemon.domain.events import (
    Event,
    LapCompleted,
    LapDeleted,
    PitStop,
    SessionStateChanged,
    TelemetryBatch,
    WeatherObserved,
)
from f1daemon.qa import (
    RULES,
    RULES_BY_NAME,
    Finding,
    QASettings,
    RecordRef,
    SessionRecords,
    check_session,
)

SESSION = "2024-01-01_Test_Grand_Prix/2024-01-01_Race"
T0_MS = 1_700_000_000_000


def lap(driver: int = 44, number: int = 5, **changes: Any) -> LapCompleted:
    """A clean green racing lap whose sectors add up; `changes` break it."""
    fields: dict[str, Any] = {
        "session": SESSION,
        "session_time_ms": 1_000_000 + number * 90_000,
        "utc": None,
        "driver": driver,
        "lap": number,
        "lap_time_ms": 90_000,
        "sector1_ms": 30_000,
        "sector2_ms": 35_000,
        "sector3_ms": 25_000,
        "pit_in": False,
        "pit_out": False,
        "compound": "SOFT",
        "stint": 1,
        "track_statuses": ("1",),
    }
    return LapCompleted(**(fields | changes))


def weather(**changes: Any) -> WeatherObserved:
    fields: dict[str, Any] = {
        "session": SESSION,
        "session_time_ms": 60_000,
        "utc": None,
        "air_temp_c": 25.0,
        "track_temp_c": 38.0,
        "humidity_pct": 50.0,
        "pressure_mbar": 1013.0,
        "rainfall": False,
        "wind_direction_deg": 180,
        "wind_speed_mps": 1.5,
    }
    return WeatherObserved(**(fields | changes))


def telemetry(
    times_ms: list[int], columns: dict[str, list[int | None]] | None = None, driver: int = 1
) -> TelemetryBatch:
    """One car's samples at `T0_MS + t`; channels default to plausible values."""
    rows = len(times_ms)

    def column(name: str, default: int) -> tuple[int | None, ...]:
        return tuple((columns or {}).get(name, [default] * rows))

    return TelemetryBatch(
        session=SESSION,
        session_time_ms=0,
        utc=None,
        utc_ms=tuple(T0_MS + t for t in times_ms),
        driver=(driver,) * rows,
        rpm=column("rpm", 11_000),
        speed=column("speed", 250),
        gear=column("gear", 7),
        throttle=column("throttle", 100),
        brake=column("brake", 0),
        drs=column("drs", 0),
    )


def pit_stop(in_lap: int | None, out_lap: int | None) -> PitStop:
    return PitStop(
        session=SESSION,
        session_time_ms=5_000_000,
        utc=None,
        driver=44,
        stop=1,
        in_lap=in_lap,
        out_lap=out_lap,
        pit_exit_time_ms=None,
        pit_lane_ms=None,
    )


def findings_of(
    rule_name: str, events: Sequence[Event], settings: QASettings | None = None
) -> list[Finding]:
    return RULES_BY_NAME[rule_name].check(SessionRecords.of(events), settings)


def lap_record(driver: int, number: int) -> RecordRef:
    return RecordRef("LapCompleted", driver=driver, number=number)


def sample_record(driver: int, t_ms: int) -> RecordRef:
    return RecordRef("TelemetrySample", driver=driver, time_ms=T0_MS + t_ms)


def only_record(findings: list[Finding]) -> RecordRef:
    (finding,) = findings
    assert finding.reason  # an operator is told why
    return finding.record


def test_rules_have_unique_names_and_versions() -> None:
    assert len({rule.name for rule in RULES}) == len(RULES)
    assert all(rule.version >= 1 and rule.description for rule in RULES)


# -- value ranges ---------------------------------------------------------------------


@pytest.mark.parametrize("lap_time_ms", [0, -5, 4 * 3_600_000 + 1])
def test_a_lap_time_that_is_not_a_time_is_quarantined(lap_time_ms: int) -> None:
    (finding,) = findings_of("range.lap_time", [lap(lap_time_ms=lap_time_ms)])
    assert finding.record == lap_record(44, 5)
    assert finding.severity == "blocking"
    assert "corrupt" in finding.reason


@pytest.mark.parametrize(
    "changes",
    [
        {"lap_time_ms": 1},
        {"lap_time_ms": 29_999},
        {"lap_time_ms": 196_000},  # a wet lap: slow, true
        {"lap_time_ms": 4 * 3_600_000},
        {"lap_time_ms": 200_000, "track_statuses": ("1", "4")},  # safety car
        {"lap_time_ms": 200_000, "pit_in": True},
        {"lap_time_ms": None},
    ],
)
def test_a_true_lap_however_slow_or_fast_is_never_quarantined(changes: dict[str, Any]) -> None:
    assert findings_of("range.lap_time", [lap(**changes)]) == []


def _green(number: int, lap_time_ms: int, driver: int = 44) -> LapCompleted:
    return lap(number=number, lap_time_ms=lap_time_ms, driver=driver).model_copy(
        update={"session_time_ms": number * 100_000 + driver}
    )


def test_a_green_lap_far_from_the_sessions_pace_so_far_is_flagged() -> None:
    # Ten green laps of about 90 s (two cars); then one of 200 s and one of 70 s.
    laps = [_green(n, 90_000 + 100 * n, driver) for n in range(2, 7) for driver in (44, 1)]
    slow, fast, usual = _green(8, 200_000), _green(9, 70_000), _green(10, 95_000)
    findings = findings_of("plausibility.lap_time", [*laps, slow, fast, usual])
    assert {f.record for f in findings} == {lap_record(44, 8), lap_record(44, 9)}
    assert all(f.severity == "flag" for f in findings)
    (slow_finding,) = [f for f in findings if f.record == lap_record(44, 8)]
    assert "2.21x the session's median green lap so far (90.400 s, 10 laps)" in slow_finding.reason
    # Before ten laps there is no pace to judge by; neutralised and pit laps are not judged.
    assert findings_of("plausibility.lap_time", [*laps[:9], _green(8, 200_000)]) == []
    behind_sc = slow.model_copy(update={"track_statuses": ("4",)})
    assert findings_of("plausibility.lap_time", [*laps, behind_sc]) == []


def test_a_wet_session_is_judged_by_its_own_pace() -> None:
    # The 2023 Baku sprint in the wet: every car at 155-196 s, none of them unusual.
    laps = [_green(n, 155_000 + 3_000 * n, driver) for n in range(2, 14) for driver in (44, 1)]
    assert findings_of("plausibility.lap_time", laps) == []
    assert findings_of("range.lap_time", laps) == []


@pytest.mark.parametrize(
    ("rule", "channel", "bad", "good"),
    [
        ("range.speed", "speed", 401, 400),
        ("range.speed", "speed", -1, 0),
        ("range.rpm", "rpm", 15_501, 15_500),
        ("range.gear", "gear", 9, 8),
        ("range.gear", "gear", -1, 0),
        ("range.throttle", "throttle", 105, 100),
        ("range.throttle", "throttle", 101, 0),
        ("range.throttle", "throttle", -1, 104),  # 104: the feed's missing reading
    ],
)
def test_telemetry_channel_ranges(rule: str, channel: str, bad: int, good: int) -> None:
    batch = telemetry([0, 250, 500], {channel: [good, bad, None]})
    findings = findings_of(rule, [batch])
    assert only_record(findings) == sample_record(1, 250)
    assert findings[0].severity == "blocking"
    assert findings_of(rule, [telemetry([0, 250], {channel: [good, None]})]) == []


def test_the_feeds_missing_throttle_reading_is_flagged_not_quarantined() -> None:
    batch = telemetry([0, 250], {"throttle": [104, 100]})
    assert findings_of("range.throttle", [batch]) == []
    findings = findings_of("completeness.throttle_unavailable", [batch])
    assert only_record(findings) == sample_record(1, 0)
    assert findings[0].severity == "flag"


@pytest.mark.parametrize(
    ("rule", "field", "bad", "good"),
    [
        ("range.track_temperature", "track_temp_c", 70.5, 70.0),
        ("range.track_temperature", "track_temp_c", -10.5, -10.0),
        ("range.air_temperature", "air_temp_c", 50.5, 50.0),
        ("range.air_temperature", "air_temp_c", -11.0, -10.0),
        ("range.humidity", "humidity_pct", 100.5, 100.0),
        ("range.humidity", "humidity_pct", -0.5, 0.0),
        ("range.humidity", "humidity_pct", float("nan"), None),
    ],
)
def test_weather_ranges(rule: str, field: str, bad: float, good: float | None) -> None:
    findings = findings_of(rule, [weather(**{field: bad})])
    assert only_record(findings) == RecordRef("WeatherObserved", time_ms=60_000)
    assert findings_of(rule, [weather(**{field: good})]) == []


# -- consistency ----------------------------------------------------------------------


def test_sectors_that_do_not_sum_to_the_lap_time_are_flagged() -> None:
    findings = findings_of("consistency.sector_sum", [lap(sector3_ms=25_101)])
    assert only_record(findings) == lap_record(44, 5)
    assert findings[0].severity == "flag"
    assert "+101 ms" in findings[0].reason


def test_sectors_within_100_ms_or_incomplete_pass() -> None:
    assert findings_of("consistency.sector_sum", [lap(sector3_ms=25_100)]) == []
    assert findings_of("consistency.sector_sum", [lap(sector3_ms=None)]) == []


def test_track_far_below_air_is_flagged() -> None:
    findings = findings_of(
        "consistency.track_below_air", [weather(air_temp_c=30, track_temp_c=19.9)]
    )
    assert only_record(findings) == RecordRef("WeatherObserved", time_ms=60_000)
    assert (
        findings_of("consistency.track_below_air", [weather(air_temp_c=30, track_temp_c=20)]) == []
    )


def test_lap_number_going_backwards_is_flagged() -> None:
    later_but_lower = lap(number=4, session_time_ms=5_000_000)
    findings = findings_of("consistency.lap_order", [lap(number=5), later_but_lower])
    assert only_record(findings) == lap_record(44, 4)
    # Increasing numbers pass, and other cars' laps do not interfere.
    assert findings_of("consistency.lap_order", [lap(number=4), lap(number=5), lap(7, 3)]) == []


def test_pit_exit_before_entry_is_quarantined() -> None:
    findings = findings_of("consistency.pit_order", [pit_stop(in_lap=12, out_lap=11)])
    assert only_record(findings) == RecordRef("PitStop", driver=44, number=1)
    assert findings[0].severity == "blocking"
    assert findings_of("consistency.pit_order", [pit_stop(in_lap=12, out_lap=12)]) == []
    assert findings_of("consistency.pit_order", [pit_stop(in_lap=12, out_lap=None)]) == []


# -- completeness ---------------------------------------------------------------------


def test_timed_lap_missing_a_sector_is_flagged() -> None:
    findings = findings_of("completeness.missing_sectors", [lap(sector2_ms=None)])
    assert only_record(findings) == lap_record(44, 5)
    assert "sector 2" in findings[0].reason
    assert findings_of("completeness.missing_sectors", [lap()]) == []
    untimed = lap(lap_time_ms=None, sector2_ms=None)
    assert findings_of("completeness.missing_sectors", [untimed]) == []


def test_lap_without_time_is_flagged_unless_first_or_out_lap() -> None:
    findings = findings_of("completeness.missing_lap_time", [lap(lap_time_ms=None)])
    assert only_record(findings) == lap_record(44, 5)
    exempt = [lap(number=1, lap_time_ms=None), lap(number=6, lap_time_ms=None, pit_out=True)]
    assert findings_of("completeness.missing_lap_time", exempt) == []


# -- uniqueness -----------------------------------------------------------------------


def test_duplicate_lap_is_flagged_once_per_key() -> None:
    findings = findings_of("uniqueness.duplicate_lap", [lap(), lap(lap_time_ms=91_000), lap(16)])
    assert only_record(findings) == lap_record(44, 5)
    assert findings_of("uniqueness.duplicate_lap", [lap(number=5), lap(number=6)]) == []


# -- temporal -------------------------------------------------------------------------


def test_telemetry_going_backwards_is_flagged_in_arrival_order() -> None:
    events: list[Event] = [telemetry([0, 300]), telemetry([200, 600])]
    assert only_record(findings_of("temporal.telemetry_backwards", events)) == sample_record(1, 200)
    in_order: list[Event] = [telemetry([0, 300]), telemetry([600]), telemetry([0], driver=2)]
    assert findings_of("temporal.telemetry_backwards", in_order) == []


def test_telemetry_gap_longer_than_expected_is_flagged() -> None:
    events: list[Event] = [telemetry([0, 250, 5_251, 5_500])]
    findings = findings_of("temporal.telemetry_gap", events)
    assert only_record(findings) == sample_record(1, 5_251)
    assert findings_of("temporal.telemetry_gap", [telemetry([0, 5_000])]) == []
    # The interval is a setting.
    wider = QASettings(telemetry_interval_ms=6_000)
    assert findings_of("temporal.telemetry_gap", events, wider) == []


def test_telemetry_gap_outside_the_running_session_passes() -> None:
    def state(at_ms: int, name: str) -> SessionStateChanged:
        utc = datetime.fromtimestamp((T0_MS + at_ms) / 1000, tz=UTC)
        return SessionStateChanged(
            session=SESSION, session_time_ms=at_ms, utc=utc, state=name, feed_status=name
        )

    # Running from 10 s to 20 s: a gap from 0 s to 10 s is before the start.
    running = [state(10_000, "ACTIVE"), state(20_000, "POST_SESSION")]
    before_start: list[Event] = [*running, telemetry([0, 10_000, 10_250])]
    assert findings_of("temporal.telemetry_gap", before_start) == []
    within: list[Event] = [*running, telemetry([10_000, 19_000])]
    assert only_record(findings_of("temporal.telemetry_gap", within)) == sample_record(1, 19_000)


# -- race control ---------------------------------------------------------------------


def deletion(number: int | None, *, at_ms: int, reinstated: bool = False) -> LapDeleted:
    return LapDeleted(
        session=SESSION,
        session_time_ms=at_ms,
        utc=None,
        driver=44,
        lap=number,
        lap_time_ms=90_000,
        reinstated=reinstated,
        reason="CAR 44 (HAM) TIME 1:30.000 DELETED - TRACK LIMITS AT TURN 4",
    )


def test_deleted_laps_are_flagged() -> None:
    marked = findings_of("race_control.deleted", [lap(deleted=True)])
    assert only_record(marked) == lap_record(44, 5)
    assert marked[0].severity == "flag"
    later = findings_of("race_control.deleted", [lap(), deletion(5, at_ms=9_000_000)])
    assert only_record(later) == lap_record(44, 5)
    assert "TRACK LIMITS" in later[0].reason


def test_undeleted_and_reinstated_laps_pass() -> None:
    assert findings_of("race_control.deleted", [lap()]) == []
    reinstated: list[Event] = [
        lap(),
        deletion(5, at_ms=9_000_000),
        deletion(5, at_ms=9_500_000, reinstated=True),
    ]
    assert findings_of("race_control.deleted", reinstated) == []
    # A deletion of a lap that was never derived concerns no record.
    assert findings_of("race_control.deleted", [lap(), deletion(9, at_ms=9_000_000)]) == []


# -- statistical anomalies ------------------------------------------------------------


def steady_laps(driver: int = 44, count: int = 20) -> list[LapCompleted]:
    # Small, varied differences so the window has a spread to score against.
    return [
        lap(driver, n, lap_time_ms=90_000 + (n * 37) % 200, sector3_ms=None)
        for n in range(2, 2 + count)
    ]


def test_an_outlying_lap_time_is_flagged() -> None:
    laps = steady_laps()
    laps[15] = lap(44, laps[15].lap, lap_time_ms=97_000, sector3_ms=None)
    findings = findings_of("anomaly.lap_time", laps)
    assert lap_record(44, laps[15].lap) in {f.record for f in findings}
    assert all(f.severity == "flag" for f in findings)


def test_steady_lap_times_and_unclean_laps_pass() -> None:
    assert findings_of("anomaly.lap_time", steady_laps()) == []
    # The same slow lap under a safety car is not a clean lap: it is not fed at all.
    laps = steady_laps()
    laps[15] = lap(44, laps[15].lap, lap_time_ms=97_000, track_statuses=("4",))
    assert findings_of("anomaly.lap_time", laps) == []


def varied_telemetry(rows: int, **changes: list[int | None]) -> TelemetryBatch:
    """One car at 250 ms a sample, its rpm and speed varying a little, as on track."""
    columns: dict[str, list[int | None]] = {
        "rpm": [11_000 + (i * 53) % 300 for i in range(rows)],
        "speed": [250 + (i * 7) % 20 for i in range(rows)],
    }
    return telemetry([250 * i for i in range(rows)], columns | changes)


def test_a_telemetry_spike_is_flagged_with_its_channel() -> None:
    batch = varied_telemetry(40)
    rpm = list(batch.rpm)
    rpm[30] = 4_000  # one sample far below both neighbours
    findings = findings_of("anomaly.telemetry", [varied_telemetry(40, rpm=rpm)])
    assert only_record(findings) == sample_record(1, 250 * 30)
    assert findings[0].severity == "flag"
    assert findings[0].reason.startswith("rpm 4000 (spike -")


def test_rpm_stuck_while_moving_is_flagged_once() -> None:
    stuck = varied_telemetry(80, rpm=[11_000] * 80)
    findings = findings_of("anomaly.telemetry", [stuck])
    # Reported once, when the run of identical values reaches 50 samples.
    assert only_record(findings) == sample_record(1, 250 * 49)
    assert "rpm 11000 (flatline +50.0)" in findings[0].reason
    # A car standing in the garage (speed 0) is not a stuck sensor.
    standing = varied_telemetry(80, rpm=[4_000] * 80, speed=[0] * 80)
    assert findings_of("anomaly.telemetry", [standing]) == []


def test_varied_telemetry_passes() -> None:
    assert findings_of("anomaly.telemetry", [varied_telemetry(200)]) == []


# -- the report -----------------------------------------------------------------------


def test_report_counts_each_record_once_by_its_worst_finding() -> None:
    events: list[Event] = [
        lap(number=2),  # passes
        lap(number=3, sector3_ms=25_500),  # flagged (sector sum)
        lap(number=4, lap_time_ms=0, sector3_ms=135_000),  # quarantined (range), flagged
        lap(number=5, lap_time_ms=-10_000, sector1_ms=None),  # quarantined and flagged
    ]
    findings, report = check_session(events)
    assert (report.records_checked, report.passed, report.flagged, report.quarantined) == (
        4,
        1,
        1,
        2,
    )
    assert report.quality_score == pytest.approx(2 / 4)
    counts = {r.rule: r.findings for r in report.rules}
    assert counts["range.lap_time"] == 2
    assert counts["consistency.sector_sum"] == 2  # laps 3 and 4
    assert counts["completeness.missing_sectors"] == 1
    assert sum(counts.values()) == len(findings)
    assert report.session == SESSION
    table = report.to_table()
    assert SESSION in table
    assert "range.lap_time" in table
    assert report.model_validate_json(report.to_json()) == report


def test_report_of_nothing_scores_one() -> None:
    findings, report = check_session([])
    assert findings == []
    assert (report.records_checked, report.quality_score) == (0, 1.0)


def test_a_flying_lap_among_cool_down_laps_is_not_unusual() -> None:
    # Practice: flying laps of 72-73 s between out- and cool-down laps of 95-110 s
    # (the 2023 Monaco FP2). The median is a cool-down lap's; the pace is the flying laps'.
    laps = [
        _green(n, (72_500 + 50 * n) if n % 3 == 0 else 95_000 + 1_000 * n, driver)
        for n in range(2, 14)
        for driver in (1, 14)
    ]
    assert findings_of("plausibility.lap_time", laps) == []
    # A lap far faster than the flying laps still is unusual: a short cut.
    short_cut = _green(14, 58_000)
    (finding,) = findings_of("plausibility.lap_time", [*laps, short_cut])
    assert finding.record == lap_record(44, 14)
    assert "the fastest tenth of the session's green laps so far (72.800 s, 24 laps)" in (
        finding.reason
    )
