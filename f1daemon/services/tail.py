"""Following one table of a session's derived data as it is committed: each row once,
in log order, resumable from the last row a client had.

A tail reads the run's own stream after the version it has read to (one indexed
query per poll, over only what arrived since), and the heads of the session's runs
and rollbacks streams to notice another run becoming current, so its work grows with
what arrives, not with the log. The SQLite recorder of eventsourcing has no
subscriptions (its `subscribe` raises NotImplementedError) and the daemon and
`f1daemon serve` may be different processes, so both stores are polled the same way.

Each change is identified by `RUN:VERSION[.PART]`: the run, and the place in the run
of the event that made it. Resuming from one continues after it while that run stays
current; when the session's current data changes run (a rederivation, a rollback),
the tail says so (`reset`) and starts the current data again from its beginning, so
a client that drops its rows on a reset never holds a row twice.

A row is built as the exports build it (`export_table`), from its event and the
little a row needs besides — the drivers' names, the session's key, the stints'
compounds, race control's deletions, the time base, QA's verdicts on it. When one of
those arrives later (the feed names a compound late, race control deletes a lap, QA
flags or quarantines it), the rows it changes are sent again (`update`, or `remove`
for a row that left the data), so a client that keeps the last row per key holds
what the export holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar, cast

import trio

from f1daemon.domain.events import (
    AnomalyCleared,
    AnomalyDetected,
    DerivedEvent,
    DriverListed,
    Event,
    LapCompleted,
    LapDeleted,
    PitStop,
    RecordQuarantined,
    SessionDescribed,
    StintCompoundChanged,
    StintStarted,
    TimeBaseEstablished,
    WeatherObserved,
)
from f1daemon.errors import UserError
from f1daemon.projections.current import current_data
from f1daemon.projections.exports import EXPORTS, export_rows
from f1daemon.qa.car_checks import record_ref
from f1daemon.store.eventlog import EventLog

T = TypeVar("T")
# Runs a function of the log on a worker thread (the caller's way to the store).
ReadLog = Callable[[Callable[[EventLog], T]], Awaitable[T]]
Change = Literal["row", "update", "remove", "reset", "heartbeat"]

POLL_S = 0.1  # how long a tail waits when nothing new has been committed
# What a row needs besides its own event (small, per session: drivers, stints...).
CONTEXT_TYPES = (
    DriverListed,
    SessionDescribed,
    StintStarted,
    StintCompoundChanged,
    LapDeleted,
)
VERDICT_TYPES = (RecordQuarantined, AnomalyDetected, AnomalyCleared)


@dataclass(frozen=True, order=True)
class RowId:
    """Where a change is: its run, the place in the run of the event that made it,
    and its place among the changes that event made (0 for the event's own row)."""

    run: int
    version: int
    part: int = 0

    def __str__(self) -> str:
        return f"{self.run}:{self.version}" + (f".{self.part}" if self.part else "")

    @classmethod
    def parse(cls, text: str) -> RowId:
        """A change's id as a client sends it back (`Last-Event-ID`)."""
        run, sep, rest = text.strip().partition(":")
        version, dot, part = rest.partition(".")
        if not (sep and run.isdigit() and version.isdigit() and (part.isdigit() or not dot)):
            raise UserError(f"bad event id {text!r}: expected RUN:VERSION, e.g. 3:1042")
        return cls(int(run), int(version), int(part or 0))


@dataclass(frozen=True)
class TailRow:
    """One change to the table: a new row, a row sent again changed (`update`) or
    gone (`remove`, `row` is the last sent), or (`reset`, no row) the news that the
    tail starts the session's current data again: the client drops what it holds;
    or (`heartbeat`, no row) word that the tail is alive but has had nothing new."""

    id: RowId
    change: Change
    row: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Selection:
    """What the session's current data is: a run, read to a log position (a rollback)
    or to its end, and the heads of the streams that would change that."""

    run: int | None
    cap: int | None
    heads: tuple[int, int]


class TableTail:
    """The rows of one export kind of one session, as they are committed."""

    def __init__(self, session: str, kind: str, *, poll_s: float = POLL_S) -> None:
        if kind not in EXPORTS or EXPORTS[kind].exploded:
            raise UserError(f"no live table {kind!r}")
        self.session = session
        self.kind = kind
        self._poll_s = poll_s
        self._rows = _RunRows(kind)
        self._heartbeat_s: float | None = None

    async def changes(
        self, read: ReadLog[Any], since: RowId | None = None, *, heartbeat_s: float | None = None
    ) -> AsyncGenerator[list[TailRow], None]:
        """Every change after `since` (all of the current data without), then the new
        ones as they are committed, a list per look at the log; a `heartbeat` after
        `heartbeat_s` without one (if given). Never returns."""
        self._heartbeat_s = heartbeat_s
        selection: _Selection = await read(self._selection)
        if since is not None and since.run != selection.run:
            since = None  # from another run: the client starts again
            yield [TailRow(RowId(selection.run or 0, 0), "reset")]
        while True:
            async with aclosing(self._follow(read, selection, since)) as pages:
                async for changes in pages:
                    yield changes
            selection = await read(self._selection)
            since = None
            self._rows = _RunRows(self.kind)
            yield [TailRow(RowId(selection.run or 0, 0), "reset")]

    async def _follow(
        self, read: ReadLog[Any], selection: _Selection, since: RowId | None
    ) -> AsyncGenerator[list[TailRow], None]:
        """The changes of one selection, until another becomes current."""
        after = RowId(selection.run or 0, 0) if since is None else since
        run = selection.run
        if run is not None and selection.cap is not None:
            # A rolled-back run: its events as they stood at the tag, once.
            cap = selection.cap
            events = await read(lambda log: log.derived_events_at(self.session, run, cap))
            yield await self._changes(run, list(enumerate(events, start=1)), after)
        read_to = 0
        quiet_since = trio.current_time()
        while True:
            if await read(self._heads) != selection.heads:
                return
            page = []
            if run is not None and selection.cap is None:
                stream = f"derived:{self.session}:{run}"
                page = await read(partial(_read_stream, stream, read_to))
            if page:
                read_to = page[-1][0]
                changes = await self._changes(run or 0, page, after)
                if changes:
                    quiet_since = trio.current_time()
                    yield changes
                continue
            if self._heartbeat_s is not None and (
                trio.current_time() - quiet_since >= self._heartbeat_s
            ):
                quiet_since = trio.current_time()
                yield [TailRow(after, "heartbeat")]
            await trio.sleep(self._poll_s)

    async def _changes(
        self, run: int, page: Sequence[tuple[int, Event]], after: RowId
    ) -> list[TailRow]:
        # Rows are built on a worker thread: a session's first page (all it derived so
        # far) takes a while, and the daemon's event loop must not wait for it.
        changes = await trio.to_thread.run_sync(self._rows.changes, run, page)
        return [c for c in changes if c.id > after]

    def _selection(self, log: EventLog) -> _Selection:
        heads = self._heads(log)
        selected = log.current_selection(self.session)
        run, cap = selected if selected is not None else (None, None)
        return _Selection(run, cap, heads)

    def _heads(self, log: EventLog) -> tuple[int, int]:
        return (
            log.stream_head(f"runs:{self.session}"),
            log.stream_head(f"rollbacks:{self.session}"),
        )


class _RunRows:
    """One run's rows of a table as its events arrive: each row as last sent."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._event = EXPORTS[kind].event
        self._time_base: TimeBaseEstablished | None = None
        self._context: list[DerivedEvent] = []
        self._verdicts: dict[str, list[DerivedEvent]] = defaultdict(list)
        self._own: dict[int, DerivedEvent] = {}  # the table's events, by version
        self._by_driver: dict[int, list[int]] = defaultdict(list)
        self._by_record: dict[str, list[int]] = defaultdict(list)
        self._sent: dict[int, dict[str, Any] | None] = {}

    def changes(self, run: int, page: Sequence[tuple[int, Event]]) -> list[TailRow]:
        """What a page of the run's events changes in the table, in order."""
        ahead: dict[str, list[DerivedEvent]] = defaultdict(list)
        for _, event in page:  # QA's verdicts committed with a record come with its row
            if isinstance(event, VERDICT_TYPES) and event.record:
                ahead[event.record].append(event)
        result: list[TailRow] = []
        for version, event in page:
            touched: Sequence[int] = ()
            if isinstance(event, TimeBaseEstablished):
                self._time_base = event
                touched = sorted(self._own)
            elif isinstance(event, CONTEXT_TYPES) and not isinstance(event, self._event):
                self._context.append(event)
                touched = self._by_driver.get(getattr(event, "driver", -1), [])
            elif isinstance(event, VERDICT_TYPES) and event.record:
                self._verdicts[event.record].append(event)
                touched = self._by_record.get(event.record, [])
            if isinstance(event, self._event):
                result.extend(self._new(run, version, cast("DerivedEvent", event), ahead))
            for part, changed in enumerate(self._resend(touched), start=1):
                result.append(TailRow(RowId(run, version, part), *changed))
        return result

    def _new(
        self, run: int, version: int, event: DerivedEvent, ahead: dict[str, list[DerivedEvent]]
    ) -> list[TailRow]:
        self._own[version] = event
        driver = getattr(event, "driver", None)
        if isinstance(driver, int):
            self._by_driver[driver].append(version)
        record = _record(event)
        if record is not None:
            self._by_record[record].append(version)
        row = self._row(event, ahead.get(record, []) if record else [])
        self._sent[version] = row
        return [] if row is None else [TailRow(RowId(run, version), "row", row)]

    def _resend(self, versions: Sequence[int]) -> list[tuple[Change, dict[str, Any] | None]]:
        changed: list[tuple[Change, dict[str, Any] | None]] = []
        for version in versions:
            event = self._own[version]
            record = _record(event)
            row = self._row(event, self._verdicts.get(record, []) if record else [])
            before = self._sent[version]
            if row == before:
                continue
            self._sent[version] = row
            if row is None:
                changed.append(("remove", before))
            else:
                changed.append(("update" if before is not None else "row", row))
        return changed

    def _row(self, event: DerivedEvent, verdicts: Sequence[DerivedEvent]) -> dict[str, Any] | None:
        """The event's row as the export has it, given what has arrived so far."""
        base: list[DerivedEvent] = [self._time_base] if self._time_base else []
        data = current_data([*base, *self._context, event, *verdicts])
        rows = export_rows(self.kind, data)
        return rows[0] if rows else None


def _record(event: DerivedEvent) -> str | None:
    if isinstance(event, LapCompleted | PitStop | WeatherObserved):
        return record_ref(event).describe()
    return None


def _read_stream(stream: str, after: int, log: EventLog) -> list[tuple[int, Event]]:
    return log.stream_events_after(stream, after)
