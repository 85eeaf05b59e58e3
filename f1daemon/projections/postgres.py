"""Projections of the log into PostgreSQL tables, for tools that read SQL.

Each table holds one export kind of every session (`timing_data` the laps,
`weather_data` the weather, `telemetry` the car samples, …) as the session's current
derivation run has it. A session is (re)loaded in one transaction — its old rows
deleted, the current run's rows loaded with COPY, and the tracking row that says
which run is loaded — so a restart resumes where the last commit left off, and a
connection lost mid-load is retried from the start of the session: nothing lost,
nothing doubled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import psycopg
import pyarrow as pa
from psycopg import sql

from f1daemon.actors.backoff import Backoff
from f1daemon.errors import UserError
from f1daemon.projections.current import session_data
from f1daemon.projections.exports import EXPORTS, export_table
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

# PostgreSQL table of each export kind.
TABLES = {
    "laps": "timing_data",
    "drivers": "drivers",
    "sessions": "sessions",
    "stints": "stints",
    "pits": "pit_stops",
    "track-status": "track_status",
    "neutralisations": "neutralisations",
    "race-control": "race_control",
    "weather": "weather_data",
    "positions": "positions",
    "intervals": "intervals",
    "telemetry": "telemetry",
    "car-positions": "car_positions",
    "results": "results",
    "sprint-results": "sprint_results",
    "qualifying": "qualifying_results",
    "reference-laps": "reference_laps",
    "reference-pits": "reference_pit_stops",
    "forecasts": "weather_forecasts",
}
TRACKING_TABLE = "f1daemon_projection"
RETRIES = 5
RETRY = Backoff(initial=0.2, cap=2.0, jitter=0)

T = TypeVar("T")


def _pg_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type):
        return "double precision"
    if pa.types.is_timestamp(arrow_type):
        return "timestamptz"
    return "text"


@dataclass(frozen=True)
class Loaded:
    """A session loaded into the tables: its run and how many rows each table got."""

    session: str
    run: int
    rows: dict[str, int]


class PostgresProjection:
    """Keeps the PostgreSQL tables equal to each session's current derived data."""

    def __init__(self, url: str) -> None:
        # A store URL as the log's are: checked (one line, the password redacted), and
        # its secrets kept out of every message below.
        self._target = parse_store_url(url)
        if self._target.backend != "postgresql":
            raise UserError(
                f"the tables go into PostgreSQL: {self._target.redacted} is not postgresql://…"
            )
        self.url = url
        self._connection: psycopg.Connection[Any] | None = None

    def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def catch_up(self, log: EventLog) -> list[Loaded]:
        """Load every session whose current run is not the one loaded; return what was."""
        self._retrying(self._create_tables)
        loaded = []
        for session in log.sessions():
            run = log.current_run(session)
            # A live run grows: it is loaded again when it has events the tables lack.
            key = None if run is None else (run, log.derived_count(session, run))
            if key is None or self._loaded_run(session) == key:
                continue
            data = session_data(log, session, telemetry=True)
            if data is None:
                continue
            tables = {kind: export_table(kind, data[1]) for kind in EXPORTS}
            rows = self._retrying(partial(self._load, session, key, tables))
            loaded.append(Loaded(session, key[0], rows))
        return loaded

    def _retrying(self, work: Callable[[], T]) -> T:
        delays = RETRY.start()
        for attempt in range(RETRIES):
            try:
                return work()
            except psycopg.OperationalError as error:
                # The connection went away (server restart, network): reconnect and redo
                # the whole transaction, which committed nothing.
                self.close()
                if attempt == RETRIES - 1:
                    reason = self._target.scrub(str(error))
                    raise UserError(f"PostgreSQL projection failed: {reason}") from error
                time.sleep(delays.next_delay(0.0))
        raise AssertionError("unreachable")

    def _db(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            # autocommit: each `transaction()` block is a real transaction, not a savepoint.
            self._connection = psycopg.connect(self.url, connect_timeout=10, autocommit=True)
        return self._connection

    def _create_tables(self) -> None:
        with self._db().transaction():
            db = self._db()
            db.execute("SELECT pg_advisory_xact_lock(7400461)")  # one creator at a time
            db.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (session text PRIMARY KEY, "
                    "run integer NOT NULL, loaded_at timestamptz NOT NULL)"
                ).format(sql.Identifier(TRACKING_TABLE))
            )
            db.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS events bigint").format(
                    sql.Identifier(TRACKING_TABLE)
                )
            )
            for kind, table in TABLES.items():
                columns = [
                    sql.SQL("{} {}{}").format(
                        sql.Identifier(c.name),
                        sql.SQL(_pg_type(c.type)),
                        sql.SQL("" if c.nullable else " NOT NULL"),
                    )
                    for c in EXPORTS[kind].columns()
                ]
                db.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} (session text NOT NULL, {})").format(
                        sql.Identifier(table), sql.SQL(", ").join(columns)
                    )
                )

    def _loaded_run(self, session: str) -> tuple[int, int | None] | None:
        """The run loaded for a session, and how many of its events."""
        query = sql.SQL("SELECT run, events FROM {} WHERE session = %s").format(
            sql.Identifier(TRACKING_TABLE)
        )
        row = self._retrying(lambda: self._db().execute(query, (session,)).fetchone())
        return None if row is None else (int(row[0]), None if row[1] is None else int(row[1]))

    def _load(
        self, session: str, loaded: tuple[int, int], tables: dict[str, pa.Table]
    ) -> dict[str, int]:
        db = self._db()
        with db.transaction():
            for kind, table in tables.items():
                name = TABLES[kind]
                db.execute(
                    sql.SQL("DELETE FROM {} WHERE session = %s").format(sql.Identifier(name)),
                    (session,),
                )
                self._copy(db, name, session, table)
            db.execute(
                sql.SQL(
                    "INSERT INTO {} (session, run, events, loaded_at) VALUES (%s, %s, %s, now()) "
                    "ON CONFLICT (session) DO UPDATE SET run = EXCLUDED.run, "
                    "events = EXCLUDED.events, loaded_at = now()"
                ).format(sql.Identifier(TRACKING_TABLE)),
                (session, *loaded),
            )
        return {TABLES[kind]: table.num_rows for kind, table in tables.items()}

    def _copy(self, db: psycopg.Connection[Any], name: str, session: str, table: pa.Table) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(name),
            sql.SQL(", ").join(sql.Identifier(c) for c in ["session", *table.column_names]),
        )
        with db.cursor() as cursor, cursor.copy(statement) as copy:
            for row in table.to_pylist():
                copy.write_row([session, *row.values()])
