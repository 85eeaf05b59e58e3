"""The transports of the test SignalR hub (`tests.signalr_server.ReplayHub`): in-memory
sockets, and real HTTP + websocket on one local TCP port (h11 for the negotiate
requests, trio-websocket for the websocket over the same connection)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import TYPE_CHECKING

import h11
import trio
import trio_websocket

if TYPE_CHECKING:
    from tests.signalr_server import ReplayHub

BASE_PATH = "/signalrcore"

# What a socket raises once the other side has gone.
CLOSED = (
    trio_websocket.ConnectionClosed,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.EndOfChannel,
)


# -- in-memory sockets -------------------------------------------------------------------------


class MemorySocket:
    """One side of an in-memory websocket: messages out, messages in."""

    def __init__(
        self,
        outgoing: trio.MemorySendChannel[str | bytes],
        incoming: trio.MemoryReceiveChannel[str | bytes],
    ) -> None:
        self._out = outgoing
        self._in = incoming

    async def send_message(self, message: str | bytes) -> None:
        await self._out.send(message)

    async def get_message(self) -> str | bytes:
        # After the other side closed: what it sent first, then EndOfChannel.
        return await self._in.receive()

    async def abort(self) -> None:
        await self._out.aclose()

    async def close(self) -> None:
        await self._out.aclose()

    async def aclose(self) -> None:
        await self._out.aclose()
        await self._in.aclose()


# -- HTTP + websocket on one TCP port -----------------------------------------------------------


@asynccontextmanager
async def serve_signalr(hub: ReplayHub, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``hub`` on a free local port; yields the base URL (``http://…/signalrcore``)."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, partial(_serve_tcp, hub), 0, host=host)
        )
        port = listeners[0].socket.getsockname()[1]
        try:
            yield f"http://{host}:{port}{BASE_PATH}"
        finally:
            nursery.cancel_scope.cancel()


async def _serve_tcp(hub: ReplayHub, stream: trio.SocketStream) -> None:
    http = h11.Connection(h11.SERVER)
    try:
        while True:
            request = await _next(http, stream)
            if not isinstance(request, h11.Request):
                return
            headers = {k.decode().lower(): v.decode() for k, v in request.headers}
            method, target = request.method.decode(), request.target.decode()
            upgrade = headers.get("upgrade", "").lower() == "websocket"
            if upgrade:
                refusal = hub.upgrade_refusal(target, headers)
                if refusal is None:
                    head = _request_head(request)
                    await _serve_websocket(hub, stream, head + http.trailing_data[0], headers)
                    return
                await _respond(http, stream, refusal, [], b"refused")
                return
            while not isinstance(await _next(http, stream), h11.EndOfMessage):
                pass  # the body: negotiate has none worth reading
            status, extra, body = hub.negotiate(method, target, headers)
            await _respond(http, stream, status, extra, body)
            if http.our_state is not h11.DONE or http.their_state is not h11.DONE:
                return
            http.start_next_cycle()
    except (*CLOSED, h11.RemoteProtocolError):
        pass
    finally:
        await stream.aclose()


async def _next(http: h11.Connection, stream: trio.SocketStream) -> object:
    while True:
        event = http.next_event()
        if event is not h11.NEED_DATA:
            return event
        http.receive_data(await stream.receive_some(65536))


async def _respond(
    http: h11.Connection,
    stream: trio.SocketStream,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    fields = [*headers, ("Content-Length", str(len(body)))]
    if status >= 400:
        fields.append(("Connection", "close"))
    data = http.send(h11.Response(status_code=status, headers=fields)) or b""
    if body:
        data += http.send(h11.Data(data=body)) or b""
    data += http.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


def _request_head(request: h11.Request) -> bytes:
    """The request as received, for the websocket handshake to read it again."""
    lines = [request.method + b" " + request.target + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in request.headers.raw_items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _serve_websocket(
    hub: ReplayHub, stream: trio.SocketStream, head: bytes, headers: Mapping[str, str]
) -> None:
    raw = _Prefixed(stream, head)
    async with trio.open_nursery() as nursery:
        request = await trio_websocket.wrap_server_stream(
            nursery, raw, max_message_size=64 * 1024 * 1024
        )
        websocket = await request.accept()
        await hub.serve(_TcpSocket(websocket, raw), headers)
        with trio.move_on_after(1):
            with suppress(*CLOSED):
                await websocket.aclose()
        nursery.cancel_scope.cancel()


class _TcpSocket:
    def __init__(self, websocket: trio_websocket.WebSocketConnection, raw: _Prefixed) -> None:
        self.websocket = websocket
        self.raw = raw

    async def send_message(self, message: str | bytes) -> None:
        await self.websocket.send_message(message)  # bytes: a binary message

    async def get_message(self) -> str | bytes:
        return await self.websocket.get_message()

    async def abort(self) -> None:
        # A FIN under the websocket, no close message: to the client, the network failed.
        # (A half-close, not a close: closing with unread input would send a RST, which
        # may discard data the client has not read yet, and make the test flaky.)
        await self.raw.send_eof()

    async def close(self) -> None:
        await self.websocket.aclose()


class _Prefixed(trio.abc.HalfCloseableStream):
    """A TCP stream that first gives back bytes already read from it (the request)."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            await trio.lowlevel.checkpoint()
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()
