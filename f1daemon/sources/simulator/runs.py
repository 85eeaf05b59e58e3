"""The simulation's working state: each car's laps and pit stops as run, the track
status changes and race-control messages to publish, the whole race in progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from f1daemon.sources.simulator.incidents import Incidents, NeutralisationKind
from f1daemon.sources.simulator.model import Json, Track


@dataclass
class LapRun:
    lap: int
    start: int  # stream offset (ms) when the lap started (lights out for lap 1)
    s1: int
    s2: int
    s3: int
    compound: str
    stint: int  # 0-based
    age: int  # laps on this set of tyres when the lap started
    pit_in: bool
    pit_out: bool
    kind: NeutralisationKind | None  # the neutralisation the lap was run under
    wet: bool
    hold_ms: int = 0  # red flag: time stationary in the pit lane during sector 3

    @property
    def b1(self) -> int:
        return self.start + self.s1

    @property
    def b2(self) -> int:
        return self.start + self.s1 + self.s2

    @property
    def end(self) -> int:
        return self.start + self.s1 + self.s2 + self.s3

    @property
    def hold_start(self) -> int:
        """When a red-flagged car stops in the pit lane (its lap's last sector)."""
        return self.b2 + round(0.9 * (self.s3 - self.hold_ms))


@dataclass
class Stop:
    in_lap: int
    t_in_pit: int  # enters the pit lane (during the in-lap's last sector)
    t_box_in: int
    t_box_out: int
    t_pit_out: int  # leaves the pit lane
    new_compound: str
    new_stint: int  # 0-based index of the stint it starts


@dataclass
class CarRun:
    number: int
    grid: int  # 1-based grid position
    skill_ms: float
    compounds: list[str]
    pit_laps: list[int]
    stationary_ms: list[int]
    laps: list[LapRun] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)


@dataclass(frozen=True)
class StatusChange:
    t: int
    code: str
    message: str


@dataclass(frozen=True)
class Announcement:
    """A race-control message before its Utc and lap are known."""

    t: int
    item: Json


@dataclass
class Simulation:
    track: Track
    seed: int
    total_laps: int
    runs: list[CarRun]  # grid order
    incidents: Incidents
    statuses: list[StatusChange]  # TrackStatus after the opening AllClear
    announcements: list[Announcement]  # RaceControlMessages
    stream_start_utc: datetime


@dataclass
class RedFlag:
    shown: int  # the red flag (stream offset)
    restart: int  # the field leaves the pit lane behind the safety car
