"""The simulated race's telemetry: each car's trace along the track (speed, pedals,
gear, DRS, position, the pit lane and the grid) sampled into `CarData.z` and
`Position.z` messages, deflated and base64-encoded as the feed sends them."""

from __future__ import annotations

import base64
import bisect
import math
import random
import zlib
from dataclasses import dataclass
from typing import Final

import orjson

from f1daemon.sources.simulator.feed import FeedStreams, encode_lines, sector_scale, utc_stamp
from f1daemon.sources.simulator.model import MAX_SPEED_KMH, RACE_START_OFFSET_MS, Json, seeded_rng
from f1daemon.sources.simulator.runs import CarRun, Simulation
from f1daemon.sources.simulator.track import (
    DRS_ELIGIBLE,
    DRS_MIN_KMH,
    DRS_OPEN,
    Gearbox,
    TrackModel,
)

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

    def __init__(self, run: CarRun, sim: Simulation, feed: FeedStreams, model: TrackModel) -> None:
        self.number = str(run.number)
        self.model = model
        self.track = sim.track
        self.laps = run.laps
        self.starts = [lap.start for lap in run.laps]
        self.finish = run.laps[-1].end
        self.pit = [(s.t_in_pit, s.t_box_in, s.t_box_out, s.t_pit_out) for s in run.stops]
        self.gearbox = Gearbox.for_car(seeded_rng(sim.seed, f"gearbox:{run.number}"))
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
        scale = sector_scale(model, lap, sector)
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


def _sample(trace: _CarTrace, t: int, rng: random.Random) -> tuple[Json, Json]:
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


def _deflated(message: Json) -> bytes:
    """A `.z` payload: JSON, raw deflate, base64, as a JSON string."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = compressor.compress(orjson.dumps(message)) + compressor.flush()
    return b'"' + base64.b64encode(raw) + b'"'


def telemetry_files(
    sim: Simulation,
    feed: FeedStreams,
    *,
    model: TrackModel,
    hz: float,
    first_ms: int,
    last_ms: int,
) -> tuple[bytes, bytes]:
    """`CarData.z` and `Position.z`: every car sampled `hz` times a second, sent each second."""
    rng = seeded_rng(sim.seed, "telemetry")
    traces = [_CarTrace(run, sim, feed, model) for run in sim.runs]
    period = 10_000_000 / hz  # ticks
    jitter = min(150_000, int(period * 0.3))  # sampling jitter: up to 15 ms
    car_items: list[tuple[int, bytes]] = []
    position_items: list[tuple[int, bytes]] = []
    sample = math.floor(first_ms * 10_000 / period) + 1  # each message: (second - 1, second]
    second = first_ms // 1000 + 1
    while second * 1000 <= last_ms:
        cars: list[Json] = []
        positions: list[Json] = []
        limit = second * 10_000_000
        while (ticks := round(sample * period)) <= limit:
            ticks = max(0, ticks - rng.randint(0, jitter))
            t = ticks // 10_000
            utc = utc_stamp(sim.stream_start_utc, ticks)
            channels: Json = {}
            entries: Json = {}
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
    return encode_lines(car_items), encode_lines(position_items)
