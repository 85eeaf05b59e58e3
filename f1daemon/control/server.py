"""The control socket's server: a trio task serving JSON lines on a Unix socket.

Every client is served in its own task with its own limits, so a misbehaving one
(bad JSON, an endless line, silence, not reading its replies) gets an error reply or
a closed connection and nobody else notices. Peers are identified with SO_PEERCRED:
root, the daemon's own user and the configured uids/gids are let in.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from f1daemon.control.protocol import ProtocolError, Request, encode_reply, parse_request

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[object]]
OnRequest = Callable[[str, str], None]  # (command, outcome) for metrics

_PEERCRED = struct.Struct("3i")  # pid, uid, gid (struct ucred)
RECEIVE_CHUNK = 16 * 1024
REFUSAL_DRAIN_S = 1.0  # how long a refused client's request is waited for


@dataclass
class ControlLimits:
    max_line_bytes: int = 64 * 1024
    client_timeout_s: float = 30.0
    max_clients: int = 16
    allowed_uids: frozenset[int] = frozenset()
    allowed_gids: frozenset[int] = frozenset()


class ControlServer:
    """Serves control requests on a Unix socket with a handler of the daemon's."""

    def __init__(
        self,
        path: Path,
        handler: Handler,
        limits: ControlLimits,
        *,
        mode: int = 0o660,
        on_request: OnRequest | None = None,
    ) -> None:
        self.path = path
        self.limits = limits
        self._handler = handler
        self._mode = mode
        self._on_request = on_request or (lambda command, outcome: None)
        self._clients = 0

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind the socket (replacing a stale one), then serve until cancelled."""
        listener = await self._listen()
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(self._client, stream)
        finally:
            self.path.unlink(missing_ok=True)  # first: the await below may be cancelled
            await listener.aclose()

    async def _listen(self) -> trio.SocketListener:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise FileExistsError(f"{self.path} exists and is not a socket")
            self.path.unlink()  # a stale socket of an earlier run
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Created with no access for anyone, then opened up to the configured mode:
        # no window in which another user could connect.
        old_umask = os.umask(0o777)
        try:
            await sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, self._mode)
        sock.listen(self.limits.max_clients)
        return trio.SocketListener(sock)

    def _allowed(self, stream: trio.SocketStream) -> tuple[bool, str]:
        raw = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        pid, uid, gid = _PEERCRED.unpack(raw)
        peer = f"pid {pid} uid {uid} gid {gid}"
        if uid in (0, os.geteuid()) or uid in self.limits.allowed_uids:
            return True, peer
        return gid in self.limits.allowed_gids, peer

    async def _client(self, stream: trio.SocketStream) -> None:
        async with stream:
            allowed, peer = self._allowed(stream)
            if not allowed:
                log.warning("control: refused %s", peer, extra={"fields": {"peer": peer}})
                self._on_request("-", "refused")
                await self._refuse(stream, f"permission denied: {peer}")
                return
            if self._clients >= self.limits.max_clients:
                self._on_request("-", "busy")
                await self._refuse(stream, "too many clients; retry")
                return
            self._clients += 1
            try:
                await self._serve_lines(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away mid-reply
            except Exception:
                # One client's trouble must never take the server down with it.
                log.exception("control: client %s dropped", peer)
                self._on_request("-", "dropped")
            finally:
                self._clients -= 1

    async def _refuse(self, stream: trio.SocketStream, error: str) -> None:
        """Say why, then take (and drop) the client's first request before closing: closing
        with its request unread would reset the connection, and the client would see a
        broken pipe instead of the reason."""
        await self._send(stream, encode_reply(ok=False, error=error))
        unread = self.limits.max_line_bytes
        with trio.move_on_after(REFUSAL_DRAIN_S):
            while unread > 0:
                chunk = await stream.receive_some(min(unread, RECEIVE_CHUNK))
                if not chunk or b"\n" in chunk:
                    break
                unread -= len(chunk)

    async def _serve_lines(self, stream: trio.SocketStream) -> None:
        buffer = bytearray()
        limit = self.limits.max_line_bytes
        while True:
            newline = buffer.find(b"\n")
            if newline < 0 and len(buffer) <= limit:
                with trio.move_on_after(self.limits.client_timeout_s) as idle:
                    chunk = await stream.receive_some(RECEIVE_CHUNK)
                if idle.cancelled_caught or not chunk:
                    return  # silent too long, or closed by the client
                buffer += chunk
                continue
            # A whole line, or more than a line's worth without one: too long.
            line = bytes(buffer[:newline]).strip() if newline >= 0 else b""
            if newline < 0 or len(line) > limit:
                self._on_request("-", "oversized")
                error = f"request line longer than {limit} bytes; closing"
                await self._send(stream, encode_reply(ok=False, error=error))
                return
            del buffer[: newline + 1]
            if line and not await self._send(stream, await self._reply(line)):
                return

    async def _reply(self, line: bytes) -> bytes:
        try:
            request = parse_request(line)
        except ProtocolError as error:
            self._on_request("-", "invalid")
            return encode_reply(ok=False, error=str(error))
        try:
            result = await self._handler(request)
        except ProtocolError as error:
            self._on_request(request.command, "error")
            return encode_reply(ok=False, error=str(error), request_id=request.id)
        except Exception as error:
            log.exception("control: %s failed", request.command)
            self._on_request(request.command, "error")
            message = f"internal error: {type(error).__name__}: {error}"
            return encode_reply(ok=False, error=message, request_id=request.id)
        self._on_request(request.command, "ok")
        return encode_reply(ok=True, result=result, request_id=request.id)

    async def _send(self, stream: trio.SocketStream, data: bytes) -> bool:
        """Send a reply; False when the client does not take it in time (then we close)."""
        with trio.move_on_after(self.limits.client_timeout_s):
            await stream.send_all(data)
            return True
        return False
