"""A local SignalR Core server for tests: replays a recording over the real protocol.

`ReplayHub` is the hub's behaviour, independent of the transport: it answers the
handshake, the subscription (a ``type 3`` completion whose result is the recording's
subscribe-reply snapshot, restricted to the subscribed topics) and then sends the
recording's feed messages as ``type 1`` ``feed`` invocations, as fast as the socket
takes them (or at their stamps' pace). Two transports carry it (their plumbing is in
`tests.signalr_transports`):

* `serve_signalr` — real HTTP and websocket on one TCP port (h11 for HTTP, the
  websocket by trio-websocket over the same connection): ``OPTIONS …/negotiate``
  sets a load-balancer cookie, ``POST …/negotiate?negotiateVersion=1`` requires it
  and issues a connection token, the websocket upgrade ``…?id=TOKEN`` requires
  both (and, when configured, ``Authorization: Bearer <token>``: 401 otherwise).
* `ReplayHub.memory_connector` — an in-memory socket pair (no negotiate), for tests
  on trio's virtual clock (`autojump_clock`), which real sockets defeat.

Faults (`Faults`) are injected by the hub:

* `Interruption`, per connection (the n-th entry for the n-th connection): after
  ``after`` feed frames, ``drop`` (TCP closed without a close message),
  ``drop-mid-frame`` (first half of the next frame sent, then the drop), ``close``
  (a ``type 7`` close with ``error``), or ``stall`` (nothing more, connection open;
  pings every ``stall_ping_interval_s`` if set).
* ``resume`` — True: a new connection sends a fresh snapshot (the recording's reply;
  the replay does not merge deltas into a current state) and then the feed from the
  first message no connection has sent whole; False: the feed starts over (a client
  then sees duplicates — the mode exists to show the difference).
* ``frames_per_message`` — frames packed into one websocket message; ``split`` —
  each websocket message cut in two (so frames straddle messages).
* ``garbage`` — raw frames sent (once) before the feed message of that index; one
  given as bytes is sent as a binary websocket message of its own (the way to send
  bytes that are not UTF-8: a text message cannot hold them).
* ``ping_every`` — a ping frame after every n feed frames.
* ``refuse_first`` — the first n connection attempts fail (HTTP 503 on negotiate;
  ``ConnectionRefusedError`` in memory); so do those within an interruption's
  ``outage_s`` after it.
* ``paced`` — the feed at the pace of its stamps (on trio's clock: instant with
  `autojump_clock`); messages due while no connection is open are skipped.
* ``require_token`` — the bearer token negotiate and the websocket require (401
  otherwise); with ``auth_check`` ``handshake`` or ``close`` the HTTP side lets any
  token through and the hub refuses a wrong one in the handshake (an error reply) or
  with a close message after it, as a hub that authorises in the protocol does.
* ``options_status`` — the status ``OPTIONS …/negotiate`` answers (the cookie is set
  all the same), as load balancers that do not route OPTIONS do.

After the last feed message the connection stays open and silent.
"""

from __future__ import annotations

import base64
import bisect
import math
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol, cast
from urllib.parse import parse_qs, urlsplit

import orjson
import trio

from f1daemon.domain.events import MessageReceived
from f1daemon.feed.state import JSON, merge
from f1daemon.feed.timebase import establish
from f1daemon.sources.archive import read_facts, topic_files
from f1daemon.sources.recording import Messages, Recording
from f1daemon.sources.signalr import BearerToken, Connector, MessageSocket
from tests.signalr_transports import BASE_PATH, CLOSED, MemorySocket, serve_signalr

__all__ = ["Faults", "Interruption", "ReplayHub", "serve_signalr"]

RS = "\x1e"
PING_FRAME = '{"type":6}'
COOKIE_NAME = "AWSALBCORS"


@dataclass(frozen=True)
class Interruption:
    """How one connection ends early: after ``after`` feed frames sent whole."""

    after: int
    how: Literal["drop", "drop-mid-frame", "close", "stall"] = "drop"
    error: str | None = None  # the close message's error (how="close")
    outage_s: float = 0.0  # connection attempts are refused this long after the end


@dataclass(frozen=True)
class Faults:
    interruptions: tuple[Interruption | None, ...] = ()
    resume: bool = True
    frames_per_message: int = 1
    split: bool = False
    garbage: Mapping[int, tuple[str | bytes, ...]] = field(default_factory=dict)
    ping_every: int = 0
    stall_ping_interval_s: float | None = None
    refuse_first: int = 0
    require_token: str | None = None
    auth_check: Literal["http", "handshake", "close"] = "http"
    options_status: int = 204
    # True: a new connection's snapshot is the state so far — the recording's reply
    # with every feed message sent before merged in — as the real server sends it.
    # False: the recording's reply each time (what a connection's facts are compared
    # with, message for message).
    current_snapshot: bool = False
    # True: each feed message is sent when its stamp says (the first at the first
    # subscription), as the feed publishes them; what falls due while no connection is
    # open is never sent (the next snapshot holds its state), as on the real server.
    paced: bool = False


@dataclass
class ConnectionLog:
    """What the hub saw of one websocket connection."""

    number: int
    headers: Mapping[str, str]
    handshake: object = None
    topics: tuple[str, ...] = ()
    subscribed: trio.Event = field(default_factory=trio.Event)
    subscriptions: list[str] = field(default_factory=list)  # invocation ids, in order
    sent_index: int = 0  # the feed index up to which frames have been sent whole
    first_feed: int = 0  # the feed index it started at
    feed_sent: int = 0  # feed frames it sent whole
    ping_times: list[float] = field(default_factory=list)  # client pings (trio time)
    unexpected: list[str] = field(default_factory=list)  # client frames not understood
    ended: trio.Event = field(default_factory=trio.Event)


@dataclass(frozen=True)
class HttpLog:
    method: str
    target: str
    headers: Mapping[str, str]
    status: int


class HubSocket(Protocol):
    """The server's side of a websocket (bytes are sent as a binary message)."""

    async def send_message(self, message: str | bytes) -> None: ...

    async def get_message(self) -> str | bytes: ...

    async def abort(self) -> None:
        """End the connection without a close message (as a network failure would)."""

    async def close(self) -> None:
        """End the connection properly."""


class ReplayHub:
    """The Streaming hub replaying one recording, with faults."""

    def __init__(
        self,
        snapshot: Mapping[str, object],
        feed: Sequence[tuple[str, object, str]],
        faults: Faults | None = None,
    ) -> None:
        self.snapshot = dict(snapshot)
        self.faults = faults or Faults()
        self.feed_topics = [topic for topic, _, _ in feed]
        self.feed_data = [(topic, data) for topic, data, _ in feed]
        self.feed_frames = [
            orjson.dumps({"type": 1, "target": "feed", "arguments": [t, d, u]}).decode()
            for t, d, u in feed
        ]
        self.position = 0  # first feed message no connection has sent whole
        self.attempts = 0
        self.attempt_times: list[float] = []
        self.connections: list[ConnectionLog] = []
        self.http: list[HttpLog] = []
        self.cookie = f"{COOKIE_NAME}={secrets.token_hex(8)}"
        self._tokens: set[str] = set()
        self._garbage_sent: set[int] = set()
        self.feed_due_s = _due_times([stamp for _, _, stamp in feed])
        self._paced_from: float | None = None  # trio time of the first feed message
        self._refused_until = -math.inf  # an outage: attempts refused until then

    @classmethod
    def from_recording(cls, recording: Recording, faults: Faults | None = None) -> ReplayHub:
        """The recording's first subscribe reply is the snapshot; its feed messages follow."""
        snapshot: dict[str, object] = {}
        feed: list[tuple[str, object, str]] = []
        replied = False
        for outcome in recording.outcomes:
            if not isinstance(outcome, Messages):
                continue
            keyframes = [m for m in outcome.messages if m.keyframe]
            if keyframes and not replied:
                replied = True
                snapshot = {m.topic: orjson.loads(m.payload) for m in keyframes}
            for message in outcome.messages:
                if message.keyframe:
                    continue
                assert message.utc is not None  # framed feed messages always have one
                stamp = message.utc.isoformat().replace("+00:00", "Z")
                feed.append((message.topic, orjson.loads(message.payload), stamp))
        return cls(snapshot, feed, faults)

    @classmethod
    def from_archive(cls, folder: Path, faults: Faults | None = None) -> ReplayHub:
        """An archive session's messages as the live feed would have sent them: no
        snapshot (each topic's first message is its state, as in the archive), each
        message stamped with the session's time base plus its offset."""
        read = read_facts("archive", topic_files(folder))
        messages = [f for f in read if isinstance(f, MessageReceived)]  # lines that are UTF-8
        facts = sorted(messages, key=lambda f: f.offset_ms or 0)
        t0 = establish(facts).t0 or datetime(2000, 1, 1, tzinfo=UTC)
        feed = [
            (
                fact.topic,
                orjson.loads(fact.payload),
                (t0 + timedelta(milliseconds=fact.offset_ms or 0))
                .isoformat()
                .replace("+00:00", "Z"),
            )
            for fact in facts
        ]
        return cls({}, feed, faults)

    # -- HTTP negotiate ----------------------------------------------------------------------

    def authorised(self, headers: Mapping[str, str], *, in_protocol: bool = False) -> bool:
        """Do the headers carry the required token (where the hub checks it)?"""
        if (self.faults.auth_check != "http") != in_protocol:
            return True  # checked at the other level
        required = self.faults.require_token
        return required is None or headers.get("authorization") == f"Bearer {required}"

    def has_cookie(self, headers: Mapping[str, str]) -> bool:
        cookies = [c.strip() for c in headers.get("cookie", "").split(";")]
        return self.cookie in cookies

    def negotiate(
        self, method: str, target: str, headers: Mapping[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers and body of an HTTP request that is no websocket upgrade."""
        parts = urlsplit(target)
        status, extra, body = self._negotiate(method, parts.path, parse_qs(parts.query), headers)
        self.http.append(HttpLog(method, target, dict(headers), status))
        return status, extra, body

    def _negotiate(
        self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        refusal = self._refusal(method, path, query, headers)
        if refusal is not None:
            return refusal
        if method == "OPTIONS":
            return self.faults.options_status, [("Set-Cookie", f"{self.cookie}; Path=/")], b""
        if self._attempt():
            return 503, [], b"try again later"
        # Tokens with + / = test that the client quotes them in the websocket URL.
        token = base64.b64encode(secrets.token_bytes(24)).decode()
        self._tokens.add(token)
        reply = {
            "negotiateVersion": 1,
            "connectionId": secrets.token_hex(8),
            "connectionToken": token,
            "availableTransports": [
                {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}
            ],
        }
        return 200, [("Content-Type", "application/json")], orjson.dumps(reply)

    def _refusal(
        self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        if path != f"{BASE_PATH}/negotiate":
            return 404, [], b"not found"
        if not self.authorised(headers):
            return 401, [("WWW-Authenticate", "Bearer")], b"unauthorised"
        if method == "OPTIONS":
            return None
        if method != "POST" or query.get("negotiateVersion") != ["1"]:
            return 400, [], b"expected POST negotiate?negotiateVersion=1"
        if not self.has_cookie(headers):
            return 400, [], b"no load-balancer cookie"
        return None

    def upgrade_refusal(self, target: str, headers: Mapping[str, str]) -> int | None:
        """The status refusing a websocket upgrade, or None to accept it."""
        parts = urlsplit(target)
        token = parse_qs(parts.query).get("id", [""])[0]
        status = None
        if parts.path != BASE_PATH:
            status = 404
        elif not self.authorised(headers):
            status = 401
        elif not self.has_cookie(headers) or token not in self._tokens:
            status = 400
        self._tokens.discard(token)  # a connection token is good for one connection
        self.http.append(HttpLog("GET", target, dict(headers), status or 101))
        return status

    def _attempt(self) -> bool:
        """Count a connection attempt; whether it is to be refused."""
        self.attempts += 1
        now = trio.current_time()
        self.attempt_times.append(now)
        return self.attempts <= self.faults.refuse_first or now < self._refused_until

    # -- in memory ---------------------------------------------------------------------------

    def memory_connector(self, nursery: trio.Nursery) -> Connector:
        """A client connector to this hub over in-memory sockets (served in ``nursery``)."""

        def connect(token: BearerToken | None) -> AbstractAsyncContextManager[MessageSocket]:
            return self._memory_connection(nursery, token)

        return connect

    @asynccontextmanager
    async def _memory_connection(
        self, nursery: trio.Nursery, token: BearerToken | None
    ) -> AsyncIterator[MessageSocket]:
        await trio.lowlevel.checkpoint()
        if self._attempt():
            raise ConnectionRefusedError("connection refused (test hub)")
        headers = {} if token is None else {"authorization": f"Bearer {token.reveal()}"}
        to_client, from_server = trio.open_memory_channel[str | bytes](1000)
        to_server, from_client = trio.open_memory_channel[str | bytes](1000)
        client = MemorySocket(to_server, from_server)
        nursery.start_soon(self.serve, MemorySocket(to_client, from_client), headers)
        try:
            yield client
        finally:
            await client.aclose()

    # -- the hub -----------------------------------------------------------------------------

    async def serve(self, socket: HubSocket, headers: Mapping[str, str]) -> None:
        """One connection, from the handshake until either side ends it."""
        log = ConnectionLog(number=len(self.connections) + 1, headers=dict(headers))
        self.connections.append(log)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_then_stop, socket, log, nursery.cancel_scope)
                try:
                    await log.subscribed.wait()
                    await self._write(socket, log)
                except CLOSED:
                    pass
                nursery.cancel_scope.cancel()
        finally:
            log.ended.set()

    async def _read_then_stop(
        self, socket: HubSocket, log: ConnectionLog, scope: trio.CancelScope
    ) -> None:
        buffer = ""
        try:
            while True:
                message = await socket.get_message()
                text = message if isinstance(message, str) else message.decode()
                *frames, buffer = (buffer + text).split(RS)
                for frame in frames:
                    await self._client_frame(socket, log, frame)
        except CLOSED:
            pass
        scope.cancel()  # the client has gone: stop writing too

    async def _client_frame(self, socket: HubSocket, log: ConnectionLog, text: str) -> None:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            log.unexpected.append(text)
            return
        if log.handshake is None:
            log.handshake = frame
            refused = not self.authorised(log.headers, in_protocol=True)
            if frame != {"protocol": "json", "version": 1}:
                await socket.send_message('{"error":"unsupported protocol"}' + RS)
                await socket.close()
            elif refused and self.faults.auth_check == "handshake":
                error = "Unauthorized: the access token has expired"
                await socket.send_message(orjson.dumps({"error": error}).decode() + RS)
                await socket.close()
            elif refused:
                await socket.send_message("{}" + RS)
                close = {
                    "type": 7,
                    "error": "Connection closed with an error. HubException: Unauthorized",
                    "allowReconnect": False,
                }
                await socket.send_message(orjson.dumps(close).decode() + RS)
                await socket.close()
            else:
                await socket.send_message("{}" + RS)
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == 6:
            log.ping_times.append(trio.current_time())
        elif (
            kind == 1
            and isinstance(frame, dict)
            and str(frame.get("target")).lower() == "subscribe"
            and isinstance(frame.get("invocationId"), str)
        ):
            arguments = frame.get("arguments")
            invocation = str(frame["invocationId"])
            if isinstance(arguments, list) and arguments and isinstance(arguments[0], list):
                log.subscriptions.append(invocation)
                if not log.subscribed.is_set():
                    log.topics = tuple(str(topic) for topic in arguments[0])
                    log.subscribed.set()  # the writer starts with its snapshot
                else:
                    # Subscribed again (a new session): the state as sent so far.
                    await socket.send_message(self._completion(invocation, log, log.sent_index))
                return
            log.unexpected.append(text)
        elif kind != 7:
            log.unexpected.append(text)

    async def _write(self, socket: HubSocket, log: ConnectionLog) -> None:
        faults = self.faults
        number = log.number - 1
        interruption = faults.interruptions[number] if number < len(faults.interruptions) else None
        out = _Packer(socket, faults.frames_per_message, split=faults.split)
        subscribed = set(log.topics)
        index = self.position if faults.resume else 0
        if faults.paced:
            if self._paced_from is None:
                self._paced_from = trio.current_time()
            index = max(index, self._due_index(trio.current_time()))
            self.position = max(self.position, index)
        await out.frame(self._completion(log.subscriptions[0], log, index).removesuffix(RS))
        log.first_feed = log.sent_index = index
        while index < len(self.feed_frames):
            if interruption is not None and log.feed_sent == interruption.after:
                await out.flush()
                self.position = max(self.position, index)
                await self._interrupt(socket, interruption, index)
                return
            if faults.paced:
                assert self._paced_from is not None
                await out.flush()
                await trio.sleep_until(self._paced_from + self.feed_due_s[index])
            if index in faults.garbage and index not in self._garbage_sent:
                self._garbage_sent.add(index)
                for garbage in faults.garbage[index]:
                    if isinstance(garbage, str):
                        await out.frame(garbage)
                    else:
                        await out.binary(garbage)
            if self.feed_topics[index] in subscribed:
                await out.frame(self.feed_frames[index])
                log.feed_sent += 1
                if faults.ping_every and log.feed_sent % faults.ping_every == 0:
                    await out.frame(PING_FRAME)
            index += 1
            if out.empty:
                # Only frames the socket took count as sent (a resumed feed starts after).
                self.position = max(self.position, index)
                log.sent_index = index
        await out.flush()
        self.position = len(self.feed_frames)
        await self._hold(socket)

    def _completion(self, invocation: str, log: ConnectionLog, index: int) -> str:
        """A subscription's completion: the snapshot of the subscribed topics (the state
        at feed `index` with `current_snapshot`), as a frame."""
        state = self._state_at(index) if self.faults.current_snapshot else self.snapshot
        result = {t: data for t, data in state.items() if t in set(log.topics)}
        reply = {"type": 3, "invocationId": invocation, "result": result}
        return orjson.dumps(reply).decode() + RS

    def _state_at(self, index: int) -> dict[str, object]:
        """The snapshot with the first `index` feed messages merged in."""
        state: dict[str, JSON] = orjson.loads(orjson.dumps(self.snapshot))  # a deep copy
        for topic, data in self.feed_data[:index]:
            state[topic] = merge(state.get(topic), cast("JSON", data))
        return dict(state)

    def _due_index(self, now: float) -> int:
        """The first feed message not yet due at trio time `now` (paced)."""
        start = self._paced_from if self._paced_from is not None else now
        return bisect.bisect_left(self.feed_due_s, now - start)

    async def _interrupt(self, socket: HubSocket, interruption: Interruption, index: int) -> None:
        if interruption.outage_s:
            self._refused_until = trio.current_time() + interruption.outage_s
        if interruption.how == "drop":
            await socket.abort()
        elif interruption.how == "drop-mid-frame":
            frame = self.feed_frames[index]
            await socket.send_message(frame[: len(frame) // 2])
            await socket.abort()
        elif interruption.how == "close":
            close: dict[str, object] = {"type": 7}
            if interruption.error is not None:
                close["error"] = interruption.error
            await socket.send_message(orjson.dumps(close).decode() + RS)
            await socket.close()
        else:
            await self._hold(socket)

    async def _hold(self, socket: HubSocket) -> None:
        """Keep the connection open and send nothing (but pings, if configured)."""
        interval = self.faults.stall_ping_interval_s
        if interval is None:
            await trio.sleep_forever()
        while True:
            await trio.sleep(interval)
            await socket.send_message(PING_FRAME + RS)


def _due_times(stamps: Sequence[str]) -> list[float]:
    """Seconds from the first stamp to each, never going back (the feed's stamps are
    not monotonic across topics; it publishes them in order all the same)."""
    due: list[float] = []
    first: datetime | None = None
    reached = 0.0
    for stamp in stamps:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        first = first or moment
        reached = max(reached, (moment - first).total_seconds())
        due.append(reached)
    return due


class _Packer:
    """Sends frames, ``per_message`` to a websocket message, each message maybe split."""

    def __init__(self, socket: HubSocket, per_message: int, *, split: bool) -> None:
        self.socket = socket
        self.per_message = per_message
        self.split = split
        self._batch: list[str] = []

    @property
    def empty(self) -> bool:
        return not self._batch

    async def frame(self, text: str) -> None:
        self._batch.append(text + RS)
        if len(self._batch) >= self.per_message:
            await self.flush()

    async def binary(self, message: bytes) -> None:
        """`message` as a binary websocket message, after the frames waiting."""
        await self.flush()
        await self.socket.send_message(message)

    async def flush(self) -> None:
        if not self._batch:
            return
        message = "".join(self._batch)
        self._batch = []
        if self.split and len(message) > 1:
            cut = len(message) // 2
            await self.socket.send_message(message[:cut])
            await self.socket.send_message(message[cut:])
        else:
            await self.socket.send_message(message)
