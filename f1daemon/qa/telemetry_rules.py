"""The telemetry rules: CarData samples' ranges, their timing, their anomalies.

Each checker takes a session's `SessionRecords` and yields its findings (see
`f1daemon.qa.records`); `f1daemon.qa.rules` names and versions them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from operator import attrgetter
from typing import Literal

from f1daemon._native import AnomalyDetector
from f1daemon.domain.events import (
    SessionStateChanged,
)
from f1daemon.qa.records import (
    I64_MAX,
    I64_MIN,
    Finding,
    QASettings,
    RecordRef,
    Rule,
    RuleCheck,
    SessionRecords,
    TelemetrySample,
    sample_ref,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Real CarData carries throttle 104 (1,698 samples of the 2023 Monaco FP2 capture): the
# feed's value for a reading it does not have, not a corrupt sample. It is flagged.
THROTTLE_UNAVAILABLE = 104


def telemetry_range_check(
    channel: Literal["speed", "rpm", "gear", "throttle"],
    low: int,
    high: int,
    unit: str,
    *,
    also_valid: int | None = None,
) -> RuleCheck:
    """Samples whose `channel` is outside `low`-`high` (and is not `also_valid`)."""
    besides = f" (and not the feed's {also_valid})" if also_valid is not None else ""

    def check(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
        for sample in records.telemetry:
            value = getattr(sample, channel)
            if value is not None and not low <= value <= high and value != also_valid:
                yield rule.finding(
                    sample_ref(sample),
                    f"{channel} {value}{unit} is outside {low}-{high}{unit}{besides}: "
                    "a corrupt CarData sample",
                )

    return check


def check_throttle_unavailable(
    rule: Rule, records: SessionRecords, _: QASettings
) -> Iterator[Finding]:
    for sample in records.telemetry:
        if sample.throttle == THROTTLE_UNAVAILABLE:
            yield rule.finding(
                sample_ref(sample),
                f"throttle {THROTTLE_UNAVAILABLE}: the feed's value for a missing reading; "
                "treat this sample's throttle as unknown",
            )


# -- temporal -------------------------------------------------------------------------


def check_telemetry_backwards(
    rule: Rule, records: SessionRecords, _: QASettings
) -> Iterator[Finding]:
    latest: dict[int, int] = {}
    for sample in records.telemetry:  # arrival order
        previous = latest.get(sample.driver)
        if previous is not None and sample.utc_ms < previous:
            yield rule.finding(
                sample_ref(sample),
                f"sample time went back {previous - sample.utc_ms} ms after the car's "
                "previous sample: a replayed or re-sent CarData message",
            )
        latest[sample.driver] = sample.utc_ms if previous is None else max(previous, sample.utc_ms)


def _utc_ms(moment: datetime) -> int:
    # A naive time is taken as UTC (the feed's stamps are UTC).
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(milliseconds=1)


def running_periods(states: Sequence[SessionStateChanged]) -> list[tuple[int, int | None]]:
    """The UTC ms spans in which the session was ACTIVE (an open end: still running)."""
    stamped = sorted(
        ((_utc_ms(s.utc), s.state == "ACTIVE") for s in states if s.utc is not None),
        # At one instant, a stop comes before a start: the later state wins.
        key=lambda change: (change[0], change[1]),
    )
    periods: list[tuple[int, int | None]] = []
    start: int | None = None
    for moment, active in stamped:
        if active and start is None:
            start = moment
        elif not active and start is not None:
            periods.append((start, moment))
            start = None
    if start is not None:
        periods.append((start, None))
    return periods


def check_telemetry_gap(
    rule: Rule, records: SessionRecords, settings: QASettings
) -> Iterator[Finding]:
    periods = running_periods(records.session_states)
    # Without a stamped session state (a capture started mid-session) the session is
    # taken to run throughout.
    unknown = not periods

    def running(moment: int) -> bool:
        return unknown or any(
            start <= moment and (end is None or moment <= end) for start, end in periods
        )

    by_driver: dict[int, set[int]] = defaultdict(set)
    for sample in records.telemetry:
        by_driver[sample.driver].add(sample.utc_ms)
    for driver, times in by_driver.items():
        ordered = sorted(times)
        for previous, current in pairwise(ordered):
            gap = current - previous
            if gap > settings.telemetry_interval_ms and running(previous) and running(current):
                yield rule.finding(
                    RecordRef("TelemetrySample", driver=driver, time_ms=current),
                    f"{gap / 1000:.1f} s without telemetry from this car before this sample "
                    f"(expected at most {settings.telemetry_interval_ms / 1000:g} s while the "
                    "session runs): CarData messages were lost or shed",
                )


TELEMETRY_CHANNELS = ("rpm", "speed", "gear", "throttle")


def check_telemetry_anomaly(
    rule: Rule, records: SessionRecords, settings: QASettings
) -> Iterator[Finding]:
    detector = telemetry_detector(settings)
    samples = _samples_in_time_order(
        [
            s
            for s in records.telemetry
            if I64_MIN <= s.driver <= I64_MAX and I64_MIN <= s.utc_ms <= I64_MAX
        ]
    )
    anomalies = detector.feed_columns(
        [s.driver for s in samples],
        [s.utc_ms for s in samples],
        {channel: list(map(attrgetter(channel), samples)) for channel in TELEMETRY_CHANNELS},
    )
    yield from telemetry_anomaly_finding(rule, anomalies)


def telemetry_detector(settings: QASettings) -> AnomalyDetector:
    """The detector of `anomaly.telemetry`.

    Telemetry is not stationary (every braking zone is an outlier of a rolling
    window), so only the detectors that mean a bad sample run: a single-sample spike
    against both neighbours, and rpm or speed stuck while the car moves.
    """
    return AnomalyDetector(
        window=settings.anomaly_window,
        min_samples=settings.anomaly_min_samples,
        zscore_threshold=math.inf,
        mad_threshold=math.inf,
        spike_threshold=settings.anomaly_spike_threshold,
        flatline_run=settings.telemetry_flatline_run,
    )


def telemetry_anomaly_finding(
    rule: Rule, anomalies: Iterable[tuple[int, str, int, float, float, str]]
) -> list[Finding]:
    """One finding per sample the detector scored, naming every channel and detector."""
    scored: dict[RecordRef, list[str]] = defaultdict(list)
    for driver, channel, utc_ms, value, score, kind in anomalies:
        record = RecordRef("TelemetrySample", driver=driver, time_ms=utc_ms)
        scored[record].append(f"{channel} {value:g} ({kind} {score:+.1f})")
    return [
        rule.finding(
            record,
            f"{'; '.join(found)}: a spike is one sample against both neighbours, a "
            "flat line a sensor stuck while the car moves; check this car's CarData",
        )
        for record, found in scored.items()
    ]


def _samples_in_time_order(samples: list[TelemetrySample]) -> list[TelemetrySample]:
    """Each car's samples in time order; samples of one car and time (duplicates) by
    their values, so that the order the events came in does not matter."""
    ordered = sorted(samples, key=_car_and_time)
    start = 0
    for end in range(1, len(ordered) + 1):
        if end == len(ordered) or _car_and_time(ordered[end]) != _car_and_time(ordered[start]):
            if end - start > 1:
                ordered[start:end] = sorted(ordered[start:end], key=_values)
            start = end
    return ordered


_car_and_time = attrgetter("driver", "utc_ms")


def _values(sample: TelemetrySample) -> tuple[tuple[bool, int], ...]:
    return tuple(_sort_value(getattr(sample, c)) for c in TELEMETRY_CHANNELS)


def _sort_value(value: int | None) -> tuple[bool, int]:
    return (value is not None, value or 0)
