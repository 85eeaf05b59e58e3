"""Connecting to the hub: negotiate over HTTP(S), then a websocket on wsproto.

1. ``OPTIONS {url}/negotiate`` — the load balancer sets a cookie, kept for the next
   two requests (without it the websocket may land on a server that does not know
   the connection token);
2. ``POST {url}/negotiate?negotiateVersion=1`` → ``{"connectionToken": …}``;
3. websocket ``{ws url}?id={connectionToken}``, sending the cookie (and the bearer
   token, when configured).

A `Connector` opens one such connection; `websocket_connector` is the real one, tests
plug in an in-memory one.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Protocol
from urllib.parse import urlsplit

import httpx
import orjson
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from f1daemon.sources.recording import clip_text, describe_value
from f1daemon.sources.signalr.auth import BearerToken, refused
from f1daemon.sources.signalr.errors import SignalRConnectionError
from f1daemon.sources.signalr.settings import SignalRSettings, negotiate_url, websocket_url


class MessageSocket(Protocol):
    """A websocket as the client uses it (`WebSocket`; tests plug in others)."""

    async def send_message(self, message: str) -> None: ...

    async def get_message(self) -> str | bytes: ...


Connector = Callable[[BearerToken | None], AbstractAsyncContextManager[MessageSocket]]
"""Opens one connection (negotiate + websocket) with the token, closes it on exit."""


def websocket_connector(settings: SignalRSettings) -> Connector:
    """The real connector: negotiate over HTTP(S), then the websocket."""

    def connect(token: BearerToken | None) -> AbstractAsyncContextManager[MessageSocket]:
        return _open_websocket(settings, token)

    return connect


@asynccontextmanager
async def _open_websocket(
    settings: SignalRSettings, token: BearerToken | None
) -> AsyncIterator[MessageSocket]:
    headers = [("User-Agent", settings.user_agent)]
    if token is not None:
        headers.append(("Authorization", f"Bearer {token.reveal()}"))
    connection_token, cookie = await negotiate(settings, headers, token)
    if cookie:
        headers.append(("Cookie", cookie))
    url = websocket_url(settings.url, connection_token)
    with trio.move_on_after(settings.connect_timeout_s) as opening:
        socket = await WebSocket.open(url, headers, max_message_chars=settings.max_frame_chars)
    if opening.cancelled_caught:
        raise SignalRConnectionError(
            f"the websocket did not open within {settings.connect_timeout_s:g} s"
        )
    try:
        if socket.refused is not None:
            raise refused("the websocket upgrade", socket.refused, token, settings)
        yield socket
    finally:
        await socket.aclose()


class WebSocketClosed(SignalRConnectionError):
    """The websocket ended (the messages received before it were all delivered)."""


class WebSocket:
    """A client websocket on wsproto, read and written by the task that uses it.

    Not trio-websocket: its connection does not close the TCP stream after the peer
    drops it (the socket is left to the garbage collector), and its background reader
    needs a nursery. Here every received message is delivered before the end is
    reported, websocket pings are answered while reading, and `aclose` always closes
    the stream.
    """

    def __init__(self, stream: trio.abc.Stream, *, max_message_chars: int) -> None:
        self._stream = stream
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._max = max_message_chars
        self._messages: deque[str | bytes] = deque()
        self._text: list[str] = []  # a message arriving in fragments
        self._binary: list[bytes] = []
        self._size = 0
        self._ended: str | None = None
        self.refused: int | None = None
        """The HTTP status when the server refused the upgrade."""

    @classmethod
    async def open(
        cls, url: str, headers: Sequence[tuple[str, str]], *, max_message_chars: int
    ) -> WebSocket:
        """Connect and run the upgrade; check `refused` before use."""
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        stream: trio.abc.Stream
        if secure:
            stream = await trio.open_ssl_over_tcp_stream(
                host, port, ssl_context=ssl.create_default_context(), https_compatible=True
            )
        else:
            stream = await trio.open_tcp_stream(host, port)
        socket = cls(stream, max_message_chars=max_message_chars)
        try:
            authority = host if parts.port is None else f"{host}:{parts.port}"
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            extra = [(name.encode(), value.encode()) for name, value in headers]
            await socket._upgrade(Request(host=authority, target=target, extra_headers=extra))
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return socket

    async def _upgrade(self, request: Request) -> None:
        await self._stream.send_all(self._ws.send(request))
        while True:
            for event in self._ws.events():
                if isinstance(event, AcceptConnection):
                    self._ended = None
                    return
                if isinstance(event, RejectConnection):
                    self.refused = event.status_code
                    return
            await self._receive()
            if self._ended is not None:
                raise WebSocketClosed(f"the websocket upgrade failed: {self._ended}")

    async def send_message(self, message: str) -> None:
        if self._ws.state is not ConnectionState.OPEN:
            raise WebSocketClosed("the websocket is closed")
        await self._stream.send_all(self._ws.send(TextMessage(data=message)))

    async def get_message(self) -> str | bytes:
        """The next message; once all received are delivered, `WebSocketClosed`."""
        while True:
            # Events first: data that came with the upgrade reply may hold messages.
            await self._handle_events()
            if self._messages:
                return self._messages.popleft()
            if self._ended is not None:
                raise WebSocketClosed(self._ended)
            await self._receive()

    async def _receive(self) -> None:
        try:
            data = await self._stream.receive_some(65536)
        except trio.BrokenResourceError as error:
            data = b""
            self._ended = f"the connection broke ({error.__cause__ or error})"
        try:
            self._ws.receive_data(bytes(data) or None)
        except RemoteProtocolError as error:
            self._ended = f"the server broke the websocket protocol ({error})"
        if not data and self._ended is None:
            self._ended = "the server ended the connection without a websocket close"

    async def _handle_events(self) -> None:
        replies = b""
        for event in self._ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                if isinstance(event, TextMessage):
                    self._text.append(event.data)
                else:
                    self._binary.append(bytes(event.data))
                self._size += len(event.data)
                if self._size > self._max:
                    self._ended = f"a websocket message longer than {self._max} characters"
                    break
                if event.message_finished:
                    text = isinstance(event, TextMessage)
                    self._messages.append("".join(self._text) if text else b"".join(self._binary))
                    self._text, self._binary, self._size = [], [], 0
            elif isinstance(event, Ping):
                replies += self._ws.send(event.response())
            elif isinstance(event, CloseConnection):
                # (wsproto also reports a TCP end this way, with code 1006: keep that reason.)
                reason = f"code {event.code}" + (f", {event.reason}" if event.reason else "")
                self._ended = self._ended or f"the server closed the websocket ({reason})"
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    replies += self._ws.send(event.response())
        if replies:
            # Shielded: a send cut off by the caller's timeout would corrupt the stream.
            with (
                trio.move_on_after(5, shield=True),
                suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await self._stream.send_all(replies)

    async def aclose(self) -> None:
        """Say goodbye if the websocket is still open, and close the stream (always)."""
        try:
            if self._ws.state is ConnectionState.OPEN:
                with trio.move_on_after(1), suppress(trio.BrokenResourceError):
                    await self._stream.send_all(self._ws.send(CloseConnection(code=1000)))
        finally:
            await trio.aclose_forcefully(self._stream)


async def negotiate(
    settings: SignalRSettings, headers: Sequence[tuple[str, str]], token: BearerToken | None
) -> tuple[str, str]:
    """OPTIONS then POST negotiate: the connection token, and the cookie to send on.

    Raises `SignalRAuthError` when the POST is refused with 401/403, and
    `SignalRConnectionError` for any other failure (retried by the client).
    """
    url = negotiate_url(settings.url)
    async with httpx.AsyncClient(
        headers=list(headers), timeout=settings.connect_timeout_s, follow_redirects=False
    ) as http:
        # The OPTIONS reply sets the load balancer's cookie; the client's jar keeps it
        # for the POST, and it is copied onto the websocket request below. Its status
        # is not ours to judge: the public clients (FastF1's, f1-dash) only take the
        # cookie from it, if any, and go on; a refused token is refused by the POST.
        await http.options(url)
        response = await http.post(url, params={"negotiateVersion": "1"})
        _check_status(response, "POST negotiate", token, settings)
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies.jar)
    try:
        reply = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise SignalRConnectionError("POST negotiate: the reply is not JSON") from None
    if not isinstance(reply, dict):
        raise SignalRConnectionError(
            f"POST negotiate: expected an object, got {describe_value(reply)}"
        )
    if "error" in reply:
        raise SignalRConnectionError(f"POST negotiate: the server says {clip_text(reply['error'])}")
    # negotiateVersion 1 names the connection by its token; version 0 servers by the id.
    connection_token = reply.get("connectionToken") or reply.get("connectionId")
    if not isinstance(connection_token, str) or not connection_token:
        raise SignalRConnectionError("POST negotiate: the reply has no connectionToken")
    return connection_token, cookie


def _check_status(
    response: httpx.Response, what: str, token: BearerToken | None, settings: SignalRSettings
) -> None:
    if response.is_success:
        return
    raise refused(what, response.status_code, token, settings)
