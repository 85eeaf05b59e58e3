"""Live tables over server-sent events: `GET /v1/live/{endpoint}?session_key=…&…`.

An OpenF1 endpoint with one row per derived event (laps, pit, position,
race_control, weather, drivers) is followed as the daemon commits its session's
derived data (`f1daemon.services.tail`): the rows the request's filters hold for,
each an SSE message of JSON in OpenF1's fields, as `/v1/{endpoint}` has them:

    id: 3:1042
    event: row
    data: {"driver_number": 44, "lap_number": 12, ...}

`event` is `row` (new), `update` (a row sent again changed: keep the last per key),
`remove` (the row left the data: QA quarantined it) or `reset` (the session's data
starts again: drop what you hold; no data). A client that reconnects with the last
`id` it had in `Last-Event-ID` (browsers' EventSource do) continues after it, with
no row missed or sent twice. A comment line every `heartbeat_s` keeps proxies and
clients from taking a quiet session for a dead connection.

The request names one session (`session_key=N` or `latest`); `version` is refused
(a tag's data does not change: read `/v1/{endpoint}?version=…`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import TypeVar

import anyio
import anyio.to_thread
import orjson
import pyarrow as pa
import trio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from f1daemon.http.openf1 import ENDPOINTS, Endpoint, openf1_table
from f1daemon.http.query import LATEST, Condition, QueryError, apply, parse_query
from f1daemon.http.service import NotFound, Service, SessionRow
from f1daemon.projections.exports import EXPORTS
from f1daemon.services.tail import POLL_S, RowId, TableTail, TailRow
from f1daemon.store.eventlog import EventLog

T = TypeVar("T")
HEARTBEAT_S = 15.0
LIVE_PREFIX = "/v1/live/"
# The endpoints a tail can follow: one export kind, one row per derived event.
LIVE_ENDPOINTS = tuple(
    name
    for name, spec in ENDPOINTS.items()
    if len(spec.kinds) == 1 and spec.combine is None and not EXPORTS[spec.kinds[0]].exploded
)


class LiveStreams:
    """The `/v1/live/…` endpoint over a service, its store read on worker threads."""

    def __init__(
        self,
        service: Service,
        store_threads: anyio.CapacityLimiter,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.service = service
        self._threads = store_threads
        self._heartbeat_s = heartbeat_s
        self._poll_s = poll_s

    async def endpoint(self, request: Request) -> Response:
        """Start a stream (a UserError for a request that cannot be one: a 4xx)."""
        name = request.path_params["endpoint"]
        if name not in LIVE_ENDPOINTS:
            raise NotFound(
                f"{LIVE_PREFIX}{name} cannot be followed; the live endpoints: "
                + ", ".join(f"{LIVE_PREFIX}{e}" for e in LIVE_ENDPOINTS)
            )
        query = parse_query(request.scope["query_string"].decode("latin-1"))
        if query.version is not None or query.csv:
            raise QueryError("a live stream is the current data as JSON: no version, no csv")
        spec = ENDPOINTS[name]
        session = await self._read(lambda _: self._session(query.equal_to("session_key")))
        # Filters on the session's keys are met by choosing it; the rest apply per row.
        conditions = tuple(
            c for c in query.conditions if c.field not in ("session_key", "meeting_key")
        )
        await self._read(lambda _: self._check(spec, conditions))
        since_text = request.headers.get("last-event-id")
        since = RowId.parse(since_text) if since_text else None
        tail = TableTail(session.session, spec.kinds[0], poll_s=self._poll_s)
        messages = self._messages(tail, since, spec, session, conditions)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(messages, media_type="text/event-stream", headers=headers)

    def _session(self, keys: list[str]) -> SessionRow:
        sessions = self.service.sessions(self.service.reader.version(None))
        if len(keys) != 1:
            raise QueryError("a live stream follows one session: session_key=N or latest")
        if keys[0] == LATEST:
            dated = [s for s in sessions if s.session_key is not None]
            if not dated:
                raise NotFound("no session of the log has F1's keys yet: there is no latest")
            return max(
                enumerate(dated),
                key=lambda item: (item[1].date_start is not None, item[1].date_start or 0, item[0]),
            )[1]
        if not keys[0].isdigit():
            raise QueryError(f"session_key is F1's number, or latest; not {keys[0]!r}")
        for row in sessions:
            if row.session_key == int(keys[0]):
                return row
        raise NotFound(f"no session with session_key {keys[0]} in the log")

    def _check(self, spec: Endpoint, conditions: tuple[Condition, ...]) -> None:
        """Filters checked once, against the endpoint's empty table: a bad one is a 400
        now, not a stream that ends at its first row."""
        empty = {k: EXPORTS[k].schema().empty_table() for k in spec.kinds}
        apply(openf1_table(spec, empty, None, None), conditions, spec.name)

    async def _messages(
        self,
        tail: TableTail,
        since: RowId | None,
        spec: Endpoint,
        session: SessionRow,
        conditions: tuple[Condition, ...],
    ) -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"  # reconnect after a second when the connection drops
        async with aclosing(
            tail.changes(self._read, since, heartbeat_s=self._heartbeat_s)
        ) as pages:
            async for changes in pages:
                if changes[0].change == "heartbeat":
                    yield b": heartbeat\n\n"
                    continue
                rows = await trio.to_thread.run_sync(_openf1_rows, changes, spec, session)
                yield b"".join(
                    _message(change, row, conditions, spec)
                    for change, row in zip(changes, rows, strict=True)
                )

    async def _read(self, call: Callable[[EventLog], T]) -> T:
        reader = self.service.reader
        return await anyio.to_thread.run_sync(
            reader.read, call, abandon_on_cancel=True, limiter=self._threads
        )


def _openf1_rows(
    changes: list[TailRow], spec: Endpoint, session: SessionRow
) -> list[pa.Table | None]:
    """Each change's row in OpenF1's fields (None for a reset): one table for them all."""
    kind = spec.kinds[0]
    rows = [c.row for c in changes if c.row is not None]
    table = pa.Table.from_pylist(rows, schema=EXPORTS[kind].schema())
    served = openf1_table(spec, {kind: table}, session.session_key, session.meeting_key)
    sliced = iter(range(len(rows)))
    return [None if c.row is None else served.slice(next(sliced), 1) for c in changes]


def _message(
    change: TailRow, row: pa.Table | None, conditions: tuple[Condition, ...], spec: Endpoint
) -> bytes:
    """One SSE message; nothing for a row the filters do not hold for (the client's
    last id stays the one before, and resuming from it skips this row again)."""
    if row is not None and apply(row, conditions, spec.name).num_rows == 0:
        return b""
    data = b"{}" if row is None else orjson.dumps(row.to_pylist()[0])  # as /v1/… has it
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        str(change.id).encode(),
        change.change.encode(),
        data,
    )
