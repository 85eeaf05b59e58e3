"""Exports of derived data as Arrow tables, written as CSV, Parquet or JSON.

Each export is a table of one kind of derived event, its columns taken from the
event's pydantic model (the event's own fields first, then when it happened), so the
documentation, the types and every format agree. A value the feed did not give is
null (an empty CSV field). Lists (a lap's track statuses, its flags) are joined
with `;` so every format has flat columns; an empty list is an empty string, not a
null (no flags is not unknown flags), so a reader that infers types from the first
rows (polars reads 100) finds the column's type there.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from f1daemon.domain.events import (
    DerivedEvent,
    DriverListed,
    Event,
    IntervalBatch,
    LapCompleted,
    LapDeleted,
    NeutralisationPeriod,
    PitStop,
    PositionBatch,
    PositionChanged,
    RaceControlMessage,
    SessionDescribed,
    StintCompoundChanged,
    StintStarted,
    TelemetryBatch,
    Timed,
    TrackStatusChanged,
    WeatherForecast,
    WeatherObserved,
)
from f1daemon.domain.results import (
    QualifyingPublished,
    ReferenceLapPublished,
    ReferencePitStopPublished,
    ResultPublished,
)
from f1daemon.projections import reference

FORMATS = ("csv", "parquet", "json", "ndjson")
LIST_SEPARATOR = ";"

_SCALAR_TYPES: dict[type, pa.DataType] = {
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
    str: pa.string(),
    datetime: pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class Column:
    """One export column: its name, Arrow type, nullability and meaning."""

    name: str
    type: pa.DataType
    nullable: bool
    description: str
    source: str  # the event field it comes from


@dataclass(frozen=True)
class Export:
    """One kind of export: the event it tabulates and how."""

    name: str
    event: type[Event]
    description: str
    renames: dict[str, str] = field(default_factory=dict)
    # For batch events: the columns are the batch's own sample columns.
    exploded: bool = False
    # Rows about a driver carry the session's key and the driver's code and team, so
    # a join with `drivers` or OpenF1 needs no mapping.
    per_driver: bool = False
    # Columns the export works out from other events (its `_PREPARE` fills them in).
    computed: tuple[Column, ...] = ()

    def columns(self) -> list[Column]:
        """The table's columns, in order."""
        joined = JOINED_COLUMNS if self.per_driver else ()
        return [*self.own_columns(), *self.computed, *joined]

    def own_columns(self) -> list[Column]:
        """The columns from the event's own fields."""
        return [
            Column(
                name=self.renames.get(name, name),
                type=arrow_type,
                nullable=nullable,
                description=self.event.model_fields[name].description or "",
                source=name,
            )
            for name, arrow_type, nullable in _fields(self.event, exploded=self.exploded)
        ]

    def schema(self) -> pa.Schema:
        """The Arrow schema of the table."""
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns()])


JOINED_COLUMNS = (
    Column("session_key", pa.int64(), True, "F1's numeric session key (SessionInfo).", ""),
    Column("driver_code", pa.string(), True, "The driver's three-letter code.", ""),
    Column("team", pa.string(), True, "The driver's team.", ""),
)

STINT_LAPS = (
    Column("lap_start", pa.int64(), True, "First lap of the stint (OpenF1's `lap_start`).", ""),
    Column("lap_end", pa.int64(), True, "Last lap of the stint so far (`lap_end`).", ""),
)

EXPORTS: dict[str, Export] = {
    export.name: export
    for export in (
        Export(
            "laps",
            LapCompleted,
            "One row per lap and driver, ordered by driver then lap.",
            per_driver=True,
        ),
        Export(
            "stints",
            StintStarted,
            "One row per stint (set of tyres) and driver, with the compound as last reported "
            "and its first and last lap (OpenF1's `stints`).",
            renames={"tyre_age_laps": "tyre_age_at_start"},
            per_driver=True,
            computed=STINT_LAPS,
        ),
        Export("pits", PitStop, "One row per pass through the pit lane.", per_driver=True),
        Export(
            "drivers",
            DriverListed,
            "One row per driver of the session, as DriverList last named them.",
            per_driver=True,
        ),
        Export(
            "sessions",
            SessionDescribed,
            "The session as SessionInfo last described it, with F1's numeric keys.",
        ),
        Export("track-status", TrackStatusChanged, "One row per change of the track status."),
        Export(
            "neutralisations",
            NeutralisationPeriod,
            "One row per safety car, virtual safety car or red flag period.",
            renames={"utc": "start_utc", "session_time_ms": "start_time_ms"},
        ),
        Export("race-control", RaceControlMessage, "One row per race-control message."),
        Export("weather", WeatherObserved, "One row per weather observation."),
        Export(
            "positions",
            PositionChanged,
            "One row per change of a driver's running position.",
            per_driver=True,
        ),
        Export(
            "intervals",
            IntervalBatch,
            "One row per change of a car's gap to the leader or interval to the car ahead "
            "(OpenF1's `intervals`), in seconds, with the laps behind in their own columns.",
            exploded=True,
            per_driver=True,
            computed=(Column("date", pa.timestamp("us", tz="UTC"), True, "When, UTC.", ""),),
        ),
        Export(
            "telemetry",
            TelemetryBatch,
            "One row per car telemetry sample (CarData.z).",
            exploded=True,
            per_driver=True,
        ),
        Export(
            "car-positions",
            PositionBatch,
            "One row per car position sample (Position.z).",
            exploded=True,
            per_driver=True,
        ),
        # Official results (Jolpica) of this session: see f1daemon.projections.reference.
        Export(
            "results",
            ResultPublished,
            "The race's official classification (Jolpica), one row per driver, by position.",
            per_driver=True,
        ),
        Export(
            "sprint-results",
            ResultPublished,
            "The sprint's official classification (Jolpica), one row per driver, by position.",
            per_driver=True,
        ),
        Export(
            "qualifying",
            QualifyingPublished,
            "The official qualifying result (Jolpica): each driver's Q1, Q2, Q3 bests.",
            per_driver=True,
        ),
        Export(
            "reference-laps",
            ReferenceLapPublished,
            "The race's laps as Jolpica times them (position, lap time), by driver then lap.",
            per_driver=True,
        ),
        Export(
            "reference-pits",
            ReferencePitStopPublished,
            "The race's pit stops as Jolpica records them, by driver then stop.",
            per_driver=True,
        ),
        Export(
            "forecasts",
            WeatherForecast,
            "One row per forecast time of each fetched forecast (Open-Meteo, OpenWeatherMap).",
            renames={"wind_speed_ms": "wind_speed_mps"},
        ),
    )
}


def export_table(kind: str, events: Sequence[DerivedEvent]) -> pa.Table:
    """The table of one export kind from a session's derived events."""
    return pa.table(_export_columns(kind, events), schema=EXPORTS[kind].schema())


def export_rows(kind: str, events: Sequence[DerivedEvent]) -> list[dict[str, Any]]:
    """The rows `export_table` would hold, as Python values: for a few rows at a time
    (a live tail's), where building an Arrow table per row would cost more."""
    columns = _export_columns(kind, events)
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _export_columns(kind: str, events: Sequence[DerivedEvent]) -> dict[str, list[Any]]:
    export = EXPORTS[kind]
    selected = [e for e in events if isinstance(e, export.event)]
    prepare = _PREPARE.get(kind)
    rows = prepare(selected, events) if prepare else [e.model_dump() for e in selected]
    if export.exploded:
        rows = _explode(rows)
    columns = export.own_columns()
    data = {c.name: [_flat(row[c.source]) for row in rows] for c in columns}
    data.update({c.name: [row.get(c.name) for row in rows] for c in export.computed})
    if export.per_driver:
        data.update(_joined(rows, events))
    return data


def _latest_by_driver(events: Sequence[DerivedEvent]) -> dict[int, DriverListed]:
    return {e.driver: e for e in events if isinstance(e, DriverListed)}


def _session_key(events: Sequence[DerivedEvent]) -> int | None:
    described = [e for e in events if isinstance(e, SessionDescribed)]
    return described[-1].session_key if described else None


def _joined(rows: list[dict[str, Any]], events: Sequence[DerivedEvent]) -> dict[str, list[Any]]:
    """The session key, driver code and team of each row's driver."""
    drivers = _latest_by_driver(events)
    key = _session_key(events)
    named = [drivers.get(row["driver"]) for row in rows]
    return {
        "session_key": [key] * len(rows),
        "driver_code": [d.name_acronym if d else None for d in named],
        "team": [d.team_name if d else None for d in named],
    }


def _one_per_driver(
    listed: Sequence[Event], events: Sequence[DerivedEvent]
) -> list[dict[str, Any]]:
    """Each driver as last named, in racing-number order."""
    latest = _latest_by_driver(events)
    return [latest[driver].model_dump() for driver in sorted(latest)]


def _latest_only(
    described: Sequence[Event], events: Sequence[DerivedEvent]
) -> list[dict[str, Any]]:
    return [described[-1].model_dump()] if described else []


def write_table(table: pa.Table, fmt: str, output: Path | None) -> None:
    """Write a table in a format to a file, or to standard output when `output` is None."""
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("wb") as sink:
            _write(table, fmt, sink)
    else:
        _write(table, fmt, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def _compounds(events: Sequence[DerivedEvent]) -> dict[tuple[int, int], str | None]:
    """Each stint's compound as last reported (the feed names some late)."""
    compounds: dict[tuple[int, int], str | None] = {}
    for event in events:
        if isinstance(event, StintStarted | StintCompoundChanged):
            compounds[(event.driver, event.stint)] = event.compound
    return compounds


def lap_rows(laps: Sequence[Event], events: Sequence[DerivedEvent]) -> list[dict[str, Any]]:
    # Race control's later deletions and reinstatements, and the feed's later names
    # for compounds, apply to the laps they concern.
    deleted: dict[tuple[int, int], bool] = {}
    for event in events:
        if isinstance(event, LapDeleted) and event.lap is not None:
            deleted[(event.driver, event.lap)] = not event.reinstated
    compounds = _compounds(events)
    fresh = {(e.driver, e.stint): e.new_tyres for e in events if isinstance(e, StintStarted)}
    rows = []
    for lap in sorted(laps, key=lambda e: (getattr(e, "driver", 0), getattr(e, "lap", 0))):
        row = lap.model_dump()
        row["deleted"] = deleted.get((row["driver"], row["lap"]), row["deleted"])
        if row["stint"] is None and (row["driver"], 1) in compounds:
            # Driven before TimingAppData's first stint came (lap 1 of a race): on the
            # first stint, as FastF1 has it.
            row["stint"] = 1
        if row["stint"] is not None:
            key = (row["driver"], row["stint"])
            row["compound"] = compounds.get(key, row["compound"])
            if row["fresh_tyre"] is None:
                row["fresh_tyre"] = fresh.get(key)
        rows.append(row)
    _personal_bests(rows)
    return rows


def _personal_bests(rows: list[dict[str, Any]]) -> None:
    """A lap is a personal best (FastF1's IsPersonalBest) when the feed marked its time
    as one, it beats the driver's earlier personal bests of the qualifying part, and
    race control did not delete it. (The feed's mark is merged state: a slow lap whose
    patch does not repeat it can carry the last lap's `true`.)"""
    best: dict[tuple[int, int | None], int] = {}
    for row in rows:  # by driver, then lap
        if not row["is_personal_best"]:
            continue
        key = (row["driver"], row["session_part"])
        time = row["lap_time_ms"]
        if row["deleted"] or (key in best and time >= best[key]):
            row["is_personal_best"] = False
        else:
            best[key] = time


def stint_rows(stints: Sequence[Event], events: Sequence[DerivedEvent]) -> list[dict[str, Any]]:
    compounds = _compounds(events)
    laps: dict[tuple[int, int], list[int]] = {}
    for lap in lap_rows([e for e in events if isinstance(e, LapCompleted)], events):
        if lap["stint"] is not None:
            laps.setdefault((lap["driver"], lap["stint"]), []).append(lap["lap"])
    rows = []
    for stint in stints:
        row = stint.model_dump()
        key = (row["driver"], row["stint"])
        row["compound"] = compounds.get(key, row["compound"])
        on_stint = laps.get(key)
        row["lap_start"] = min(on_stint) if on_stint else None
        row["lap_end"] = max(on_stint) if on_stint else None
        rows.append(row)
    return rows


def interval_rows(batches: Sequence[Event], events: Sequence[DerivedEvent]) -> list[dict[str, Any]]:
    """Each batch with the UTC of each change (from the batch's, which follows the time
    base), to be exploded into its rows."""
    rows = []
    for batch in batches:
        row = batch.model_dump()
        start, utc = row["session_time_ms"], row["utc"]
        row["date"] = tuple(
            None if utc is None else utc + timedelta(milliseconds=t - start) for t in row["time_ms"]
        )
        rows.append(row)
    return rows


_PREPARE: dict[str, Callable[[Sequence[Event], Sequence[DerivedEvent]], list[dict[str, Any]]]] = {
    "laps": lap_rows,
    "stints": stint_rows,
    "drivers": _one_per_driver,
    "sessions": _latest_only,
    "intervals": interval_rows,
    **reference.PREPARE,
}


def _explode(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for batch in batches:
        names = [name for name, value in batch.items() if isinstance(value, tuple)]
        rows.extend(
            dict(zip(names, sample, strict=True))
            for sample in zip(*(batch[n] for n in names), strict=True)
        )
    return rows


def _flat(value: object) -> object:
    if isinstance(value, tuple | list):
        return LIST_SEPARATOR.join(str(v) for v in value)
    return value


def _fields(event: type[Event], *, exploded: bool) -> list[tuple[str, pa.DataType, bool]]:
    hints = typing.get_type_hints(event)
    own = [n for n in event.model_fields if n not in Timed.model_fields and n != "session"]
    when = [n for n in ("session_time_ms", "utc") if n in event.model_fields and not exploded]
    result = []
    for name in own + when:
        annotation = hints[name]
        if exploded:
            annotation = typing.get_args(annotation)[0]  # tuple[X, ...] -> X
        result.append((name, *_arrow_type(annotation)))
    return result


def _arrow_type(annotation: object) -> tuple[pa.DataType, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        arrow_type, _ = _arrow_type(inner)
        return arrow_type, True
    if typing.get_origin(annotation) is tuple:
        return pa.string(), False  # joined with ";", empty when empty
    if isinstance(annotation, type) and annotation in _SCALAR_TYPES:
        return _SCALAR_TYPES[annotation], False
    raise TypeError(f"no export type for {annotation!r}")


def _write(table: pa.Table, fmt: str, sink: BinaryIO) -> None:
    if fmt == "csv":
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(quoting_style="needed"))
    elif fmt == "parquet":
        pq.write_table(table, sink, compression="zstd")
    elif fmt == "json":
        sink.write(orjson.dumps(table.to_pylist(), option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z))
        sink.write(b"\n")
    elif fmt == "ndjson":  # one row per line: what streaming readers and polars take
        for row in table.to_pylist():
            sink.write(orjson.dumps(row, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE))
    else:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
