"""QA's derived events: findings, corrections of findings, and each run's outcome."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from f1daemon.domain.base import Event


class AnomalyDetected(Event):
    """A QA rule's non-blocking finding: the record is kept, flagged, and this says why."""

    rule: str = Field(description="The rule, e.g. `anomaly.lap_time`.")
    rule_version: int = Field(description="The rule's version.")
    record_kind: str = Field(
        description="LapCompleted, PitStop, WeatherObserved or TelemetrySample."
    )
    record: str = Field(description="The record, e.g. `car 44 lap 12`.")
    driver: int | None = Field(description="Racing number, for a car's record.")
    number: int | None = Field(description="Lap number of a lap, stop number of a pit stop.")
    time_ms: int | None = Field(
        description="UTC ms of a telemetry sample, session time (ms) of a weather observation."
    )
    reason: str = Field(description="Why, in words an operator can act on.")
    released: bool = Field(
        default=False, description="A blocking finding an operator released (kept as a flag)."
    )


class AnomalyCleared(Event):
    """A correction: an earlier `AnomalyDetected` no longer holds (a later fact changed
    the record's context, e.g. race control reinstated a deleted lap); the projections
    take the rule's flag off the record."""

    rule: str = Field(description="The rule whose finding no longer holds.")
    record_kind: str = Field(description="LapCompleted, PitStop or WeatherObserved.")
    record: str = Field(description="The record, e.g. `car 44 lap 12`.")


class RuleFindings(BaseModel):
    """How often one QA rule fired in a session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    version: int
    severity: str = Field(description="`blocking` (quarantines) or `flag`.")
    findings: int


class QualityChecked(Event):
    """The QA outcome of a derivation run: the last event of every run since pipeline 2.2.

    Every checked record ends in exactly one outcome: passed, flagged or quarantined.
    """

    records_checked: int = Field(description="Laps, pit stops, weather and telemetry samples.")
    passed: int = Field(description="Records without findings.")
    flagged: int = Field(description="Records with findings, none blocking (kept, flagged).")
    quarantined: int = Field(description="Records with a blocking finding (RecordQuarantined).")
    quality_score: float = Field(description="(passed + flagged) / records_checked; 1 if none.")
    rules: tuple[RuleFindings, ...] = Field(description="Every rule run, with its findings.")
