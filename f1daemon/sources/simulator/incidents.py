"""What happens to a simulated race besides racing: safety cars, virtual safety cars,
a red flag and a shower, planned per race with the track's likelihoods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from f1daemon.sources.simulator.model import RACE_START_OFFSET_MS, TRACKS, seeded_rng

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
    rng = seeded_rng(seed, "incidents")
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
