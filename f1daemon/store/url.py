"""Store URLs: `sqlite:///path/events.db` or `postgresql://user:pass@host:port/db`.

A PostgreSQL URL may end in `?connect_timeout=SECONDS` (default 10): the limit on
opening a connection, and on opening the store.

The URL is turned into the environment that eventsourcing's infrastructure factory
reads, so both backends go through the same recorder interface. For PostgreSQL the
environment is tuned so that a server that goes away is noticed in seconds and
found again as soon as it is back (see `f1daemon.store.pgpool`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from f1daemon.errors import UserError

DEFAULT_STORE_URL = "sqlite:///f1daemon-data/events.db"
STORE_ENV_VAR = "F1DAEMON_STORE"

DEFAULT_CONNECT_TIMEOUT_S = 10
# How long a statement waits for a free connection from the pool. The writer is the
# pool's only steady user, so a wait means the server is away: each of
# eventsourcing's ten attempts at a statement then fails after this (about 22 s in
# all, instead of 100 s with the pool waiting `connect_timeout`).
POOL_WAIT_S = 2
# How long one reconnection attempt of the pool goes on (with its own backoff)
# before the next request starts a fresh one (see `f1daemon.store.pgpool`).
RECONNECT_WINDOW_S = 3.0
# Keys of the environment only our factory reads.
PG_CONNECT_TIMEOUT = "PG_CONNECT_TIMEOUT"
PG_RECONNECT_WINDOW = "PG_RECONNECT_WINDOW"


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL and the eventsourcing environment it stands for."""

    url: str
    backend: str  # "sqlite" or "postgresql"
    environment: dict[str, str]
    sqlite_path: Path | None = None

    @property
    def redacted(self) -> str:
        """The URL without its password, for messages and logs."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()


def resolve_store_url(explicit: str | None) -> str:
    """The store URL to use: the explicit one, else F1DAEMON_STORE, else the default."""
    return explicit or os.environ.get(STORE_ENV_VAR) or DEFAULT_STORE_URL


def parse_store_url(url: str) -> StoreURL:
    """Parse a store URL; raise UserError with the reason when it is not one."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return _sqlite(url, parts.netloc, parts.path)
    if parts.scheme in ("postgresql", "postgres"):
        return _postgresql(url)
    raise UserError(
        f"unsupported store URL {url!r}: expected sqlite:///PATH or postgresql://HOST/DB"
    )


def _sqlite(url: str, netloc: str, path: str) -> StoreURL:
    # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy reads them.
    if netloc or not path.startswith("/") or len(path) < 2:
        raise UserError(f"bad SQLite store URL {url!r}: expected sqlite:///PATH/events.db")
    db_path = Path(unquote(path[1:]))
    environment = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(db_path),
        "ORIGINATOR_ID_TYPE": "text",
        "CREATE_TABLE": "y",
        "SQLITE_LOCK_TIMEOUT": "30",
    }
    return StoreURL(url=url, backend="sqlite", environment=environment, sqlite_path=db_path)


def _postgresql(url: str) -> StoreURL:
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname:
        raise UserError(
            f"bad PostgreSQL store URL {url!r}: expected postgresql://USER@HOST:PORT/DBNAME"
        )
    try:
        port = parts.port or 5432
    except ValueError:
        raise UserError(f"bad PostgreSQL store URL {url!r}: the port is not a number") from None
    timeout = parse_qs(parts.query).get("connect_timeout", [str(DEFAULT_CONNECT_TIMEOUT_S)])[-1]
    if not timeout.isdigit() or int(timeout) == 0:  # libpq's 0 (wait for ever) is refused
        raise UserError(
            f"bad PostgreSQL store URL {url!r}: connect_timeout must be a positive number"
            " of seconds"
        )
    environment = {
        "PERSISTENCE_MODULE": "f1daemon.store.pgpool:PostgresFactory",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        # eventsourcing's name for the pool's wait (the connect limit is ours, below).
        "POSTGRES_CONNECT_TIMEOUT": str(min(POOL_WAIT_S, int(timeout))),
        # Check a connection as it leaves the pool: one the server closed (a restart)
        # is replaced there instead of failing the statement given to it.
        "POSTGRES_PRE_PING": "y",
        PG_CONNECT_TIMEOUT: timeout,
        PG_RECONNECT_WINDOW: str(RECONNECT_WINDOW_S),
        "ORIGINATOR_ID_TYPE": "text",
        "CREATE_TABLE": "y",
    }
    return StoreURL(url=url, backend="postgresql", environment=environment)
