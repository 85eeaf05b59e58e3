"""Store URLs: `sqlite:///path/events.db` or `postgresql://user:pass@host:port/db`.

A PostgreSQL URL may end in `?connect_timeout=SECONDS` (default 10).

The URL is turned into the environment that eventsourcing's infrastructure factory
reads, so both backends go through the same recorder interface.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from f1daemon.errors import UserError

DEFAULT_STORE_URL = "sqlite:///f1daemon-data/events.db"
STORE_ENV_VAR = "F1DAEMON_STORE"


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
    timeout = parse_qs(parts.query).get("connect_timeout", ["10"])[-1]
    if not timeout.isdigit():
        raise UserError(f"bad PostgreSQL store URL {url!r}: connect_timeout must be seconds")
    environment = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_CONNECT_TIMEOUT": timeout,
        "ORIGINATOR_ID_TYPE": "text",
        "CREATE_TABLE": "y",
    }
    return StoreURL(url=url, backend="postgresql", environment=environment)
