"""The simulated race itself: the grid and strategies, every car's every lap (the
physics, neutralisations, rain, pit stops, a red flag), and its ground truth
(`SimulatedRace`, `simulate_race`)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

from f1daemon.sources.simulator.incidents import Incidents, Shower, plan_incidents
from f1daemon.sources.simulator.model import (
    COMPOUNDS,
    FUEL_EFFECT_MS_PER_LAP,
    LAP_NOISE_MS,
    MAX_CARS,
    MAX_LAPS,
    MAX_TELEMETRY_HZ,
    MIN_TELEMETRY_HZ,
    RACE_START_OFFSET_MS,
    RAIN_SLOWDOWN,
    ROSTER,
    SC_SLOWDOWN,
    TRACK_EVOLUTION_MS_PER_LAP,
    TRACKS,
    VSC_SLOWDOWN,
    Track,
    seeded_rng,
)
from f1daemon.sources.simulator.runs import CarRun, LapRun, RedFlag, Simulation, Stop
from f1daemon.sources.simulator.timeline import plan_timeline


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


def check_args(track: str, cars: int, laps: int, telemetry_hz: float) -> Track:
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


def _entrants(
    rng: random.Random, cars: int, laps: int, avoid: frozenset[int] = frozenset()
) -> list[CarRun]:
    """Skill, qualifying (the grid) and each car's tyre strategy, in grid order."""
    skills = [rng.uniform(0.0, 1400.0) for _ in range(cars)]
    quali = [s + rng.gauss(0.0, 180.0) for s in skills]
    grid_order = sorted(range(cars), key=lambda i: (quali[i], i))
    runs: list[CarRun] = []
    for pos, i in enumerate(grid_order, start=1):
        compounds, pit_laps = _strategy(rng, laps, avoid)
        stationary = [
            rng.randint(2100, 3400) + (rng.randint(2000, 6000) if rng.random() < 0.05 else 0)
            for _ in pit_laps
        ]
        runs.append(CarRun(ROSTER[i][0], pos, skills[i], compounds, pit_laps, stationary))
    return runs


def _racing_lap_ms(rng: random.Random, base: int, run: CarRun, k: int, laps: int) -> float:
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


def _run_laps(
    rng: random.Random, track: Track, runs: list[CarRun], laps: int, incidents: Incidents
) -> dict[int, RedFlag]:
    """Every car's every lap, lap by lap in road order (the safety car needs the queue).

    Returns each red flag's times by its lap.
    """
    base = track.base_lap_ms
    pit_entry = round(track.pit_loss_ms * 0.35)
    pit_exit = track.pit_loss_ms - pit_entry
    reds: dict[int, RedFlag] = {}
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
                    red = reds[k] = RedFlag(shown, shown + rng.randint(12, 35) * 60_000)
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
                LapRun(
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


def _finish(rng: random.Random, runs: list[CarRun]) -> None:
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
                Stop(p, t_in_pit, t_box_in, t_box_out, t_pit_out, run.compounds[n + 1], n + 1)
            )


def simulate(track_key: str, seed: int, cars: int, laps: int) -> Simulation:
    track = TRACKS[track_key]
    incidents = plan_incidents(track_key, seed, laps)
    rng = seeded_rng(seed)
    runs = _entrants(rng, cars, laps, frozenset(incidents.red_flag_laps))
    reds = _run_laps(rng, track, runs, laps, incidents)
    _finish(rng, runs)
    statuses, said = plan_timeline(
        seeded_rng(seed, "race-control"),
        track=track,
        runs=runs,
        incidents=incidents,
        reds=reds,
        laps=laps,
    )
    return Simulation(
        track=track,
        seed=seed,
        total_laps=laps,
        runs=runs,
        incidents=incidents,
        statuses=statuses,
        announcements=said,
        stream_start_utc=_session_start(track, seed) - timedelta(milliseconds=RACE_START_OFFSET_MS),
    )


def ground_truth(sim: Simulation) -> SimulatedRace:
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
    check_args(track, cars, laps, telemetry_hz)
    return ground_truth(simulate(track, seed, cars, laps))
