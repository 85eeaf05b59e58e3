"""The SignalR Core JSON protocol, client side, without I/O.

`ClientProtocol` turns received websocket messages into exactly one `Outcome` per
frame (`Snapshot`, `Feed`, `PingReceived`, `CloseReceived`, `Garbage`, …) and writes
the frames to send. It never raises on input: a frame that cannot be read is
`Garbage` with the rule it broke (the rules of `f1daemon.sources.recording`, whose
framing helpers check the feed messages here too: ``framing.syntax``,
``framing.shape``, ``framing.missing_field``, ``framing.type``, ``framing.timestamp``,
``framing.encoding``, ``framing.server_error``).

Every frame ends with the record separator ``\\x1e``; a websocket message may hold
several frames and a frame may be split across messages, so frames are cut out of a
running buffer (`FrameSplitter`).

The JSON protocol sends text, and a text websocket message is UTF-8 (wsproto fails a
connection that breaks that). A binary message is read as UTF-8 all the same; its
bytes that are not UTF-8 ride along to the frame they belong to (as lone surrogates,
``surrogateescape``), so each frame of it that is not UTF-8 is quarantined alone with
its exact bytes in ``payload_base64`` (`f1daemon.sources.line_bytes`) and the frames
around it are read as usual.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from f1daemon.sources.line_bytes import UndecodableLine, undecodable

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

RECORD_SEPARATOR = "\x1e"
# The client's invocations are its subscriptions: "1" when the connection opens, "2",
# "3", … when a new session starts on it (to get the new session's snapshot).
SUBSCRIBE_ID = "1"

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


# -- outcomes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HandshakeDone:
    """The server accepted the handshake: subscribe now."""


@dataclass(frozen=True)
class HandshakeFailed:
    """The handshake reply was an error or unreadable: the connection is unusable."""

    rule: str
    reason: str
    text: str
    error: str | None = None
    """The server's error, when it sent one (it may refuse the token)."""
    payload_base64: str | None = None
    """The reply's exact bytes, when they are not UTF-8 (`text` shows them with U+FFFD)."""


@dataclass(frozen=True)
class Snapshot:
    """The subscribe completion: one keyframe message per topic (may be none).

    A topic whose snapshot cannot be read (``"TopThree": null``, an empty
    ``CarData.z``) is `rejected` on its own: the other topics' keyframes are kept.
    """

    messages: tuple[FeedMessage, ...]
    rejected: tuple[Garbage, ...] = ()


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
    payload_base64: str | None = None
    """The frame's exact bytes, when they are not UTF-8 (`text` shows them with U+FFFD)."""


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
        self._subscriptions = 0  # Subscribe invocations made (their ids: 1, 2, …)
        self._pending: str | None = None  # the one not completed yet
        self._escaped = False  # a partial frame may hold bytes that are not UTF-8

    # What to send.

    def handshake(self) -> str:
        return HANDSHAKE_FRAME

    @property
    def subscribing(self) -> bool:
        """A subscription has been sent and its completion not received yet."""
        return self._pending is not None

    def subscribe(self) -> str:
        """The Subscribe invocation: at the start, and again for a new session's
        snapshot (not while one is pending: its completion is the snapshot)."""
        if self._pending is not None:
            raise RuntimeError(f"subscription {self._pending} is still pending")
        self._subscriptions += 1
        self._pending = str(self._subscriptions)
        invocation = {
            "type": INVOCATION,
            "invocationId": self._pending,
            "target": "Subscribe",
            "arguments": [list(self.topics)],
        }
        return orjson.dumps(invocation).decode() + RECORD_SEPARATOR

    def ping(self) -> str:
        return PING_FRAME

    # What was received.

    def receive(self, message: str | bytes) -> list[Outcome]:
        """The outcomes of the frames one websocket message completes."""
        text = message if isinstance(message, str) else self._binary(message)
        check = self._escaped
        outcomes: list[Outcome] = []
        for frame in self._splitter.feed(text):
            if isinstance(frame, _TooLong):
                reason = (
                    f"a frame longer than {self._splitter.max_chars} characters "
                    "without a record separator"
                )
                outcomes.append(_garbage(SYNTAX, reason, frame.text))
            else:
                readable = _unescaped(frame) if check else frame
                if isinstance(readable, UndecodableLine):
                    outcomes.append(self._undecodable(readable))
                else:
                    outcomes.append(self._outcome(readable))
        # Escaped bytes may still wait in a partial frame: check until it is complete.
        self._escaped = check and self._splitter.pending > 0
        return outcomes

    def _binary(self, message: bytes) -> str:
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            # Kept to the byte: each frame of it that is not UTF-8 is quarantined with
            # its bytes (see the module's docstring).
            self._escaped = True
            return message.decode("utf-8", errors="surrogateescape")

    def end(self) -> list[Outcome]:
        """The connection ended: a frame left incomplete, if any, as `Garbage`."""
        rest = self._splitter.drain()
        if not rest:
            return []
        reason = (
            f"truncated: the connection ended inside a frame "
            f"({len(rest)} characters without a record separator)"
        )
        return [_garbage(SYNTAX, reason, rest)]

    def _undecodable(self, bad: UndecodableLine) -> Outcome:
        if not self._handshake_replied:
            self._handshake_replied = True  # (the reply, unreadable: as in `_outcome`)
            return HandshakeFailed(ENCODING, bad.reason, bad.text, None, bad.payload_base64)
        return Garbage(ENCODING, bad.reason, _topic_in(bad.text), bad.text, bad.payload_base64)

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
        if invocation != self._pending:
            made = isinstance(invocation, str) and invocation in {
                str(n) for n in range(1, self._subscriptions + 1)
            }
            if made:
                raise LineRejected(SHAPE, f"a second completion of subscription {invocation}")
            raise LineRejected(
                SHAPE,
                f"a completion of invocation {clip_text(invocation)}, which the client never made",
            )
        self._pending = None
        if "error" in frame:
            return SubscribeFailed(
                f"the server refused the subscription: {clip_text(frame['error'])}", text
            )
        result = frame.get("result")
        if result is None or result == {}:
            return Snapshot(())  # no topic has data yet (e.g. between sessions)
        if not isinstance(result, dict):
            what = describe_value(result)
            raise LineRejected(SHAPE, f"expected the result to map topics to snapshots, got {what}")
        messages: list[FeedMessage] = []
        rejected: list[Garbage] = []
        for name, data in result.items():
            # Each topic is checked alone (by the recording's rules for a reply): one
            # that cannot be read is quarantined with its own text, not the snapshot.
            try:
                messages.extend(reply_messages({name: data}))
            except LineRejected as reject:
                topic = reject.topic or (name if is_topic_name(name) else None)
                text = orjson.dumps({name: data}).decode()
                # (The recording's rules name a classic reply's R; here it is the result.)
                reason = "result" + reject.reason.removeprefix("R")
                rejected.append(Garbage(reject.rule, reason, topic, text))
        return Snapshot(tuple(messages), tuple(rejected))


def _handshake_outcome(text: str) -> Outcome:
    try:
        reply = _json_object(text, "the handshake reply")
    except LineRejected as reject:
        return HandshakeFailed(reject.rule, reject.reason, text)
    if "error" in reply:
        error = reply["error"]
        return HandshakeFailed(
            SERVER_ERROR,
            f"the server refused the handshake: {clip_text(error)}",
            text,
            error if isinstance(error, str) else clip_text(error),
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


def _unescaped(text: str) -> str | UndecodableLine:
    """A frame of a binary message as text; what to quarantine it with if its bytes
    are not UTF-8 (a character may straddle two messages: joined, it is UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = _bytes_of(text)
        bad = undecodable(raw, "frame")
        return raw.decode("utf-8") if bad is None else bad
    return text


def _bytes_of(text: str) -> bytes:
    """The bytes `text` was decoded from with ``surrogateescape`` (a lone surrogate of
    another kind, as UTF-8 cannot have one: encoded as such, so it is not UTF-8)."""
    try:
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="surrogatepass")


def _garbage(rule: str, reason: str, text: str) -> Garbage:
    """Garbage of `rule` for an unreadable `text`, its bytes kept if they are not UTF-8."""
    readable = _unescaped(text)
    if isinstance(readable, str):
        return Garbage(rule, reason, _topic_in(readable), readable)
    topic = _topic_in(readable.text)
    return Garbage(
        rule, f"{reason}; {readable.reason}", topic, readable.text, readable.payload_base64
    )


def _topic_in(text: str) -> str | None:
    """The topic an unreadable frame names, when it can still be read."""
    match = _ARGUMENTS_TOPIC.search(text)
    return match["topic"] if match and is_topic_name(match["topic"]) else None
