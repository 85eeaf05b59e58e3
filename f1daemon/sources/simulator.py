"""The seeded race simulator: a whole race written in the official static-archive format.

A source in its own right. `simulate_race` computes a race in memory (the ground
truth: every lap, sector, pit stop, tyre stint and the classification);
`write_race` also writes it as the topics the live-timing archive publishes
(`{Topic}.jsonStream`: UTF-8 with a BOM, CRLF, `HH:MM:SS.mmm` + JSON a line) so the
daemon ingests it through its normal path, exactly like a real recording.

Physics (per lap, milliseconds): the track's base pace, a per-driver skill offset,
the compound's pace offset and degradation per lap of tyre age, the fuel effect
(the car gets faster as fuel burns), track evolution and seeded Gaussian noise.
Sectors always sum to the lap time. Every car stops at least once and changes
compound; the in-lap loses the pit entry, the out-lap the rest of the pit-lane loss
and the stationary time. A safety car comes out with the track's likelihood: the
field queues behind it and the laps are slower. Positions follow from cumulative
race time.

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
from typing import Any, Final

import orjson

__all__ = [
    "COMPOUNDS",
    "FUEL_EFFECT_MS_PER_LAP",
    "LAP_NOISE_MS",
    "MAX_CARS",
    "MAX_LAPS",
    "RACE_START_OFFSET_MS",
    "SOURCE_NAME",
    "TOPIC_FILES",
    "TRACKS",
    "TRACK_EVOLUTION_MS_PER_LAP",
    "Compound",
    "SimulatedLap",
    "SimulatedRace",
    "Track",
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
RACE_START_OFFSET_MS: Final = 300_000  # lights out, from the stream's start

TOPIC_FILES: Final[tuple[str, ...]] = (
    "SessionInfo.jsonStream",
    "SessionStatus.jsonStream",
    "DriverList.jsonStream",
    "LapCount.jsonStream",
    "TrackStatus.jsonStream",
    "WeatherData.jsonStream",
    "TimingData.jsonStream",
    "TimingAppData.jsonStream",
    "CarData.z.jsonStream",
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
    sc: bool
    pace: float  # speed factor against the track's reference profile

    @property
    def b1(self) -> int:
        return self.start + self.s1

    @property
    def b2(self) -> int:
        return self.start + self.s1 + self.s2

    @property
    def end(self) -> int:
        return self.start + self.s1 + self.s2 + self.s3


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


@dataclass
class _Sim:
    track: Track
    seed: int
    total_laps: int
    runs: list[_CarRun]  # grid order
    sc_laps: tuple[int, ...]
    sc_window: tuple[int, int, int] | None  # (yellow, deployed, all clear) offsets
    stream_start_utc: datetime


def _check_args(track: str, cars: int, laps: int, telemetry_hz: float) -> Track:
    if track not in TRACKS:
        raise ValueError(f"unknown track {track!r}; known: {', '.join(sorted(TRACKS))}")
    if not 1 <= cars <= MAX_CARS:
        raise ValueError(f"cars must be 1..{MAX_CARS}, got {cars}")
    if not 2 <= laps <= MAX_LAPS:
        raise ValueError(f"laps must be 2..{MAX_LAPS} (a pit stop needs an in- and out-lap)")
    if not (math.isfinite(telemetry_hz) and 0.5 <= telemetry_hz <= 20.0):
        raise ValueError(f"telemetry_hz must be 0.5..20, got {telemetry_hz}")
    return TRACKS[track]


def _strategy(rng: random.Random, laps: int) -> tuple[list[str], list[int]]:
    """Compounds per stint and the in-laps: one stop (two on long races, sometimes)."""
    first = rng.choices(("SOFT", "MEDIUM", "HARD"), weights=(0.45, 0.45, 0.10))[0]
    latest = laps - 2 if laps >= 4 else 1  # leaves room for an out-lap even if lapped
    if laps >= 25 and rng.random() < 0.3:
        a = rng.randint(max(1, round(0.2 * laps)), round(0.4 * laps))
        b = rng.randint(max(a + 2, round(0.55 * laps)), max(a + 2, min(latest, round(0.8 * laps))))
        pit_laps = [a, b]
    else:
        lo = max(1, round(0.3 * laps))
        pit_laps = [rng.randint(lo, max(lo, min(latest, round(0.65 * laps))))]
    compounds = [first]
    for _ in pit_laps:
        options = [c for c in COMPOUNDS if c != compounds[-1]]
        compounds.append(rng.choice(options))
    return compounds, pit_laps


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


def _entrants(rng: random.Random, cars: int, laps: int) -> list[_CarRun]:
    """Skill, qualifying (the grid) and each car's tyre strategy, in grid order."""
    skills = [rng.uniform(0.0, 1400.0) for _ in range(cars)]
    quali = [s + rng.gauss(0.0, 180.0) for s in skills]
    grid_order = sorted(range(cars), key=lambda i: (quali[i], i))
    runs: list[_CarRun] = []
    for pos, i in enumerate(grid_order, start=1):
        compounds, pit_laps = _strategy(rng, laps)
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


def _run_laps(
    rng: random.Random, track: Track, runs: list[_CarRun], laps: int, sc_laps: tuple[int, ...]
) -> None:
    """Every car's every lap, lap by lap in road order (the safety car needs the queue)."""
    base = track.base_lap_ms
    pit_entry = round(track.pit_loss_ms * 0.35)
    pit_exit = track.pit_loss_ms - pit_entry
    for k in range(1, laps + 1):
        if k == 1:
            order = list(range(len(runs)))
        else:
            order = sorted(range(len(runs)), key=lambda i: (runs[i].laps[-1].end, i))
        anchor: int | None = None  # crossing time of the last car in the safety-car queue
        sc_ms = round(base * 1.42 + rng.gauss(0.0, 400.0))
        for i in order:
            run = runs[i]
            stint = sum(1 for p in run.pit_laps if p < k)
            stint_start = 1 if stint == 0 else run.pit_laps[stint - 1] + 1
            pit_in = k in run.pit_laps
            pit_out = (k - 1) in run.pit_laps
            lap_ms = round(_racing_lap_ms(rng, base, run, k, laps))
            prev = RACE_START_OFFSET_MS if k == 1 else run.laps[-1].end
            if k in sc_laps:
                if anchor is None:  # the head of the queue runs at the safety car's pace
                    lap_ms = max(lap_ms, sc_ms)
                else:  # the rest close up to the queue, at no more than a brisk pace
                    chase = prev + max(lap_ms, round(base * 1.18))
                    lap_ms = max(chase, anchor + rng.randint(500, 1200)) - prev
            if not (pit_in or pit_out):
                anchor = prev + lap_ms
            s1, s2, s3 = _split(rng, lap_ms, track.sector_split)
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
                    sc=k in sc_laps,
                    pace=base / lap_ms,
                )
            )


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


def _sc_window(
    rng: random.Random, runs: list[_CarRun], sc_laps: tuple[int, ...]
) -> tuple[int, int, int] | None:
    """Offsets of the yellow, the deployment and the all-clear of a safety-car period."""
    if not sc_laps:
        return None
    first_sc, last_sc = sc_laps[0], sc_laps[-1]
    lead_prev = min(run.laps[first_sc - 2].end for run in runs)
    lead_lap = min((run.laps[first_sc - 1] for run in runs), key=lambda lap: lap.end)
    deployed = lead_prev + round(0.25 * (lead_lap.end - lead_prev))
    yellow = max(lead_prev + 500, deployed - rng.randint(5000, 15000))
    last_lap = min((run.laps[last_sc - 1] for run in runs), key=lambda lap: lap.end)
    clear = last_lap.end - round(0.15 * (last_lap.end - last_lap.start))
    return yellow, deployed, clear


def _simulate(track_key: str, seed: int, cars: int, laps: int) -> _Sim:
    track = TRACKS[track_key]
    rng = _rng(seed)
    runs = _entrants(rng, cars, laps)
    sc_laps: tuple[int, ...] = ()
    if laps >= 6 and rng.random() < track.safety_car_likelihood:
        first_sc = rng.randint(2, laps - 3)
        length = rng.randint(2, min(4, laps - 1 - first_sc))
        sc_laps = tuple(range(first_sc, first_sc + length))
    _run_laps(rng, track, runs, laps, sc_laps)
    _finish(rng, runs)
    return _Sim(
        track=track,
        seed=seed,
        total_laps=laps,
        runs=runs,
        sc_laps=sc_laps,
        sc_window=_sc_window(rng, runs, sc_laps),
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
                )
            )
    finish = sorted(sim.runs, key=lambda r: (-len(r.laps), r.laps[-1].end, r.grid))
    return SimulatedRace(
        track=sim.track.key,
        seed=sim.seed,
        drivers=tuple(run.number for run in sim.runs),
        laps=tuple(laps),
        classification=tuple(run.number for run in finish),
        total_laps=sim.total_laps,
        safety_car_laps=sim.sc_laps,
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


class _Profile:
    """A lap's reference speed trace: braking into and accelerating out of each corner."""

    POINTS: Final = 500

    def __init__(self, track: Track) -> None:
        n = self.POINTS
        ds = track.length_m / n
        vmax = track.top_speed_kmh / 3.6
        v = [vmax] * n
        for frac, kmh in track.corners:
            i = int(frac * n) % n
            v[i] = min(v[i], kmh / 3.6)
        for _ in range(2):  # accelerate out of each corner (twice round: it is a loop)
            for i in range(n):
                prev = v[i - 1]
                accel = max(3.0, 13.0 - 0.11 * prev)
                v[i] = min(v[i], math.sqrt(prev * prev + 2.0 * accel * ds))
        for _ in range(2):  # brake into each corner
            for i in range(n - 1, -1, -1):
                nxt = v[(i + 1) % n]
                v[i] = min(v[i], math.sqrt(nxt * nxt + 2.0 * 38.0 * ds))
        lap_s = sum(ds / x for x in v)
        scale = min(1.1, max(0.85, lap_s / (track.base_lap_ms / 1000.0)))
        self.kmh = [min(350.0, x * 3.6 * scale) for x in v]
        self.throttle: list[int] = []
        self.brake: list[int] = []
        for i in range(n):
            dv = v[(i + 1) % n] - v[i]
            if dv < -0.05:
                self.throttle.append(0)
                self.brake.append(100)
            else:
                self.throttle.append(100 if dv > 0.05 or v[i] >= vmax * 0.99 else 45)
                self.brake.append(0)
        self.trap = max(range(n), key=lambda i: (self.kmh[i], -i))
        self.split = track.sector_split

    def index(self, distance: float) -> int:
        return min(self.POINTS - 1, max(0, int(distance * self.POINTS)))

    def at(self, distance: float, pace: float) -> int:
        return round(min(350.0, self.kmh[self.index(distance)] * min(pace, 1.08)))


# Top speed of each gear (km/h): gear follows from speed, so the two always agree.
_GEAR_TOP: Final = (0, 85, 120, 155, 190, 225, 260, 295, 351)


def _gear(speed: int) -> int:
    if speed <= 0:
        return 0
    for g in range(1, 9):
        if speed <= _GEAR_TOP[g]:
            return g
    return 8


def _rpm(speed: int, gear: int) -> int:
    if gear == 0:
        return 4100 if speed == 0 else 0
    low, high = _GEAR_TOP[gear - 1], _GEAR_TOP[gear]
    return min(12_500, max(4500, round(7200 + 5100 * (speed - low) / (high - low))))


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


def _render_positions(sim: _Sim, feed: _Feed, profile: _Profile, rng: random.Random) -> None:
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
            "Speeds": {"FL": {"Value": str(profile.at(0.999, lap.pace))}},
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


def _render_laps(sim: _Sim, feed: _Feed, profile: _Profile, rng: random.Random) -> None:
    """Per car: sector completions, speed traps and pit-lane messages."""
    split = profile.split
    i1 = split[0] * 0.7
    i2 = split[0] + split[1] * 0.7
    trap = profile.trap / profile.POINTS
    for run in sim.runs:
        stops = {stop.in_lap: stop for stop in run.stops}
        for lap in run.laps:
            number = run.number
            speeds: _Json = {"I1": {"Value": str(profile.at(i1, lap.pace))}}
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
                        "Speeds": {"I2": {"Value": str(profile.at(i2, lap.pace))}},
                    },
                ),
            )
            stop = stops.get(lap.lap)
            if stop is None:
                # the speed trap, somewhere in the lap's last sector
                t_trap = lap.b2 + round(lap.s3 * rng.uniform(0.2, 0.8))
                feed.timing.add(
                    t_trap,
                    _lines(number, {"Speeds": {"ST": {"Value": str(profile.at(trap, lap.pace))}}}),
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
    rng = _rng(sim.seed, "weather")
    lo, hi = sim.track.air_temp_range
    air = rng.uniform(lo, hi)
    delta = rng.uniform(8.5, 14.5)  # track above air
    humidity = rng.uniform(35.0, 75.0)
    pressure = rng.uniform(995.0, 1020.0)
    wind_dir = rng.randint(0, 359)
    wind = rng.uniform(0.3, 3.5)
    stream = _Stream()
    t = 10_000 + rng.randint(0, 999)
    while t <= until:
        stream.add(
            t,
            {
                "AirTemp": f"{air:.1f}",
                "Humidity": f"{humidity:.1f}",
                "Pressure": f"{pressure:.1f}",
                "Rainfall": "0",
                "TrackTemp": f"{air + delta:.1f}",
                "WindDirection": str(wind_dir),
                "WindSpeed": f"{wind:.1f}",
            },
        )
        air = min(hi, max(lo, air + rng.gauss(0.0, 0.08)))
        delta = min(14.8, max(8.2, delta + rng.gauss(0.0, 0.15)))
        humidity = min(95.0, max(20.0, humidity + rng.gauss(0.0, 0.4)))
        pressure = min(1030.0, max(985.0, pressure + rng.gauss(0.0, 0.1)))
        wind_dir = (wind_dir + rng.randint(-25, 25)) % 360
        wind = min(8.0, max(0.0, wind + rng.gauss(0.0, 0.3)))
        t += 60_000 + rng.randint(-20, 20)
    return stream


def _utc(start: datetime, ticks: int) -> str:
    """UTC of a stream offset in 100 ns ticks, with 7 fractional digits like the feed."""
    seconds, frac = divmod(ticks, 10_000_000)
    stamp = start + timedelta(seconds=seconds)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{frac:07d}Z"


class _CarTrace:
    """Where a car is and what it does at any stream offset, for telemetry."""

    def __init__(self, run: _CarRun, sim: _Sim, feed: _Feed) -> None:
        self.number = str(run.number)
        self.laps = run.laps
        self.starts = [lap.start for lap in run.laps]
        self.finish = run.laps[-1].end
        self.pit = [(s.t_in_pit, s.t_box_in, s.t_box_out, s.t_pit_out) for s in run.stops]
        self.drs = [
            lap.lap >= 3
            and not lap.sc
            and (lap.lap - 1) not in sim.sc_laps
            and feed.intervals.get((run.number, lap.lap - 1), 1 << 30) < 1000
            for lap in run.laps
        ]


def _in_zone(zones: tuple[tuple[float, float], ...], d: float) -> bool:
    return any(a <= d < b for a, b in zones)


def _channels(
    trace: _CarTrace, t: int, sim: _Sim, profile: _Profile, rng: random.Random
) -> dict[str, int]:
    track = sim.track
    speed, throttle, brake, drs = 0, 0, 0, 0
    if t < RACE_START_OFFSET_MS:
        pass  # on the grid
    elif t >= trace.finish:
        if t < trace.finish + 90_000:  # the slow lap back to parc fermé
            speed, throttle = 110 + rng.randint(-3, 3), 30
    elif any(a <= t < d for a, _, _, d in trace.pit):
        if not any(b <= t < c for _, b, c, _ in trace.pit):
            speed, throttle = track.pit_speed_kmh - rng.randint(0, 1), 35
    else:
        n = bisect.bisect_right(trace.starts, t) - 1
        lap = trace.laps[n]
        f0, f1, f2 = track.sector_split
        if t < lap.b1:
            d = f0 * (t - lap.start) / lap.s1
        elif t < lap.b2:
            d = f0 + f1 * (t - lap.b1) / lap.s2
        else:
            d = f0 + f1 + f2 * (t - lap.b2) / lap.s3
        i = profile.index(d)
        speed = max(1, min(350, profile.at(d, lap.pace) + rng.randint(-2, 2)))
        throttle = profile.throttle[i] if lap.pace > 0.9 else min(profile.throttle[i], 55)
        brake = profile.brake[i]
        if trace.drs[n]:
            drs = 12 if _in_zone(track.drs_zones, d) else 8
    gear = _gear(speed)
    return {"0": _rpm(speed, gear), "2": speed, "3": gear, "4": throttle, "5": brake, "45": drs}


def _car_data(
    sim: _Sim,
    feed: _Feed,
    *,
    profile: _Profile,
    hz: float,
    first_ms: int,
    last_ms: int,
) -> bytes:
    rng = _rng(sim.seed, "telemetry")
    traces = [_CarTrace(run, sim, feed) for run in sim.runs]
    period = 10_000_000 / hz  # ticks
    items: list[tuple[int, bytes]] = []
    sample = math.floor(first_ms * 10_000 / period) + 1  # each message: (second - 1, second]
    second = first_ms // 1000 + 1
    while second * 1000 <= last_ms:
        entries: list[_Json] = []
        limit = second * 10_000_000
        while (ticks := round(sample * period)) <= limit:
            ticks = max(0, ticks - rng.randint(0, 150_000))  # sampling jitter, up to 15 ms
            t = ticks // 10_000
            entries.append(
                {
                    "Utc": _utc(sim.stream_start_utc, ticks),
                    "Cars": {
                        trace.number: {"Channels": _channels(trace, t, sim, profile, rng)}
                        for trace in traces
                    },
                }
            )
            sample += 1
        if entries:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            raw = compressor.compress(orjson.dumps({"Entries": entries})) + compressor.flush()
            payload = b'"' + base64.b64encode(raw) + b'"'
            items.append((second * 1000 + rng.randint(40, 250), payload))
        second += 1
    return _encode(items)


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
    profile = _Profile(sim.track)
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
    if sim.sc_window is not None:
        yellow, deployed, clear = sim.sc_window
        feed.track_status.add(yellow, {"Status": "2", "Message": "Yellow"})
        feed.track_status.add(deployed, {"Status": "4", "Message": "SCDeployed"})
        feed.track_status.add(clear, {"Status": "1", "Message": "AllClear"})

    _render_positions(sim, feed, profile, rng)
    _render_laps(sim, feed, profile, rng)
    _bundle(feed.timing, rng)

    last_timing = max(t for t, _, _ in feed.timing.items)
    finished = last_timing + 1_000 + rng.randint(0, 2000)
    finalised = finished + 120_000 + rng.randint(0, 10_000)
    ends = finalised + 60_000 + rng.randint(0, 10_000)
    feed.session_status.add(finished, {"Status": "Finished"})
    feed.session_status.add(finalised, {"Status": "Finalised"})
    feed.session_status.add(ends, {"Status": "Ends"})

    return {
        "SessionInfo.jsonStream": _encode([(0, orjson.dumps(_session_info(sim)))]),
        "SessionStatus.jsonStream": _plain(feed.session_status),
        "DriverList.jsonStream": _plain(feed.driver_list),
        "LapCount.jsonStream": _plain(feed.lap_count),
        "TrackStatus.jsonStream": _plain(feed.track_status),
        "WeatherData.jsonStream": _plain(_weather(sim, ends)),
        "TimingData.jsonStream": _plain(feed.timing),
        "TimingAppData.jsonStream": _plain(feed.timing_app),
        "CarData.z.jsonStream": _car_data(
            sim,
            feed,
            profile=profile,
            hz=telemetry_hz,
            first_ms=RACE_START_OFFSET_MS - 60_000,
            last_ms=finished + 10_000,
        ),
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
