"""The QA rules: named, versioned checks over a session's derived events.

A rule reads the session's events (indexed once as `SessionRecords`) and returns
findings, each about one record: a lap (`LapCompleted`, by driver and lap), a pit stop
(by driver and stop), a weather observation (by session time) or a telemetry sample
(by driver and UTC sample time). A blocking rule's finding quarantines its record; any
other finding flags it. Rules are pure and must never raise, whatever the events hold:
the feed is not ours, and one strange record must not stop the checks of the others.

A changed rule is a new `version` (a new pipeline version: replay the log with it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import chain, pairwise, repeat
from operator import attrgetter
from typing import Literal, NamedTuple

from f1daemon._native import AnomalyDetector
from f1daemon.domain.events import (
    Event,
    LapCompleted,
    LapDeleted,
    PitStop,
    QuarantineReleased,
    SessionStateChanged,
    TelemetryBatch,
    WeatherObserved,
)

Severity = Literal["blocking", "flag"]
RecordKind = Literal["LapCompleted", "PitStop", "WeatherObserved", "TelemetrySample"]

# Track status codes under which lap times are not racing laps: SC, red, VSC, VSC ending.
NEUTRALISED_STATUSES = frozenset({"4", "5", "6", "7"})

# The detector refuses drivers and times beyond 64 bits (they never occur in a real feed).
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class QASettings:
    """What the rules take as given about a session's feed."""

    # CarData arrives at about 3-4 samples a second per car: a longer silence while the
    # session runs means samples were lost on the way.
    telemetry_interval_ms: int = 5_000
    # Anomaly detection over each driver's clean lap times (see `AnomalyDetector`).
    anomaly_window: int = 50
    anomaly_min_samples: int = 10
    anomaly_zscore_threshold: float = 3.0
    anomaly_mad_threshold: float = 3.5
    anomaly_spike_threshold: float = 3.0
    # CarData samples (about 3.7 a second) of one value in a row that mean a stuck
    # sensor: 50 is over 13 s of identical rpm or speed while moving.
    telemetry_flatline_run: int = 50


@dataclass(frozen=True)
class RecordRef:
    """The record a finding concerns: its kind and its key within the session."""

    kind: RecordKind
    driver: int | None = None
    number: int | None = None  # lap number of a lap, stop number of a pit stop
    time_ms: int | None = None  # UTC ms of a telemetry sample, session time of weather

    def sort_key(self) -> tuple[str, int, int, int, int, int, int]:
        """Total order for reports (None sorts before any number)."""
        return (
            self.kind,
            self.driver is not None,
            self.driver or 0,
            self.number is not None,
            self.number or 0,
            self.time_ms is not None,
            self.time_ms or 0,
        )

    def describe(self) -> str:
        """The record as an operator would look it up."""
        if self.kind == "LapCompleted":
            return f"car {self.driver} lap {self.number}"
        if self.kind == "PitStop":
            return f"car {self.driver} pit stop {self.number}"
        if self.kind == "WeatherObserved":
            return f"weather at session time {self.time_ms} ms"
        return f"car {self.driver} telemetry sample at UTC {self.time_ms} ms"


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one record, with the reason in words an operator can act on."""

    rule: str
    rule_version: int
    severity: Severity
    record: RecordRef
    reason: str
    released: bool = False  # a blocking finding an operator released (now a flag)

    def sort_key(self) -> tuple[tuple[str, int, int, int, int, int, int], str, str]:
        return (self.record.sort_key(), self.rule, self.reason)


class TelemetrySample(NamedTuple):
    """One row of a `TelemetryBatch`, in arrival order (`arrival` counts rows).

    A tuple: a session holds hundreds of thousands of them, made in one go.
    """

    arrival: int
    driver: int
    utc_ms: int
    rpm: int | None
    speed: int | None
    gear: int | None
    throttle: int | None


@dataclass(frozen=True)
class SessionRecords:
    """A session's derived events, indexed once for every rule."""

    laps: tuple[LapCompleted, ...]
    lap_deletions: tuple[LapDeleted, ...]
    pit_stops: tuple[PitStop, ...]
    weather: tuple[WeatherObserved, ...]
    telemetry: tuple[TelemetrySample, ...]
    session_states: tuple[SessionStateChanged, ...]

    @classmethod
    def of(cls, events: Iterable[Event]) -> SessionRecords:
        laps: list[LapCompleted] = []
        deletions: list[LapDeleted] = []
        pit_stops: list[PitStop] = []
        weather: list[WeatherObserved] = []
        telemetry: list[TelemetrySample] = []
        states: list[SessionStateChanged] = []
        for event in events:
            if isinstance(event, LapCompleted):
                laps.append(event)
            elif isinstance(event, LapDeleted):
                deletions.append(event)
            elif isinstance(event, PitStop):
                pit_stops.append(event)
            elif isinstance(event, WeatherObserved):
                weather.append(event)
            elif isinstance(event, TelemetryBatch):
                telemetry.extend(telemetry_samples(event, first_arrival=len(telemetry)))
            elif isinstance(event, SessionStateChanged):
                states.append(event)
        return cls(
            tuple(laps),
            tuple(deletions),
            tuple(pit_stops),
            tuple(weather),
            tuple(telemetry),
            tuple(states),
        )

    def count(self) -> int:
        """How many records the rules check: `len(self.records())`, without making them."""
        return (
            len({(lap.driver, lap.lap) for lap in self.laps})
            + len({(p.driver, p.stop) for p in self.pit_stops})
            + len({w.session_time_ms for w in self.weather})
            + len({(s.driver, s.utc_ms) for s in self.telemetry})
        )

    def records(self) -> frozenset[RecordRef]:
        """Every record the rules check (records with the same key are one record)."""
        return frozenset(
            [lap_ref(lap) for lap in self.laps]
            + [RecordRef("PitStop", driver=p.driver, number=p.stop) for p in self.pit_stops]
            + [weather_ref(w) for w in self.weather]
            + [sample_ref(s) for s in self.telemetry]
        )


def telemetry_samples(batch: TelemetryBatch, first_arrival: int) -> Iterator[TelemetrySample]:
    """A batch's rows as samples, numbered in arrival order from `first_arrival`."""
    # Columns should have equal length; a row missing its driver or time has no key and
    # is not a sample, a row missing a channel value reads as null.
    rows = min(len(batch.utc_ms), len(batch.driver))

    def padded(column: tuple[int | None, ...]) -> Iterable[int | None]:
        return chain(column[:rows], repeat(None, max(0, rows - len(column))))

    for arrival, driver, utc_ms, rpm, speed, gear, throttle in zip(
        range(first_arrival, first_arrival + rows),
        batch.driver,
        batch.utc_ms,
        padded(batch.rpm),
        padded(batch.speed),
        padded(batch.gear),
        padded(batch.throttle),
        strict=False,  # driver and utc_ms may run longer than `rows`
    ):
        yield TelemetrySample(arrival, driver, utc_ms, rpm, speed, gear, throttle)


def lap_ref(lap: LapCompleted) -> RecordRef:
    return RecordRef("LapCompleted", driver=lap.driver, number=lap.lap)


def weather_ref(observation: WeatherObserved) -> RecordRef:
    return RecordRef("WeatherObserved", time_ms=observation.session_time_ms)


def sample_ref(sample: TelemetrySample) -> RecordRef:
    return RecordRef("TelemetrySample", driver=sample.driver, time_ms=sample.utc_ms)


def apply_releases(
    findings: Iterable[Finding], releases: Iterable[QuarantineReleased]
) -> list[Finding]:
    """The findings, with each released blocking finding turned into a flag."""
    released = {(r.rule, r.record): r for r in releases}
    result: list[Finding] = []
    for finding in findings:
        release = released.get((finding.rule, finding.record.describe()))
        if finding.severity == "blocking" and release is not None:
            finding = replace(  # noqa: PLW2901 - the finding, as released
                finding,
                severity="flag",
                reason=f"released by {release.released_by} ({release.reason}); "
                f"was quarantined: {finding.reason}",
                released=True,
            )
        result.append(finding)
    return result


RuleCheck = Callable[["Rule", SessionRecords, QASettings], Iterator[Finding]]


@dataclass(frozen=True)
class Rule:
    """A named, versioned QA rule; `blocking` findings quarantine their record."""

    name: str
    version: int
    blocking: bool
    description: str
    checker: RuleCheck = field(repr=False, compare=False)
    # True when the verdict depends on the order events arrived in (not only on what
    # they say), so that shuffling the events may change it.
    depends_on_order: bool = False

    @property
    def severity(self) -> Severity:
        return "blocking" if self.blocking else "flag"

    def finding(self, record: RecordRef, reason: str) -> Finding:
        return Finding(self.name, self.version, self.severity, record, reason)

    def check(self, records: SessionRecords, settings: QASettings | None = None) -> list[Finding]:
        """This rule's findings over a session's records."""
        return list(self.checker(self, records, settings or QASettings()))


# -- value ranges -------------------------------------------------------------------


def is_neutralised(lap: LapCompleted) -> bool:
    return not NEUTRALISED_STATUSES.isdisjoint(lap.track_statuses)


def _out_of_range_laps(records: SessionRecords) -> Iterator[tuple[LapCompleted, float]]:
    """Green laps, neither in- nor out-laps, timed outside 30-150 s; with the time in s."""
    for lap in records.laps:
        if lap.lap_time_ms is None or is_neutralised(lap) or lap.pit_in or lap.pit_out:
            continue
        if not 30_000 <= lap.lap_time_ms <= 150_000:
            yield lap, lap.lap_time_ms / 1000


def _check_lap_time_range(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    for lap, seconds in _out_of_range_laps(records):
        if lap.track_statuses:
            yield rule.finding(
                lap_ref(lap),
                f"lap time {seconds:.3f} s is outside 30-150 s on a green "
                "lap that is neither an in- nor an out-lap: check the timing feed's "
                "LastLapTime for this lap",
            )


def _check_lap_time_range_unknown_status(
    rule: Rule, records: SessionRecords, _: QASettings
) -> Iterator[Finding]:
    # Without the track status (a session ingested without TrackStatus) a slow lap
    # may well have been run behind the safety car: flagged, not quarantined.
    for lap, seconds in _out_of_range_laps(records):
        if not lap.track_statuses:
            yield rule.finding(
                lap_ref(lap),
                f"lap time {seconds:.3f} s is outside 30-150 s, and the "
                "track status during the lap is unknown (no TrackStatus): it may have been "
                "run under a safety car, virtual safety car or red flag",
            )


# Real CarData carries throttle 104 (1,698 samples of the 2023 Monaco FP2 capture): the
# feed's value for a reading it does not have, not a corrupt sample. It is flagged.
THROTTLE_UNAVAILABLE = 104


def _telemetry_range_check(
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


def _check_throttle_unavailable(
    rule: Rule, records: SessionRecords, _: QASettings
) -> Iterator[Finding]:
    for sample in records.telemetry:
        if sample.throttle == THROTTLE_UNAVAILABLE:
            yield rule.finding(
                sample_ref(sample),
                f"throttle {THROTTLE_UNAVAILABLE}: the feed's value for a missing reading; "
                "treat this sample's throttle as unknown",
            )


def _weather_range_check(
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


def _check_sector_sum(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
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


def _check_track_below_air(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
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


def _check_lap_order(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
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


def _check_pit_order(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    for stop in records.pit_stops:
        if stop.in_lap is not None and stop.out_lap is not None and stop.in_lap > stop.out_lap:
            yield rule.finding(
                RecordRef("PitStop", driver=stop.driver, number=stop.stop),
                f"the car left the pit lane on lap {stop.out_lap}, before it entered on lap "
                f"{stop.in_lap}: the pit entry and exit belong to different stops",
            )


# -- completeness ---------------------------------------------------------------------


def _check_missing_sectors(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
    for lap in records.laps:
        sectors = (lap.sector1_ms, lap.sector2_ms, lap.sector3_ms)
        if lap.lap_time_ms is not None and None in sectors:
            missing = ", ".join(f"sector {i}" for i, s in enumerate(sectors, start=1) if s is None)
            yield rule.finding(
                lap_ref(lap),
                f"timed lap without {missing}: the feed did not send it; "
                "sector analysis of this lap is incomplete",
            )


def _check_missing_lap_time(
    rule: Rule, records: SessionRecords, _: QASettings
) -> Iterator[Finding]:
    for lap in records.laps:
        # The first lap (from the grid) and out-laps are not timed by the feed.
        if lap.lap_time_ms is None and lap.lap > 1 and not lap.pit_out:
            yield rule.finding(
                lap_ref(lap),
                "lap without a lap time (not the first lap, not an out-lap): the feed "
                "did not send LastLapTime for it",
            )


# -- uniqueness -----------------------------------------------------------------------


def _check_duplicate_lap(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
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


# -- temporal -------------------------------------------------------------------------


def _check_telemetry_backwards(
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


def _check_telemetry_gap(
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


def _check_deleted(rule: Rule, records: SessionRecords, _: QASettings) -> Iterator[Finding]:
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
    return is_clean_lap(lap, deleted) and _I64_MIN <= lap.driver <= _I64_MAX and lap.lap <= _I64_MAX


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


def _check_lap_time_anomaly(
    rule: Rule, records: SessionRecords, settings: QASettings
) -> Iterator[Finding]:
    deleted = deleted_laps(records)
    clean = sorted((lap for lap in records.laps if is_scored_lap(lap, deleted)), key=scored_order)
    scored: LapScores = {}
    score_laps(lap_time_detector(settings), clean, scored)
    for record, (value, scores) in scored.items():
        yield lap_time_anomaly_finding(rule, record, value, scores)


TELEMETRY_CHANNELS = ("rpm", "speed", "gear", "throttle")


def _check_telemetry_anomaly(
    rule: Rule, records: SessionRecords, settings: QASettings
) -> Iterator[Finding]:
    detector = telemetry_detector(settings)
    samples = _samples_in_time_order(
        [
            s
            for s in records.telemetry
            if _I64_MIN <= s.driver <= _I64_MAX and _I64_MIN <= s.utc_ms <= _I64_MAX
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


RULES: tuple[Rule, ...] = (
    Rule(
        "range.lap_time",
        1,
        True,
        "lap time within 30-150 s, except laps under SC/VSC/red and in- and out-laps",
        _check_lap_time_range,
    ),
    Rule(
        "range.lap_time_unknown_status",
        1,
        False,
        "lap time within 30-150 s, where the track status during the lap is unknown",
        _check_lap_time_range_unknown_status,
    ),
    Rule(
        "range.speed",
        1,
        True,
        "telemetry speed within 0-400 km/h",
        _telemetry_range_check("speed", 0, 400, " km/h"),
    ),
    Rule(
        "range.rpm",
        1,
        True,
        "telemetry engine speed within 0-15,500 rpm",
        _telemetry_range_check("rpm", 0, 15_500, " rpm"),
    ),
    Rule(
        "range.gear",
        1,
        True,
        "telemetry gear within 0-8",
        _telemetry_range_check("gear", 0, 8, ""),
    ),
    Rule(
        "range.throttle",
        2,
        True,
        "telemetry throttle within 0-100 % (104 is the feed's missing reading)",
        _telemetry_range_check("throttle", 0, 100, " %", also_valid=THROTTLE_UNAVAILABLE),
    ),
    Rule(
        "range.track_temperature",
        1,
        True,
        "track temperature within -10-70 °C",
        _weather_range_check("track_temp_c", "track temperature", -10, 70, " °C"),
    ),
    Rule(
        "range.air_temperature",
        1,
        True,
        "air temperature within -10-50 °C",
        _weather_range_check("air_temp_c", "air temperature", -10, 50, " °C"),
    ),
    Rule(
        "range.humidity",
        1,
        True,
        "relative humidity within 0-100 %",
        _weather_range_check("humidity_pct", "humidity", 0, 100, " %"),
    ),
    Rule(
        "consistency.sector_sum",
        1,
        False,
        "the three sector times sum to the lap time within 100 ms",
        _check_sector_sum,
    ),
    Rule(
        "consistency.track_below_air",
        1,
        False,
        "track temperature not more than 10 °C below air temperature",
        _check_track_below_air,
    ),
    Rule(
        "consistency.lap_order",
        1,
        False,
        "a car's lap numbers increase in the order the laps were completed",
        _check_lap_order,
    ),
    Rule(
        "consistency.pit_order",
        1,
        True,
        "a pit stop's in-lap is not after its out-lap",
        _check_pit_order,
    ),
    Rule(
        "completeness.missing_sectors",
        1,
        False,
        "a timed lap has all three sector times",
        _check_missing_sectors,
    ),
    Rule(
        "completeness.missing_lap_time",
        1,
        False,
        "every lap but the first and out-laps has a lap time",
        _check_missing_lap_time,
    ),
    Rule(
        "completeness.throttle_unavailable",
        1,
        False,
        "telemetry throttle is not the feed's missing-reading value 104",
        _check_throttle_unavailable,
    ),
    Rule(
        "uniqueness.duplicate_lap",
        1,
        False,
        "one LapCompleted per car and lap",
        _check_duplicate_lap,
    ),
    Rule(
        "temporal.telemetry_backwards",
        1,
        False,
        "a car's telemetry sample times never go backwards in arrival order",
        _check_telemetry_backwards,
        depends_on_order=True,
    ),
    Rule(
        "temporal.telemetry_gap",
        1,
        False,
        "no gap between a car's telemetry samples longer than the expected interval "
        "while the session runs",
        _check_telemetry_gap,
    ),
    Rule(
        "race_control.deleted",
        1,
        False,
        "laps race control deleted are flagged",
        _check_deleted,
    ),
    Rule(
        "anomaly.lap_time",
        1,
        False,
        "a car's clean lap times are not statistical outliers (AnomalyDetector)",
        _check_lap_time_anomaly,
    ),
    Rule(
        "anomaly.telemetry",
        1,
        False,
        "no single-sample spikes in rpm, speed, gear or throttle, no rpm or speed stuck "
        "while the car moves (AnomalyDetector)",
        _check_telemetry_anomaly,
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
