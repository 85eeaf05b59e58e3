"""What QA rules read and say: the records of a session, the findings about them, the rule.

A rule reads the session's events (indexed once as `SessionRecords`) and returns
findings, each about one record: a lap (`LapCompleted`, by driver and lap), a pit stop
(by driver and stop), a weather observation (by session time) or a telemetry sample
(by driver and UTC sample time). A blocking rule's finding quarantines its record; any
other finding flags it. Rules are pure and must never raise, whatever the events hold:
the feed is not ours, and one strange record must not stop the checks of the others.

A changed rule is a new `version` (a new pipeline version: replay the log with it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import chain, repeat
from typing import Literal, NamedTuple

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

# The detector refuses drivers and times beyond 64 bits (they never occur in a real feed).
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


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
