"""The QA rules: named, versioned checks over a session's derived events.

The checkers live by what they read (`f1daemon.qa.lap_rules`,
`f1daemon.qa.telemetry_rules`) over the records of `f1daemon.qa.records`; here they
are named, versioned and run. A changed rule is a new `version` (a new pipeline
version: replay the log with it).
"""

from __future__ import annotations

from collections.abc import Sequence

from f1daemon.qa.lap_rules import (
    NEUTRALISED_STATUSES,
    LapScores,
    check_deleted,
    check_duplicate_lap,
    check_lap_order,
    check_lap_pace,
    check_lap_time_anomaly,
    check_lap_time_range,
    check_missing_lap_time,
    check_missing_sectors,
    check_pit_order,
    check_sector_sum,
    check_track_below_air,
    deleted_laps,
    is_clean_lap,
    is_neutralised,
    is_scored_lap,
    lap_order_finding,
    lap_time_anomaly_finding,
    lap_time_detector,
    score_laps,
    scored_order,
    weather_range_check,
)
from f1daemon.qa.records import (
    I64_MAX,
    I64_MIN,
    Finding,
    QASettings,
    RecordKind,
    RecordRef,
    Rule,
    RuleCheck,
    SessionRecords,
    Severity,
    TelemetrySample,
    apply_releases,
    lap_ref,
    sample_ref,
    telemetry_samples,
    weather_ref,
)
from f1daemon.qa.telemetry_rules import (
    TELEMETRY_CHANNELS,
    THROTTLE_UNAVAILABLE,
    check_telemetry_anomaly,
    check_telemetry_backwards,
    check_telemetry_gap,
    check_throttle_unavailable,
    running_periods,
    telemetry_anomaly_finding,
    telemetry_detector,
    telemetry_range_check,
)

# Names the rest of f1daemon reads from here (they live with what they concern).
__all__ = [
    "I64_MAX",
    "I64_MIN",
    "NEUTRALISED_STATUSES",
    "RULES",
    "RULES_BY_NAME",
    "TELEMETRY_CHANNELS",
    "THROTTLE_UNAVAILABLE",
    "Finding",
    "LapScores",
    "QASettings",
    "RecordKind",
    "RecordRef",
    "Rule",
    "RuleCheck",
    "SessionRecords",
    "Severity",
    "TelemetrySample",
    "apply_releases",
    "check_records",
    "deleted_laps",
    "is_clean_lap",
    "is_neutralised",
    "is_scored_lap",
    "lap_order_finding",
    "lap_ref",
    "lap_time_anomaly_finding",
    "lap_time_detector",
    "running_periods",
    "sample_ref",
    "score_laps",
    "scored_order",
    "telemetry_anomaly_finding",
    "telemetry_detector",
    "telemetry_samples",
    "weather_ref",
]

RULES: tuple[Rule, ...] = (
    Rule(
        "range.lap_time",
        2,
        True,
        "a lap time is a time: above zero and not longer than any session lasts (4 h)",
        check_lap_time_range,
    ),
    Rule(
        "plausibility.lap_time",
        2,
        False,
        "a green lap's time at most 2x the median of the session's green laps so far and "
        "at least 0.85x their fastest tenth (judged once there are 10)",
        check_lap_pace,
    ),
    Rule(
        "range.speed",
        1,
        True,
        "telemetry speed within 0-400 km/h",
        telemetry_range_check("speed", 0, 400, " km/h"),
    ),
    Rule(
        "range.rpm",
        1,
        True,
        "telemetry engine speed within 0-15,500 rpm",
        telemetry_range_check("rpm", 0, 15_500, " rpm"),
    ),
    Rule(
        "range.gear",
        1,
        True,
        "telemetry gear within 0-8",
        telemetry_range_check("gear", 0, 8, ""),
    ),
    Rule(
        "range.throttle",
        2,
        True,
        "telemetry throttle within 0-100 % (104 is the feed's missing reading)",
        telemetry_range_check("throttle", 0, 100, " %", also_valid=THROTTLE_UNAVAILABLE),
    ),
    Rule(
        "range.track_temperature",
        1,
        True,
        "track temperature within -10-70 °C",
        weather_range_check("track_temp_c", "track temperature", -10, 70, " °C"),
    ),
    Rule(
        "range.air_temperature",
        1,
        True,
        "air temperature within -10-50 °C",
        weather_range_check("air_temp_c", "air temperature", -10, 50, " °C"),
    ),
    Rule(
        "range.humidity",
        1,
        True,
        "relative humidity within 0-100 %",
        weather_range_check("humidity_pct", "humidity", 0, 100, " %"),
    ),
    Rule(
        "consistency.sector_sum",
        1,
        False,
        "the three sector times sum to the lap time within 100 ms",
        check_sector_sum,
    ),
    Rule(
        "consistency.track_below_air",
        1,
        False,
        "track temperature not more than 10 °C below air temperature",
        check_track_below_air,
    ),
    Rule(
        "consistency.lap_order",
        1,
        False,
        "a car's lap numbers increase in the order the laps were completed",
        check_lap_order,
    ),
    Rule(
        "consistency.pit_order",
        1,
        True,
        "a pit stop's in-lap is not after its out-lap",
        check_pit_order,
    ),
    Rule(
        "completeness.missing_sectors",
        1,
        False,
        "a timed lap has all three sector times",
        check_missing_sectors,
    ),
    Rule(
        "completeness.missing_lap_time",
        1,
        False,
        "every lap but the first and out-laps has a lap time",
        check_missing_lap_time,
    ),
    Rule(
        "completeness.throttle_unavailable",
        1,
        False,
        "telemetry throttle is not the feed's missing-reading value 104",
        check_throttle_unavailable,
    ),
    Rule(
        "uniqueness.duplicate_lap",
        1,
        False,
        "one LapCompleted per car and lap",
        check_duplicate_lap,
    ),
    Rule(
        "temporal.telemetry_backwards",
        1,
        False,
        "a car's telemetry sample times never go backwards in arrival order",
        check_telemetry_backwards,
        depends_on_order=True,
    ),
    Rule(
        "temporal.telemetry_gap",
        1,
        False,
        "no gap between a car's telemetry samples longer than the expected interval "
        "while the session runs",
        check_telemetry_gap,
    ),
    Rule(
        "race_control.deleted",
        1,
        False,
        "laps race control deleted are flagged",
        check_deleted,
    ),
    Rule(
        "anomaly.lap_time",
        1,
        False,
        "a car's clean lap times are not statistical outliers (AnomalyDetector)",
        check_lap_time_anomaly,
    ),
    Rule(
        "anomaly.telemetry",
        1,
        False,
        "no single-sample spikes in rpm, speed, gear or throttle, no rpm or speed stuck "
        "while the car moves (AnomalyDetector)",
        check_telemetry_anomaly,
    ),
)

RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}


def check_records(
    records: SessionRecords,
    rules: Sequence[Rule] = RULES,
    settings: QASettings | None = None,
) -> list[Finding]:
    """Every rule's findings over a session's records, in a deterministic order."""
    chosen = settings or QASettings()
    findings = [finding for rule in rules for finding in rule.check(records, chosen)]
    return sorted(findings, key=Finding.sort_key)
