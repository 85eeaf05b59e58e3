"""The HTTP API inside the daemon (`[http]`): the app `f1daemon serve` serves, in the
daemon's nursery, over a reader of its own.

It is bound before the daemon reports ready (a port in use stops the start, in one
line), reads the log through its own connections (never the writer's), and is the
first thing shut at a drain: it stops accepting and lets the requests under way
finish while the sources and the writer drain.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import trio

from f1daemon.config import HTTPSettings
from f1daemon.errors import UserError
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import StoreURL

if TYPE_CHECKING:  # Hypercorn is imported only when the API is enabled
    from hypercorn.config import Config

# The requests under way get this long to finish at a drain.
GRACEFUL_TIMEOUT_S = 5.0


class HTTPService:
    """The daemon's HTTP API: started in its nursery, stopped at its drain."""

    def __init__(self, settings: HTTPSettings) -> None:
        self.settings = settings
        self.binds: list[str] = []
        self._shutdown = trio.Event()
        self._log: EventLog | None = None
        self._token: str | None = None
        self._config: Config | None = None  # bound, not served yet

    def bind(self) -> None:
        """Claim the address (when enabled), before the daemon opens the store: a port
        in use, or an address beyond localhost without a token, stops the start here."""
        if not self.settings.enabled:
            return
        from f1daemon.http.exposure import check_exposure, read_token
        from f1daemon.http.server import listen

        settings = self.settings
        self._token = read_token(Path(settings.token_file) if settings.token_file else None)
        check_exposure(settings.host, self._token)
        try:
            self._config = listen(settings.host, settings.port, GRACEFUL_TIMEOUT_S)
        except OSError as error:
            where = f"{settings.host}:{settings.port}"
            raise UserError(f"[http]: cannot listen on {where}: {error.strerror}") from None

    async def start(self, nursery: trio.Nursery, store: StoreURL) -> list[str]:
        """Serve where `bind` claimed (nothing when not enabled); the addresses served."""
        if self._config is None:
            return []
        from f1daemon.http.app import APISettings, create_app
        from f1daemon.http.server import serve_http
        from f1daemon.services.reader import Reader

        settings = self.settings
        self._log = await trio.to_thread.run_sync(EventLog, store)
        app = create_app(
            Reader(self._log),
            APISettings(
                max_rows=settings.max_rows,
                request_timeout_s=settings.request_timeout_s,
                max_concurrent=settings.max_concurrent,
                token=self._token,
            ),
        )
        config, self._config = self._config, None  # the server owns its sockets now
        self.binds = await nursery.start(serve_http, app, config, self._shutdown)
        return self.binds

    def stop(self) -> None:
        """Stop accepting; the requests under way finish (up to the graceful timeout)."""
        self._shutdown.set()

    def close(self) -> None:
        """Release the reader's connections (after the server has stopped), and the
        address if it was bound and never served."""
        if self._config is not None:
            from f1daemon.http.server import close_unserved

            close_unserved(self._config)
            self._config = None
        if self._log is not None:
            self._log.close()
            self._log = None
