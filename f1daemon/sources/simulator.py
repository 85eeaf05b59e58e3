"""The seeded race simulator: a whole race written in the official static-archive format.

A source in its own right. `simulate_race` computes a race in memory (the ground
truth: every lap, sector, pit stop, tyre stint and the classification);
`write_race` also writes it as the topics the live-timing archive publishes
(`{Topic}.jsonStream`: UTF-8 with a BOM, CRLF, `HH:MM:SS.mmm` + JSON a line) so the
daemon ingests it through its normal path, exactly like a real recording.

Physics (per lap, milliseconds): the track's base pace, a per-driver skill offset,
the compound's pace offset and degradation per lap of tyre age (SOFT 45, MEDIUM 30,
HARD 18), the fuel effect (35 per lap of fuel still aboard: the car gets faster as it
burns), track evolution (20 faster per lap) and seeded Gaussian noise (sd 150).
Sectors always sum to the lap time. Every car stops at least once and changes
compound; the in-lap loses the pit entry, the out-lap the rest of the pit-lane loss
and the stationary time. Positions follow from cumulative race time.

Incidents (`plan_incidents`, cheap and testable on its own) are drawn per race with
the track's likelihoods: a safety car (the field queues, the head at ~45 % slower), a
virtual safety car (each car ~35 % slower), a red flag (the field waits 12-35 minutes
in the pit lane, then restarts behind the safety car) and a shower (laps up to 12 %
slower, Rainfall in WeatherData, track 8-15 °C above air throughout). TrackStatus
and RaceControlMessages announce them.

Telemetry (`CarData.z`, `Position.z`, at `telemetry_hz`) comes from
`simulated_track`: a speed profile with braking zones and corners, pedals never both
pressed, DRS open only flat out on a straight above 200 km/h, each car's gear a
rising function of its speed and rpm proportional to speed in a gear, and positions
along an outline drawn from the same corners, moving as fast as the speed says.

The feed is written the way the real one behaves, quirks included: lap 1 has no
lap time and no sector-1 value; about 15 % of laps get their `LastLapTime` and/or
last sector in a separate message 0.2 to 3 s after `NumberOfLaps` moved on; now and
then one message bundles several cars.

Everything is a pure function of the arguments: `random.Random` streams derived
from the seed, no wall clock (the session date is derived from the seed too), so
the same arguments give byte-identical files.
"""

from __future__ import annotations

import base64
import bisect
import math
import random
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from f1daemon.sources.simulated_track import (
    DRS_ELIGIBLE,
    DRS_MIN_KMH,
    DRS_OPEN,
    Gearbox,
    TrackModel,
)

__all__ = [
    "COMPOUNDS",
    "FUEL_EFFECT_MS_PER_LAP",
    "LAP_NOISE_MS",
    "MAX_CARS",
    "MAX_LAPS",
    "MAX_TELEMETRY_HZ",
    "MIN_TELEMETRY_HZ",
    "RACE_START_OFFSET_MS",
    "RAIN_SLOWDOWN",
    "SC_SLOWDOWN",
    "SOURCE_NAME",
    "TOPIC_FILES",
    "TRACKS",
    "TRACK_EVOLUTION_MS_PER_LAP",
    "VSC_SLOWDOWN",
    "Compound",
    "Incidents",
    "Neutralisation",
    "Shower",
    "SimulatedLap",
    "SimulatedRace",
    "Track",
    "plan_incidents",
    "simulate_race",
    "write_race",
]

SOURCE_NAME: Final = "simulator"

_Json = dict[str, Any]

# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Track:
    """A circuit as the simulator knows it."""

    key: str
    meeting_name: str  # the real event's name; the simulated one is "Simulated …"
    location: str
    country_key: int
    country_code: str
    country_name: str
    circuit_key: int
    circuit_short_name: str
    gmt_offset_hours: int
    length_m: int
    base_lap_ms: int  # race pace of an average car on medium tyres, no fuel, rubbered track
    sector_split: tuple[float, float, float]  # fractions of the lap (time and distance)
    pit_loss_ms: int  # pit-lane time lost against a racing lap, without the stop itself
    pit_speed_kmh: int
    safety_car_likelihood: float  # chance of a safety-car period in a race
    air_temp_range: tuple[float, float]  # °C
    top_speed_kmh: int
    corners: tuple[tuple[float, int], ...]  # (fraction of the lap, apex speed km/h)
    drs_zones: tuple[tuple[float, float], ...]  # fractions of the lap
    vsc_likelihood: float = 0.3  # chance of a virtual-safety-car period in a race
    red_flag_likelihood: float = 0.05  # chance of a red flag (then a restart behind the SC)
    rain_likelihood: float = 0.1  # chance of a shower during the race
    altitude_m: float = 10.0  # height difference round the lap


TRACKS: Final[dict[str, Track]] = {
    "monza": Track(
        key="monza",
        meeting_name="Italian Grand Prix",
        location="Monza",
        country_key=13,
        country_code="ITA",
        country_name="Italy",
        circuit_key=39,
        circuit_short_name="Monza",
        gmt_offset_hours=2,
        length_m=5793,
        base_lap_ms=84_500,
        sector_split=(0.32, 0.36, 0.32),
        pit_loss_ms=23_000,
        pit_speed_kmh=80,
        safety_car_likelihood=0.35,
        air_temp_range=(23.0, 31.0),
        top_speed_kmh=345,
        corners=((0.12, 80), (0.33, 100), (0.43, 185), (0.48, 170), (0.70, 195), (0.90, 210)),
        drs_zones=((0.95, 1.0), (0.0, 0.10), (0.52, 0.66)),
        vsc_likelihood=0.3,
        red_flag_likelihood=0.05,
        rain_likelihood=0.1,
        altitude_m=12.0,
    ),
    "monaco": Track(
        key="monaco",
        meeting_name="Monaco Grand Prix",
        location="Monte Carlo",
        country_key=114,
        country_code="MON",
        country_name="Monaco",
        circuit_key=22,
        circuit_short_name="Monte Carlo",
        gmt_offset_hours=2,
        length_m=3337,
        base_lap_ms=76_000,
        sector_split=(0.26, 0.46, 0.28),
        pit_loss_ms=19_000,
        pit_speed_kmh=60,
        safety_car_likelihood=0.70,
        air_temp_range=(19.0, 25.0),
        top_speed_kmh=290,
        corners=(
            (0.05, 105),
            (0.17, 150),
            (0.21, 120),
            (0.27, 75),
            (0.32, 50),
            (0.40, 85),
            (0.55, 80),
            (0.62, 170),
            (0.70, 150),
            (0.73, 110),
            (0.88, 70),
            (0.93, 75),
        ),
        drs_zones=((0.96, 1.0), (0.0, 0.04)),
        vsc_likelihood=0.25,
        red_flag_likelihood=0.12,
        rain_likelihood=0.1,
        altitude_m=42.0,
    ),
    "spa": Track(
        key="spa",
        meeting_name="Belgian Grand Prix",
        location="Spa-Francorchamps",
        country_key=16,
        country_code="BEL",
        country_name="Belgium",
        circuit_key=7,
        circuit_short_name="Spa-Francorchamps",
        gmt_offset_hours=2,
        length_m=7004,
        base_lap_ms=108_000,
        sector_split=(0.29, 0.45, 0.26),
        pit_loss_ms=19_500,
        pit_speed_kmh=80,
        safety_car_likelihood=0.25,
        air_temp_range=(14.0, 22.0),
        top_speed_kmh=335,
        corners=(
            (0.05, 70),
            (0.30, 150),
            (0.40, 100),
            (0.52, 240),
            (0.62, 130),
            (0.70, 220),
            (0.93, 75),
        ),
        drs_zones=((0.14, 0.27), (0.97, 1.0), (0.0, 0.03)),
        vsc_likelihood=0.3,
        red_flag_likelihood=0.08,
        rain_likelihood=0.4,
        altitude_m=102.0,
    ),
    "silverstone": Track(
        key="silverstone",
        meeting_name="British Grand Prix",
        location="Silverstone",
        country_key=2,
        country_code="GBR",
        country_name="United Kingdom",
        circuit_key=2,
        circuit_short_name="Silverstone",
        gmt_offset_hours=1,
        length_m=5891,
        base_lap_ms=91_500,
        sector_split=(0.32, 0.40, 0.28),
        pit_loss_ms=20_000,
        pit_speed_kmh=80,
        safety_car_likelihood=0.30,
        air_temp_range=(15.0, 24.0),
        top_speed_kmh=320,
        corners=(
            (0.10, 110),
            (0.13, 75),
            (0.30, 140),
            (0.33, 110),
            (0.45, 270),
            (0.55, 190),
            (0.60, 160),
            (0.78, 220),
            (0.90, 110),
            (0.94, 150),
        ),
        drs_zones=((0.16, 0.28), (0.66, 0.76)),
        vsc_likelihood=0.3,
        red_flag_likelihood=0.08,
        rain_likelihood=0.3,
        altitude_m=10.0,
    ),
    "baku": Track(
        key="baku",
        meeting_name="Azerbaijan Grand Prix",
        location="Baku",
        country_key=30,
        country_code="AZE",
        country_name="Azerbaijan",
        circuit_key=144,
        circuit_short_name="Baku",
        gmt_offset_hours=4,
        length_m=6003,
        base_lap_ms=106_000,
        sector_split=(0.35, 0.41, 0.24),
        pit_loss_ms=19_500,
        pit_speed_kmh=80,
        safety_car_likelihood=0.60,
        air_temp_range=(19.0, 27.0),
        top_speed_kmh=345,
        corners=(
            (0.05, 90),
            (0.09, 95),
            (0.15, 95),
            (0.22, 95),
            (0.38, 85),
            (0.45, 110),
            (0.55, 150),
            (0.70, 110),
        ),
        drs_zones=((0.82, 1.0), (0.0, 0.04), (0.24, 0.33)),
        vsc_likelihood=0.4,
        red_flag_likelihood=0.15,
        rain_likelihood=0.03,
        altitude_m=25.0,
    ),
}


@dataclass(frozen=True)
class Compound:
    """A dry tyre compound: pace against MEDIUM and the cost of each lap of tyre age."""

    pace_offset_ms: int
    degradation_ms_per_lap: int


COMPOUNDS: Final[dict[str, Compound]] = {
    "SOFT": Compound(pace_offset_ms=-600, degradation_ms_per_lap=45),
    "MEDIUM": Compound(pace_offset_ms=0, degradation_ms_per_lap=30),
    "HARD": Compound(pace_offset_ms=450, degradation_ms_per_lap=18),
}
FUEL_EFFECT_MS_PER_LAP: Final = 35  # each lap of fuel still on board costs this much
TRACK_EVOLUTION_MS_PER_LAP: Final = 20  # the track gets this much faster every lap
LAP_NOISE_MS: Final = 150  # standard deviation of a racing lap's noise
SC_SLOWDOWN: Final = 1.45  # a lap behind the safety car takes this much longer
VSC_SLOWDOWN: Final = 1.35  # a lap under the virtual safety car (each car its own delta)
RAIN_SLOWDOWN: Final = 0.12  # a lap wholly in the heaviest shower is this much slower
RACE_START_OFFSET_MS: Final = 300_000  # lights out, from the stream's start
MAX_SPEED_KMH: Final = 360.0
MIN_TELEMETRY_HZ: Final = 0.5
MAX_TELEMETRY_HZ: Final = 60.0

TOPIC_FILES: Final[tuple[str, ...]] = (
    "SessionInfo.jsonStream",
    "SessionStatus.jsonStream",
    "DriverList.jsonStream",
    "LapCount.jsonStream",
    "TrackStatus.jsonStream",
    "WeatherData.jsonStream",
    "TimingData.jsonStream",
    "TimingAppData.jsonStream",
    "RaceControlMessages.jsonStream",
    "CarData.z.jsonStream",
    "Position.z.jsonStream",
)


@dataclass(frozen=True)
class SimulatedLap:
    """Ground truth of one lap. Lap 1 (standing start) has no lap time or sector 1."""

    driver: int
    lap: int
    lap_time_ms: int | None
    sector1_ms: int | None
    sector2_ms: int | None
    sector3_ms: int | None
    pit_in: bool  # the car entered the pit lane at the end of this lap
    pit_out: bool  # the car left the pit lane at the start of this lap
    compound: str
    stint: int  # from 1; the in-lap belongs to the old stint, the out-lap to the new
    neutralised: str | None = None  # "SC", "VSC" or "RED" if run under one (by lap number)
    wet: bool = False  # some of the lap was run in the rain


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SimulatedRace:
    """Ground truth of a simulated race (and, after `write_race`, the files written)."""

    track: str
    seed: int
    drivers: tuple[int, ...]  # racing numbers in grid order
    laps: tuple[SimulatedLap, ...]  # by driver (grid order), then lap
    classification: tuple[int, ...]  # racing numbers in finishing order
    files: tuple[Path, ...] = ()
    total_laps: int = 0  # the scheduled race distance; lapped cars complete fewer
    safety_car_laps: tuple[int, ...] = ()  # lap numbers run behind the safety car
    vsc_laps: tuple[int, ...] = ()  # lap numbers run under the virtual safety car
    red_flag_laps: tuple[int, ...] = ()  # the lap in which the race was suspended
    incidents: Incidents | None = None  # what was planned: periods and the shower
    stream_start_utc: datetime = _EPOCH  # UTC of archive offset 00:00:00.000
    race_start_offset_ms: int = RACE_START_OFFSET_MS


# --------------------------------------------------------------------------- roster

# Fictional drivers and teams: this is simulated data and must never pass for real.
_ROSTER: Final[tuple[tuple[int, str, str, str, str, str], ...]] = (
    (1, "Alex", "Arden", "ARD", "Aurora Racing", "2B4BD8"),
    (4, "Bruno", "Castell", "CAS", "Aurora Racing", "2B4BD8"),
    (7, "Dario", "Ferro", "FER", "Borealis F1", "D8202B"),
    (8, "Elias", "Grove", "GRO", "Borealis F1", "D8202B"),
    (11, "Felix", "Hartmann", "HAR", "Cobalt GP", "14B8A6"),
    (12, "Gael", "Ibarra", "IBA", "Cobalt GP", "14B8A6"),
    (15, "Hugo", "Jansen", "JAN", "Dynamo Motorsport", "F08A24"),
    (17, "Ivan", "Kovac", "KOV", "Dynamo Motorsport", "F08A24"),
    (19, "Jonas", "Lindqvist", "LIN", "Equinox Racing", "2F9E44"),
    (21, "Kai", "Moreau", "MOR", "Equinox Racing", "2F9E44"),
    (25, "Luca", "Novak", "NOV", "Falcon GP", "6B7280"),
    (26, "Mateo", "Okafor", "OKA", "Falcon GP", "6B7280"),
    (29, "Niko", "Petrov", "PET", "Granite F1 Team", "7C3AED"),
    (30, "Oscar", "Quint", "QUI", "Granite F1 Team", "7C3AED"),
    (32, "Pavel", "Rossi", "ROS", "Helix Racing", "E11D74"),
    (34, "Rafael", "Silva", "SIL", "Helix Racing", "E11D74"),
    (36, "Sami", "Tanaka", "TAN", "Ion Motorsport", "0EA5E9"),
    (38, "Theo", "Ulrich", "ULR", "Ion Motorsport", "0EA5E9"),
    (41, "Umar", "Vidal", "VID", "Juniper GP", "84CC16"),
    (43, "Victor", "Weiss", "WEI", "Juniper GP", "84CC16"),
)
MAX_CARS: Final = len(_ROSTER)
MAX_LAPS: Final = 80

# --------------------------------------------------------------------------- incidents

NeutralisationKind = Literal["SC", "VSC", "RED"]


@dataclass(frozen=True)
class Neutralisation:
    """A neutralised part of the race, by the leader's lap numbers.

    "SC" and "VSC" cover laps `first`..`last`. "RED" suspends the race in lap
    `first`; laps `first + 1`..`last` are the restart behind the safety car.
    """

    kind: NeutralisationKind
    first: int
    last: int

    def kind_of(self, lap: int) -> NeutralisationKind | None:
        if not self.first <= lap <= self.last:
            return None
        return "SC" if self.kind == "RED" and lap > self.first else self.kind


@dataclass(frozen=True)
class Shower:
    """Rain from `start_ms` to `end_ms` (stream offsets); intensity 0-1 slows the laps."""

    start_ms: int
    end_ms: int
    intensity: float


@dataclass(frozen=True)
class Incidents:
    """What happens to a race besides racing: neutralisations (in lap order) and rain."""

    neutralisations: tuple[Neutralisation, ...] = ()
    shower: Shower | None = None

    def kind_of(self, lap: int) -> NeutralisationKind | None:
        for period in self.neutralisations:
            kind = period.kind_of(lap)
            if kind is not None:
                return kind
        return None

    def laps_of(self, kind: NeutralisationKind) -> tuple[int, ...]:
        return tuple(
            lap
            for period in self.neutralisations
            for lap in range(period.first, period.last + 1)
            if period.kind_of(lap) == kind
        )

    @property
    def red_flag_laps(self) -> tuple[int, ...]:
        return tuple(p.first for p in self.neutralisations if p.kind == "RED")


def plan_incidents(track: str, seed: int, laps: int) -> Incidents:
    """Decide a race's safety cars, virtual safety cars, red flag and shower (cheap).

    Each is drawn with the track's likelihood (`Track.safety_car_likelihood`, …) from
    its own seeded stream, so the decision does not depend on the field or the
    telemetry. Periods need room: a safety car and a virtual safety car need a race of
    6 laps, a red flag 8; they never overlap and have a green lap between them.
    """
    if track not in TRACKS:
        raise ValueError(f"unknown track {track!r}; known: {', '.join(sorted(TRACKS))}")
    circuit = TRACKS[track]
    rng = _rng(seed, "incidents")
    wants = {
        "SC": rng.random() < circuit.safety_car_likelihood and laps >= 6,
        "RED": rng.random() < circuit.red_flag_likelihood and laps >= 8,
        "VSC": rng.random() < circuit.vsc_likelihood and laps >= 6,
    }
    taken: set[int] = set()
    periods: list[Neutralisation] = []
    for kind in ("SC", "RED", "VSC"):
        if not wants[kind]:
            continue
        length = {"SC": rng.randint(2, 4), "RED": rng.randint(2, 3), "VSC": rng.randint(1, 2)}[kind]
        for _ in range(12):  # a few tries at a free place; else it does not happen
            first = rng.randint(2, max(2, laps - 2 - length))
            last = min(first + length - 1, laps - 2)
            span = set(range(first - 1, last + 2))
            if last >= first + (1 if kind == "RED" else 0) and not span & taken:
                taken |= span
                periods.append(Neutralisation(kind, first, last))
                break
    shower = None
    if rng.random() < circuit.rain_likelihood:
        duration = laps * circuit.base_lap_ms
        start = RACE_START_OFFSET_MS + round(duration * rng.uniform(0.05, 0.7))
        end = start + round(duration * rng.uniform(0.1, 0.35))
        shower = Shower(start, end, round(rng.uniform(0.3, 1.0), 3))
    return Incidents(tuple(sorted(periods, key=lambda p: p.first)), shower)


# --------------------------------------------------------------------------- simulation


@dataclass
class _LapRun:
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
class _Stop:
    in_lap: int
    t_in_pit: int  # enters the pit lane (during the in-lap's last sector)
    t_box_in: int
    t_box_out: int
    t_pit_out: int  # leaves the pit lane
    new_compound: str
    new_stint: int  # 0-based index of the stint it starts


@dataclass
class _CarRun:
    number: int
    grid: int  # 1-based grid position
    skill_ms: float
    compounds: list[str]
    pit_laps: list[int]
    stationary_ms: list[int]
    laps: list[_LapRun] = field(default_factory=list)
    stops: list[_Stop] = field(default_factory=list)


@dataclass(frozen=True)
class _Status:
    t: int
    code: str
    message: str


@dataclass(frozen=True)
class _Announcement:
    """A race-control message before its Utc and lap are known."""

    t: int
    item: _Json


@dataclass
class _Sim:
    track: Track
    seed: int
    total_laps: int
    runs: list[_CarRun]  # grid order
    incidents: Incidents
    statuses: list[_Status]  # TrackStatus after the opening AllClear
    announcements: list[_Announcement]  # RaceControlMessages
    stream_start_utc: datetime


def _check_args(track: str, cars: int, laps: int, telemetry_hz: float) -> Track:
    if track not in TRACKS:
        raise ValueError(f"unknown track {track!r}; known: {', '.join(sorted(TRACKS))}")
    if not 1 <= cars <= MAX_CARS:
        raise ValueError(f"cars must be 1..{MAX_CARS}, got {cars}")
    if not 2 <= laps <= MAX_LAPS:
        raise ValueError(f"laps must be 2..{MAX_LAPS} (a pit stop needs an in- and out-lap)")
    if not (math.isfinite(telemetry_hz) and MIN_TELEMETRY_HZ <= telemetry_hz <= MAX_TELEMETRY_HZ):
        raise ValueError(
            f"telemetry_hz must be {MIN_TELEMETRY_HZ:g}..{MAX_TELEMETRY_HZ:g}, got {telemetry_hz}"
        )
    return TRACKS[track]


def _strategy(
    rng: random.Random, laps: int, avoid: frozenset[int] = frozenset()
) -> tuple[list[str], list[int]]:
    """Compounds per stint and the in-laps: one stop (two on long races, sometimes).

    No stop is made in, or just before or after, a lap in `avoid` (a red flag's).
    """
    first = rng.choices(("SOFT", "MEDIUM", "HARD"), weights=(0.45, 0.45, 0.10))[0]
    latest = laps - 2 if laps >= 4 else 1  # leaves room for an out-lap even if lapped
    if laps >= 25 and rng.random() < 0.3:
        a = rng.randint(max(1, round(0.2 * laps)), round(0.4 * laps))
        b = rng.randint(max(a + 2, round(0.55 * laps)), max(a + 2, min(latest, round(0.8 * laps))))
        pit_laps = [a, b]
    else:
        lo = max(1, round(0.3 * laps))
        pit_laps = [rng.randint(lo, max(lo, min(latest, round(0.65 * laps))))]
    if avoid:
        pit_laps = _avoiding(pit_laps, avoid, latest)
    compounds = [first]
    for _ in pit_laps:
        options = [c for c in COMPOUNDS if c != compounds[-1]]
        compounds.append(rng.choice(options))
    return compounds, pit_laps


def _avoiding(pit_laps: list[int], avoid: frozenset[int], latest: int) -> list[int]:
    """The in-laps moved off the laps around a red flag (nearest free lap, later first)."""
    blocked = {lap + d for lap in avoid for d in (-1, 0, 1)}
    out: list[int] = []
    for n, p in enumerate(pit_laps):
        if p not in blocked:
            out.append(p)
            continue
        for d in (1, -1, 2, -2, 3, -3, 4, -4, 5, -5):
            q = p + d
            clear = all(abs(q - o) >= 2 for o in out) and (
                n + 1 >= len(pit_laps) or pit_laps[n + 1] - q >= 2
            )
            if 1 <= q <= latest and q not in blocked and clear:
                out.append(q)
                break
        else:
            out.append(p)  # no room: the stop stays where it was
    return out


def _split(
    rng: random.Random, total: int, split: tuple[float, float, float]
) -> tuple[int, int, int]:
    """Three positive sector times summing exactly to `total`."""
    fr = [f * (1.0 + rng.gauss(0.0, 0.004)) for f in split]
    s = sum(fr)
    s1 = round(total * fr[0] / s)
    s2 = round(total * fr[1] / s)
    return s1, s2, total - s1 - s2


def _session_start(track: Track, seed: int) -> datetime:
    """Lights out in UTC: a Sunday derived from the seed (2040 onwards), 15:00 local."""
    day = date(2040, 1, 1) + timedelta(days=7 * (seed % 1000))
    local = datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC)
    return local - timedelta(hours=track.gmt_offset_hours)


def _rng(seed: int, purpose: str = "") -> random.Random:
    """A seeded stream: `random.Random(seed)` for the physics, a named one for the rest.

    String seeds are hashed with SHA-512 by `random`, so they do not depend on
    PYTHONHASHSEED: the same arguments always give the same numbers.
    """
    if not purpose:
        return random.Random(seed)  # noqa: S311 - simulation, not cryptography
    return random.Random(f"f1daemon-simulator:{seed}:{purpose}")  # noqa: S311


def _entrants(
    rng: random.Random, cars: int, laps: int, avoid: frozenset[int] = frozenset()
) -> list[_CarRun]:
    """Skill, qualifying (the grid) and each car's tyre strategy, in grid order."""
    skills = [rng.uniform(0.0, 1400.0) for _ in range(cars)]
    quali = [s + rng.gauss(0.0, 180.0) for s in skills]
    grid_order = sorted(range(cars), key=lambda i: (quali[i], i))
    runs: list[_CarRun] = []
    for pos, i in enumerate(grid_order, start=1):
        compounds, pit_laps = _strategy(rng, laps, avoid)
        stationary = [
            rng.randint(2100, 3400) + (rng.randint(2000, 6000) if rng.random() < 0.05 else 0)
            for _ in pit_laps
        ]
        runs.append(_CarRun(_ROSTER[i][0], pos, skills[i], compounds, pit_laps, stationary))
    return runs


def _racing_lap_ms(rng: random.Random, base: int, run: _CarRun, k: int, laps: int) -> float:
    """The model: pace, skill, tyre (compound and age), fuel, track evolution, noise."""
    stint = sum(1 for p in run.pit_laps if p < k)
    stint_start = 1 if stint == 0 else run.pit_laps[stint - 1] + 1
    tyre = COMPOUNDS[run.compounds[stint]]
    return (
        base
        + run.skill_ms
        + tyre.pace_offset_ms
        + tyre.degradation_ms_per_lap * (k - stint_start)
        + FUEL_EFFECT_MS_PER_LAP * (laps - k)
        - TRACK_EVOLUTION_MS_PER_LAP * (k - 1)
        + rng.gauss(0.0, LAP_NOISE_MS)
    )


def _wetness(shower: Shower | None, start: int, lap_ms: int) -> float:
    """How much of a lap from `start` is run in the rain, times the shower's intensity."""
    if shower is None or lap_ms <= 0:
        return 0.0
    overlap = min(start + lap_ms, shower.end_ms) - max(start, shower.start_ms)
    return max(0.0, overlap / lap_ms) * shower.intensity


@dataclass
class _RedFlag:
    shown: int  # the red flag (stream offset)
    restart: int  # the field leaves the pit lane behind the safety car


def _run_laps(
    rng: random.Random, track: Track, runs: list[_CarRun], laps: int, incidents: Incidents
) -> dict[int, _RedFlag]:
    """Every car's every lap, lap by lap in road order (the safety car needs the queue).

    Returns each red flag's times by its lap.
    """
    base = track.base_lap_ms
    pit_entry = round(track.pit_loss_ms * 0.35)
    pit_exit = track.pit_loss_ms - pit_entry
    reds: dict[int, _RedFlag] = {}
    for k in range(1, laps + 1):
        if k == 1:
            order = list(range(len(runs)))
        else:
            order = sorted(range(len(runs)), key=lambda i: (runs[i].laps[-1].end, i))
        kind = incidents.kind_of(k)
        anchor: int | None = None  # crossing time of the last car in the queue
        sc_ms = round(base * SC_SLOWDOWN + rng.gauss(0.0, 400.0))
        for rank, i in enumerate(order):
            run = runs[i]
            stint = sum(1 for p in run.pit_laps if p < k)
            stint_start = 1 if stint == 0 else run.pit_laps[stint - 1] + 1
            pit_in = k in run.pit_laps
            pit_out = (k - 1) in run.pit_laps
            prev = RACE_START_OFFSET_MS if k == 1 else run.laps[-1].end
            lap_ms = _racing_lap_ms(rng, base, run, k, laps)
            wet = _wetness(incidents.shower, prev, round(lap_ms))
            lap_ms = round(lap_ms * (1.0 + RAIN_SLOWDOWN * wet))
            hold = 0
            if kind == "SC":
                if anchor is None:  # the head of the queue runs at the safety car's pace
                    lap_ms = max(lap_ms, sc_ms)
                else:  # the rest close up to the queue, at no more than a brisk pace
                    chase = prev + max(lap_ms, round(base * 1.18))
                    lap_ms = max(chase, anchor + rng.randint(500, 1200)) - prev
            elif kind == "VSC":  # every car keeps to its own delta time
                lap_ms = max(lap_ms, round(base * VSC_SLOWDOWN + rng.gauss(0.0, 300.0)))
            elif kind == "RED":  # back to the pit lane, wait there, restart in order
                red = reds.get(k)
                if red is None:
                    shown = prev + round(base * rng.uniform(0.2, 0.6))
                    red = reds[k] = _RedFlag(shown, shown + rng.randint(12, 35) * 60_000)
                slow = round(base * 1.3) + rng.randint(0, 2000)
                lap_ms = max(prev + slow, red.restart + 2_000 + 800 * rank) - prev
                hold = lap_ms - slow
            if not (pit_in or pit_out):
                anchor = prev + lap_ms
            s1, s2, s3 = _split(rng, lap_ms - hold, track.sector_split)
            s3 += hold
            if k == 1:  # standing start: the getaway and the grid slot's distance to the line
                s1 += rng.randint(2500, 4000) + 130 * (run.grid - 1)
            if pit_in:
                s3 += pit_entry
            if pit_out:
                s1 += pit_exit + run.stationary_ms[run.pit_laps.index(k - 1)]
            run.laps.append(
                _LapRun(
                    lap=k,
                    start=prev,
                    s1=s1,
                    s2=s2,
                    s3=s3,
                    compound=run.compounds[stint],
                    stint=stint,
                    age=k - stint_start,
                    pit_in=pit_in,
                    pit_out=pit_out,
                    kind=kind,
                    wet=wet > 0,
                    hold_ms=hold,
                )
            )
    return reds


def _finish(rng: random.Random, runs: list[_CarRun]) -> None:
    """The chequered flag at the leader's last crossing; then each stop's pit-lane times."""
    flag = min(run.laps[-1].end for run in runs)
    for run in runs:
        done = next(n for n, lap in enumerate(run.laps, start=1) if lap.end >= flag)
        del run.laps[done:]
        for n, p in enumerate(run.pit_laps):
            if p + 1 > done:  # cannot happen within the strategy's limits; guard anyway
                raise RuntimeError(f"car {run.number} finished before its out-lap {p + 1}")
            in_lap = run.laps[p - 1]
            out_lap = run.laps[p]
            t_in_pit = in_lap.end - round(in_lap.s3 * rng.uniform(0.25, 0.45))
            t_box_in = in_lap.end + rng.randint(2500, 5000)
            t_box_out = t_box_in + run.stationary_ms[n]
            t_pit_out = min(t_box_out + rng.randint(4000, 7000), out_lap.b1 - 2000)
            run.stops.append(
                _Stop(p, t_in_pit, t_box_in, t_box_out, t_pit_out, run.compounds[n + 1], n + 1)
            )


def _rc(t: int, category: str, message: str, **extra: str | int) -> _Announcement:
    return _Announcement(t, {"Category": category, **extra, "Message": message})


def _flag(t: int, flag: str, message: str, **extra: str | int) -> _Announcement:
    return _rc(t, "Flag", message, Flag=flag, Scope="Track", **extra)


def _safety_car(t: int, mode: str, status: str) -> _Announcement:
    return _rc(t, "SafetyCar", f"{mode} {status}", Status=status, Mode=mode)


def _timeline(
    rng: random.Random,
    *,
    track: Track,
    runs: list[_CarRun],
    incidents: Incidents,
    reds: dict[int, _RedFlag],
    laps: int,
) -> tuple[list[_Status], list[_Announcement]]:
    """TrackStatus and race control for the race: openings, neutralisations, the flag.

    Each period is shown before every car's first lap of it ends and lifted only
    after every car has started its last, so every lap it slowed is seen neutralised.
    """
    statuses: list[_Status] = []
    said: list[_Announcement] = [
        _flag(30_000, "GREEN", "GREEN LIGHT - PIT EXIT OPEN"),
        _rc(RACE_START_OFFSET_MS - 90_000, "Other", "PIT EXIT CLOSED"),
        _rc(
            RACE_START_OFFSET_MS - 60_000,
            "Other",
            f"RISK OF RAIN FOR F1 RACE IS {round(100 * track.rain_likelihood)}%",
        ),
    ]

    def lead(lap: int) -> _LapRun:
        return min((run.laps[lap - 1] for run in runs if len(run.laps) >= lap), key=_end)

    def starts(lap: int) -> list[int]:
        return [run.laps[lap - 1].start for run in runs if len(run.laps) >= lap]

    def ends(lap: int) -> list[int]:
        return [run.laps[lap - 1].end for run in runs if len(run.laps) >= lap]

    def drs_enabled(lap: int) -> None:
        if lap <= laps and any(len(run.laps) >= lap for run in runs):
            said.append(_rc(lead(lap).start, "Drs", "DRS ENABLED", Status="ENABLED"))

    drs_enabled(3)
    for period in incidents.neutralisations:
        # periods end two laps before the distance: every car has run their laps
        first, last = lead(period.first), lead(period.last)
        sector = rng.randint(1, 20)
        if period.kind == "RED":
            red = reds[period.first]
            deployed = red.shown
        else:
            deployed = min(
                first.start + round(0.25 * (first.end - first.start)),
                min(ends(period.first)) - 2_000,
            )
        yellow = max(first.start + 500, deployed - rng.randint(5000, 15000))
        clear = max(
            last.end - round(0.15 * (last.end - last.start)),
            max(starts(period.last)) + 2_000,
        )
        statuses.append(_Status(yellow, "2", "Yellow"))
        said.append(
            _rc(
                yellow,
                "Flag",
                f"YELLOW IN TRACK SECTOR {sector}",
                Flag="YELLOW",
                Scope="Sector",
                Sector=sector,
            )
        )
        said.append(_rc(deployed, "Drs", "DRS DISABLED", Status="DISABLED"))
        if period.kind == "SC":
            statuses.append(_Status(deployed, "4", "SCDeployed"))
            said.append(_safety_car(deployed, "SAFETY CAR", "DEPLOYED"))
            said.append(_safety_car(last.start + 5_000, "SAFETY CAR", "IN THIS LAP"))
        elif period.kind == "VSC":
            ending = max(clear - rng.randint(8_000, 15_000), deployed + 5_000)
            statuses.append(_Status(deployed, "6", "VSCDeployed"))
            statuses.append(_Status(ending, "7", "VSCEnding"))
            said.append(_safety_car(deployed, "VIRTUAL SAFETY CAR", "DEPLOYED"))
            said.append(_safety_car(ending, "VIRTUAL SAFETY CAR", "ENDING"))
        else:
            red = reds[period.first]
            statuses.append(_Status(red.shown, "5", "Red"))
            said.append(_flag(red.shown, "RED", "RED FLAG"))
            said.append(_rc(red.shown + 600_000, "Other", "RACE WILL RESUME BEHIND THE SAFETY CAR"))
            statuses.append(_Status(red.restart, "4", "SCDeployed"))
            said.append(_flag(red.restart - 60_000, "GREEN", "GREEN LIGHT - PIT EXIT OPEN"))
            said.append(_safety_car(red.restart, "SAFETY CAR", "DEPLOYED"))
            said.append(_safety_car(last.start + 5_000, "SAFETY CAR", "IN THIS LAP"))
        statuses.append(_Status(clear, "1", "AllClear"))
        said.append(_flag(clear, "CLEAR", "TRACK CLEAR"))
        said.append(
            _rc(
                clear,
                "Flag",
                f"CLEAR IN TRACK SECTOR {sector}",
                Flag="CLEAR",
                Scope="Sector",
                Sector=sector,
            )
        )
        drs_enabled(period.last + 2)
    flag_t = min(run.laps[-1].end for run in runs)
    said.append(_flag(flag_t, "CHEQUERED", "CHEQUERED FLAG"))
    statuses.sort(key=lambda s: s.t)
    said.sort(key=lambda a: a.t)
    return statuses, said


def _end(lap: _LapRun) -> int:
    return lap.end


def _simulate(track_key: str, seed: int, cars: int, laps: int) -> _Sim:
    track = TRACKS[track_key]
    incidents = plan_incidents(track_key, seed, laps)
    rng = _rng(seed)
    runs = _entrants(rng, cars, laps, frozenset(incidents.red_flag_laps))
    reds = _run_laps(rng, track, runs, laps, incidents)
    _finish(rng, runs)
    statuses, said = _timeline(
        _rng(seed, "race-control"),
        track=track,
        runs=runs,
        incidents=incidents,
        reds=reds,
        laps=laps,
    )
    return _Sim(
        track=track,
        seed=seed,
        total_laps=laps,
        runs=runs,
        incidents=incidents,
        statuses=statuses,
        announcements=said,
        stream_start_utc=_session_start(track, seed) - timedelta(milliseconds=RACE_START_OFFSET_MS),
    )


def _ground_truth(sim: _Sim) -> SimulatedRace:
    laps: list[SimulatedLap] = []
    for run in sim.runs:
        for lap in run.laps:
            timed = lap.lap > 1
            laps.append(
                SimulatedLap(
                    driver=run.number,
                    lap=lap.lap,
                    lap_time_ms=lap.s1 + lap.s2 + lap.s3 if timed else None,
                    sector1_ms=lap.s1 if timed else None,
                    sector2_ms=lap.s2,
                    sector3_ms=lap.s3,
                    pit_in=lap.pit_in,
                    pit_out=lap.pit_out,
                    compound=lap.compound,
                    stint=lap.stint + 1,
                    neutralised=lap.kind,
                    wet=lap.wet,
                )
            )
    finish = sorted(sim.runs, key=lambda r: (-len(r.laps), r.laps[-1].end, r.grid))
    incidents = sim.incidents
    return SimulatedRace(
        track=sim.track.key,
        seed=sim.seed,
        drivers=tuple(run.number for run in sim.runs),
        laps=tuple(laps),
        classification=tuple(run.number for run in finish),
        total_laps=sim.total_laps,
        safety_car_laps=incidents.laps_of("SC"),
        vsc_laps=incidents.laps_of("VSC"),
        red_flag_laps=incidents.red_flag_laps,
        incidents=incidents,
        stream_start_utc=sim.stream_start_utc,
    )


def simulate_race(
    *,
    track: str = "monza",
    seed: int = 1,
    cars: int = 20,
    laps: int = 12,
    telemetry_hz: float = 4.0,
) -> SimulatedRace:
    """The ground truth of a seeded race, computed in memory (no I/O; `files` is empty).

    `telemetry_hz` only shapes `CarData.z` in `write_race`; it is validated here so
    both functions accept the same arguments.
    """
    _check_args(track, cars, laps, telemetry_hz)
    return _ground_truth(_simulate(track, seed, cars, laps))


# --------------------------------------------------------------------------- feed rendering


def _offset(ms: int) -> str:
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, milli = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{milli:03d}"


def _seconds(ms: int) -> str:
    """A sector time as the feed writes it: seconds with three decimals ("38.250")."""
    return f"{ms // 1000}.{ms % 1000:03d}"


def _lap_time(ms: int) -> str:
    """A lap time as the feed writes it: "M:SS.mmm"."""
    m, rem = divmod(ms, 60_000)
    return f"{m}:{rem // 1000:02d}.{rem % 1000:03d}"


def _gap(ms: int) -> str:
    return f"+{_seconds(max(ms, 0))}"


class _Stream:
    """One topic's messages, written in offset order (ties keep emission order)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, _Json]] = []

    def add(self, t: int, message: _Json) -> None:
        self.items.append((t, len(self.items), message))

    def sorted(self) -> list[tuple[int, int, _Json]]:
        return sorted(self.items, key=lambda item: (item[0], item[1]))


def _encode(items: list[tuple[int, bytes]]) -> bytes:
    out = bytearray("\ufeff".encode())
    for t, payload in items:
        out += _offset(t).encode("ascii")
        out += payload
        out += b"\r\n"
    return bytes(out)


def _plain(stream: _Stream) -> bytes:
    return _encode([(t, orjson.dumps(msg)) for t, _, msg in stream.sorted()])


def _track_model(track: Track) -> TrackModel:
    return TrackModel(
        length_m=track.length_m,
        top_speed_kmh=track.top_speed_kmh,
        corners=track.corners,
        drs_zones=track.drs_zones,
        sector_split=track.sector_split,
        altitude_m=track.altitude_m,
        seed_key=f"f1daemon-simulator:outline:{track.key}",
    )


def _sector_scale(model: TrackModel, lap: _LapRun, sector: int) -> float:
    """How much faster than the reference lap a sector was driven (hold time excluded)."""
    driven = (lap.s1, lap.s2, lap.s3 - lap.hold_ms)[sector]
    return model.sector_ref_s[sector] * 1000.0 / max(1, driven)


def _trap_speed(model: TrackModel, lap: _LapRun, point: float) -> int:
    """A speed trap's reading: the lap's speed at that point."""
    sector = 0 if point < model.bounds[1] else 1 if point < model.bounds[2] else 2
    return round(min(MAX_SPEED_KMH, model.speed(point, _sector_scale(model, lap, sector))))


def _timing_snapshot(sim: _Sim) -> _Json:
    lines: _Json = {}
    for run in sim.runs:
        lines[str(run.number)] = {
            "RacingNumber": str(run.number),
            "Line": run.grid,
            "Position": str(run.grid),
            "ShowPosition": True,
            "GapToLeader": "",
            "IntervalToPositionAhead": {"Value": "", "Catching": False},
            "InPit": False,
            "PitOut": False,
            "Retired": False,
            "Stopped": False,
            "NumberOfPitStops": 0,
            "Sectors": [
                {
                    "Stopped": False,
                    "Value": "",
                    "PreviousValue": "",
                    "OverallFastest": False,
                    "PersonalFastest": False,
                }
                for _ in range(3)
            ],
            "Speeds": {
                key: {"Value": "", "OverallFastest": False, "PersonalFastest": False}
                for key in ("I1", "I2", "FL", "ST")
            },
            "BestLapTime": {"Value": ""},
            "LastLapTime": {"Value": "", "OverallFastest": False, "PersonalFastest": False},
        }
    return {"Lines": lines}


@dataclass
class _Crossing:
    t: int
    run: _CarRun
    lap: _LapRun


@dataclass
class _Feed:
    timing: _Stream = field(default_factory=_Stream)
    timing_app: _Stream = field(default_factory=_Stream)
    driver_list: _Stream = field(default_factory=_Stream)
    lap_count: _Stream = field(default_factory=_Stream)
    track_status: _Stream = field(default_factory=_Stream)
    session_status: _Stream = field(default_factory=_Stream)
    weather: _Stream = field(default_factory=_Stream)
    # (car number, completed lap) -> interval to the car ahead at the line (ms)
    intervals: dict[tuple[int, int], int] = field(default_factory=dict)


def _lines(number: int, patch: _Json) -> _Json:
    return {"Lines": {str(number): patch}}


def _crossing_messages(
    t: int, lap: _LapRun, extra: _Json, *, personal_best: bool, rng: random.Random
) -> list[tuple[int, _Json]]:
    """A line crossing: the count, the last sector, the lap time, maybe some of it late.

    About 15 % of the time the last sector and/or the lap time come in a separate
    message 0.2 to 3 s after the count moved on, as in the real feed. Lap 1 (a
    standing start) has no lap time.
    """
    k = lap.lap
    lap_ms = lap.s1 + lap.s2 + lap.s3
    sector: _Json = {"Sectors": {"2": {"Value": _seconds(lap.s3)}}}
    times: _Json = {}
    if k > 1:
        times["LastLapTime"] = {"Value": _lap_time(lap_ms)}
        if personal_best:
            times["BestLapTime"] = {"Value": _lap_time(lap_ms), "Lap": k}
    mode = rng.choice(("times", "sector", "both", "apart")) if rng.random() < 0.15 else ""
    if not times and mode:
        mode = "sector"
    delay_sector = rng.randint(200, 3000)
    delay_times = delay_sector if mode == "both" else rng.randint(200, 3000)
    patch: _Json = {"NumberOfLaps": k}
    late: dict[int, _Json] = {}
    if mode in ("sector", "both", "apart"):
        late.setdefault(t + delay_sector, {}).update(sector)
    else:
        patch.update(sector)
    if mode in ("times", "both", "apart"):
        late.setdefault(t + delay_times, {}).update(times)
    else:
        patch.update(times)
    patch.update(extra)
    return [(t, patch), *sorted(late.items(), key=lambda item: item[0])]


def _render_positions(sim: _Sim, feed: _Feed, model: TrackModel, rng: random.Random) -> None:
    """Line crossings in time order: lap counts, times, gaps, positions, tyre ages."""
    crossings = sorted(
        (_Crossing(lap.end, run, lap) for run in sim.runs for lap in run.laps),
        key=lambda c: (c.t, c.run.grid),
    )
    done = {run.number: 0 for run in sim.runs}
    cross_t: dict[tuple[int, int], int] = {}
    position = {run.number: run.grid for run in sim.runs}
    grid = {run.number: run.grid for run in sim.runs}
    best: dict[int, int] = {}
    lap_count_sent = 1
    total = sim.total_laps
    for c in crossings:
        number, k = c.run.number, c.lap.lap
        done[number] = k
        cross_t[number, k] = c.t
        ranking = sorted(
            done,
            key=lambda n: (-done[n], cross_t[n, done[n]] if done[n] else grid[n], grid[n]),
        )
        idx = ranking.index(number)
        if idx == 0:
            gap = interval = f"LAP {min(k + 1, total)}"
        else:
            leader, ahead = ranking[0], ranking[idx - 1]
            behind_laps = done[leader] - k
            gap = f"{behind_laps} L" if behind_laps > 0 else _gap(c.t - cross_t[leader, k])
            feed.intervals[number, k] = c.t - cross_t[ahead, k]
            interval = _gap(feed.intervals[number, k])
        if k == lap_count_sent and k < total:  # the leader starts lap k + 1
            lap_count_sent = k + 1
            feed.lap_count.add(c.t, {"CurrentLap": k + 1})

        lap = c.lap
        lap_ms = lap.s1 + lap.s2 + lap.s3
        personal_best = k > 1 and lap_ms < best.get(number, 1 << 62)
        if personal_best:
            best[number] = lap_ms
        head: _Json = {
            "GapToLeader": gap,
            "IntervalToPositionAhead": {"Value": interval},
            "Speeds": {"FL": {"Value": str(_trap_speed(model, lap, model.POINTS - 1))}},
        }
        for t, patch in _crossing_messages(c.t, lap, head, personal_best=personal_best, rng=rng):
            feed.timing.add(t, _lines(number, patch))

        moved: _Json = {}
        for p, n in enumerate(ranking, start=1):
            if position[n] != p:
                position[n] = p
                moved[str(n)] = {"Line": p, "Position": str(p)}
        if moved:
            feed.timing.add(c.t, {"Lines": moved})
            feed.driver_list.add(c.t, {key: {"Line": v["Line"]} for key, v in moved.items()})

        feed.timing_app.add(
            c.t, _lines(number, {"Stints": {str(lap.stint): {"TotalLaps": lap.age + 1}}})
        )


def _render_laps(sim: _Sim, feed: _Feed, model: TrackModel, rng: random.Random) -> None:
    """Per car: sector completions, speed traps and pit-lane messages."""
    i1 = model.bounds[1] * 0.7
    i2 = model.bounds[1] + (model.bounds[2] - model.bounds[1]) * 0.7
    trap = float(model.trap)
    for run in sim.runs:
        stops = {stop.in_lap: stop for stop in run.stops}
        for lap in run.laps:
            number = run.number
            speeds: _Json = {"I1": {"Value": str(_trap_speed(model, lap, i1))}}
            if lap.lap == 1:  # standing start: the feed gives no sector-1 time
                feed.timing.add(lap.b1, _lines(number, {"Speeds": speeds}))
            else:
                speeds.update({key: {"Value": ""} for key in ("I2", "FL", "ST")})
                patch: _Json = {
                    "Sectors": {
                        "0": {"Value": _seconds(lap.s1)},
                        "1": {"Value": ""},
                        "2": {"Value": ""},
                    },
                    "Speeds": speeds,
                }
                if lap.pit_out:
                    patch["PitOut"] = False
                feed.timing.add(lap.b1, _lines(number, patch))
            feed.timing.add(
                lap.b2,
                _lines(
                    number,
                    {
                        "Sectors": {"1": {"Value": _seconds(lap.s2)}},
                        "Speeds": {"I2": {"Value": str(_trap_speed(model, lap, i2))}},
                    },
                ),
            )
            stop = stops.get(lap.lap)
            if stop is None:
                # the speed trap, somewhere in the lap's last sector
                t_trap = lap.b2 + round(lap.s3 * rng.uniform(0.2, 0.8))
                feed.timing.add(
                    t_trap,
                    _lines(
                        number, {"Speeds": {"ST": {"Value": str(_trap_speed(model, lap, trap))}}}
                    ),
                )
            else:
                feed.timing.add(
                    stop.t_in_pit,
                    _lines(number, {"InPit": True, "NumberOfPitStops": stop.new_stint}),
                )
                feed.timing.add(stop.t_pit_out, _lines(number, {"InPit": False, "PitOut": True}))
                feed.timing_app.add(
                    stop.t_pit_out,
                    _lines(
                        number,
                        {
                            "Stints": {
                                str(stop.new_stint): {
                                    "Compound": stop.new_compound,
                                    "New": "true",
                                    "TyresNotChanged": "0",
                                    "TotalLaps": 0,
                                    "StartLaps": 0,
                                }
                            }
                        },
                    ),
                )


def _bundle(stream: _Stream, rng: random.Random) -> None:
    """Now and then the feed sends two cars' updates in one message: merge neighbours."""
    items = stream.sorted()
    out: list[tuple[int, int, _Json]] = []
    carry: _Json | None = None
    for n, (t, _, msg) in enumerate(items):
        lines: _Json = msg["Lines"]
        if carry is not None:
            lines = {**carry, **lines}
            carry = None
        nxt = items[n + 1] if n + 1 < len(items) else None
        if (
            nxt is not None
            and n > 0  # never the snapshot
            and nxt[0] - t <= 800
            and not (lines.keys() & nxt[2]["Lines"].keys())
            and rng.random() < 0.04
        ):
            carry = lines
            continue
        out.append((t, len(out), {"Lines": lines}))
    stream.items = out


def _weather(sim: _Sim, until: int) -> _Stream:
    """The circuit's station every minute: a drifting day, cooled and wetted by a shower.

    The track stays 8-15 °C above the air (the sun on the asphalt; less in the rain).
    """
    rng = _rng(sim.seed, "weather")
    lo, hi = sim.track.air_temp_range
    shower = sim.incidents.shower
    air = rng.uniform(lo, hi)
    delta = rng.uniform(8.5, 14.5)  # track above air
    humidity = rng.uniform(35.0, 75.0)
    pressure = rng.uniform(995.0, 1020.0)
    wind_dir = rng.randint(0, 359)
    wind = rng.uniform(0.3, 3.5)
    stream = _Stream()
    t = 10_000 + rng.randint(0, 999)
    while t <= until:
        raining = shower is not None and shower.start_ms <= t < shower.end_ms
        stream.add(
            t,
            {
                "AirTemp": f"{air:.1f}",
                "Humidity": f"{humidity:.1f}",
                "Pressure": f"{pressure:.1f}",
                "Rainfall": "1" if raining else "0",
                "TrackTemp": f"{air + delta:.1f}",
                "WindDirection": str(wind_dir),
                "WindSpeed": f"{wind:.1f}",
            },
        )
        wet = shower.intensity if raining and shower is not None else 0.0
        air = min(hi, max(lo, air + rng.gauss(0.0, 0.08) - 0.5 * wet))
        delta = min(14.8, max(8.2, delta + rng.gauss(0.0, 0.15) - 1.5 * wet))
        humidity = min(95.0, max(20.0, humidity + rng.gauss(0.0, 0.4) + 8.0 * wet))
        pressure = min(1030.0, max(985.0, pressure + rng.gauss(0.0, 0.1) - 0.3 * wet))
        wind_dir = (wind_dir + rng.randint(-25, 25)) % 360
        wind = min(8.0, max(0.0, wind + rng.gauss(0.0, 0.3)))
        t += 60_000 + rng.randint(-20, 20)
    return stream


def _utc(start: datetime, ticks: int) -> str:
    """UTC of a stream offset in 100 ns ticks, with 7 fractional digits like the feed."""
    seconds, frac = divmod(ticks, 10_000_000)
    stamp = start + timedelta(seconds=seconds)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{frac:07d}Z"


# The pit lane runs beside the main straight, from this fraction of the lap over this
# span (through the line), this far to the side of the track.
PIT_LANE_FROM: Final = 0.955
PIT_LANE_SPAN: Final = 0.09
PIT_LANE_SIDE_M: Final = 18.0
COOL_DOWN_MS: Final = 90_000  # the slow lap after the flag, then parc fermé
COOL_DOWN_KMH: Final = 110


@dataclass(frozen=True)
class _CarState:
    """What one car does at one instant (before the sensors' noise)."""

    speed: float  # km/h
    throttle: int
    brake: int
    drs: int
    point: float  # where along the model's loop
    side_m: float  # to the left of the racing line
    on_track: bool
    engine_on: bool = True
    moving: bool = True


class _CarTrace:
    """Where a car is and what it does at any stream offset, for telemetry."""

    def __init__(self, run: _CarRun, sim: _Sim, feed: _Feed, model: TrackModel) -> None:
        self.number = str(run.number)
        self.model = model
        self.track = sim.track
        self.laps = run.laps
        self.starts = [lap.start for lap in run.laps]
        self.finish = run.laps[-1].end
        self.pit = [(s.t_in_pit, s.t_box_in, s.t_box_out, s.t_pit_out) for s in run.stops]
        self.gearbox = Gearbox.for_car(_rng(sim.seed, f"gearbox:{run.number}"))
        # the grid: two by two, 8 m apart, behind the line
        self.grid_point = model.POINTS - (10.0 + 8.0 * (run.grid - 1)) / model.ds
        self.grid_side = 3.0 if run.grid % 2 else -3.0
        self.box_point = (
            model.POINTS * (PIT_LANE_FROM + PIT_LANE_SPAN / 2) + run.grid * 6.0 / model.ds
        )
        self.noise = 0.0  # the speed sensor's drifting error (km/h)
        self.hold_point = self.pit_point(0.2) + run.grid * 8.0 / model.ds
        # DRS: from lap 3, not under or just after a neutralisation, within a second
        self.drs = [
            lap.lap >= 3
            and lap.kind is None
            and (lap.lap < 2 or run.laps[lap.lap - 2].kind is None)
            and feed.intervals.get((run.number, lap.lap - 1), 1 << 30) < 1000
            for lap in run.laps
        ]

    def pit_point(self, fraction: float) -> float:
        return self.model.POINTS * (PIT_LANE_FROM + PIT_LANE_SPAN * fraction)

    def state(self, t: int) -> _CarState:  # noqa: PLR0911 - one return per place a car can be
        model = self.model
        if t < RACE_START_OFFSET_MS:  # on the grid, engine running
            return _CarState(0.0, 0, 0, 0, self.grid_point, self.grid_side, True, moving=False)
        if t >= self.finish:
            gone = t - self.finish
            if gone < COOL_DOWN_MS:  # the slow lap back
                point = (gone / 1000 * COOL_DOWN_KMH / 3.6) / model.ds
                return _CarState(COOL_DOWN_KMH, 30, 0, 0, point, 0.0, True)
            return _CarState(0.0, 0, 0, 0, self.box_point, PIT_LANE_SIDE_M, False, False, False)
        for a, b, c, d in self.pit:
            if a <= t < d:
                if b <= t < c:  # in the box
                    return _CarState(
                        0.0, 0, 0, 0, self.box_point, PIT_LANE_SIDE_M, True, moving=False
                    )
                fraction = (
                    0.5 * (t - a) / max(1, b - a) if t < b else 0.5 + 0.5 * (t - c) / max(1, d - c)
                )
                speed = float(self.track.pit_speed_kmh)
                return _CarState(speed, 35, 0, 0, self.pit_point(fraction), PIT_LANE_SIDE_M, True)
        n = bisect.bisect_right(self.starts, t) - 1
        lap = self.laps[n]
        if lap.hold_ms and lap.hold_start <= t < lap.hold_start + lap.hold_ms:  # red flag
            point = self.hold_point  # queued in the pit lane
            return _CarState(0.0, 0, 0, 0, point, PIT_LANE_SIDE_M, True, False, False)
        if t < lap.b1:
            sector, elapsed, driven = 0, t - lap.start, lap.s1
        elif t < lap.b2:
            sector, elapsed, driven = 1, t - lap.b1, lap.s2
        else:
            sector, elapsed, driven = 2, t - lap.b2, lap.s3 - lap.hold_ms
            if lap.hold_ms and t >= lap.hold_start:
                elapsed -= lap.hold_ms
        point = model.locate(sector, elapsed / max(1, driven))
        scale = _sector_scale(model, lap, sector)
        i = model.index(point)
        throttle, brake = model.throttle[i], model.brake[i]
        if scale < 0.85:  # a slow lap: neutralised, in or out of the pits, the getaway
            throttle = min(throttle, 55)
        drs = 0
        if self.drs[n] and model.drs_zone[i]:
            drs = (
                DRS_OPEN
                if throttle == 100 and model.speed(point, scale) >= DRS_MIN_KMH
                else DRS_ELIGIBLE
            )
        return _CarState(model.speed(point, scale), throttle, brake, drs, point, 0.0, True)


def _sample(trace: _CarTrace, t: int, rng: random.Random) -> tuple[_Json, _Json]:
    """One car's CarData channels and Position entry at `t`."""
    state = trace.state(t)
    # the sensor's error drifts rather than jumps, so a car does not hunt between gears
    trace.noise = 0.85 * trace.noise + rng.gauss(0.0, 0.6)
    speed = 0
    if state.moving:
        speed = max(1, min(round(MAX_SPEED_KMH), round(state.speed + trace.noise)))
    drs = state.drs
    if drs == DRS_OPEN and speed < DRS_MIN_KMH:
        drs = DRS_ELIGIBLE
    gear = trace.gearbox.gear(speed)
    channels = {
        "0": trace.gearbox.rpm(speed, gear, engine_on=state.engine_on),
        "2": speed,
        "3": gear,
        "4": state.throttle,
        "5": state.brake,
        "45": drs,
    }
    x, y, z = trace.model.position(state.point, state.side_m)
    where = {"Status": "OnTrack" if state.on_track else "OffTrack", "X": x, "Y": y, "Z": z}
    return {"Channels": channels}, where


def _deflated(message: _Json) -> bytes:
    """A `.z` payload: JSON, raw deflate, base64, as a JSON string."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = compressor.compress(orjson.dumps(message)) + compressor.flush()
    return b'"' + base64.b64encode(raw) + b'"'


def _telemetry(
    sim: _Sim,
    feed: _Feed,
    *,
    model: TrackModel,
    hz: float,
    first_ms: int,
    last_ms: int,
) -> tuple[bytes, bytes]:
    """`CarData.z` and `Position.z`: every car sampled `hz` times a second, sent each second."""
    rng = _rng(sim.seed, "telemetry")
    traces = [_CarTrace(run, sim, feed, model) for run in sim.runs]
    period = 10_000_000 / hz  # ticks
    jitter = min(150_000, int(period * 0.3))  # sampling jitter: up to 15 ms
    car_items: list[tuple[int, bytes]] = []
    position_items: list[tuple[int, bytes]] = []
    sample = math.floor(first_ms * 10_000 / period) + 1  # each message: (second - 1, second]
    second = first_ms // 1000 + 1
    while second * 1000 <= last_ms:
        cars: list[_Json] = []
        positions: list[_Json] = []
        limit = second * 10_000_000
        while (ticks := round(sample * period)) <= limit:
            ticks = max(0, ticks - rng.randint(0, jitter))
            t = ticks // 10_000
            utc = _utc(sim.stream_start_utc, ticks)
            channels: _Json = {}
            entries: _Json = {}
            for trace in traces:
                channels[trace.number], entries[trace.number] = _sample(trace, t, rng)
            cars.append({"Utc": utc, "Cars": channels})
            positions.append({"Timestamp": utc, "Entries": entries})
            sample += 1
        if cars:
            car_items.append((second * 1000 + rng.randint(40, 250), _deflated({"Entries": cars})))
            position_items.append(
                (second * 1000 + rng.randint(40, 250), _deflated({"Position": positions}))
            )
        second += 1
    return _encode(car_items), _encode(position_items)


def _race_control(sim: _Sim, feed: _Feed) -> _Stream:
    """`RaceControlMessages`: a list first, then each new message patched in by index."""
    crossings = feed.lap_count.sorted()
    times = [t for t, _, _ in crossings]
    stream = _Stream()
    for n, said in enumerate(sim.announcements):
        at = bisect.bisect_right(times, said.t) - 1
        lap = crossings[at][2]["CurrentLap"] if at >= 0 else 1
        stamp = sim.stream_start_utc + timedelta(milliseconds=said.t)
        item = {"Utc": f"{stamp:%Y-%m-%dT%H:%M:%S}", "Lap": lap, **said.item}
        stream.add(said.t, {"Messages": [item] if n == 0 else {str(n): item}})
    return stream


def _session_info(sim: _Sim) -> _Json:
    track = sim.track
    start_local = sim.stream_start_utc + timedelta(
        milliseconds=RACE_START_OFFSET_MS, hours=track.gmt_offset_hours
    )
    end_local = start_local + timedelta(hours=2)
    name = f"Simulated {track.meeting_name}"
    day = f"{start_local:%Y-%m-%d}"
    meeting_key = 900_000 + list(TRACKS).index(track.key) * 1000 + sim.seed % 1000
    return {
        "Meeting": {
            "Key": meeting_key,
            "Name": name,
            "Location": track.location,
            "Country": {
                "Key": track.country_key,
                "Code": track.country_code,
                "Name": track.country_name,
            },
            "Circuit": {"Key": track.circuit_key, "ShortName": track.circuit_short_name},
        },
        "ArchiveStatus": {"Status": "Complete"},
        "Key": meeting_key * 10 + 1,
        "Type": "Race",
        "Name": "Race",
        "StartDate": f"{start_local:%Y-%m-%dT%H:%M:%S}",
        "EndDate": f"{end_local:%Y-%m-%dT%H:%M:%S}",
        "GmtOffset": f"{track.gmt_offset_hours:02d}:00:00",
        "Path": f"{start_local:%Y}/{day}_{name.replace(' ', '_')}/{day}_Race/",
    }


def _driver_list(sim: _Sim) -> _Json:
    roster = {entry[0]: entry for entry in _ROSTER}
    out: _Json = {}
    for run in sim.runs:
        number, first, last, tla, team, colour = roster[run.number]
        out[str(number)] = {
            "RacingNumber": str(number),
            "BroadcastName": f"{first[0]} {last.upper()}",
            "FullName": f"{first} {last.upper()}",
            "Tla": tla,
            "Line": run.grid,
            "TeamName": team,
            "TeamColour": colour,
            "FirstName": first,
            "LastName": last,
        }
    return out


def _render(sim: _Sim, telemetry_hz: float) -> dict[str, bytes]:
    rng = _rng(sim.seed, "feed")
    model = _track_model(sim.track)
    feed = _Feed()

    feed.session_status.add(1_000, {"Status": "Inactive"})
    feed.lap_count.add(2_000, {"CurrentLap": 1, "TotalLaps": sim.total_laps})
    feed.track_status.add(3_000, {"Status": "1", "Message": "AllClear"})
    feed.driver_list.add(4_000, _driver_list(sim))
    feed.timing.add(5_000, _timing_snapshot(sim))
    feed.timing_app.add(
        5_000,
        {
            "Lines": {
                str(run.number): {
                    "RacingNumber": str(run.number),
                    "Line": run.grid,
                    "GridPos": str(run.grid),
                }
                for run in sim.runs
            }
        },
    )
    feed.timing_app.add(
        6_000,
        {
            "Lines": {
                str(run.number): {
                    "Stints": [
                        {
                            "Compound": run.compounds[0],
                            "New": "true",
                            "TyresNotChanged": "0",
                            "TotalLaps": 0,
                            "StartLaps": 0,
                        }
                    ]
                }
                for run in sim.runs
            }
        },
    )
    feed.session_status.add(RACE_START_OFFSET_MS, {"Status": "Started"})
    for status in sim.statuses:
        feed.track_status.add(status.t, {"Status": status.code, "Message": status.message})

    _render_positions(sim, feed, model, rng)
    _render_laps(sim, feed, model, rng)
    _bundle(feed.timing, rng)

    last_timing = max(t for t, _, _ in feed.timing.items)
    finished = last_timing + 1_000 + rng.randint(0, 2000)
    finalised = finished + 120_000 + rng.randint(0, 10_000)
    ends = finalised + 60_000 + rng.randint(0, 10_000)
    feed.session_status.add(finished, {"Status": "Finished"})
    feed.session_status.add(finalised, {"Status": "Finalised"})
    feed.session_status.add(ends, {"Status": "Ends"})
    car_data, positions = _telemetry(
        sim,
        feed,
        model=model,
        hz=telemetry_hz,
        first_ms=RACE_START_OFFSET_MS - 60_000,
        last_ms=finished + 10_000,
    )

    return {
        "SessionInfo.jsonStream": _encode([(0, orjson.dumps(_session_info(sim)))]),
        "SessionStatus.jsonStream": _plain(feed.session_status),
        "DriverList.jsonStream": _plain(feed.driver_list),
        "LapCount.jsonStream": _plain(feed.lap_count),
        "TrackStatus.jsonStream": _plain(feed.track_status),
        "WeatherData.jsonStream": _plain(_weather(sim, ends)),
        "TimingData.jsonStream": _plain(feed.timing),
        "TimingAppData.jsonStream": _plain(feed.timing_app),
        "RaceControlMessages.jsonStream": _plain(_race_control(sim, feed)),
        "CarData.z.jsonStream": car_data,
        "Position.z.jsonStream": positions,
    }


def write_race(
    folder: Path,
    *,
    track: str = "monza",
    seed: int = 1,
    cars: int = 20,
    laps: int = 12,
    telemetry_hz: float = 4.0,
) -> SimulatedRace:
    """Write a simulated race into `folder` as static-archive topics; return its ground truth.

    The folder is created if needed; files of the same names are overwritten.
    """
    _check_args(track, cars, laps, telemetry_hz)
    sim = _simulate(track, seed, cars, laps)
    blobs = _render(sim, telemetry_hz)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name in TOPIC_FILES:
        path = folder / name
        path.write_bytes(blobs[name])
        paths.append(path)
    return replace(_ground_truth(sim), files=tuple(paths))
