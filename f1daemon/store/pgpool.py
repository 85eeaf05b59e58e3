"""eventsourcing's PostgreSQL factory, with a connection pool that gets over an outage.

eventsourcing's pool (psycopg_pool) replaces a broken connection in the background,
retrying with a delay that doubles for five minutes before it gives up. After a
server restart the log therefore waited for the next of those attempts, about as
long again as the outage had lasted (measured: 49 s after a 70 s outage). Here an
attempt gives up after `reconnect_window` seconds, and the next request for a
connection starts a fresh one, whose first try is immediate: the log is back about a
second after the server is (measured: 1.2 s after the same outage).

The connections also get libpq's own time limits, which eventsourcing does not
pass: a connection attempt ends after the URL's `connect_timeout` (psycopg's default
is 130 s), and TCP keepalives with `tcp_user_timeout` end a connection to a host that
vanished without closing it (the kernel would retransmit for some fifteen minutes).

The URL's other libpq parameters (`sslmode`, `sslrootcert`, `application_name`, …;
see `f1daemon.store.url`) are given to every connection too; where the URL sets a
keepalive or `tcp_user_timeout` of its own, the URL's wins.

Before the pool is opened, one connection is made directly: the pool retries a
failed connection in the background until its timeout and then reports only "pool
initialization incomplete", so a wrong password, a server that refuses SSL, a
`sslmode` libpq rejects would all read alike after 10 s. The direct attempt fails at
once with libpq's own reason. Then the pool is opened, waiting up to
`connect_timeout` for its connections; afterwards a request waits only
`POSTGRES_CONNECT_TIMEOUT` (short) for a connection, so that each of eventsourcing's
attempts at a statement fails soon while the server is away.
"""

from __future__ import annotations

import orjson
from eventsourcing.postgres import PostgresFactory as _EventsourcingPostgresFactory
from eventsourcing.utils import Environment, EnvType

from f1daemon.store.url import (
    DEFAULT_CONNECT_TIMEOUT_S,
    PG_CONNECT_OPTIONS,
    PG_CONNECT_TIMEOUT,
    PG_RECONNECT_WINDOW,
    RECONNECT_WINDOW_S,
)

# An idle connection is probed after 10 s, then every 5 s, and given up after 3
# unanswered probes; data sent and not acknowledged for 15 s ends the connection.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}


class PostgresFactory(_EventsourcingPostgresFactory):
    """The factory `PERSISTENCE_MODULE` names for a PostgreSQL store."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        connect_timeout = float(self.env.get(PG_CONNECT_TIMEOUT) or DEFAULT_CONNECT_TIMEOUT_S)
        pool = self.datastore.pool
        pool.reconnect_timeout = float(self.env.get(PG_RECONNECT_WINDOW) or RECONNECT_WINDOW_S)
        if not isinstance(pool.kwargs, dict):
            raise TypeError("eventsourcing's pool no longer takes its connect arguments as a dict")
        options = orjson.loads(self.env.get(PG_CONNECT_OPTIONS) or "{}")
        if not isinstance(options, dict):
            raise TypeError(f"{PG_CONNECT_OPTIONS} must be a JSON object")
        pool.kwargs.update(KEEPALIVES, connect_timeout=max(1, round(connect_timeout)))
        pool.kwargs.update(options)
        # libpq's reason at once (see above); psycopg.Error goes to the log's opener.
        conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
        pool.connection_class.connect(conninfo, **pool.kwargs).close()
        pool.open(wait=True, timeout=connect_timeout)
