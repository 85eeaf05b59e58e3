"""The simulated race as the feed's timing topics: TimingData, TimingAppData, LapCount,
positions and weather, with the real feed's quirks (late lap times, bundled cars), and
the archive's line format (`HH:MM:SS.mmm` + JSON, UTF-8 with a BOM, CRLF)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from f1daemon.sources.simulator.model import MAX_SPEED_KMH, Json, Track, seeded_rng
from f1daemon.sources.simulator.runs import CarRun, LapRun, Simulation
from f1daemon.sources.simulator.track import (
    TrackModel,
)


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


class TopicStream:
    """One topic's messages, written in offset order (ties keep emission order)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, Json]] = []

    def add(self, t: int, message: Json) -> None:
        self.items.append((t, len(self.items), message))

    def sorted(self) -> list[tuple[int, int, Json]]:
        return sorted(self.items, key=lambda item: (item[0], item[1]))


def encode_lines(items: list[tuple[int, bytes]]) -> bytes:
    out = bytearray("\ufeff".encode())
    for t, payload in items:
        out += _offset(t).encode("ascii")
        out += payload
        out += b"\r\n"
    return bytes(out)


def plain_lines(stream: TopicStream) -> bytes:
    return encode_lines([(t, orjson.dumps(msg)) for t, _, msg in stream.sorted()])


def track_model(track: Track) -> TrackModel:
    return TrackModel(
        length_m=track.length_m,
        top_speed_kmh=track.top_speed_kmh,
        corners=track.corners,
        drs_zones=track.drs_zones,
        sector_split=track.sector_split,
        altitude_m=track.altitude_m,
        seed_key=f"f1daemon-simulator:outline:{track.key}",
    )


def sector_scale(model: TrackModel, lap: LapRun, sector: int) -> float:
    """How much faster than the reference lap a sector was driven (hold time excluded)."""
    driven = (lap.s1, lap.s2, lap.s3 - lap.hold_ms)[sector]
    return model.sector_ref_s[sector] * 1000.0 / max(1, driven)


def _trap_speed(model: TrackModel, lap: LapRun, point: float) -> int:
    """A speed trap's reading: the lap's speed at that point."""
    sector = 0 if point < model.bounds[1] else 1 if point < model.bounds[2] else 2
    return round(min(MAX_SPEED_KMH, model.speed(point, sector_scale(model, lap, sector))))


def timing_snapshot(sim: Simulation) -> Json:
    lines: Json = {}
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
    run: CarRun
    lap: LapRun


@dataclass
class FeedStreams:
    timing: TopicStream = field(default_factory=TopicStream)
    timing_app: TopicStream = field(default_factory=TopicStream)
    driver_list: TopicStream = field(default_factory=TopicStream)
    lap_count: TopicStream = field(default_factory=TopicStream)
    track_status: TopicStream = field(default_factory=TopicStream)
    session_status: TopicStream = field(default_factory=TopicStream)
    weather: TopicStream = field(default_factory=TopicStream)
    # (car number, completed lap) -> interval to the car ahead at the line (ms)
    intervals: dict[tuple[int, int], int] = field(default_factory=dict)


def _lines(number: int, patch: Json) -> Json:
    return {"Lines": {str(number): patch}}


def _crossing_messages(
    t: int, lap: LapRun, extra: Json, *, personal_best: bool, rng: random.Random
) -> list[tuple[int, Json]]:
    """A line crossing: the count, the last sector, the lap time, maybe some of it late.

    About 15 % of the time the last sector and/or the lap time come in a separate
    message 0.2 to 3 s after the count moved on, as in the real feed. Lap 1 (a
    standing start) has no lap time.
    """
    k = lap.lap
    lap_ms = lap.s1 + lap.s2 + lap.s3
    sector: Json = {"Sectors": {"2": {"Value": _seconds(lap.s3)}}}
    times: Json = {}
    if k > 1:
        times["LastLapTime"] = {"Value": _lap_time(lap_ms)}
        if personal_best:
            times["BestLapTime"] = {"Value": _lap_time(lap_ms), "Lap": k}
    mode = rng.choice(("times", "sector", "both", "apart")) if rng.random() < 0.15 else ""
    if not times and mode:
        mode = "sector"
    delay_sector = rng.randint(200, 3000)
    delay_times = delay_sector if mode == "both" else rng.randint(200, 3000)
    patch: Json = {"NumberOfLaps": k}
    late: dict[int, Json] = {}
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


def render_positions(
    sim: Simulation, feed: FeedStreams, model: TrackModel, rng: random.Random
) -> None:
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
        head: Json = {
            "GapToLeader": gap,
            "IntervalToPositionAhead": {"Value": interval},
            "Speeds": {"FL": {"Value": str(_trap_speed(model, lap, model.POINTS - 1))}},
        }
        for t, patch in _crossing_messages(c.t, lap, head, personal_best=personal_best, rng=rng):
            feed.timing.add(t, _lines(number, patch))

        moved: Json = {}
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


def render_laps(sim: Simulation, feed: FeedStreams, model: TrackModel, rng: random.Random) -> None:
    """Per car: sector completions, speed traps and pit-lane messages."""
    i1 = model.bounds[1] * 0.7
    i2 = model.bounds[1] + (model.bounds[2] - model.bounds[1]) * 0.7
    trap = float(model.trap)
    for run in sim.runs:
        stops = {stop.in_lap: stop for stop in run.stops}
        for lap in run.laps:
            number = run.number
            speeds: Json = {"I1": {"Value": str(_trap_speed(model, lap, i1))}}
            if lap.lap == 1:  # standing start: the feed gives no sector-1 time
                feed.timing.add(lap.b1, _lines(number, {"Speeds": speeds}))
            else:
                speeds.update({key: {"Value": ""} for key in ("I2", "FL", "ST")})
                patch: Json = {
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


def bundle_messages(stream: TopicStream, rng: random.Random) -> None:
    """Now and then the feed sends two cars' updates in one message: merge neighbours."""
    items = stream.sorted()
    out: list[tuple[int, int, Json]] = []
    carry: Json | None = None
    for n, (t, _, msg) in enumerate(items):
        lines: Json = msg["Lines"]
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


def weather_stream(sim: Simulation, until: int) -> TopicStream:
    """The circuit's station every minute: a drifting day, cooled and wetted by a shower.

    The track stays 8-15 °C above the air (the sun on the asphalt; less in the rain).
    """
    rng = seeded_rng(sim.seed, "weather")
    lo, hi = sim.track.air_temp_range
    shower = sim.incidents.shower
    air = rng.uniform(lo, hi)
    delta = rng.uniform(8.5, 14.5)  # track above air
    humidity = rng.uniform(35.0, 75.0)
    pressure = rng.uniform(995.0, 1020.0)
    wind_dir = rng.randint(0, 359)
    wind = rng.uniform(0.3, 3.5)
    stream = TopicStream()
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


def utc_stamp(start: datetime, ticks: int) -> str:
    """UTC of a stream offset in 100 ns ticks, with 7 fractional digits like the feed."""
    seconds, frac = divmod(ticks, 10_000_000)
    stamp = start + timedelta(seconds=seconds)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{frac:07d}Z"


# The pit lane runs beside the main straight, from this fraction of the lap over this
# span (through the line), this far to the side of the track.
