"""TrackStatus and race control for a simulated race: the openings, each
neutralisation's yellow, deployment and all-clear, DRS, and the chequered flag."""

from __future__ import annotations

import random

from f1daemon.sources.simulator.incidents import Incidents
from f1daemon.sources.simulator.model import RACE_START_OFFSET_MS, Track
from f1daemon.sources.simulator.runs import Announcement, CarRun, LapRun, RedFlag, StatusChange


def _rc(t: int, category: str, message: str, **extra: str | int) -> Announcement:
    return Announcement(t, {"Category": category, **extra, "Message": message})


def _flag(t: int, flag: str, message: str, **extra: str | int) -> Announcement:
    return _rc(t, "Flag", message, Flag=flag, Scope="Track", **extra)


def _safety_car(t: int, mode: str, status: str) -> Announcement:
    return _rc(t, "SafetyCar", f"{mode} {status}", Status=status, Mode=mode)


def plan_timeline(
    rng: random.Random,
    *,
    track: Track,
    runs: list[CarRun],
    incidents: Incidents,
    reds: dict[int, RedFlag],
    laps: int,
) -> tuple[list[StatusChange], list[Announcement]]:
    """TrackStatus and race control for the race: openings, neutralisations, the flag.

    Each period is shown before every car's first lap of it ends and lifted only
    after every car has started its last, so every lap it slowed is seen neutralised.
    """
    statuses: list[StatusChange] = []
    said: list[Announcement] = [
        _flag(30_000, "GREEN", "GREEN LIGHT - PIT EXIT OPEN"),
        _rc(RACE_START_OFFSET_MS - 90_000, "Other", "PIT EXIT CLOSED"),
        _rc(
            RACE_START_OFFSET_MS - 60_000,
            "Other",
            f"RISK OF RAIN FOR F1 RACE IS {round(100 * track.rain_likelihood)}%",
        ),
    ]

    def lead(lap: int) -> LapRun:
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
        statuses.append(StatusChange(yellow, "2", "Yellow"))
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
            statuses.append(StatusChange(deployed, "4", "SCDeployed"))
            said.append(_safety_car(deployed, "SAFETY CAR", "DEPLOYED"))
            said.append(_safety_car(last.start + 5_000, "SAFETY CAR", "IN THIS LAP"))
        elif period.kind == "VSC":
            ending = max(clear - rng.randint(8_000, 15_000), deployed + 5_000)
            statuses.append(StatusChange(deployed, "6", "VSCDeployed"))
            statuses.append(StatusChange(ending, "7", "VSCEnding"))
            said.append(_safety_car(deployed, "VIRTUAL SAFETY CAR", "DEPLOYED"))
            said.append(_safety_car(ending, "VIRTUAL SAFETY CAR", "ENDING"))
        else:
            red = reds[period.first]
            statuses.append(StatusChange(red.shown, "5", "Red"))
            said.append(_flag(red.shown, "RED", "RED FLAG"))
            said.append(_rc(red.shown + 600_000, "Other", "RACE WILL RESUME BEHIND THE SAFETY CAR"))
            statuses.append(StatusChange(red.restart, "4", "SCDeployed"))
            said.append(_flag(red.restart - 60_000, "GREEN", "GREEN LIGHT - PIT EXIT OPEN"))
            said.append(_safety_car(red.restart, "SAFETY CAR", "DEPLOYED"))
            said.append(_safety_car(last.start + 5_000, "SAFETY CAR", "IN THIS LAP"))
        statuses.append(StatusChange(clear, "1", "AllClear"))
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


def _end(lap: LapRun) -> int:
    return lap.end
