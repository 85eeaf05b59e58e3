"""The HTTP API as an ASGI app (Starlette, on trio through anyio): OpenF1's paths and
fields, and ours (`/v1/quarantine`, `/v1/qa_report`, `/v1/versions`).

`create_app(reader)` is the whole API as a function of a reader, so the same app is
served by `f1daemon serve` and can be mounted in the daemon. Bounded: each request
has a deadline, at most so many run at once (the rest are told to retry), a response
holds at most so many rows, and the store is read in worker threads, one read at a
time. When a token is set, every request must carry it (`Authorization: Bearer …`).
Errors are JSON `{"detail": …}` with a 4xx status; a fault of ours is a 500 with
no more than that (the traceback goes to the log).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from f1daemon.errors import UserError
from f1daemon.http.live import HEARTBEAT_S, LIVE_PREFIX, LiveStreams
from f1daemon.http.service import Limits, NotFound, Service, TooLarge
from f1daemon.services.reader import Reader
from f1daemon.services.tail import POLL_S

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class APISettings:
    """The API's bounds and its token (None: no token asked, for localhost)."""

    max_rows: int = 100_000
    request_timeout_s: float = 30.0
    max_concurrent: int = 16
    max_streams: int = 64  # live streams at once (they have no deadline)
    poll_s: float = POLL_S  # how often a live stream looks for new rows
    heartbeat_s: float = HEARTBEAT_S  # a quiet stream's keep-alive comment
    token: str | None = None


def create_app(reader: Reader, settings: APISettings | None = None) -> ASGIApp:
    """The HTTP API over a reader."""
    settings = settings or APISettings()
    service = Service(reader, Limits(max_rows=settings.max_rows))
    # The store is read one request at a time (the reader serialises reads anyway);
    # more threads would only wait.
    store_threads = anyio.CapacityLimiter(1)

    async def endpoint(request: Request) -> Response:
        name = request.path_params["endpoint"]
        raw = request.scope["query_string"].decode("latin-1")
        try:
            answer = await anyio.to_thread.run_sync(
                service.answer, name, raw, abandon_on_cancel=True, limiter=store_threads
            )
        except UserError as error:
            return _user_error(error)
        except Exception:
            # A fault of ours: the client learns only that (no traceback reaches it).
            log.exception("GET %s?%s failed", request.url.path, raw)
            return JSONResponse({"detail": "internal error; the server's log has it"}, 500)
        headers = {"X-Total-Count": str(answer.total)}
        return Response(answer.body, media_type=answer.media_type, headers=headers)

    streams = LiveStreams(
        service, store_threads, heartbeat_s=settings.heartbeat_s, poll_s=settings.poll_s
    )

    async def live(request: Request) -> Response:
        try:
            return await streams.endpoint(request)
        except UserError as error:
            return _user_error(error)

    app = Starlette(
        routes=[
            Route("/v1/{endpoint}", endpoint, methods=["GET"]),
            Route(f"{LIVE_PREFIX}{{endpoint}}", live, methods=["GET"]),
        ],
        # Starlette's own errors (no route: 404, not GET: 405) as JSON too.
        exception_handlers={HTTPException: _http_error},
    )
    return Guard(app, settings)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)  # noqa: S101 - registered for it
    return JSONResponse({"detail": error.detail}, status_code=error.status_code)


def _user_error(error: UserError) -> Response:
    status = 404 if isinstance(error, NotFound) else 422 if isinstance(error, TooLarge) else 400
    return JSONResponse({"detail": str(error)}, status_code=status)


class Guard:
    """The API's bounds around the app: token, concurrency limit and deadline."""

    def __init__(self, app: ASGIApp, settings: APISettings) -> None:
        self.app = app
        self.settings = settings
        self.active = 0
        self.streams = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.settings.token is not None and not self._authorised(scope):
            await _reply(send, 401, "a bearer token is required", {"www-authenticate": "Bearer"})
            return
        if scope["path"].startswith(LIVE_PREFIX):
            await self._stream(scope, receive, send)
            return
        if self.active >= self.settings.max_concurrent:
            limit = self.settings.max_concurrent
            await _reply(send, 503, f"busy: {limit} requests at once", {"retry-after": "1"})
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        self.active += 1
        try:
            with anyio.move_on_after(self.settings.request_timeout_s) as deadline:
                await self.app(scope, receive, tracked)
        finally:
            self.active -= 1
        if deadline.cancelled_caught and not started:
            seconds = self.settings.request_timeout_s
            await _reply(send, 504, f"the request took longer than {seconds:g} s")

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A live stream: no deadline (it lasts as long as its client), its own limit."""
        if self.streams >= self.settings.max_streams:
            limit = self.settings.max_streams
            await _reply(send, 503, f"busy: {limit} live streams at once", {"retry-after": "5"})
            return
        self.streams += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.streams -= 1

    def _authorised(self, scope: Scope) -> bool:
        expected = f"Bearer {self.settings.token}".encode()
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, expected)
        return False


async def _reply(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
