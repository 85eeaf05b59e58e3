"""Derived events of each car's timing: laps, stints and tyres, pit stops, positions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from f1daemon.domain.base import Timed


class LapCompleted(Timed):
    """A driver crossed the timing line: one lap as the timing feed tells it.

    `session_time_ms` / `utc` are when the lap count moved on (the car at the line).
    Version 2 added `utc` (and, with defaults, speeds, tyre age, track statuses,
    position, gap, qualifying part and `deleted`).
    """

    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        """Pipeline 1.0.0 had no time base: its laps have no UTC."""
        return {**data, "utc": None}

    driver: int = Field(description="Racing number.")
    lap: int = Field(
        ge=1,
        description="The driver's lap number, as FastF1 and OpenF1 count it: lap 1 is the "
        "first lap the car starts (NumberOfLaps, less the feed's count at a first pit exit).",
    )
    lap_time_ms: int | None = Field(
        description="Lap time (ms) from LastLapTime; null if not timed (and on a lap that "
        "spans a stay in the pits: see `line_to_line_ms`)."
    )
    sector1_ms: int | None = Field(description="Sector 1 time (ms); null if not timed.")
    sector2_ms: int | None = Field(description="Sector 2 time (ms); null if not timed.")
    sector3_ms: int | None = Field(description="Sector 3 time (ms); null if not timed.")
    pit_in: bool = Field(description="The car entered the pit lane on this lap (in-lap).")
    pit_out: bool = Field(description="The car left the pit lane on this lap (out-lap).")
    compound: str | None = Field(description="Tyre compound from TimingAppData, if known.")
    stint: int | None = Field(description="Stint number (1 = first set of tyres), if known.")
    speed_i1_kmh: int | None = Field(
        default=None, description="Speed trap at intermediate 1 (km/h)."
    )
    speed_i2_kmh: int | None = Field(
        default=None, description="Speed trap at intermediate 2 (km/h)."
    )
    speed_fl_kmh: int | None = Field(default=None, description="Speed at the finish line (km/h).")
    speed_st_kmh: int | None = Field(default=None, description="Speed trap on the straight (km/h).")
    tyre_age_laps: int | None = Field(
        default=None, description="Laps on the set at the end of this lap (incl. earlier use)."
    )
    track_statuses: tuple[str, ...] = Field(
        default=(), description="Track status codes in force during the lap (1, 2, 4, 5, 6, 7)."
    )
    position: int | None = Field(default=None, description="Running position at the line.")
    gap_to_leader: str | None = Field(
        default=None, description="Gap to the leader at the line as the feed shows it."
    )
    session_part: int | None = Field(
        default=None, description="Qualifying part (1 = Q1, 2 = Q2, 3 = Q3); null otherwise."
    )
    deleted: bool = Field(
        default=False, description="Deleted by race control (as known when the lap was derived)."
    )
    flags: tuple[str, ...] = Field(
        default=(),
        description="Quality flags: raised while fitting the lap, e.g. `lap_not_reported`, "
        "and by QA, e.g. `qa:consistency.sector_sum`.",
    )
    line_to_line_ms: int | None = Field(
        default=None,
        description="Where LastLapTime spans a stay in the pits (an out- or in-lap of "
        "practice or qualifying): that value, the time since the car last crossed the line; "
        "`lap_time_ms` is then null.",
    )
    gap_to_leader_s: float | None = Field(
        default=None,
        description="Gap to the leader at the line in seconds (0 for the leader); null "
        "when the car is a lap or more down (see `gap_to_leader_laps`) or no gap is shown.",
    )
    gap_to_leader_laps: int | None = Field(
        default=None,
        description="Laps behind the leader at the line (the feed's `1 L`); 0 when on the "
        "lead lap, null when no gap is shown.",
    )
    interval_s: float | None = Field(
        default=None,
        description="Interval to the car ahead at the line in seconds (0 for the leader); "
        "null when a lap or more behind it (see `interval_laps`) or none is shown.",
    )
    interval_laps: int | None = Field(
        default=None,
        description="Laps behind the car ahead at the line; 0 on its lap, null when no "
        "interval is shown.",
    )
    lap_start_time_ms: int | None = Field(
        default=None,
        description="When the lap began, ms since the stream's start (FastF1's LapStartTime): "
        "the previous lap's end; lap 1 of a race at the session's start, an out-lap at "
        "the pit exit.",
    )
    date_start: datetime | None = Field(
        default=None, description="When the lap began, UTC (OpenF1's `date_start`)."
    )
    is_personal_best: bool | None = Field(
        default=None,
        description="The lap time is the driver's personal best when set (FastF1's "
        "IsPersonalBest, per qualifying part; a deleted lap is not); null if untimed.",
    )
    fresh_tyre: bool | None = Field(
        default=None,
        description="The lap is on a set that was new when fitted (TimingAppData `New`, "
        "FastF1's FreshTyre); null if the feed did not say.",
    )


class LapDeleted(Timed):
    """Race control deleted a lap time (or reinstated one it had deleted)."""

    driver: int = Field(description="Racing number.")
    lap: int | None = Field(description="The lap, when race control names it or it can be matched.")
    lap_time_ms: int | None = Field(description="The lap time race control quoted.")
    reinstated: bool = Field(description="True when this reinstates a deleted lap.")
    reason: str = Field(description="The race-control message.")


class StintStarted(Timed):
    """A driver started a stint on a set of tyres (from TimingAppData).

    Version 2 added `utc` (and `tyres_changed`, with a default).
    """

    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        """Pipeline 1.0.0 had no time base: its stints have no UTC."""
        return {**data, "utc": None}

    driver: int = Field(description="Racing number.")
    stint: int = Field(ge=1, description="Stint number, 1 for the first set.")
    compound: str | None = Field(description="Compound as first reported (may be UNKNOWN).")
    new_tyres: bool | None = Field(description="Whether the set was new.")
    tyre_age_laps: int | None = Field(
        description="Laps already on the set when fitted (StartLaps)."
    )
    tyres_changed: bool = Field(
        default=True, description="False when the feed says the tyres were not changed."
    )


class StintCompoundChanged(Timed):
    """The feed re-named a stint's compound (e.g. UNKNOWN, then MEDIUM)."""

    driver: int = Field(description="Racing number.")
    stint: int = Field(ge=1, description="Stint number, 1 for the first set.")
    compound: str | None = Field(description="The compound now reported.")
    previous: str | None = Field(description="The compound reported before.")


class PitStop(Timed):
    """A pass through the pit lane: `session_time_ms` / `utc` are the pit entry."""

    driver: int = Field(description="Racing number.")
    stop: int = Field(ge=1, description="The driver's pit stop number in the session.")
    in_lap: int | None = Field(description="Lap on which the car entered the pit lane.")
    out_lap: int | None = Field(description="Lap on which it left (null if it did not).")
    pit_exit_time_ms: int | None = Field(description="Offset (ms) at which it left the pit lane.")
    pit_lane_ms: int | None = Field(description="Entry to exit (ms), when both were seen.")
    flags: tuple[str, ...] = Field(
        default=(), description="QA findings that flag it, e.g. `qa:consistency.pit_order`."
    )


class PositionChanged(Timed):
    """A driver's running position changed (TimingData Position)."""

    driver: int = Field(description="Racing number.")
    position: int = Field(ge=1, description="New running position.")


class IntervalBatch(Timed):
    """The cars' gaps to the leader and intervals to the car ahead, one row per change,
    over a stretch of the session (`session_time_ms` / `utc`: its first change), as
    columns of equal length. Seconds as numbers, laps behind in their own columns,
    as `f1daemon.feed.timing.parse_gap` reads the feed's text."""

    time_ms: tuple[int, ...] = Field(description="When it changed, ms since the stream's start.")
    driver: tuple[int, ...] = Field(description="Racing number.")
    gap_to_leader: tuple[float | None, ...] = Field(
        description="Gap to the leader in seconds (0 for the leader); null when a lap or "
        "more down (see `gap_to_leader_laps`) or none shown. OpenF1's `gap_to_leader`."
    )
    interval: tuple[float | None, ...] = Field(
        description="Interval to the car ahead in seconds; null when a lap or more behind "
        "it (see `interval_laps`) or none shown. OpenF1's `interval`."
    )
    gap_to_leader_laps: tuple[int | None, ...] = Field(
        description="Laps behind the leader (0 on the lead lap; null: no gap shown)."
    )
    interval_laps: tuple[int | None, ...] = Field(
        description="Laps behind the car ahead (0 on its lap; null: no interval shown)."
    )
