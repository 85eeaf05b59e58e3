"""Events of the log: the facts as received, and what the feed decoders derive from them.

Every event is a frozen pydantic model. `class_version` is stored with each event so
that a later schema can upcast what an earlier one wrote.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    """Base of every event in the log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_version: ClassVar[int] = 1

    session: str = Field(
        description="Session key, e.g. `2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race`."
    )


class MessageReceived(Event):
    """A message exactly as a source received it: the fact everything else derives from."""

    source: str = Field(description="The source that received it, e.g. `archive`.")
    stream: str = Field(description="What `sequence` counts within: a topic file, a connection.")
    topic: str = Field(description="Feed topic, e.g. `TimingData` or `CarData.z`.")
    sequence: int = Field(ge=1, description="Position in the stream (line number for files).")
    offset_ms: int | None = Field(
        description="Milliseconds since the stream's start; null when the line had no valid stamp."
    )
    received_at: datetime | None = Field(
        default=None, description="UTC wall-clock time of receipt (live sources only)."
    )
    payload: str = Field(description="The message text exactly as received.")


class SessionRegistered(Event):
    """A session appeared in the log for the first time."""

    origin: str = Field(description="Where its facts came from, e.g. the ingested folder.")


class LapCompleted(Event):
    """A driver crossed the timing line: one lap as the timing feed tells it."""

    driver: int = Field(description="Racing number.")
    lap: int = Field(
        ge=1, description="The driver's lap number as the feed's NumberOfLaps counts it."
    )
    session_time_ms: int = Field(description="Stream offset (ms) at which the lap count moved on.")
    lap_time_ms: int | None = Field(
        description="Lap time (ms) from LastLapTime; null if not timed."
    )
    sector1_ms: int | None = Field(description="Sector 1 time (ms); null if not timed.")
    sector2_ms: int | None = Field(description="Sector 2 time (ms); null if not timed.")
    sector3_ms: int | None = Field(description="Sector 3 time (ms); null if not timed.")
    pit_in: bool = Field(description="The car entered the pit lane on this lap (in-lap).")
    pit_out: bool = Field(description="The car left the pit lane on this lap (out-lap).")
    compound: str | None = Field(description="Tyre compound from TimingAppData, if known.")
    stint: int | None = Field(description="Stint number (1 = first set of tyres), if known.")
    flags: tuple[str, ...] = Field(
        default=(), description="Quality flags raised while fitting the lap, e.g. `laps_skipped`."
    )


class StintStarted(Event):
    """A driver started a stint on a set of tyres (from TimingAppData)."""

    driver: int = Field(description="Racing number.")
    stint: int = Field(ge=1, description="Stint number, 1 for the first set.")
    compound: str | None = Field(description="Compound as first reported (may be UNKNOWN).")
    new_tyres: bool | None = Field(description="Whether the set was new.")
    tyre_age_laps: int | None = Field(
        description="Laps already on the set when fitted (StartLaps)."
    )
    session_time_ms: int = Field(description="Stream offset (ms) at which the stint appeared.")


class DerivationCompleted(Event):
    """The feed decoders derived a session's events from its facts (one derivation run)."""

    run: int = Field(ge=1, description="Derivation run number within the session.")
    pipeline_version: str = Field(description="Version of the decoders that derived it.")
    facts: int = Field(description="Number of MessageReceived facts read.")
    last_fact_position: int = Field(description="Highest log position among the facts read.")
    derived: int = Field(description="Number of derived events written in this run.")
    undecodable: int = Field(description="Facts whose payload could not be decoded.")


DerivedEvent = LapCompleted | StintStarted

EVENT_TYPES: tuple[type[Event], ...] = (
    MessageReceived,
    SessionRegistered,
    LapCompleted,
    StintStarted,
    DerivationCompleted,
)
