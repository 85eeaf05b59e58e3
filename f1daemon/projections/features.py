"""Features: per-driver aggregates for strategy work, computed from the processed tables.

The lake's `features/` layer. Each feature table is computed from the processed
export tables of a session (`laps`, `stints`), not from the events directly, so it
sees the data exactly as `processed/` holds it: race control's deletions applied,
compounds as last reported.

`stints` — one row per stint (a `StintStarted`), with its laps' aggregates. A lap
belongs to the stint the feed assigned it (`LapCompleted.stint`); laps the feed gave
no stint (the 2018 Baku race's first laps) belong to none. A *clean* lap is one
whose time says something about the car on those tyres:

* timed (a `LastLapTime` was received);
* not lap 1 (the standing start, or the first flying lap after the garage);
* not an in-lap or an out-lap (the pit lane is in it);
* not deleted by race control (track limits: not a lap the car may do);
* not run, even in part, behind a safety car, a virtual safety car or a red flag
  (track status 4, 5, 6 or 7) — yellow flags (2) are local and short, and stay;
* not flagged as the pit-lane short cut (`faster_than_personal_best_but_not_marked_one`)
  or as the end of a run whose count never moved on (`lap_count_never_moved_on`).

The degradation is the least-squares slope of clean lap time against lap number
over the stint's clean laps (at least three), in seconds per lap. It is not
corrected for fuel: a car gets faster as it burns fuel, often by more than its tyres
cost it, so a long stint's slope is commonly negative.

Everything is computed with exact sums (`math.fsum`) in a fixed order, so the same
processed data gives the same table, byte for byte once written.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from f1daemon.domain.events import DerivedEvent
from f1daemon.feed.laps import NOT_ACCEPTED_FLAG
from f1daemon.projections.exports import LIST_SEPARATOR, Column, export_table

NEUTRALISED_STATUSES = frozenset({"4", "5", "6", "7"})  # SC, red flag, VSC, VSC ending
UNREPRESENTATIVE_FLAGS = frozenset({NOT_ACCEPTED_FLAG, "lap_count_never_moved_on"})
MIN_LAPS_FOR_SLOPE = 3  # two points always fit a line: no evidence of a trend


@dataclass(frozen=True)
class Feature:
    """One table of the features layer: its columns and how it is computed."""

    name: str
    description: str
    inputs: tuple[str, ...]  # the processed tables (export kinds) it is computed from
    columns: tuple[Column, ...]
    compute: Callable[[Mapping[str, pa.Table]], list[dict[str, Any]]]

    def schema(self) -> pa.Schema:
        """The Arrow schema of the table."""
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    def table(self, processed: Mapping[str, pa.Table]) -> pa.Table:
        """The table for one session, from its processed tables (by export kind)."""
        rows = self.compute(processed)
        return pa.table(
            {c.name: [row[c.name] for row in rows] for c in self.columns}, schema=self.schema()
        )

    def table_of_events(self, events: Sequence[DerivedEvent]) -> pa.Table:
        """The table for one session's derived events (their processed tables first)."""
        return self.table({kind: export_table(kind, events) for kind in self.inputs})


def _column(name: str, arrow_type: pa.DataType, nullable: bool, description: str) -> Column:
    return Column(name, arrow_type, nullable, description, source="laps, stints")


STINT_COLUMNS = (
    _column("driver", pa.int64(), False, "Racing number."),
    _column("stint", pa.int64(), False, "Stint number, 1 for the first set."),
    _column("compound", pa.string(), True, "Compound as last reported."),
    _column("new_tyres", pa.bool_(), True, "Whether the set was new."),
    _column("tyre_age_at_start", pa.int64(), True, "Laps already on the set when fitted."),
    _column("first_lap", pa.int64(), True, "First lap of the stint; null if it has none."),
    _column("last_lap", pa.int64(), True, "Last lap of the stint; null if it has none."),
    _column("laps", pa.int64(), False, "Laps in the stint (timed or not)."),
    _column("timed_laps", pa.int64(), False, "Laps in the stint with a lap time."),
    _column("clean_laps", pa.int64(), False, "Clean laps (see the features layer's rules)."),
    _column("mean_clean_lap_ms", pa.float64(), True, "Mean clean lap time (ms)."),
    _column("median_clean_lap_ms", pa.float64(), True, "Median clean lap time (ms)."),
    _column("best_clean_lap_ms", pa.int64(), True, "Fastest clean lap time (ms)."),
    _column(
        "degradation_s_per_lap",
        pa.float64(),
        True,
        "Least-squares slope of clean lap time against lap number (s/lap), not fuel-"
        "corrected; null with fewer than three clean laps.",
    ),
)


def is_clean(lap: dict[str, Any]) -> bool:
    """Whether a row of the processed laps table is a clean lap (see the module)."""
    statuses = set(lap["track_statuses"].split(LIST_SEPARATOR)) if lap["track_statuses"] else set()
    flags = set(lap["flags"].split(LIST_SEPARATOR)) if lap["flags"] else set()
    return (
        lap["lap_time_ms"] is not None
        and lap["lap"] > 1
        and not lap["pit_in"]
        and not lap["pit_out"]
        and not lap["deleted"]
        and not statuses & NEUTRALISED_STATUSES
        and not flags & UNREPRESENTATIVE_FLAGS
    )


def degradation_s_per_lap(laps: Sequence[int], times_ms: Sequence[int]) -> float | None:
    """The least-squares slope of lap time against lap number, in s/lap."""
    if len(laps) < MIN_LAPS_FOR_SLOPE or len(set(laps)) < 2:
        return None
    mean_lap = math.fsum(laps) / len(laps)
    mean_time = math.fsum(times_ms) / len(times_ms)
    covariance = math.fsum(
        (x - mean_lap) * (y - mean_time) for x, y in zip(laps, times_ms, strict=True)
    )
    variance = math.fsum((x - mean_lap) ** 2 for x in laps)
    return covariance / variance / 1000


def _stint_rows(processed: Mapping[str, pa.Table]) -> list[dict[str, Any]]:
    laps_of: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for lap in processed["laps"].to_pylist():  # ordered by driver, then lap
        if lap["stint"] is not None:
            laps_of[(lap["driver"], lap["stint"])].append(lap)
    stints = sorted(processed["stints"].to_pylist(), key=lambda s: (s["driver"], s["stint"]))
    rows = []
    for stint in stints:
        laps = laps_of.get((stint["driver"], stint["stint"]), [])
        clean = [lap for lap in laps if is_clean(lap)]
        times = [lap["lap_time_ms"] for lap in clean]
        rows.append(
            {
                "driver": stint["driver"],
                "stint": stint["stint"],
                "compound": stint["compound"],
                "new_tyres": stint["new_tyres"],
                "tyre_age_at_start": stint["tyre_age_at_start"],
                "first_lap": laps[0]["lap"] if laps else None,
                "last_lap": laps[-1]["lap"] if laps else None,
                "laps": len(laps),
                "timed_laps": sum(lap["lap_time_ms"] is not None for lap in laps),
                "clean_laps": len(clean),
                "mean_clean_lap_ms": math.fsum(times) / len(times) if times else None,
                "median_clean_lap_ms": float(statistics.median(times)) if times else None,
                "best_clean_lap_ms": min(times, default=None),
                "degradation_s_per_lap": degradation_s_per_lap(
                    [lap["lap"] for lap in clean], times
                ),
            }
        )
    return rows


FEATURES: dict[str, Feature] = {
    feature.name: feature
    for feature in (
        Feature(
            "stints",
            "One row per stint and driver: its laps, clean laps, lap-time statistics and"
            " tyre degradation, for strategy.",
            ("laps", "stints"),
            STINT_COLUMNS,
            _stint_rows,
        ),
    )
}
