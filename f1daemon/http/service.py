"""What the HTTP API answers, as plain functions of a reader: no HTTP here.

A request for an OpenF1 endpoint is read as a query (`f1daemon.http.query`), the
sessions it can concern are found from its `session_key` / `meeting_key` (`latest`:
the session that started last, or its meeting), each session's OpenF1 table is
built from our exports (`f1daemon.http.openf1`, kept in the reader's cache), the
filters are applied, and the rows are written as JSON or CSV. Blocking (the store,
pyarrow): the app runs it in a worker thread.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from f1daemon.errors import UserError
from f1daemon.http.openf1 import ENDPOINTS, NOT_SERVED, openf1_table
from f1daemon.http.query import LATEST, Condition, Query, QueryError, apply, parse_query
from f1daemon.projections.exports import EXPORTS, LIST_SEPARATOR
from f1daemon.services.reader import QA_REPORT_SCHEMA, QUARANTINE_SCHEMA, Reader, Version

# Our additions, beside OpenF1's endpoints.
OWN_ENDPOINTS = ("quarantine", "qa_report", "versions")


class NotFound(UserError):
    """No such endpoint (a 404)."""


class TooLarge(UserError):
    """More rows than a response may hold (a 422 that says how to narrow it)."""


@dataclass(frozen=True)
class Limits:
    """How much one response may hold."""

    max_rows: int = 100_000  # the hard limit: a page never holds more


@dataclass(frozen=True)
class Answer:
    """A response's body, its media type and how many rows matched in all."""

    body: bytes
    media_type: str
    total: int
    rows: int


@dataclass(frozen=True)
class SessionRow:
    """A session of the log with F1's keys (None where the feed did not describe it)."""

    session: str
    session_key: int | None
    meeting_key: int | None
    date_start: datetime | None


class Service:
    """The HTTP API's answers from one reader."""

    def __init__(self, reader: Reader, limits: Limits | None = None) -> None:
        self.reader = reader
        self.limits = limits or Limits()

    def answer(self, endpoint: str, raw_query: str) -> Answer:
        """The rows of an endpoint that a query asks for, as JSON or CSV."""
        query = parse_query(raw_query)
        table = self.rows(endpoint, query)
        return self._page(table, query)

    def rows(self, endpoint: str, query: Query) -> pa.Table:
        """Every row of an endpoint that the query's filters hold for."""
        version = self.reader.version(query.version)
        if endpoint == "versions":
            return apply(self.reader.versions(), query.conditions, endpoint)
        if endpoint not in ENDPOINTS and endpoint not in OWN_ENDPOINTS:
            if endpoint in NOT_SERVED:
                raise NotFound(f"/v1/{endpoint} is not served: {NOT_SERVED[endpoint]}")
            known = ", ".join(f"/v1/{e}" for e in (*ENDPOINTS, *OWN_ENDPOINTS))
            raise NotFound(f"no endpoint /v1/{endpoint}; the endpoints: {known}")
        sessions = self.sessions(version)
        query = _latest(query, sessions)
        parts = [
            part
            for row in _concerned(sessions, query)
            if (part := self._session_rows(endpoint, row, version)) is not None
        ]
        if not parts:
            return apply(self._empty(endpoint), query.conditions, endpoint)
        table = pa.concat_tables(parts, promote_options="permissive")
        spec = ENDPOINTS.get(endpoint)
        if spec is not None and spec.combine is not None:
            table = spec.combine(table)
        return apply(table, query.conditions, endpoint)

    def sessions(self, version: Version) -> list[SessionRow]:
        """The log's sessions with their keys, as at a version."""
        rows = []
        for session in self.reader.sessions():
            described = self.reader.sessions_table(session, version).to_pylist()[0]
            rows.append(
                SessionRow(
                    session,
                    described["session_key"],
                    described["meeting_key"],
                    described["date_start"],
                )
            )
        return rows

    def _session_rows(self, endpoint: str, row: SessionRow, version: Version) -> pa.Table | None:
        build: Callable[[], pa.Table]
        if endpoint == "quarantine":

            def build() -> pa.Table:
                return _keyed(self.reader.quarantine(row.session, version), row)

        elif endpoint == "qa_report":

            def build() -> pa.Table:
                return _keyed(self.reader.qa_report(row.session, version), row)

        else:
            spec = ENDPOINTS[endpoint]

            def build() -> pa.Table:
                tables = {k: self.reader.table(k, row.session, version) for k in spec.kinds}
                return openf1_table(spec, tables, row.session_key, row.meeting_key)

        try:
            return self.reader.derived(f"http:{endpoint}", row.session, version, build)
        except UserError:
            return None  # nothing derived in this session (then)

    def _empty(self, endpoint: str) -> pa.Table:
        """The shape of an endpoint with no rows (filters are still checked against it)."""
        nobody = SessionRow("", None, None, None)
        if endpoint == "quarantine":
            return _keyed(QUARANTINE_SCHEMA.empty_table(), nobody)
        if endpoint == "qa_report":
            return _keyed(QA_REPORT_SCHEMA.empty_table(), nobody)
        spec = ENDPOINTS[endpoint]
        tables = {k: EXPORTS[k].schema().empty_table() for k in spec.kinds}
        return openf1_table(spec, tables, None, None)

    def _page(self, table: pa.Table, query: Query) -> Answer:
        total = table.num_rows
        limit = self.limits.max_rows if query.limit is None else query.limit
        if query.limit is not None and query.limit > self.limits.max_rows:
            raise QueryError(f"limit is at most {self.limits.max_rows} rows a response")
        if query.limit is None and total - query.offset > self.limits.max_rows:
            raise TooLarge(
                f"{total} rows match, more than the {self.limits.max_rows} a response holds: "
                "narrow the query (e.g. session_key, driver_number, date>…), or page "
                "with limit= and offset="
            )
        page = _iso_dates(table.slice(query.offset, limit))
        if query.csv:
            return Answer(_csv(page), "text/csv; charset=utf-8", total, page.num_rows)
        return Answer(orjson.dumps(page.to_pylist()), "application/json", total, page.num_rows)


def _iso_dates(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 text, as OpenF1 writes them (`2023-09-16T13:03:35.292000
    +00:00`), made by Arrow: faster than a datetime object per value."""
    for index, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type):
            # %S has the timestamps' fractional digits; they are UTC (the type says).
            text = pc.strftime(table[column.name], format="%Y-%m-%dT%H:%M:%S+00:00")
            table = table.set_column(index, pa.field(column.name, pa.string()), text)
    return table


def _keyed(table: pa.Table, row: SessionRow) -> pa.Table:
    count = table.num_rows
    table = table.append_column("session_key", pa.array([row.session_key] * count, pa.int64()))
    return table.append_column("meeting_key", pa.array([row.meeting_key] * count, pa.int64()))


def _latest(query: Query, sessions: list[SessionRow]) -> Query:
    """`session_key=latest` / `meeting_key=latest` as the keys of the session that
    started last (by its scheduled start; the last ingested among equals)."""
    if LATEST not in query.equal_to("session_key") + query.equal_to("meeting_key"):
        return query
    described = [s for s in sessions if s.session_key is not None]
    if not described:
        raise QueryError("no session of the log has F1's keys: there is no latest")
    order = sorted(
        range(len(described)),
        key=lambda i: (described[i].date_start is not None, described[i].date_start or 0, i),
    )
    latest = described[order[-1]]
    keys = {"session_key": latest.session_key, "meeting_key": latest.meeting_key}
    conditions = tuple(
        Condition(c.field, c.op, str(keys[c.field]))
        if c.field in keys and c.op == "=" and c.value == LATEST
        else c
        for c in query.conditions
    )
    return dataclasses.replace(query, conditions=conditions)


def _concerned(sessions: list[SessionRow], query: Query) -> list[SessionRow]:
    """The sessions a query's keys can match (every one when it names none)."""
    chosen = sessions
    for name in ("session_key", "meeting_key"):
        values = query.equal_to(name)
        if not values:
            continue
        try:
            wanted = {int(v) for v in values}
        except ValueError:
            raise QueryError(f"{name} is F1's number, or latest; not {values!r}") from None
        chosen = [s for s in chosen if getattr(s, name) in wanted]
    return chosen


def _csv(table: pa.Table) -> bytes:
    flat = table
    for index, column in enumerate(table.schema):
        if pa.types.is_list(column.type):
            texts = pc.cast(table[column.name], pa.list_(pa.string()))
            joined = pc.binary_join(texts, LIST_SEPARATOR)
            flat = flat.set_column(index, pa.field(column.name, pa.string()), joined)
    sink = io.BytesIO()
    pa_csv.write_csv(flat, sink, pa_csv.WriteOptions(quoting_style="needed"))
    return sink.getvalue()
