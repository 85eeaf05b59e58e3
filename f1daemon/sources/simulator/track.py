"""How a simulated car drives a simulated circuit: speed along the lap, pedals, DRS,
gears, engine speed and where the car is (x, y, z).

One concept: the physics of a lap, shared by the simulator's `CarData.z` and
`Position.z`. A circuit is a closed loop of `POINTS` equal steps. Its reference speed
profile is the fastest a car can go under three limits: each corner's apex speed,
braking at 38 m/s² into it and accelerating out of it with less grip the faster the
car goes. The reference time to reach each point follows by integration; a lap of
given sector times is that profile stretched or squeezed per sector, so the distance
a car covers between two samples is exactly what its reported speed says.

The outline is drawn from the same corners: a car turns through each corner on an
arc whose radius its apex speed allows (about 3.5 g), the turns are signed so that
the loop winds once, and the drift is closed out. Heights follow a gentle swell.
Positions are in tenths of a metre, as `Position.z` carries them.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DRS_ELIGIBLE",
    "DRS_MIN_KMH",
    "DRS_OPEN",
    "IDLE_RPM",
    "MAX_RPM",
    "Gearbox",
    "TrackModel",
]

IDLE_RPM: Final = 4_000
MAX_RPM: Final = 11_800  # at the top of each gear (the field's shift point)
DRS_MIN_KMH: Final = 200  # the flap opens only at speed, on a straight, flat out
DRS_ELIGIBLE: Final = 8  # the feed's "within a second, flap closed"
DRS_OPEN: Final = 12  # the feed's "flap open" (10, 12 and 14 all mean open)
_BRAKE_MS2: Final = 38.0
_LATERAL_MS2: Final = 34.0  # cornering (about 3.5 g): the radius each apex speed allows
# Top speed of each gear (km/h) of a reference car; each car's gearing scales it.
_GEAR_TOPS: Final = (85.0, 120.0, 155.0, 190.0, 225.0, 260.0, 295.0, 365.0)


@dataclass(frozen=True)
class Gearbox:
    """A car's gearing: the top speed of gears 1-8, rising (so gear rises with speed)."""

    tops: tuple[float, ...]

    @classmethod
    def for_car(cls, rng: random.Random) -> Gearbox:
        scale = rng.uniform(0.97, 1.03)
        tops = [top * scale for top in _GEAR_TOPS]
        tops[-1] = max(tops[-1], 362.0)  # 8th reaches beyond any speed the car can do
        return cls(tuple(tops))

    def gear(self, speed: int) -> int:
        """The gear at a speed: 0 (neutral) standing, else the lowest that reaches it."""
        if speed <= 0:
            return 0
        return min(8, bisect.bisect_left(self.tops, speed) + 1)

    def rpm(self, speed: int, gear: int, *, engine_on: bool = True) -> int:
        """Engine speed: proportional to road speed in a gear (the gear's ratio)."""
        if gear == 0:
            return IDLE_RPM if engine_on else 0
        return max(IDLE_RPM, round(MAX_RPM * speed / self.tops[gear - 1]))


class TrackModel:
    """A circuit's reference lap: speed, pedals, DRS and outline at each of its points."""

    POINTS: Final = 1000

    def __init__(
        self,
        *,
        length_m: int,
        top_speed_kmh: int,
        corners: tuple[tuple[float, int], ...],
        drs_zones: tuple[tuple[float, float], ...],
        sector_split: tuple[float, float, float],
        altitude_m: float,
        seed_key: str,
    ) -> None:
        n = self.POINTS
        self.length_m = length_m
        self.ds = length_m / n
        v = self._speed_profile(top_speed_kmh / 3.6, corners)
        self.kmh = [x * 3.6 for x in v]
        # reference time (s) at which each point (and, last, the line again) is reached
        self.t_ref = [0.0]
        for i in range(n):
            mean = 0.5 * (v[i] + v[(i + 1) % n])
            self.t_ref.append(self.t_ref[-1] + self.ds / mean)
        self.bounds = (
            0,
            round(sector_split[0] * n),
            round((sector_split[0] + sector_split[1]) * n),
            n,
        )
        self.sector_ref_s = tuple(
            self.t_ref[self.bounds[j + 1]] - self.t_ref[self.bounds[j]] for j in range(3)
        )
        self.throttle: list[int] = []
        self.brake: list[int] = []
        top = max(v)
        for i in range(n):
            dv = v[(i + 1) % n] - v[i]
            braking = dv < -0.05
            self.throttle.append(0 if braking else 100 if dv > 0.02 or v[i] >= top * 0.99 else 40)
            self.brake.append(100 if braking else 0)
        self.drs_zone = [any(a <= i / n < b for a, b in drs_zones) for i in range(n)]
        self.xyz = self._outline(v, corners, altitude_m, random.Random(seed_key))  # noqa: S311
        self.trap = max(range(n), key=lambda i: (self.kmh[i], -i))

    # ------------------------------------------------------------------ profile

    def _speed_profile(self, vmax: float, corners: tuple[tuple[float, int], ...]) -> list[float]:
        n = self.POINTS
        v = [vmax] * n
        for frac, kmh in corners:
            i = round(frac * n) % n
            v[i] = min(v[i], kmh / 3.6)
        for _ in range(2):  # accelerate out of each corner (twice round: it is a loop)
            for i in range(n):
                prev = v[i - 1]
                accel = max(3.0, 13.0 - 0.11 * prev)
                v[i] = min(v[i], math.sqrt(prev * prev + 2.0 * accel * self.ds))
        for _ in range(2):  # brake into each corner
            for i in range(n - 1, -1, -1):
                nxt = v[(i + 1) % n]
                v[i] = min(v[i], math.sqrt(nxt * nxt + 2.0 * _BRAKE_MS2 * self.ds))
        return v

    def locate(self, sector: int, fraction: float) -> float:
        """The point (fractional index) reached `fraction` of the way through a sector's time."""
        lo, hi = self.bounds[sector], self.bounds[sector + 1]
        target = self.t_ref[lo] + min(1.0, max(0.0, fraction)) * self.sector_ref_s[sector]
        i = min(hi - 1, max(lo, bisect.bisect_right(self.t_ref, target, lo, hi + 1) - 1))
        span = self.t_ref[i + 1] - self.t_ref[i]
        return i + min(1.0, max(0.0, (target - self.t_ref[i]) / span))

    def speed(self, point: float, scale: float) -> float:
        """Speed (km/h) at a point of a lap run `scale` times as fast as the reference."""
        i = int(point) % self.POINTS
        j = (i + 1) % self.POINTS
        w = point - int(point)
        return (self.kmh[i] * (1.0 - w) + self.kmh[j] * w) * scale

    def index(self, point: float) -> int:
        return int(point) % self.POINTS

    def fraction_at(self, fraction_of_lap: float) -> float:
        """The point at a fraction of the lap's distance."""
        return (fraction_of_lap % 1.0) * self.POINTS

    # ------------------------------------------------------------------ outline

    def _outline(
        self,
        v: list[float],
        corners: tuple[tuple[float, int], ...],
        altitude_m: float,
        rng: random.Random,
    ) -> list[tuple[float, float, float]]:
        n = self.POINTS
        # each corner's turn: an arc of the radius its apex speed allows, over the
        # distance the car spends near the apex
        turns: list[tuple[int, float, float]] = []  # (centre index, angle, arc points)
        for frac, kmh in corners:
            speed = kmh / 3.6
            radius = speed * speed / _LATERAL_MS2
            angle = min(math.radians(165.0), max(math.radians(18.0), 4200.0 / kmh**1.25))
            arc = max(2.0, radius * angle / self.ds)
            turns.append((round(frac * n) % n, angle, arc))
        # sign the turns so that the loop winds once (biggest first, greedily)
        total = 0.0
        signs: dict[int, float] = {}
        for k in sorted(range(len(turns)), key=lambda k: -turns[k][1]):
            angle = turns[k][1]
            sign = (
                1.0
                if abs(total + angle - 2 * math.pi) <= abs(total - angle - 2 * math.pi)
                else -1.0
            )
            if rng.random() < 0.15 and abs(total - angle - 2 * math.pi) < math.pi:
                sign = -1.0
            signs[k] = sign
            total += sign * angle
        curvature = [0.0] * n
        for k, (centre, angle, arc) in enumerate(turns):
            half = arc / 2.0
            first, last = math.floor(centre - half), math.ceil(centre + half)
            weights = dict.fromkeys(range(first, last + 1), 1.0)
            share = signs[k] * angle / len(weights)
            for i in weights:
                curvature[i % n] += share
        # what the corners leave of a full turn is spread over the fast (straight) part
        rest = 2 * math.pi - sum(curvature)
        fast = [i for i in range(n) if v[i] * 3.6 > 200.0] or list(range(n))
        for i in fast:
            curvature[i] += rest / len(fast)
        heading = rng.uniform(0.0, 2 * math.pi)
        x = y = 0.0
        points: list[tuple[float, float]] = []
        for i in range(n):
            points.append((x, y))
            heading += curvature[i]
            x += self.ds * math.cos(heading)
            y += self.ds * math.sin(heading)
        gap_x, gap_y = x, y  # where the loop would end: close it out evenly
        closed = [(px - gap_x * i / n, py - gap_y * i / n) for i, (px, py) in enumerate(points)]
        closed.append(closed[0])
        # then space the points evenly along the loop again, at the circuit's length
        run = [0.0]
        for (ax, ay), (bx, by) in itertools.pairwise(closed):
            run.append(run[-1] + math.hypot(bx - ax, by - ay))
        scale = self.length_m / run[-1]
        phase = rng.uniform(0.0, 2 * math.pi)
        out: list[tuple[float, float, float]] = []
        for i in range(n):
            target = run[-1] * i / n
            k = min(n - 1, bisect.bisect_right(run, target) - 1)
            w = (target - run[k]) / max(1e-9, run[k + 1] - run[k])
            (ax, ay), (bx, by) = closed[k], closed[k + 1]
            z = altitude_m * 0.5 * (1.0 + math.sin(2 * math.pi * i / n + phase))
            out.append(
                ((ax + (bx - ax) * w) * scale * 10.0, (ay + (by - ay) * w) * scale * 10.0, z * 10.0)
            )
        return out

    def position(self, point: float, lateral_m: float = 0.0) -> tuple[int, int, int]:
        """X, Y, Z (1/10 m) at a point, `lateral_m` to the left of the racing line."""
        i = int(point) % self.POINTS
        j = (i + 1) % self.POINTS
        w = point - int(point)
        (x0, y0, z0), (x1, y1, z1) = self.xyz[i], self.xyz[j]
        x, y, z = x0 + (x1 - x0) * w, y0 + (y1 - y0) * w, z0 + (z1 - z0) * w
        if lateral_m:
            dx, dy = x1 - x0, y1 - y0
            norm = math.hypot(dx, dy) or 1.0
            x -= dy / norm * lateral_m * 10.0
            y += dx / norm * lateral_m * 10.0
        return round(x), round(y), round(z)
