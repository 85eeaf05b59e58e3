"""The one reader of derived data: what the CLI's exports, the Python API and the HTTP
API all read through.

A read names a session and a version: the head (the current data now), or a tag
(the data as it was at the tag's log position: the run current then, read up to
it). The tables are the exports' (`f1daemon.projections.exports`), so a table read
here equals the file `f1daemon export` writes, at the same version.

Reading is read-only: nothing here appends to the log. Tables are kept in a small
cache keyed by the log position they were read at — a tag's data never changes,
and the head's only when the log grows (the head position is one cheap query) — so
a server answering many requests reads each session's events once per change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from f1daemon.domain.events import DerivedEvent, VersionTagged
from f1daemon.errors import UserError
from f1daemon.projections.current import session_data
from f1daemon.projections.exports import EXPORTS, export_table
from f1daemon.qa.report import QAReport
from f1daemon.services import session_names
from f1daemon.services.derivation import run_report
from f1daemon.services.quarantine import quarantined
from f1daemon.services.versions import find_tag
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url, resolve_store_url

T = TypeVar("T")

# Tables kept (a race's laps are ~1 000 rows; a session's telemetry 10^5 to 10^6) and
# sessions' event lists kept (telemetry batches make them large).
TABLE_CACHE = 64
EVENTS_CACHE = 4

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("stream", pa.string(), nullable=False),
        pa.field("sequence", pa.int64(), nullable=False),
        pa.field("topic", pa.string()),
        pa.field("payload", pa.string(), nullable=False),
    ]
)
QA_REPORT_SCHEMA = pa.schema(
    [
        pa.field("rule", pa.string(), nullable=False),
        pa.field("rule_version", pa.int64(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("findings", pa.int64(), nullable=False),
        pa.field("records_checked", pa.int64(), nullable=False),
        pa.field("passed", pa.int64(), nullable=False),
        pa.field("flagged", pa.int64(), nullable=False),
        pa.field("quarantined", pa.int64(), nullable=False),
        pa.field("quality_score", pa.float64(), nullable=False),
    ]
)
VERSIONS_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
        pa.field("pipeline_version", pa.string(), nullable=False),
        pa.field("tagged_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("message", pa.string(), nullable=False),
    ]
)


# A session's row in `sessions()`: its log key, then the `sessions` export's columns.
_SESSION_ROW = EXPORTS["sessions"].schema().insert(0, pa.field("session", pa.string(), False))


@dataclass(frozen=True)
class Version:
    """What a read is as at: `position` None is the head (the current data)."""

    name: str | None
    position: int | None


def open_log(store_url: str | None) -> EventLog:
    """The log at a store URL (default: the configured one), for reading: a SQLite
    file that does not exist is an error here, not a new empty log."""
    store = parse_store_url(resolve_store_url(store_url))
    if store.sqlite_path is not None and not store.sqlite_path.is_file():
        raise UserError(f"no event log at {store.redacted}; ingest or run the daemon first")
    return EventLog(store)


def lap_windows(laps: pa.Table) -> pa.Table:
    """Each lap's start (`date_start`) and end (`date_end`, the line crossing that
    completed it) as UTC timestamps, from a laps table: a lap starts at its own
    `date_start` (the derivation's), else where the driver's previous lap ended, else
    its time (lap time, else line to line) before its end; null where none is known."""
    end = laps["utc"]
    duration = pc.coalesce(laps["lap_time_ms"], laps["line_to_line_ms"])
    back = pc.subtract(end, pc.cast(pc.multiply(duration, 1000), pa.duration("us")))
    previous: list[object] = []
    last: dict[int, tuple[int, object]] = {}
    for driver, lap, utc in zip(
        laps["driver"].to_pylist(), laps["lap"].to_pylist(), end.to_pylist(), strict=True
    ):
        seen = last.get(driver)
        previous.append(seen[1] if seen is not None and seen[0] == lap - 1 else None)
        last[driver] = (lap, utc)
    start = pc.coalesce(laps["date_start"], pa.array(previous, end.type), back)
    return pa.table({"date_start": start, "date_end": end})


class _LRU:
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, object] = OrderedDict()

    def get(self, key: Hashable) -> object | None:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: Hashable, value: object) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


class Reader:
    """Reads a log's derived data as Arrow tables, at the head or at a tag.

    Safe to share between threads: one read at a time goes to the store.
    """

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._lock = threading.RLock()
        self._tables = _LRU(TABLE_CACHE)
        self._events = _LRU(EVENTS_CACHE)

    def read(self, call: Callable[[EventLog], T]) -> T:
        """Run a function of the log, one read at a time with the reader's own (a
        live tail's reads, `f1daemon.services.tail`)."""
        with self._lock:
            return call(self.log)

    # -- versions and sessions ---------------------------------------------------------

    def version(self, tag: str | None) -> Version:
        """The version a read is as at: a tag by name (a UserError naming the known ones
        for an unknown tag), or the head for None."""
        if tag is None:
            return Version(None, None)
        with self._lock:
            found: VersionTagged = find_tag(self.log, tag)
        return Version(found.name, found.position)

    def sessions(self) -> list[str]:
        """The log's sessions, in the order they were first seen."""
        with self._lock:
            return self.log.sessions()

    def resolve(self, key_or_name: str | int) -> str:
        """A session by any name people use (`f1daemon.services.session_names`): its
        log key, folder, F1's numeric key or words such as `2018 baku race`."""
        return session_names.resolve(str(key_or_name), self.sessions(), self._names)

    def _names(self, session: str) -> list[str]:
        try:
            described = self.table("sessions", session).to_pylist()
        except UserError:  # not derived yet: known by its key alone
            return []
        return session_names.described_names(described[0] if described else None)

    # -- tables --------------------------------------------------------------------------

    def table(self, kind: str, session: str, version: Version | None = None) -> pa.Table:
        """One export kind of a session (`f1daemon.projections.exports.EXPORTS`), as at
        a version (the head for None)."""
        if kind not in EXPORTS:
            raise UserError(f"unknown table {kind!r}; the tables are: {', '.join(EXPORTS)}")
        version = version or Version(None, None)
        with self._lock:
            key = ("table", kind, session, self._position_key(version))
            cached = self._tables.get(key)
            if isinstance(cached, pa.Table):
                return cached
            events = self._session_events(session, version, telemetry=EXPORTS[kind].exploded)
            table = export_table(kind, events)
            self._tables.put(key, table)
            return table

    def derived(
        self, name: str, session: str, version: Version | None, build: Callable[[], pa.Table]
    ) -> pa.Table:
        """A table computed from a session's tables (`build`), kept in the cache as they
        are: computed again only when they would read differently."""
        version = version or Version(None, None)
        with self._lock:
            key = ("derived", name, session, self._position_key(version))
            cached = self._tables.get(key)
            if isinstance(cached, pa.Table):
                return cached
            table = build()
            self._tables.put(key, table)
            return table

    def quarantine(self, session: str, version: Version | None = None) -> pa.Table:
        """What the session's data holds back (as at a version), oldest first: one row
        per quarantined input or record, its id its log position."""
        version = version or Version(None, None)
        with self._lock:
            entries = quarantined(self.log, session, at=version.position)
        rows = [
            {
                "id": e.position,
                "stage": e.stage,
                "record": e.what,
                "rule": e.event.rule,
                "reason": e.event.reason,
                "source": e.event.source,
                "stream": e.event.stream,
                "sequence": e.event.sequence,
                "topic": e.event.topic,
                "payload": e.event.payload,
            }
            for e in entries
        ]
        return pa.Table.from_pylist(rows, QUARANTINE_SCHEMA)

    def qa_report(self, session: str, version: Version | None = None) -> pa.Table:
        """The QA report of the session's run current at a version: one row per rule,
        with the session's totals and quality score on every row."""
        version = version or Version(None, None)
        with self._lock:
            run = self.log.current_run(session, at=version.position)
            report: QAReport | None = None if run is None else run_report(self.log, session, run)
        if report is None:
            raise UserError(f"session {session!r} has no QA report then; run replay")
        totals = {
            "records_checked": report.records_checked,
            "passed": report.passed,
            "flagged": report.flagged,
            "quarantined": report.quarantined,
            "quality_score": report.quality_score,
        }
        rows = [
            {
                "rule": r.rule,
                "rule_version": r.version,
                "severity": r.severity,
                "findings": r.findings,
                **totals,
            }
            for r in report.rules
        ]
        return pa.Table.from_pylist(rows, QA_REPORT_SCHEMA)

    def versions(self) -> pa.Table:
        """The log's tags, oldest first."""
        with self._lock:
            tags = self.log.versions()
        rows = [
            {
                "name": t.name,
                "position": t.position,
                "pipeline_version": t.pipeline_version,
                "tagged_at": t.tagged_at,
                "message": t.message,
            }
            for t in tags
        ]
        return pa.Table.from_pylist(rows, VERSIONS_SCHEMA)

    def sessions_table(self, session: str | None, version: Version | None = None) -> pa.Table:
        """A session's row of the `sessions` export with its log key first (`session`);
        nulls but the key where the feed never described it or nothing is derived (then);
        no rows for None (the table's shape)."""
        schema = _SESSION_ROW
        if session is None:
            return schema.empty_table()

        def row() -> pa.Table:
            try:
                described = self.table("sessions", session, version)
            except UserError:  # not derived (at that version)
                described = schema.remove(0).empty_table()
            if described.num_rows == 0:
                values = dict.fromkeys(schema.names) | {"session": session}
                return pa.Table.from_pylist([values], schema)
            keys = pa.array([session] * described.num_rows, pa.string())
            return described.add_column(0, schema.field("session"), keys)

        return self.derived("session-row", session, version, row)

    def lap_samples(
        self,
        kind: str,
        session: str,
        driver: int | None,
        lap: int | None,
        version: Version | None = None,
    ) -> pa.Table:
        """A sample table (`telemetry`, `car-positions`) of one driver, of one lap of a
        driver (samples after the lap's start, up to its end at the line), or whole."""
        table = self.table(kind, session, version)
        if driver is not None:
            table = table.filter(pc.equal(table["driver"], driver))
        if lap is None:
            return table
        if driver is None:
            raise UserError("a lap is one driver's: give the driver too")
        laps = self.table("laps", session, version)
        chosen = pc.and_(pc.equal(laps["driver"], driver), pc.equal(laps["lap"], lap))
        windows = lap_windows(laps).filter(chosen)
        if windows.num_rows == 0:
            raise UserError(f"car {driver} has no lap {lap} in {session}")
        # In microseconds, the timestamps' own unit: no rounding at the window's ends.
        start, end = (pc.cast(windows[c], pa.int64())[0].as_py() for c in windows.column_names)
        if start is None or end is None:
            raise UserError(f"lap {lap} of car {driver} has no times to cut its samples by")
        utc_us = pc.multiply(table["utc_ms"], 1000)
        return table.filter(pc.and_(pc.greater(utc_us, start), pc.less_equal(utc_us, end)))

    # -- the log -------------------------------------------------------------------------

    def _position_key(self, version: Version) -> tuple[str, int]:
        # The head's data changes only when the log grows.
        if version.position is None:
            return ("head", self.log.head_position())
        return ("at", version.position)

    def _session_events(
        self, session: str, version: Version, *, telemetry: bool
    ) -> list[DerivedEvent]:
        key = ("events", session, self._position_key(version), telemetry)
        cached = self._events.get(key)
        if isinstance(cached, list):
            return cached
        data = session_data(self.log, session, at=version.position, telemetry=telemetry)
        if data is None:
            when = "" if version.name is None else f" at {version.name}"
            raise UserError(f"session {session!r} has no derived data{when}; run replay")
        self._events.put(key, data[1])
        return data[1]
