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
`track`: a speed profile with braking zones and corners, pedals never both
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

The package, each module importing only those above it in this list:

* `model` — the tracks, tyres, physics constants, the fictional field, the topics
  written, the seeded streams; `track` — a track's shape and speed profile;
* `incidents` — the race's neutralisations and shower (`plan_incidents`);
* `runs` — the simulation's working state; `timeline` — TrackStatus and race control;
* `race` — the race itself and its ground truth (`simulate_race`);
* `feed` — the timing topics and the archive's line format; `telemetry` — `CarData.z`
  and `Position.z`; `archive_files` — the files (`write_race`).

This module is the simulator's interface: its names are imported from here.
"""

from __future__ import annotations

from f1daemon.sources.simulator.archive_files import write_race
from f1daemon.sources.simulator.incidents import Incidents, Neutralisation, Shower, plan_incidents
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
    SC_SLOWDOWN,
    SOURCE_NAME,
    TOPIC_FILES,
    TRACK_EVOLUTION_MS_PER_LAP,
    TRACKS,
    VSC_SLOWDOWN,
    Compound,
    Track,
)
from f1daemon.sources.simulator.race import SimulatedLap, SimulatedRace, simulate_race

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
