"""The charts FastF1 users draw first, from a session's tables.

Each chart is a function of a session's Arrow tables (the exports, read through the
Python API) to a matplotlib `Figure`: lap times per driver coloured by compound with
neutralisations shaded, the stint chart (tyre per lap per driver, as the broadcast
shows it), the gap to the leader per lap, and a speed trace of one lap for up to three
drivers. Drivers are labelled by their codes and drawn in their team colours where
DriverList gave them. Figures are made with the object API (`Figure`, no pyplot
state), so charts can be drawn from any thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

# FastF1's compound colours (fastf1.plotting), so our charts read like theirs.
COMPOUND_COLOURS = {
    "SOFT": "#da291c",
    "MEDIUM": "#ffd12e",
    "HARD": "#f0f0ec",
    "INTERMEDIATE": "#43b02a",
    "WET": "#0067ad",
    "HYPERSOFT": "#feb1c1",
    "ULTRASOFT": "#b24ba7",
    "SUPERSOFT": "#fc2b2a",
}
UNKNOWN_COMPOUND = "#9e9e9e"
NEUTRALISATION_COLOURS = {"SC": "#ffb000", "VSC": "#ffe08a", "RED": "#e05050"}
KINDS = ("laps", "stints", "gaps", "speed")


@dataclass(frozen=True)
class Driver:
    """How a racing number is shown: its code and its team's colour."""

    number: int
    code: str
    colour: str | None


def drivers_of(drivers: pa.Table) -> dict[int, Driver]:
    """Each racing number's code (the number itself without DriverList) and colour."""
    shown: dict[int, Driver] = {}
    for row in drivers.to_pylist():
        colour = row.get("team_colour")
        shown[row["driver"]] = Driver(
            row["driver"],
            row.get("name_acronym") or str(row["driver"]),
            f"#{colour}" if colour else None,
        )
    return shown


def _driver(shown: Mapping[int, Driver], number: int) -> Driver:
    return shown.get(number, Driver(number, str(number), None))


def _compound_colour(compound: str | None) -> str:
    return COMPOUND_COLOURS.get((compound or "").upper(), UNKNOWN_COMPOUND)


def running_order(laps: list[dict[str, Any]]) -> list[int]:
    """Drivers in their last running position (the classification's order)."""
    last: dict[int, tuple[int, int]] = {}
    for lap in laps:
        position = lap.get("position") or 99
        if lap["driver"] not in last or lap["lap"] >= last[lap["driver"]][0]:
            last[lap["driver"]] = (lap["lap"], position)
    return sorted(last, key=lambda d: (last[d][1], -last[d][0], d))


def _shade_neutralisations(axes: Axes, neutralisations: pa.Table) -> None:
    seen: set[str] = set()
    for period in neutralisations.to_pylist():
        first, last = period.get("first_lap"), period.get("last_lap")
        if first is None:
            continue
        kind = period["kind"]
        label = None if kind in seen else kind
        seen.add(kind)
        colour = NEUTRALISATION_COLOURS.get(kind, "#cccccc")
        axes.axvspan(first - 0.5, (last or first) + 0.5, color=colour, alpha=0.3, label=label)


def lap_times(laps: pa.Table, drivers: pa.Table, neutralisations: pa.Table, title: str) -> Figure:
    """Lap time per lap per driver, each point coloured by its compound."""
    figure = Figure(figsize=(11, 6), layout="constrained")
    axes = figure.add_subplot()
    shown = drivers_of(drivers)
    rows = [r for r in laps.to_pylist() if r["lap_time_ms"] is not None]
    _shade_neutralisations(axes, neutralisations)
    for number in running_order(rows):
        mine = [r for r in rows if r["driver"] == number]
        driver = _driver(shown, number)
        xs = [r["lap"] for r in mine]
        ys = [r["lap_time_ms"] / 1000 for r in mine]
        axes.plot(xs, ys, color=driver.colour or "#555555", linewidth=0.8, alpha=0.6)
        axes.scatter(
            xs,
            ys,
            c=[_compound_colour(r["compound"]) for r in mine],
            s=12,
            edgecolors=driver.colour or "#555555",
            linewidths=0.5,
            zorder=3,
        )
        if mine:
            axes.annotate(
                driver.code, (xs[-1], ys[-1]), fontsize=7, xytext=(3, 0), textcoords="offset points"
            )
    compounds = sorted({r["compound"] for r in rows if r["compound"]})
    handles = [Patch(color=_compound_colour(c), label=c) for c in compounds]
    handles += [h for h in axes.get_legend_handles_labels()[0] if isinstance(h, Patch)]
    if handles:
        axes.legend(handles=handles, fontsize=8, loc="upper right")
    axes.set_xlabel("lap")
    axes.set_ylabel("lap time (s)")
    axes.set_title(f"Lap times — {title}")
    axes.grid(alpha=0.3)
    return figure


def stint_chart(laps: pa.Table, drivers: pa.Table, title: str) -> Figure:
    """One bar per driver, a segment per stint coloured by its compound."""
    rows = laps.to_pylist()
    order = running_order(rows)
    shown = drivers_of(drivers)
    figure = Figure(figsize=(11, max(3.0, 0.32 * len(order) + 1.2)), layout="constrained")
    axes = figure.add_subplot()
    for y, number in enumerate(order):
        mine = sorted((r for r in rows if r["driver"] == number), key=lambda r: r["lap"])
        # Consecutive laps on one set: (first lap, last lap, compound).
        segments: list[tuple[int, int, str | None]] = []
        previous: tuple[Any, Any] | None = None
        for lap in mine:
            key = (lap["stint"], lap["compound"])
            if segments and key == previous:
                segments[-1] = (segments[-1][0], lap["lap"], segments[-1][2])
            else:
                segments.append((lap["lap"], lap["lap"], lap["compound"]))
            previous = key
        for start, end, compound in segments:
            axes.barh(
                y,
                end - start + 1,
                left=start - 0.5,
                color=_compound_colour(compound),
                edgecolor="black",
                linewidth=0.5,
            )
    axes.set_yticks(range(len(order)), [_driver(shown, n).code for n in order])
    axes.invert_yaxis()
    compounds = sorted({r["compound"] for r in rows if r["compound"]})
    axes.legend(
        handles=[Patch(color=_compound_colour(c), label=c) for c in compounds],
        fontsize=8,
        loc="lower right",
    )
    axes.set_xlabel("lap")
    axes.set_title(f"Stints — {title}")
    axes.grid(axis="x", alpha=0.3)
    return figure


def gap_chart(laps: pa.Table, drivers: pa.Table, neutralisations: pa.Table, title: str) -> Figure:
    """Gap to the leader at the line, per lap per driver (seconds; laps down left out)."""
    figure = Figure(figsize=(11, 6), layout="constrained")
    axes = figure.add_subplot()
    shown = drivers_of(drivers)
    rows = [r for r in laps.to_pylist() if r.get("gap_to_leader_s") is not None]
    _shade_neutralisations(axes, neutralisations)
    for number in running_order(rows):
        mine = [r for r in rows if r["driver"] == number]
        driver = _driver(shown, number)
        xs = [r["lap"] for r in mine]
        ys = [r["gap_to_leader_s"] for r in mine]
        axes.plot(xs, ys, color=driver.colour, linewidth=1.0, label=driver.code)
    axes.invert_yaxis()  # the leader on top, as a timing screen
    axes.set_xlabel("lap")
    axes.set_ylabel("gap to the leader (s)")
    axes.set_title(f"Gap to the leader — {title}")
    axes.grid(alpha=0.3)
    if rows:
        axes.legend(fontsize=7, ncols=2, loc="lower left")
    return figure


def speed_trace(traces: Mapping[int, pa.Table], drivers: pa.Table, lap: int, title: str) -> Figure:
    """Speed against time into the lap, for each driver's samples of one lap."""
    figure = Figure(figsize=(11, 5), layout="constrained")
    axes = figure.add_subplot()
    shown = drivers_of(drivers)
    for number, samples in traces.items():
        times = samples["utc_ms"].to_pylist()
        if not times:
            continue
        driver = _driver(shown, number)
        axes.plot(
            [(t - times[0]) / 1000 for t in times],
            samples["speed"].to_pylist(),
            color=driver.colour,
            linewidth=1.2,
            label=driver.code,
        )
    axes.set_xlabel("time into the lap (s)")
    axes.set_ylabel("speed (km/h)")
    axes.set_title(f"Speed, lap {lap} — {title}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure
