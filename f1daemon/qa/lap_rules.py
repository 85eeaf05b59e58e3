"""The lap side's rules: laps, pit stops and weather observations.

Each checker takes a session's `SessionRecords` and yields its findings (see
`f1daemon.qa.records`); `f1daemon.qa.rules` names and versions them.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

from f1daemon._native import AnomalyDetector
from f1daemon.domain.events import (
    LapCompleted,
    LapDeleted,
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
    lap_ref,
    weather_ref,
)

# Track status codes under which lap times are not racing laps: SC, red, VSC, VSC ending.
NEUTRALISED_STATUSES = frozenset({"4", "5", "6", "7"})


# -- value ranges -------------------------------------------------------------------


def is_neutralised(lap: LapCompleted) -> bool:
    return not NEUTRALISED_STATUSES.isdisjoint(lap.track_statuses)


# Longer than any session lasts (a race's two hours of racing, three with a
# suspension): a lap time beyond it is not a time but a corrupt value.
LONGEST_LAP_MS = 4 * 3_600_000


def check_lap_time_range(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    # Only the impossible is quarantined: a slow lap (wet, a drive-through, traffic)
    # is a true lap, for `plausibility.lap_time` to flag.
    for lap in records.laps:
        time = lap.lap_time_ms
        if time is not None and time <= 0:
            yield rule.finding(
                lap_ref(lap), f"lap time {time} ms is not a time: the feed's LastLapTime is corrupt"
            )
        elif time is not None and time > LONGEST_LAP_MS:
            yield rule.finding(
                lap_ref(lap),
                f"lap time {time / 1000:.3f} s is longer than any session lasts "
                f"({LONGEST_LAP_MS // 3_600_000} h): the feed's LastLapTime is corrupt",
            )


# A green lap is judged against the session's own pace so far (every car's green
# laps), once there are enough of them to say: too slow against their median, too
# fast against their fastest tenth. Practice and qualifying mix flying laps with out-
# and cool-down laps, which pull the median well above the pace of a flying lap.
PLAUSIBLE_PACE = (0.85, 2.0)
PACE_MIN_LAPS = 10
FAST_QUANTILE = 0.1


def is_green_racing_lap(lap: LapCompleted) -> bool:
    """A timed lap at racing speed: not the first, not an in- or out-lap, not under a
    neutralisation, with a time that is a time."""
    time = lap.lap_time_ms
    return (
        time is not None
        and 0 < time <= LONGEST_LAP_MS
        and lap.lap > 1
        and not lap.pit_in
        and not lap.pit_out
        and not is_neutralised(lap)
    )


def pace_order(lap: LapCompleted) -> tuple[int, int, int, int]:
    """The order laps are judged in: as completed (every field breaks ties)."""
    return (lap.session_time_ms, lap.driver, lap.lap, lap.lap_time_ms or 0)


class PaceScan:
    """The session's green lap times so far, in order; judges each next lap by them."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._times: list[int] = []  # sorted

    def judge(self, lap: LapCompleted) -> Finding | None:
        """The finding on a lap (None: plausible or not judged); the lap then joins."""
        time = lap.lap_time_ms
        if time is None or not is_green_racing_lap(lap):
            return None
        finding = None
        times = self._times
        if len(times) >= PACE_MIN_LAPS:
            middle = len(times) // 2
            median = times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2
            fast = times[int(len(times) * FAST_QUANTILE)]
            low, high = PLAUSIBLE_PACE
            if time > high * median:
                finding = self.rule.finding(
                    lap_ref(lap),
                    f"lap time {time / 1000:.3f} s is {time / median:.2f}x the session's median "
                    f"green lap so far ({median / 1000:.3f} s, {len(times)} laps), over "
                    f"{high:g}x: a green lap this slow is unusual; check for a stop on track "
                    "or a timing error",
                )
            elif time < low * fast:
                finding = self.rule.finding(
                    lap_ref(lap),
                    f"lap time {time / 1000:.3f} s is {time / fast:.2f}x the fastest tenth of "
                    f"the session's green laps so far ({fast / 1000:.3f} s, {len(times)} laps), "
                    f"under {low:g}x: a green lap this fast is unusual; check for a short cut, "
                    "a timing error or a lap from the pit lane",
                )
        bisect.insort(times, time)
        return finding


def check_lap_pace(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    scan = PaceScan(rule)
    for lap in sorted(records.laps, key=pace_order):
        finding = scan.judge(lap)
        if finding is not None:
            yield finding


def weather_range_check(
    attribute: Literal["track_temp_c", "air_temp_c", "humidity_pct"],
    what: str,
    low: float,
    high: float,
    unit: str,
) -> RuleCheck:
    def check(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
        for observation in records.weather:
            value = getattr(observation, attribute)
            # NaN compares false both ways: it is out of range too.
            if value is not None and not low <= value <= high:
                yield rule.finding(
                    weather_ref(observation),
                    f"{what} {value}{unit} is outside {low:g}-{high:g}{unit}: "
                    "check the circuit's weather station (WeatherData)",
                )

    return check


# -- consistency ----------------------------------------------------------------------


def check_sector_sum(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    for lap in records.laps:
        sectors = (lap.sector1_ms, lap.sector2_ms, lap.sector3_ms)
        if lap.lap_time_ms is None or None in sectors:
            continue
        total = sum(s for s in sectors if s is not None)
        if abs(total - lap.lap_time_ms) > 100:
            yield rule.finding(
                lap_ref(lap),
                f"sectors sum to {total} ms but the lap time is {lap.lap_time_ms} ms "
                f"({total - lap.lap_time_ms:+d} ms, more than 100 ms apart): one of them "
                "was taken from the wrong lap",
            )


def check_track_below_air(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    for observation in records.weather:
        track, air = observation.track_temp_c, observation.air_temp_c
        if track is not None and air is not None and track < air - 10:
            yield rule.finding(
                weather_ref(observation),
                f"track {track} °C is more than 10 °C below air {air} °C: the station's "
                "sensors may be swapped or one of them faulty",
            )


def _by_driver(laps: Iterable[LapCompleted]) -> dict[int, list[LapCompleted]]:
    grouped: dict[int, list[LapCompleted]] = defaultdict(list)
    for lap in laps:
        grouped[lap.driver].append(lap)
    return grouped


def check_lap_order(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    # In the order the laps were completed (session time; the lap number breaks ties so
    # the verdict does not depend on the order of the events), each lap number must be
    # above every earlier one. An equal number is a duplicate, uniqueness's to report.
    for laps in _by_driver(records.laps).values():
        highest: int | None = None
        for lap in sorted(laps, key=lambda lap: (lap.session_time_ms, lap.lap)):
            if highest is not None and lap.lap < highest:
                yield lap_order_finding(rule, lap, highest)
            highest = lap.lap if highest is None else max(highest, lap.lap)


def lap_order_finding(rule: Rule, lap: LapCompleted, highest: int) -> Finding:
    """`consistency.lap_order`'s finding on a lap completed after a higher one."""
    return rule.finding(
        lap_ref(lap),
        f"lap {lap.lap} was completed after lap {highest}: the lap count went "
        "backwards, check the feed's NumberOfLaps for this car",
    )


def check_pit_order(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    for stop in records.pit_stops:
        if stop.in_lap is not None and stop.out_lap is not None and stop.in_lap > stop.out_lap:
            yield rule.finding(
                RecordRef("PitStop", driver=stop.driver, number=stop.stop),
                f"the car left the pit lane on lap {stop.out_lap}, before it entered on lap "
                f"{stop.in_lap}: the pit entry and exit belong to different stops",
            )


# -- completeness ---------------------------------------------------------------------


def check_missing_sectors(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    for lap in records.laps:
        sectors = (lap.sector1_ms, lap.sector2_ms, lap.sector3_ms)
        if lap.lap_time_ms is not None and None in sectors:
            missing = ", ".join(f"sector {i}" for i, s in enumerate(sectors, start=1) if s is None)
            yield rule.finding(
                lap_ref(lap),
                f"timed lap without {missing}: the feed did not send it; "
                "sector analysis of this lap is incomplete",
            )


def check_missing_lap_time(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    for lap in records.laps:
        # The first lap (from the grid) and out-laps are not timed by the feed.
        if lap.lap_time_ms is None and lap.lap > 1 and not lap.pit_out:
            yield rule.finding(
                lap_ref(lap),
                "lap without a lap time (not the first lap, not an out-lap): the feed "
                "did not send LastLapTime for it",
            )


# -- uniqueness -----------------------------------------------------------------------


def check_duplicate_lap(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    counts: dict[RecordRef, int] = defaultdict(int)
    for lap in records.laps:
        counts[lap_ref(lap)] += 1
    for record, count in counts.items():
        if count > 1:
            yield rule.finding(
                record,
                f"{count} LapCompleted events for the same car and lap: the lap was derived "
                "more than once; keep one and check the lap fitter",
            )


# -- race control ---------------------------------------------------------------------


def _in_time_order(deletions: Iterable[LapDeleted]) -> list[LapDeleted]:
    # Every field breaks ties, so that the latest decision does not depend on the order
    # of the events; at one instant a reinstatement comes last (wins).
    return sorted(
        deletions, key=lambda d: (d.session_time_ms, d.reinstated, d.reason, d.lap_time_ms or 0)
    )


def deleted_laps(records: SessionRecords) -> set[RecordRef]:
    """Laps race control deleted: marked when derived, or by a later deletion not reinstated.

    The latest decision (by session time) about a lap wins; at one instant a
    reinstatement wins over a deletion.
    """
    # A lap derived more than once counts as deleted when derived if any copy says so.
    decision: dict[RecordRef, bool] = defaultdict(bool)
    for lap in records.laps:
        decision[lap_ref(lap)] |= lap.deleted
    for deletion in _in_time_order(d for d in records.lap_deletions if d.lap is not None):
        decision[
            RecordRef("LapCompleted", driver=deletion.driver, number=deletion.lap)
        ] = not deletion.reinstated
    laps = {lap_ref(lap) for lap in records.laps}
    return {record for record, deleted in decision.items() if deleted and record in laps}


def check_deleted(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    reasons = {
        RecordRef("LapCompleted", driver=d.driver, number=d.lap): d.reason
        for d in _in_time_order(records.lap_deletions)
        if d.lap is not None and not d.reinstated
    }
    for record in deleted_laps(records):
        said = reasons.get(record)
        yield rule.finding(
            record,
            "lap deleted by race control"
            + (f" ({said})" if said else "")
            + ": exclude it from pace analysis",
        )


# -- statistical anomalies ------------------------------------------------------------


def is_clean_lap(lap: LapCompleted, deleted: set[RecordRef]) -> bool:
    """A racing lap whose time says something about pace."""
    return (
        lap.lap_time_ms is not None
        and lap.lap > 1
        and not lap.pit_in
        and not lap.pit_out
        and not is_neutralised(lap)
        and lap_ref(lap) not in deleted
    )


def lap_time_detector(settings: QASettings) -> AnomalyDetector:
    """The detector `anomaly.lap_time` feeds each car's clean laps to, in lap order."""
    return AnomalyDetector(
        window=settings.anomaly_window,
        min_samples=settings.anomaly_min_samples,
        zscore_threshold=settings.anomaly_zscore_threshold,
        mad_threshold=settings.anomaly_mad_threshold,
        spike_threshold=settings.anomaly_spike_threshold,
        flatline_channels=(),
    )


def is_scored_lap(lap: LapCompleted, deleted: set[RecordRef]) -> bool:
    """A clean lap the lap-time detector can take (it refuses numbers beyond 64 bits)."""
    return is_clean_lap(lap, deleted) and I64_MIN <= lap.driver <= I64_MAX and lap.lap <= I64_MAX


def scored_order(lap: LapCompleted) -> tuple[int, int, int, int]:
    """Each driver's laps in lap order (all fields break ties: order-independent)."""
    return (lap.driver, lap.lap, lap.lap_time_ms or 0, lap.session_time_ms)


# What the detector said about one lap: its time and each detector's score, in the
# order the detector reported them.
LapScores = dict[RecordRef, tuple[float, list[str]]]


def score_laps(detector: AnomalyDetector, laps: Sequence[LapCompleted], into: LapScores) -> None:
    """Feed laps (in `scored_order`) to the detector; add what it reports to `into`."""
    # The detector carries the "time" through uninterpreted: the lap number, to find it.
    anomalies = detector.feed(
        [lap.driver for lap in laps],
        [lap.lap for lap in laps],
        "lap_time_ms",
        [lap.lap_time_ms for lap in laps],
    )
    for driver, _channel, lap_number, value, score, kind in anomalies:
        record = RecordRef("LapCompleted", driver=driver, number=lap_number)
        into.setdefault(record, (value, []))[1].append(f"{kind} {score:+.1f}")


def lap_time_anomaly_finding(
    rule: Rule, record: RecordRef, value: float, scores: Sequence[str]
) -> Finding:
    """One finding per lap, naming every detector that scored it."""
    return rule.finding(
        record,
        f"lap time {value / 1000:.3f} s is unusual for this car ({', '.join(scores)}): "
        "look for traffic, a mistake, damage or a timing error",
    )


def check_lap_time_anomaly(
    rule: Rule, records: SessionRecords, settings: QASettings
) -> Iterator[Finding]:
    deleted = deleted_laps(records)
    clean = sorted((lap for lap in records.laps if is_scored_lap(lap, deleted)), key=scored_order)
    scored: LapScores = {}
    score_laps(lap_time_detector(settings), clean, scored)
    for record, (value, scores) in scored.items():
        yield lap_time_anomaly_finding(rule, record, value, scores)
