"""Exports of derived data as Arrow tables, written as CSV, Parquet or JSON.

Each export has a fixed Arrow schema, so every format carries the same columns and
types; a value the feed did not give is null (an empty CSV field).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from f1daemon.domain.events import DerivedEvent, LapCompleted

FORMATS = ("csv", "parquet", "json")

LAPS_SCHEMA = pa.schema(
    [
        pa.field("driver", pa.int16(), nullable=False),
        pa.field("lap", pa.int32(), nullable=False),
        pa.field("lap_time_ms", pa.int64()),
        pa.field("sector1_ms", pa.int64()),
        pa.field("sector2_ms", pa.int64()),
        pa.field("sector3_ms", pa.int64()),
        pa.field("pit_in", pa.bool_(), nullable=False),
        pa.field("pit_out", pa.bool_(), nullable=False),
        pa.field("compound", pa.string()),
        pa.field("stint", pa.int32()),
        pa.field("session_time_ms", pa.int64(), nullable=False),
        pa.field("flags", pa.string()),
    ]
)


def laps_table(events: Sequence[DerivedEvent]) -> pa.Table:
    """One row per lap, ordered by driver then lap."""
    laps = sorted(
        (e for e in events if isinstance(e, LapCompleted)), key=lambda e: (e.driver, e.lap)
    )
    columns: dict[str, list[object]] = {name: [] for name in LAPS_SCHEMA.names}
    for lap in laps:
        row = lap.model_dump(include=set(LAPS_SCHEMA.names))
        row["flags"] = ";".join(lap.flags) or None
        for name in LAPS_SCHEMA.names:
            columns[name].append(row[name])
    return pa.table(columns, schema=LAPS_SCHEMA)


def write_table(table: pa.Table, fmt: str, output: Path | None) -> None:
    """Write a table in a format to a file, or to standard output when `output` is None."""
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("wb") as sink:
            _write(table, fmt, sink)
    else:
        _write(table, fmt, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def _write(table: pa.Table, fmt: str, sink: BinaryIO) -> None:
    if fmt == "csv":
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(quoting_style="needed"))
    elif fmt == "parquet":
        pq.write_table(table, sink, compression="zstd")
    elif fmt == "json":
        sink.write(orjson.dumps(table.to_pylist(), option=orjson.OPT_INDENT_2))
        sink.write(b"\n")
    else:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
