"""Store URLs: `sqlite:///path/events.db` or `postgresql://user:pass@host:port/db?…`.

A PostgreSQL URL is libpq's: its query may hold any of libpq's connection parameters
(`sslmode`, `sslrootcert`, `application_name`, `target_session_attrs`, …), which are
passed to every connection as given; a name libpq does not know is refused, by name,
as is `replication` (the log needs an ordinary session). `connect_timeout` (seconds,
default 10) is also the limit on opening the store.

The URL is turned into the environment that eventsourcing's infrastructure factory
reads, so both backends go through the same recorder interface. For PostgreSQL the
environment is tuned so that a server that goes away is noticed in seconds and
found again as soon as it is back (see `f1daemon.store.pgpool`).

A URL's secrets (its password, a `password` or `sslpassword` parameter) never reach a
message: every message that shows a URL shows it redacted, and `StoreURL.scrub` takes
the secrets out of any text (a driver's error) before it is shown.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

import orjson
from psycopg import pq

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
PG_CONNECT_OPTIONS = "PG_CONNECT_OPTIONS"  # the URL's other libpq parameters, as JSON
# Parameters the URL's authority and path also give: the query's win, as in libpq.
_URL_PARTS = ("host", "port", "dbname", "user", "password")
_SECRET_PARAMETERS = frozenset({"password", "sslpassword", "oauth_client_secret"})
_REFUSED_PARAMETERS = {
    "replication": "the event log needs an ordinary session, not a replication one",
}
REDACTED = "***"
# user:password@ in a URL's authority, found even where the URL does not parse.
_AUTHORITY_PASSWORD = re.compile(r"(?P<head>://[^/?#@:]*):(?P<password>[^/?#]*)@")
_SECRET_QUERY = re.compile(
    r"(?P<head>[?&](?:password|sslpassword|oauth_client_secret)=)(?P<value>[^&#]*)", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """A URL with its password (in the authority or the query) replaced by ***; works on
    text that is not a valid URL too, as an error message needs."""
    url = _AUTHORITY_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", url)
    return _SECRET_QUERY.sub(lambda m: f"{m['head']}{REDACTED}", url)


@cache
def libpq_parameters() -> frozenset[str]:
    """The connection parameters the linked libpq knows (PQconndefaults)."""
    return frozenset(d.keyword.decode() for d in pq.Conninfo.get_defaults())


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL and the eventsourcing environment it stands for."""

    url: str = field(repr=False)
    backend: str  # "sqlite" or "postgresql"
    environment: dict[str, str] = field(repr=False)
    sqlite_path: Path | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def redacted(self) -> str:
        """The URL without its secrets, for messages and logs."""
        return redact_url(self.url)

    def scrub(self, text: str) -> str:
        """Text (a driver's error message) with the URL's secrets taken out, in one line."""
        text = text.replace(self.url, self.redacted)
        for secret in self.secrets:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                text = text.replace(form, REDACTED)
        return " ".join(text.split())


def resolve_store_url(explicit: str | None) -> str:
    """The store URL to use: the explicit one, else F1DAEMON_STORE, else the default."""
    return explicit or os.environ.get(STORE_ENV_VAR) or DEFAULT_STORE_URL


def parse_store_url(url: str) -> StoreURL:
    """Parse a store URL; raise UserError with the reason when it is not one."""
    try:
        parts = urlsplit(url)
    except ValueError as error:  # e.g. "Invalid IPv6 URL": an unclosed [
        raise UserError(f"bad store URL {redact_url(url)!r}: {error}") from None
    if parts.scheme == "sqlite":
        return _sqlite(url, parts.netloc, parts.path)
    if parts.scheme in ("postgresql", "postgres"):
        return _postgresql(url, parts)
    raise UserError(
        f"unsupported store URL {redact_url(url)!r}: expected sqlite:///PATH or "
        "postgresql://HOST/DB"
    )


def _sqlite(url: str, netloc: str, path: str) -> StoreURL:
    # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy reads them.
    if netloc or not path.startswith("/") or len(path) < 2:
        raise UserError(
            f"bad SQLite store URL {redact_url(url)!r}: expected sqlite:///PATH/events.db"
        )
    db_path = Path(unquote(path[1:]))
    environment = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(db_path),
        "ORIGINATOR_ID_TYPE": "text",
        "CREATE_TABLE": "y",
        "SQLITE_LOCK_TIMEOUT": "30",
    }
    return StoreURL(url=url, backend="sqlite", environment=environment, sqlite_path=db_path)


def _postgresql(url: str, parts: SplitResult) -> StoreURL:
    def bad(reason: str) -> UserError:
        return UserError(f"bad PostgreSQL store URL {redact_url(url)!r}: {reason}")

    parameters = _query_parameters(parts.query, bad)
    try:
        port_part = parts.port
    except ValueError:
        raise bad("the port is not a number") from None
    given = {
        "host": parts.hostname,
        "port": None if port_part is None else str(port_part),
        "dbname": unquote(parts.path.lstrip("/")) or None,
        "user": None if parts.username is None else unquote(parts.username),
        "password": None if parts.password is None else unquote(parts.password),
    }
    for name in _URL_PARTS:
        given[name] = parameters.pop(name, None) or given[name]
    if not given["host"] or not given["dbname"]:
        raise bad("expected postgresql://USER@HOST:PORT/DBNAME")
    port = given["port"] or "5432"
    if not port.isdigit():
        raise bad("the port is not a number")
    timeout = parameters.pop("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT_S))
    if not timeout.isdigit() or int(timeout) == 0:  # libpq's 0 (wait for ever) is refused
        raise bad("connect_timeout must be a positive number of seconds")
    password = given["password"] or ""
    environment = {
        "PERSISTENCE_MODULE": "f1daemon.store.pgpool:PostgresFactory",
        "POSTGRES_DBNAME": given["dbname"],
        "POSTGRES_HOST": given["host"],
        "POSTGRES_PORT": port,
        "POSTGRES_USER": given["user"] or "postgres",
        "POSTGRES_PASSWORD": password,
        # eventsourcing's name for the pool's wait (the connect limit is ours, below).
        "POSTGRES_CONNECT_TIMEOUT": str(min(POOL_WAIT_S, int(timeout))),
        # Check a connection as it leaves the pool: one the server closed (a restart)
        # is replaced there instead of failing the statement given to it.
        "POSTGRES_PRE_PING": "y",
        PG_CONNECT_TIMEOUT: timeout,
        PG_RECONNECT_WINDOW: str(RECONNECT_WINDOW_S),
        PG_CONNECT_OPTIONS: orjson.dumps(parameters).decode(),
        "ORIGINATOR_ID_TYPE": "text",
        "CREATE_TABLE": "y",
    }
    secrets = [
        unquote(parts.password or ""),
        password,
        *(v for k, v in parameters.items() if k in _SECRET_PARAMETERS),
    ]
    return StoreURL(
        url=url,
        backend="postgresql",
        environment=environment,
        secrets=tuple(dict.fromkeys(s for s in secrets if s)),
    )


def _query_parameters(query: str, bad: Callable[[str], UserError]) -> dict[str, str]:
    """The libpq parameters of a URL's query, each checked by name."""
    parameters: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise bad(f"the query is not NAME=VALUE&…: {redact_url('?' + query)[1:]!r}") from None
    for name, value in pairs:
        if name in parameters:
            raise bad(f"the parameter {name!r} is given twice")
        if name in _REFUSED_PARAMETERS:
            raise bad(f"the parameter {name!r} is not supported: {_REFUSED_PARAMETERS[name]}")
        if name not in libpq_parameters():
            near = difflib.get_close_matches(name, libpq_parameters(), n=1)
            hint = f"did you mean {near[0]!r}?" if near else "see libpq's connection parameters"
            raise bad(f"unknown connection parameter {name!r} ({hint})")
        parameters[name] = value
    return parameters
