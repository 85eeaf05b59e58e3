"""The lake: versioned Parquet files (with CSV and JSON beside them) that any engine reads.

Layout: `{root}/{layer}/{source}/{date}/{version}.{parquet,csv,json}` and a manifest
`{version}.manifest.json` beside them: rows, schema, SHA-256 of each file, the log
positions the data comes from, the pipeline version, the time it was written.

* `raw/{source}/…` — the facts of every session, per source (`archive`, `recording`);
* `processed/{kind}/…` — each export kind (laps, stints, …) of every session;
* `features/{name}/…` — aggregates for strategy computed from the processed tables
  (`stints`: per driver and stint, clean laps, lap-time statistics, degradation; see
  `f1daemon.projections.features`).

`date` is the session's date (from its key; `undated` without one) and every table has
`session` and `version` columns, so a glob over versions and dates queries them all.
Retention prunes old versions of the lake's files, never the log.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from f1daemon.domain.events import MessageReceived
from f1daemon.feed.pipeline import PIPELINE_VERSION
from f1daemon.projections.current import session_data
from f1daemon.projections.exports import EXPORTS, export_table, write_table
from f1daemon.projections.features import FEATURES
from f1daemon.store.eventlog import EventLog

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")
RAW_SCHEMA = pa.schema(
    [
        pa.field("position", pa.int64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("stream", pa.string(), nullable=False),
        pa.field("topic", pa.string(), nullable=False),
        pa.field("sequence", pa.int64(), nullable=False),
        pa.field("offset_ms", pa.int64()),
        pa.field("received_at", pa.timestamp("us", tz="UTC")),
        pa.field("keyframe", pa.bool_(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
    ]
)

# The lake's files per table (an export may also be NDJSON; the lake keeps these).
LAKE_FORMATS = ("csv", "parquet", "json")


@dataclass(frozen=True)
class LakeFile:
    """One versioned table written to the lake (its formats and manifest)."""

    layer: str
    source: str
    date: str
    version: str
    rows: int
    manifest: Path


def session_date(session: str) -> str:
    """The date in a session key (the session's own part first), or `undated`."""
    for part in reversed(session.split("/")):
        match = _DATE.search(part)
        if match:
            return match.group(1)
    return "undated"


def write_lake(log: EventLog, root: Path, version: str, at: int | None = None) -> list[LakeFile]:
    """Write every session's facts and exports as they are at log position `at` (or now)."""
    position = log.head_position() if at is None else at
    tables: dict[tuple[str, str, str], list[pa.Table]] = defaultdict(list)
    positions: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for session in log.sessions():
        date = session_date(session)
        rows: dict[str, list[dict[str, object]]] = defaultdict(list)
        read: list[int] = []  # the session's first fact, and the last its data was derived from
        for fact_position, fact in log.facts(session, position):
            read = read or [fact_position]
            if isinstance(fact, MessageReceived):
                rows[fact.source].append({"position": fact_position, **fact.model_dump()})
                positions[("raw", fact.source, date)].append(fact_position)
        for source, facts in rows.items():
            table = pa.Table.from_pylist(facts, RAW_SCHEMA)
            tables[("raw", source, date)].append(_tagged(table, session, version))
        data = session_data(log, session, at=position, telemetry=True)
        if data is None:
            continue
        run, events = data
        tracked = log.run_position(session, run)  # None: a run before pipeline 3.0
        read += (
            [tracked]
            if tracked is not None
            else [c.last_fact_position for _, c in log.derivation_runs(session) if c.run == run]
        )
        processed = {kind: export_table(kind, events) for kind in EXPORTS}
        layers = [
            ("processed", processed),
            ("features", {name: f.table(processed) for name, f in FEATURES.items()}),
        ]
        for layer, by_name in layers:
            for name, table in by_name.items():
                tables[(layer, name, date)].append(_tagged(table, session, version))
                positions[(layer, name, date)] += read
    return [
        _write(root.joinpath(*key), version, pa.concat_tables(parts), positions[key])
        for key, parts in tables.items()
    ]


def prune(root: Path, keep: int | None = None, older_than: timedelta | None = None) -> list[Path]:
    """Delete old versions of the lake's files: beyond the newest `keep` of each table,
    or written longer ago than `older_than`. Returns the manifests of what was deleted."""
    deleted: list[Path] = []
    now = datetime.now(UTC)
    for folder in sorted({m.parent for m in root.glob("*/*/*/*.manifest.json")}):
        manifests = sorted(
            folder.glob("*.manifest.json"),
            key=lambda m: json.loads(m.read_text())["created_at"],
            reverse=True,
        )
        for index, manifest in enumerate(manifests):
            created = datetime.fromisoformat(json.loads(manifest.read_text())["created_at"])
            too_many = keep is not None and index >= keep
            too_old = older_than is not None and now - created > older_than
            if too_many or too_old:
                version = manifest.name.removesuffix(".manifest.json")
                for fmt in LAKE_FORMATS:
                    (folder / f"{version}.{fmt}").unlink(missing_ok=True)
                manifest.unlink()
                deleted.append(manifest)
    return deleted


def _tagged(table: pa.Table, session: str, version: str) -> pa.Table:
    rows = table.num_rows
    table = table.add_column(
        0, pa.field("session", pa.string(), nullable=False), pa.array([session] * rows, pa.string())
    )
    return table.add_column(
        1, pa.field("version", pa.string(), nullable=False), pa.array([version] * rows, pa.string())
    )


def _write(folder: Path, version: str, table: pa.Table, positions: list[int]) -> LakeFile:
    layer, source, date = folder.parts[-3:]
    files = {}
    for fmt in LAKE_FORMATS:
        path = folder / f"{version}.{fmt}"
        write_table(table, fmt, path)
        files[fmt] = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    manifest = folder / f"{version}.manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "layer": layer,
                "source": source,
                "date": date,
                "version": version,
                "rows": table.num_rows,
                "schema": [
                    {"name": f.name, "type": str(f.type), "nullable": f.nullable}
                    for f in table.schema
                ],
                "files": files,
                "log_positions": {
                    "first": min(positions, default=0),
                    "last": max(positions, default=0),
                },
                "pipeline_version": PIPELINE_VERSION,
                "created_at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
        + "\n"
    )
    return LakeFile(layer, source, date, version, table.num_rows, manifest)
