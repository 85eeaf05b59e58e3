"""The control socket's server: a trio task serving JSON lines on a Unix socket.

Every client is served in its own task with its own limits, so a misbehaving one
(bad JSON, an endless line, silence, a line trickled a byte at a time, not reading its
replies, going away mid-reply) gets an error reply or a closed connection and nobody
else notices: whatever one client's task raises ends that client only. Peers are
identified with SO_PEERCRED: root, the daemon's own user and the configured uids/gids
are let in, and root and the daemon's user have a slot of their own beyond
`max_clients`, so that the operator's `ctl` is answered however many other clients
hold the ordinary slots; the other users' requests are worked out one at a time, so
that the operator's never wait behind them either. A client's next reply is worked out
only once it has read the last.

The socket path is claimed, not taken: a socket there that accepts a connection
belongs to a running daemon and is left alone (`SocketInUseError` names its pid); only
a stale one, which refuses connections, is replaced. On the way out the server removes
the socket only if the path still is the one it bound.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import logging
import os
import socket
import stat
import struct
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from f1daemon.control.protocol import ProtocolError, Request, encode_reply, parse_request
from f1daemon.errors import UserError

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[object]]
OnRequest = Callable[[str, str], None]  # (command, outcome) for metrics
# The outcomes `on_request` reports: a request's (its command), and a connection's
# that never made a request (command "-").
REQUEST_OUTCOMES = ("ok", "error")
CONNECTION_OUTCOMES = ("refused", "busy", "dropped", "unread", "invalid", "oversized", "timeout")

_PEERCRED = struct.Struct("3i")  # pid, uid, gid (struct ucred)
RECEIVE_CHUNK = 16 * 1024
REFUSAL_DRAIN_S = 1.0  # how long a refused client's request is waited for
# Refused clients are told why while fewer than this many refusals are under way;
# beyond it (a flood) they are closed at once, so refusals cannot pile up tasks and
# file descriptors.
MAX_REFUSALS = 64
OPERATOR_SLOTS = 1  # beyond max_clients, for root and the daemon's own user
PROBE_TIMEOUT_S = 2.0  # how long a socket found at the path is given to accept
ACCEPT_RETRY_S = 0.1  # after accept failed for want of descriptors or memory
# Connections accepted at once when the socket is readable: every one waiting, so that
# an operator's connection behind a flood in the backlog is taken at the next turn of
# the loop, not one turn per connection ahead of it (a turn runs every client's task).
ACCEPT_BURST = 1024
REPLY_POLL_S, REPLY_POLL_MAX_S = 0.005, 0.1  # checks that a reply was read, backing off


class SocketInUseError(UserError):
    """The socket path belongs to a running daemon (or cannot be checked)."""


@dataclass
class ControlLimits:
    max_line_bytes: int = 64 * 1024
    # Idle: how long a client may be silent (or not take a reply) before it is closed.
    client_timeout_s: float = 30.0
    # Total: a request line must be complete this long after its first byte, however
    # slowly it trickles in (otherwise a byte a second holds a slot for ever).
    request_timeout_s: float = 10.0
    max_clients: int = 16
    allowed_uids: frozenset[int] = frozenset()
    allowed_gids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Peer:
    """Who is at the other end of a connection (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int

    @property
    def operator(self) -> bool:
        """Root or the daemon's own user: always let in, with a slot kept for them."""
        return self.uid in (0, os.geteuid())

    def __str__(self) -> str:
        return f"pid {self.pid} uid {self.uid} gid {self.gid}"


def peer_of(sock: socket.socket | trio.socket.SocketType) -> Peer:
    """The credentials of a connected Unix socket's peer."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return Peer(*_PEERCRED.unpack(raw))


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
        self._refusing = 0
        self._ordinary_work = trio.CapacityLimiter(1)
        self._listener: trio.SocketListener | None = None
        self._socket: socket.socket | None = None  # the listener's own
        self._bound: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket

    @property
    def clients(self) -> int:
        """Clients being served now (refused ones are not counted)."""
        return self._clients

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind the socket (unless `bind` did), then serve until cancelled."""
        self.bind()
        listening = self._socket
        if listening is None:  # (bind sets it)
            raise RuntimeError("the control socket is not bound")
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    await trio.lowlevel.wait_readable(listening)
                    accepted, error = _accept_waiting(listening)
                    for connection in accepted:
                        stream = trio.SocketStream(trio.socket.from_stdlib_socket(connection))
                        nursery.start_soon(self._client, stream)
                    if error is not None and not accepted:
                        # Out of descriptors or memory (a flood of clients): the ones
                        # being served finish and free theirs; accept again shortly.
                        log.warning("control: cannot accept a client: %s", error.strerror)
                        await trio.sleep(ACCEPT_RETRY_S)
        finally:
            self.close()

    def bind(self) -> trio.SocketListener:
        """Claim the socket path and listen on it (SocketInUseError when a daemon is
        serving it). Done before serving, so a daemon can claim its socket before it
        touches anything else."""
        if self._listener is not None:
            return self._listener
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise FileExistsError(f"{self.path} exists and is not a socket")
            _check_stale(self.path)
            self.path.unlink()  # a stale socket of an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Created with no access for anyone, then opened up to the configured mode:
            # no window in which another user could connect.
            old_umask = os.umask(0o777)
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(old_umask)
            bound = os.lstat(self.path)
            self._bound = (bound.st_dev, bound.st_ino)
            os.chmod(self.path, self._mode)
            # The backlog holds connections while the loop is busy; a flood beyond it
            # waits in connect() and does not stop the operator's from being accepted.
            sock.listen(max(self.limits.max_clients, 128))
        except BaseException:
            sock.close()
            self._remove_ours()
            raise
        self._listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        self._socket = sock  # (non-blocking now: accepted from by `_accept_waiting`)
        return self._listener

    def close(self) -> None:
        """Stop listening and remove the socket, if the path still is ours."""
        self._remove_ours()  # first: closing cannot fail, but may be cancelled elsewhere
        if self._listener is not None:
            self._listener.socket.close()
            self._listener = self._socket = None

    def _remove_ours(self) -> None:
        if self._bound is None:
            return
        with contextlib.suppress(FileNotFoundError):
            current = os.lstat(self.path)
            # Another daemon may have replaced a socket it found stale: that one is
            # not ours to remove.
            if (current.st_dev, current.st_ino) == self._bound:
                self.path.unlink()
        self._bound = None

    def _allowed(self, peer: Peer) -> bool:
        limits = self.limits
        return peer.operator or peer.uid in limits.allowed_uids or peer.gid in limits.allowed_gids

    def _has_slot(self, peer: Peer) -> bool:
        slots = self.limits.max_clients + (OPERATOR_SLOTS if peer.operator else 0)
        return self._clients < slots

    async def _client(self, stream: trio.SocketStream) -> None:
        # Everything a client's task does is inside this try: a peer that is gone
        # before it is checked, refused or answered ends its own task, never the server.
        served = False
        peer: Peer | str = "a peer"
        try:
            async with stream:
                peer = peer_of(stream.socket)
                if not self._allowed(peer):
                    log.warning("control: refused %s", peer, extra={"fields": {"peer": str(peer)}})
                    self._on_request("-", "refused")
                    await self._refuse(stream, f"permission denied: {peer}")
                    return
                if not self._has_slot(peer):
                    self._on_request("-", "busy")
                    await self._refuse(stream, "too many clients; retry")
                    return
                self._clients += 1
                served = True
                await self._serve_lines(stream, peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away mid-reply
        except OSError as error:
            # E.g. SO_PEERCRED of a connection already reset: nothing to serve.
            log.debug("control: client %s dropped: %s", peer, error.strerror)
        except Exception:
            # One client's trouble must never take the server down with it.
            log.exception("control: client %s dropped", peer)
            self._on_request("-", "dropped")
        finally:
            if served:
                self._clients -= 1

    async def _refuse(self, stream: trio.SocketStream, error: str) -> None:
        """Say why, then take (and drop) the client's first request before closing: closing
        with its request unread would reset the connection, and the client would see a
        broken pipe instead of the reason. In a flood of refusals, just close."""
        if self._refusing >= MAX_REFUSALS:
            return
        self._refusing += 1
        try:
            with trio.move_on_after(REFUSAL_DRAIN_S):
                await stream.send_all(encode_reply(ok=False, error=error))
                unread = self.limits.max_line_bytes
                while unread > 0:
                    chunk = await stream.receive_some(min(unread, RECEIVE_CHUNK))
                    if not chunk or b"\n" in chunk:
                        break
                    unread -= len(chunk)
        finally:
            self._refusing -= 1

    async def _serve_lines(self, stream: trio.SocketStream, peer: Peer) -> None:
        # Other users' requests are worked out one at a time; the operators' never wait
        # for them: a `ctl status` is answered while others keep the daemon busy.
        work = contextlib.nullcontext() if peer.operator else self._ordinary_work
        buffer = bytearray()
        while True:
            line = await self._next_line(stream, buffer)
            if line is None:
                return
            if not line:
                continue
            # The next reply is worked out only once the client has read the last: a
            # client that sends requests and never reads costs one reply, not a socket
            # buffer's worth of them (a `metrics` reply is tens of kB of work each).
            if not await self._reply_taken(stream):
                return
            async with work:
                reply = await self._reply(line)
            if not await self._send(stream, reply):
                return

    async def _reply_taken(self, stream: trio.SocketStream) -> bool:
        """Wait until every byte sent to the client has been read by it; False when it
        has not within `client_timeout_s` (then the connection ends)."""
        deadline = trio.current_time() + self.limits.client_timeout_s
        pause = REPLY_POLL_S
        while _unread_bytes(stream) > 0:
            if trio.current_time() >= deadline:
                self._on_request("-", "unread")
                return False
            await trio.sleep(pause)
            pause = min(pause * 2, REPLY_POLL_MAX_S)
        return True

    async def _next_line(self, stream: trio.SocketStream, buffer: bytearray) -> bytes | None:
        """The next request line (stripped; empty for a blank line), or None when the
        connection is to end: closed by the client, silent for `client_timeout_s`, a line
        not complete `request_timeout_s` after its first byte, or one too long."""
        limits = self.limits
        started: float | None = None  # when the line's first byte was there
        while (newline := buffer.find(b"\n")) < 0:
            if len(buffer) > limits.max_line_bytes:
                await self._end(stream, "oversized", _too_long(limits.max_line_bytes))
                return None
            now = trio.current_time()
            if started is None and buffer:
                started = now
            deadline = now + limits.client_timeout_s
            if started is not None:
                deadline = min(deadline, started + limits.request_timeout_s)
            with trio.move_on_at(deadline):
                chunk = await stream.receive_some(RECEIVE_CHUNK)
                if not chunk:
                    return None  # closed by the client
                buffer += chunk
                continue
            if started is not None and trio.current_time() >= started + limits.request_timeout_s:
                error = f"request line not complete within {limits.request_timeout_s:g} s; closing"
                await self._end(stream, "timeout", error)
                return None
            return None  # silent too long
        line = bytes(buffer[:newline]).strip()
        del buffer[: newline + 1]
        if len(line) > limits.max_line_bytes:
            await self._end(stream, "oversized", _too_long(limits.max_line_bytes))
            return None
        return line

    async def _end(self, stream: trio.SocketStream, outcome: str, error: str) -> None:
        """Tell the client why its connection ends (if it takes the reply in time)."""
        self._on_request("-", outcome)
        await self._send(stream, encode_reply(ok=False, error=error))

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


def _unread_bytes(stream: trio.SocketStream) -> int:
    """Bytes sent on a Unix socket that its peer has not read yet (Linux's SIOCOUTQ)."""
    count = array.array("i", [0])
    try:
        fcntl.ioctl(stream.socket.fileno(), termios.TIOCOUTQ, count)
    except OSError:
        return 0  # cannot tell: do not hold the client up
    return count[0]


def _too_long(limit: int) -> str:
    return f"request line longer than {limit} bytes; closing"


def _accept_waiting(listening: socket.socket) -> tuple[list[socket.socket], OSError | None]:
    """The connections waiting in the backlog (up to `ACCEPT_BURST`), without blocking,
    and the error that stopped accepting, if one did (not running out of them)."""
    accepted: list[socket.socket] = []
    while len(accepted) < ACCEPT_BURST:
        try:
            connection, _ = listening.accept()
        except (BlockingIOError, InterruptedError):
            break
        except OSError as error:
            return accepted, error
        accepted.append(connection)
    return accepted, None


def _check_stale(path: Path) -> None:
    """Return if the socket at `path` is stale (nothing accepts on it); raise
    SocketInUseError, naming the owner's pid, when a daemon is serving it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT_S)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return  # nobody listens: left behind by a daemon that was killed
        except TimeoutError:
            raise SocketInUseError(
                f"{path}: another daemon is serving this control socket (it did not accept "
                f"within {PROBE_TIMEOUT_S:g} s); stop it first, or give this one another "
                "[control] socket"
            ) from None
        except OSError as error:
            if error.errno == errno.ECONNREFUSED:
                return
            raise SocketInUseError(
                f"{path}: cannot tell whether a daemon is serving this control socket "
                f"({error.strerror}); it is left alone"
            ) from None
        owner = peer_of(probe)
    raise SocketInUseError(
        f"{path}: f1daemon (pid {owner.pid}) is already serving this control socket; "
        "stop it first, or give this one another [control] socket"
    )
