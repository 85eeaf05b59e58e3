"""The live-timing feed over SignalR Core: negotiate, websocket, subscribe, facts.

The protocol (see "Feed facts we rely on" in DESIGN.md), as this client speaks it:

1. ``OPTIONS {url}/negotiate`` — the load balancer sets a cookie, kept for the next
   two requests (without it the websocket may land on a server that does not know
   the connection token);
2. ``POST {url}/negotiate?negotiateVersion=1`` → ``{"connectionToken": …}``;
3. websocket ``{ws url}?id={connectionToken}``, sending the cookie;
4. handshake ``{"protocol":"json","version":1}`` → ``{}`` (or ``{"error": …}``);
5. ``{"type":1,"invocationId":"1","target":"Subscribe","arguments":[[topics…]]}`` →
   a ``type 3`` completion whose ``result`` maps each topic to its full snapshot;
6. then ``type 1`` invocations of ``feed`` with arguments ``[topic, data, utc]``;
   ``type 6`` pings both ways; ``type 7`` close (optional ``error``) ends it.

Every frame ends with the record separator ``\\x1e``; a websocket message may hold
several frames and a frame may be split across messages, so frames are cut out of a
running buffer (`FrameSplitter`).

The module is in two layers:

* **Sans-IO** — `ClientProtocol` turns received websocket messages into exactly one
  `Outcome` per frame (`Snapshot`, `Feed`, `PingReceived`, `CloseReceived`,
  `Garbage`, …) and writes the frames to send. It never raises on input: a frame
  that cannot be read is `Garbage` with the rule it broke (the rules of
  `f1daemon.sources.recording`, whose framing helpers check the feed messages here
  too: ``framing.syntax``, ``framing.shape``, ``framing.missing_field``,
  ``framing.type``, ``framing.timestamp``, ``framing.encoding``,
  ``framing.server_error``).
* **trio** — `LiveClient` (and `stream_live`, its one-call form) connects through a
  `Connector` (`websocket_connector`: `negotiate` with httpx, then a `WebSocket` on
  wsproto; tests plug in an in-memory one), turns outcomes into facts, sends pings,
  runs the no-data watchdog and reconnects with the jittered exponential `Backoff`
  of `f1daemon.actors.backoff`. One task does it all (reading, pinging, watching):
  no nursery, nothing running behind the caller's back.

Facts (handed to ``send`` one at a time, in the order received):

* ``source`` — `SignalRSettings.source` (``live``).
* ``stream`` — one per websocket connection, ``signalr:{opened, UTC}:{n}`` (n counts
  the connections of this client, from 1). The UTC stamp makes the name unique across
  daemon restarts: the log treats (session, source, stream, sequence) as the identity
  of a fact and skips one it has seen, so reusing ``signalr:1`` after a restart would
  silently drop the new connection's facts as duplicates.
* ``sequence`` — 1, 2, … within the stream: every frame that becomes a fact takes one
  (each topic of a snapshot takes its own; a quarantined frame takes one).
* ``offset_ms`` — milliseconds of *stream time*: the monotonic time since the client
  started, plus (when given) the wall-clock time from the session's ``origin`` to
  that start. It is **not** null and **not** per connection: the decoders order a
  session's facts by ``offset_ms`` (``None`` would be quarantined as
  ``decode.timestamp``; a per-connection offset would put a reconnect's snapshot
  before the previous connection's last messages). Frames of one websocket message
  share the offset and ``received_at`` of the message.
* ``received_at`` — wall-clock UTC at receipt; ``sent_at`` — the feed's own ``utc``
  argument (checked: ``framing.timestamp``); only ``data`` is the payload.
* ``payload`` — the data as compact JSON (for ``.z`` topics the JSON string of the
  base64 text), exactly as `f1daemon.sources.recording` writes it, so a live session
  and its recording give the same payloads.
* ``keyframe`` — true for each topic of the subscribe completion (a full snapshot). The
  client subscribes again after every reconnect, so each connection starts with a
  fresh snapshot.

Garbage is never dropped: each unreadable frame becomes a `RecordQuarantined` in the
connection's stream (the frame's text whole); a frame left incomplete when the
connection ends is quarantined as ``framing.syntax`` ``truncated: …``.

Reconnects: a connection ends on a close message, a lost socket, a refused handshake
or subscribe, or the watchdog (no complete frame for `SignalRSettings.watchdog_s`;
server pings count — they prove the connection alive between sessions, when the feed
is silent). The client then waits per its backoff and connects again; once the new
connection's handshake is done it hands ``send`` a `ConnectionGap` (when the data
stopped, when it can flow again, why), before the new snapshot. A refused bearer
token (HTTP 401/403) is not retried here: `SignalRAuthError` is raised for the
supervisor and the operator.

The bearer token (an F1 TV subscriber's, needed for ``CarData.z`` / ``Position.z``)
is read from `SignalRSettings.token_file` or the environment variable named by
`SignalRSettings.token_env` at every connection attempt (so a renewed token is picked
up without a restart). It is held by `BearerToken`, whose repr hides it; it is sent
only as ``Authorization: Bearer …`` on the negotiate requests and the websocket
upgrade, and scrubbed from every reason and log message the client writes.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

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

from f1daemon.actors.backoff import Backoff
from f1daemon.domain.events import Fact, MessageReceived, RecordQuarantined
from f1daemon.errors import UserError
from f1daemon.feed.messages import FEED_TOPICS

# The recording parser's framing rules are the feed's: a feed message and a snapshot
# are checked by the same code whether they come from a file or from the socket.
from f1daemon.sources.recording import (
    ENCODING,
    MISSING_FIELD,
    SERVER_ERROR,
    SHAPE,
    SYNTAX,
    FeedMessage,
    LineRejected,
    clip_text,
    describe_value,
    frame_arguments,
    is_topic_name,
    json_error_reason,
    reply_messages,
)

log = logging.getLogger(__name__)

SOURCE = "live"
LIVE_URL = "https://livetiming.formula1.com/signalrcore"
RECORD_SEPARATOR = "\x1e"
SUBSCRIBE_ID = "1"  # the client's only invocation on a connection

# The topics subscribed by default: every topic the feed publishes in a session.
DEFAULT_TOPICS = FEED_TOPICS

# SignalR Core hub message types.
INVOCATION = 1
STREAM_ITEM = 2
COMPLETION = 3
STREAM_INVOCATION = 4
CANCEL_INVOCATION = 5
PING = 6
CLOSE = 7
_TYPE_NAMES = {
    INVOCATION: "Invocation",
    STREAM_ITEM: "StreamItem",
    COMPLETION: "Completion",
    STREAM_INVOCATION: "StreamInvocation",
    CANCEL_INVOCATION: "CancelInvocation",
    PING: "Ping",
    CLOSE: "Close",
    8: "Ack",
    9: "Sequence",
}

HANDSHAKE_FRAME = '{"protocol":"json","version":1}' + RECORD_SEPARATOR
PING_FRAME = '{"type":6}' + RECORD_SEPARATOR

_ARGUMENTS_TOPIC = re.compile(r'"arguments"\s*:\s*\[\s*"(?P<topic>[^"]{1,64})"')
_ONE_MS = timedelta(milliseconds=1)
_REDACTED = "<redacted>"


# -- errors ----------------------------------------------------------------------------


class SignalRError(Exception):
    """Something went wrong talking to the SignalR server."""


class SignalRConnectionError(SignalRError):
    """A connection attempt failed or a connection broke: the client retries."""


class SignalRAuthError(SignalRError, UserError):
    """The server refused the request as unauthorised (HTTP 401/403): not retried.

    Its message says what to do; it never holds the token.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TokenError(SignalRError, UserError):
    """The configured bearer token cannot be read (missing file, unset variable…)."""


# -- settings and the token --------------------------------------------------------------


@dataclass(frozen=True)
class SignalRSettings:
    """How to reach the live feed and how to keep the connection healthy."""

    url: str = LIVE_URL
    """The hub's base URL (``https://…/signalrcore``); ``ws(s)://`` is accepted too."""
    topics: tuple[str, ...] = DEFAULT_TOPICS
    source: str = SOURCE
    """`MessageReceived.source` of the facts."""
    ping_interval_s: float = 15.0
    """Send a ping this often (the server drops a client silent for about 30 s)."""
    watchdog_s: float = 45.0
    """Reconnect when no complete frame has arrived for this long."""
    connect_timeout_s: float = 30.0
    """Limit for each negotiate request and for opening the websocket."""
    backoff: Backoff = field(
        default_factory=lambda: Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=0.5)
    )
    """Delay between connection attempts (reset after a connection that lasted)."""
    token_file: Path | None = None
    """A file holding the F1 TV bearer token (optional)."""
    token_env: str | None = None
    """The name of an environment variable holding the bearer token (optional)."""
    max_frame_chars: int = 64 * 1024 * 1024
    """A frame longer than this without a record separator is quarantined."""
    user_agent: str = "f1daemon"

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in _HTTP_SCHEMES:
            raise ValueError(f"url must be http(s) or ws(s), got {self.url!r}")
        if not self.topics:
            raise ValueError("topics must not be empty")
        bad = [topic for topic in self.topics if not is_topic_name(topic)]
        if bad:
            raise ValueError(f"not topic names: {bad}")
        for name in ("ping_interval_s", "watchdog_s", "connect_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if self.max_frame_chars < 1:
            raise ValueError(f"max_frame_chars must be >= 1, got {self.max_frame_chars}")
        if self.token_file is not None and self.token_env is not None:
            raise ValueError("give token_file or token_env, not both")


_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


class BearerToken:
    """A secret bearer token: only `reveal` shows it (reprs and str hide it)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The token itself: for the Authorization header, nothing else."""
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the token replaced."""
        return text.replace(self._value, _REDACTED)

    def __repr__(self) -> str:
        return f"BearerToken({_REDACTED})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a bearer token is not to be pickled")


def load_token(settings: SignalRSettings) -> BearerToken | None:
    """The configured bearer token, read now; None when none is configured."""
    if settings.token_file is not None:
        where = f"the bearer token file {settings.token_file}"
        try:
            text = settings.token_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TokenError(f"{where}: no such file") from None
        except (OSError, UnicodeDecodeError) as error:
            # Neither error's text can hold the file's content; the reason stays generic.
            raise TokenError(f"{where}: cannot be read ({type(error).__name__})") from None
    elif settings.token_env is not None:
        where = f"the environment variable {settings.token_env} (the bearer token)"
        value = os.environ.get(settings.token_env)
        if value is None:
            raise TokenError(f"{where} is not set")
        text = value
    else:
        return None
    token = text.strip().removeprefix("Bearer ").strip()
    if not token:
        raise TokenError(f"{where} is empty")
    if not token.isascii() or any(c.isspace() or not c.isprintable() for c in token):
        raise TokenError(f"{where} holds characters an HTTP header cannot carry")
    return BearerToken(token)


# -- sans-IO: frames -----------------------------------------------------------------------


class FrameSplitter:
    """Cuts websocket messages into frames at the record separator (keeps partial ones)."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self._parts: list[str] = []  # a partial frame, in pieces (no quadratic joins)
        self._size = 0

    @property
    def pending(self) -> int:
        """Characters of a frame received but not yet complete."""
        return self._size

    def feed(self, text: str) -> list[str | _TooLong]:
        """The frames ``text`` completes (without separators), in order."""
        if RECORD_SEPARATOR not in text:
            self._parts.append(text)
            self._size += len(text)
            return self._overflow()
        pieces = text.split(RECORD_SEPARATOR)
        first = "".join([*self._parts, pieces[0]])
        frames: list[str | _TooLong] = [first, *pieces[1:-1]]
        rest = pieces[-1]
        self._parts = [rest] if rest else []
        self._size = len(rest)
        if len(first) > self.max_chars:
            frames[0] = _TooLong(first)
        return frames + self._overflow()

    def drain(self) -> str:
        """What is left of an incomplete frame (the connection ended); then empty."""
        rest = "".join(self._parts)
        self._parts, self._size = [], 0
        return rest

    def _overflow(self) -> list[str | _TooLong]:
        if self._size <= self.max_chars:
            return []
        return [_TooLong(self.drain())]


@dataclass(frozen=True)
class _TooLong:
    text: str


# -- sans-IO: outcomes -----------------------------------------------------------------------


@dataclass(frozen=True)
class HandshakeDone:
    """The server accepted the handshake: subscribe now."""


@dataclass(frozen=True)
class HandshakeFailed:
    """The handshake reply was an error or unreadable: the connection is unusable."""

    rule: str
    reason: str
    text: str


@dataclass(frozen=True)
class Snapshot:
    """The subscribe completion: one keyframe message per topic (may be none)."""

    messages: tuple[FeedMessage, ...]


@dataclass(frozen=True)
class Feed:
    """One feed message."""

    message: FeedMessage


@dataclass(frozen=True)
class SubscribeFailed:
    """The server answered the subscription with an error."""

    reason: str
    text: str


@dataclass(frozen=True)
class PingReceived:
    """A ping from the server (nothing to answer: each side pings on its own)."""


@dataclass(frozen=True)
class CloseReceived:
    """The server closed the connection, maybe with an error."""

    error: str | None
    allow_reconnect: bool | None


@dataclass(frozen=True)
class Garbage:
    """A frame that cannot be read: the rule it broke, why, and its text whole."""

    rule: str
    reason: str
    topic: str | None
    text: str


Outcome = (
    HandshakeDone
    | HandshakeFailed
    | Snapshot
    | Feed
    | SubscribeFailed
    | PingReceived
    | CloseReceived
    | Garbage
)


class ClientProtocol:
    """One connection's SignalR Core JSON protocol, client side, without I/O.

    `receive` gives exactly one `Outcome` per complete frame, in order, and never
    raises on what the server sends; `end` gives the outcome of a frame the
    connection left incomplete.
    """

    def __init__(self, topics: Sequence[str], *, max_frame_chars: int = 64 * 1024 * 1024) -> None:
        self.topics = tuple(topics)
        self._splitter = FrameSplitter(max_frame_chars)
        self._handshake_replied = False
        self._subscribe_completed = False

    # What to send.

    def handshake(self) -> str:
        return HANDSHAKE_FRAME

    def subscribe(self) -> str:
        invocation = {
            "type": INVOCATION,
            "invocationId": SUBSCRIBE_ID,
            "target": "Subscribe",
            "arguments": [list(self.topics)],
        }
        return orjson.dumps(invocation).decode() + RECORD_SEPARATOR

    def ping(self) -> str:
        return PING_FRAME

    # What was received.

    def receive(self, message: str | bytes) -> list[Outcome]:
        """The outcomes of the frames one websocket message completes."""
        if isinstance(message, bytes):
            # The JSON protocol sends text; a binary message is read as UTF-8 all the same.
            try:
                message = message.decode("utf-8")
            except UnicodeDecodeError as error:
                where = f"{error.reason} at byte {error.start + 1}"
                text = error.object.decode("utf-8", errors="replace")
                return [
                    Garbage(ENCODING, f"a binary message that is not UTF-8: {where}", None, text)
                ]
        outcomes: list[Outcome] = []
        for frame in self._splitter.feed(message):
            if isinstance(frame, _TooLong):
                reason = (
                    f"a frame longer than {self._splitter.max_chars} characters "
                    "without a record separator"
                )
                outcomes.append(Garbage(SYNTAX, reason, _topic_in(frame.text), frame.text))
            else:
                outcomes.append(self._outcome(frame))
        return outcomes

    def end(self) -> list[Outcome]:
        """The connection ended: a frame left incomplete, if any, as `Garbage`."""
        rest = self._splitter.drain()
        if not rest:
            return []
        reason = (
            f"truncated: the connection ended inside a frame "
            f"({len(rest)} characters without a record separator)"
        )
        return [Garbage(SYNTAX, reason, _topic_in(rest), rest)]

    def _outcome(self, text: str) -> Outcome:
        if not self._handshake_replied:
            # Whatever the first frame is, it is the reply: the protocol has no other.
            self._handshake_replied = True
            return _handshake_outcome(text)
        try:
            return self._frame(text)
        except LineRejected as reject:
            topic = reject.topic or _topic_in(text)
            return Garbage(reject.rule, reject.reason, topic, text)

    def _frame(self, text: str) -> Outcome:
        frame = _json_object(text, "a SignalR message")
        kind = frame.get("type")
        if isinstance(kind, bool) or not isinstance(kind, int):
            what = f"'type' is {describe_value(kind)}" if "type" in frame else "no 'type'"
            raise LineRejected(SHAPE, f"not a SignalR message: {what}")
        if kind == INVOCATION:
            return Feed(_feed_message(frame))
        if kind == COMPLETION:
            return self._completion(frame, text)
        if kind == PING:
            return PingReceived()
        if kind == CLOSE:
            error = frame.get("error")
            allow = frame.get("allowReconnect")
            return CloseReceived(
                None if error is None else error if isinstance(error, str) else clip_text(error),
                allow if isinstance(allow, bool) else None,
            )
        name = _TYPE_NAMES.get(kind)
        if name is None:
            raise LineRejected(SHAPE, f"unknown message type {clip_text(kind)}")
        raise LineRejected(SHAPE, f"unexpected message type {kind} ({name}) from the server")

    def _completion(self, frame: dict[str, object], text: str) -> Outcome:
        invocation = frame.get("invocationId")
        if invocation != SUBSCRIBE_ID:
            raise LineRejected(
                SHAPE,
                f"a completion of invocation {clip_text(invocation)}, which the client never made",
            )
        if self._subscribe_completed:
            raise LineRejected(SHAPE, "a second completion of the subscription")
        self._subscribe_completed = True
        if "error" in frame:
            return SubscribeFailed(
                f"the server refused the subscription: {clip_text(frame['error'])}", text
            )
        result = frame.get("result")
        if result is None or result == {}:
            return Snapshot(())  # no topic has data yet (e.g. between sessions)
        return Snapshot(tuple(reply_messages(result)))


def _handshake_outcome(text: str) -> Outcome:
    try:
        reply = _json_object(text, "the handshake reply")
    except LineRejected as reject:
        return HandshakeFailed(reject.rule, reject.reason, text)
    if "error" in reply:
        return HandshakeFailed(
            SERVER_ERROR, f"the server refused the handshake: {clip_text(reply['error'])}", text
        )
    if "type" in reply:
        return HandshakeFailed(SHAPE, "expected the handshake reply, got a hub message", text)
    return HandshakeDone()


def _json_object(text: str, what: str) -> dict[str, object]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise LineRejected(SYNTAX, json_error_reason(error)) from None
    if not isinstance(value, dict):
        raise LineRejected(SHAPE, f"expected {what} (a JSON object), got {describe_value(value)}")
    return value


def _feed_message(frame: dict[str, object]) -> FeedMessage:
    target = frame.get("target")
    if not (isinstance(target, str) and target.lower() == "feed"):
        raise LineRejected(SHAPE, f"an invocation of {clip_text(target)}, not of feed")
    if "arguments" not in frame:
        raise LineRejected(MISSING_FIELD, "a feed invocation without arguments [topic, data, utc]")
    arguments = frame["arguments"]
    if not isinstance(arguments, list):
        raise LineRejected(
            SHAPE, f"arguments: expected a list [topic, data, utc], got {describe_value(arguments)}"
        )
    return frame_arguments(arguments, "arguments: ", from_json=True)


def _topic_in(text: str) -> str | None:
    """The topic an unreadable frame names, when it can still be read."""
    match = _ARGUMENTS_TOPIC.search(text)
    return match["topic"] if match and is_topic_name(match["topic"]) else None


# -- I/O: connecting ---------------------------------------------------------------------------


class MessageSocket(Protocol):
    """A websocket as the client uses it (`WebSocket`; tests plug in others)."""

    async def send_message(self, message: str) -> None: ...

    async def get_message(self) -> str | bytes: ...


Connector = Callable[[BearerToken | None], AbstractAsyncContextManager[MessageSocket]]
"""Opens one connection (negotiate + websocket) with the token, closes it on exit."""


def negotiate_url(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + "/negotiate"
    return urlunsplit((_HTTP_SCHEMES[parts.scheme], parts.netloc, path, "", ""))


def websocket_url(url: str, connection_token: str) -> str:
    parts = urlsplit(url)
    query = "id=" + quote(connection_token, safe="")
    return urlunsplit((_WS_SCHEMES[parts.scheme], parts.netloc, parts.path, query, ""))


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
            raise _refused("the websocket upgrade", socket.refused, token, settings)
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
    """OPTIONS then POST negotiate: the connection token, and the cookie to send on."""
    url = negotiate_url(settings.url)
    async with httpx.AsyncClient(
        headers=list(headers), timeout=settings.connect_timeout_s, follow_redirects=False
    ) as http:
        # The OPTIONS reply sets the load balancer's cookie; the client's jar keeps it
        # for the POST, and it is copied onto the websocket request below.
        response = await http.options(url)
        _check_status(response, "OPTIONS negotiate", token, settings)
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
    raise _refused(what, response.status_code, token, settings)


def _refused(
    what: str, status: int, token: BearerToken | None, settings: SignalRSettings
) -> SignalRError:
    if status not in (401, 403):
        return SignalRConnectionError(f"{what}: HTTP {status}")
    if token is None:
        advice = (
            "the feed wants a bearer token (an F1 TV subscription): "
            "configure token_file or token_env"
        )
    else:
        where = settings.token_file or f"${settings.token_env}"
        advice = f"the bearer token from {where} was not accepted (expired?): renew it"
    return SignalRAuthError(f"{what} refused with HTTP {status}: {advice}", status)


# -- I/O: the client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionGap:
    """A time without data: the connection was lost and a new one has been made.

    Reported (to ``send``) once the new connection's handshake is done, before its
    snapshot; the facts between ``disconnected_at`` and ``reconnected_at`` are what
    the feed published that the log does not have (the snapshot restores the state).
    """

    disconnected_at: datetime
    """Wall-clock UTC at which the previous connection was found lost."""
    reconnected_at: datetime
    """Wall-clock UTC at which the new connection's handshake was done."""
    reason: str
    """Why the previous connection ended (the token scrubbed out)."""
    previous_stream: str
    stream: str
    attempts: int
    """Connection attempts it took (1: the first try worked)."""

    @property
    def seconds(self) -> float:
        return (self.reconnected_at - self.disconnected_at).total_seconds()


LiveItem = Fact | ConnectionGap
Send = Callable[[LiveItem], Awaitable[None]]
# Told each time the connection is lost or cannot be made: why, and the wait before
# the next attempt (the gap is reported once a connection is back).
OnLost = Callable[[str, float], None]
"""Takes each fact and gap in order; may block (back-pressure): nothing is dropped."""


@dataclass
class _Stream:
    name: str
    sequence: int = 0

    def next(self) -> int:
        self.sequence += 1
        return self.sequence


@dataclass
class _Lost:
    at: datetime
    reason: str
    stream: str
    attempts: int = 0


_LOST_ERRORS: tuple[type[BaseException], ...] = (
    SignalRConnectionError,  # includes WebSocketClosed
    httpx.HTTPError,
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.EndOfChannel,
)


class LiveClient:
    """Keeps a subscription to the live feed going and hands every fact to ``send``.

    Counters (for status and metrics): `connections`, `pings_sent`, `pings_received`,
    `quarantined`, `gaps`.
    """

    def __init__(
        self,
        settings: SignalRSettings,
        session: str,
        send: Send,
        *,
        connect: Connector | None = None,
        origin: datetime | None = None,
        rng: random.Random | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        self.settings = settings
        self.session = session
        self._send = send
        self._connect = connect or websocket_connector(settings)
        self._origin = origin
        self._rng = rng
        self._on_lost = on_lost
        self._token: BearerToken | None = None
        self._lost: _Lost | None = None
        self._clock_start = 0.0
        self._base_ms = 0
        self.connections = 0
        self.pings_sent = 0
        self.pings_received = 0
        self.quarantined = 0
        self.gaps = 0

    async def run(self) -> NoReturn:
        """Connect, subscribe, record; reconnect after every end, until cancelled."""
        wall = datetime.now(UTC)
        self._clock_start = trio.current_time()
        if self._origin is not None:
            self._base_ms = max(0, (wall - self._origin) // _ONE_MS)
        backoff = self.settings.backoff.start(self._rng)
        while True:
            began = trio.current_time()
            reason = await self._attempt()
            delay = backoff.next_delay(trio.current_time() - began)
            log.warning(
                "live timing: %s; connecting again in %.1f s",
                reason,
                delay,
                extra={"fields": {"source": self.settings.source, "reason": reason}},
            )
            if self._on_lost is not None:
                self._on_lost(reason, delay)
            await trio.sleep(delay)

    async def _attempt(self) -> str:
        """One connection, from negotiate to its end: why it ended."""
        self._token = load_token(self.settings)
        if self._lost is not None:
            self._lost.attempts += 1
        stream: _Stream | None = None
        protocol = ClientProtocol(
            self.settings.topics, max_frame_chars=self.settings.max_frame_chars
        )
        try:
            async with self._connect(self._token) as socket:
                self.connections += 1
                opened = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                stream = _Stream(f"signalr:{opened}:{self.connections}")
                reason = await self._serve(socket, protocol, stream)
        except _LOST_ERRORS as error:
            if isinstance(error, SignalRConnectionError):
                detail = str(error)
            else:
                detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            reason = self._scrub(f"connection lost: {detail}")
        if stream is not None:
            # Whatever the socket delivered of an unfinished frame is kept (quarantined).
            for outcome in protocol.end():
                await self._record(outcome, stream, datetime.now(UTC), self._offset_ms())
            if self._lost is None:
                self._lost = _Lost(datetime.now(UTC), reason, stream.name)
        elif self._lost is None:
            # Never connected yet: a gap is reported from the first failure on.
            self._lost = _Lost(datetime.now(UTC), reason, "")
        return reason

    async def _serve(self, socket: MessageSocket, protocol: ClientProtocol, stream: _Stream) -> str:
        """Handshake, subscribe, then read until the connection ends: why it ended."""
        settings = self.settings
        await socket.send_message(protocol.handshake())
        idle_since = trio.current_time()
        next_ping = math.inf  # pings start with the subscription
        while True:
            watchdog_at = idle_since + settings.watchdog_s
            message: str | bytes | None = None
            with trio.move_on_at(min(watchdog_at, next_ping)):
                message = await socket.get_message()
            now = trio.current_time()
            if message is None:
                if now >= watchdog_at:
                    return f"watchdog: no frame for {settings.watchdog_s:g} s"
                await socket.send_message(protocol.ping())
                self.pings_sent += 1
                next_ping = now + settings.ping_interval_s
                continue
            received_at = datetime.now(UTC)
            offset_ms = self._offset_ms()
            outcomes = protocol.receive(message)
            ended: str | None = None
            for outcome in outcomes:
                # Every outcome is recorded, even those after one that ends the connection.
                if isinstance(outcome, HandshakeDone):
                    await self._handshake_done(stream)
                    await socket.send_message(protocol.subscribe())
                    next_ping = trio.current_time() + settings.ping_interval_s
                    continue
                end = await self._record(outcome, stream, received_at, offset_ms)
                ended = ended or end
            if ended is not None:
                return self._scrub(ended)
            if outcomes:
                # After recording, not before: time spent blocked in `send` (the log
                # applying back-pressure) is not the server's silence.
                idle_since = trio.current_time()

    async def _handshake_done(self, stream: _Stream) -> None:
        log.info(
            "live timing: connected",
            extra={"fields": {"source": self.settings.source, "stream": stream.name}},
        )
        if self._lost is None:
            return
        lost, self._lost = self._lost, None
        self.gaps += 1
        await self._send(
            ConnectionGap(
                disconnected_at=lost.at,
                reconnected_at=datetime.now(UTC),
                reason=lost.reason,
                previous_stream=lost.stream,
                stream=stream.name,
                attempts=lost.attempts,
            )
        )

    async def _record(
        self, outcome: Outcome, stream: _Stream, received_at: datetime, offset_ms: int
    ) -> str | None:
        """Send the facts of one outcome; the reason the connection ends, if it does."""
        if isinstance(outcome, Feed):
            await self._send(self._fact(outcome.message, stream, received_at, offset_ms))
        elif isinstance(outcome, Snapshot):
            for message in outcome.messages:
                await self._send(self._fact(message, stream, received_at, offset_ms))
            log.info(
                "live timing: subscribed, snapshot of %d topics",
                len(outcome.messages),
                extra={"fields": {"source": self.settings.source, "stream": stream.name}},
            )
        elif isinstance(outcome, PingReceived):
            self.pings_received += 1
        elif isinstance(outcome, CloseReceived):
            return "server closed the connection" + (f": {outcome.error}" if outcome.error else "")
        elif isinstance(outcome, Garbage):
            await self._quarantine(
                stream, outcome.rule, outcome.reason, outcome.topic, outcome.text
            )
        elif isinstance(outcome, HandshakeFailed):
            await self._quarantine(stream, outcome.rule, outcome.reason, None, outcome.text)
            return f"handshake failed: {outcome.reason}"
        elif isinstance(outcome, SubscribeFailed):
            await self._quarantine(stream, SERVER_ERROR, outcome.reason, None, outcome.text)
            return f"subscribe failed: {outcome.reason}"
        return None

    def _fact(
        self, message: FeedMessage, stream: _Stream, received_at: datetime, offset_ms: int
    ) -> MessageReceived:
        return MessageReceived(
            session=self.session,
            source=self.settings.source,
            stream=stream.name,
            topic=message.topic,
            sequence=stream.next(),
            offset_ms=offset_ms,
            received_at=received_at,
            sent_at=message.utc,
            payload=message.payload,
            keyframe=message.keyframe,
        )

    async def _quarantine(
        self, stream: _Stream, rule: str, reason: str, topic: str | None, text: str
    ) -> None:
        self.quarantined += 1
        reason = self._scrub(reason)
        log.warning(
            "live timing: frame quarantined (%s): %s",
            rule,
            reason,
            extra={"fields": {"source": self.settings.source, "stream": stream.name}},
        )
        await self._send(
            RecordQuarantined(
                session=self.session,
                source=self.settings.source,
                stream=stream.name,
                sequence=stream.next(),
                topic=topic,
                rule=rule,
                reason=reason,
                payload=text,
            )
        )

    def _offset_ms(self) -> int:
        return self._base_ms + math.floor((trio.current_time() - self._clock_start) * 1000)

    def _scrub(self, text: str) -> str:
        return self._token.scrub(text) if self._token is not None else text


async def stream_live(
    settings: SignalRSettings,
    session: str,
    send: Send,
    *,
    connect: Connector | None = None,
    origin: datetime | None = None,
    rng: random.Random | None = None,
    on_lost: OnLost | None = None,
) -> NoReturn:
    """Record the live feed into ``send`` until cancelled (see `LiveClient`).

    ``send`` may be a memory channel's ``send``. ``origin`` is the session's stream
    origin (offsets count from it; default: now). Raises `SignalRAuthError` when the
    server refuses the token and `TokenError` when it cannot be read; every other
    failure is retried with backoff.
    """
    client = LiveClient(
        settings, session, send, connect=connect, origin=origin, rng=rng, on_lost=on_lost
    )
    await client.run()
