"""The live client: connect, subscribe, record, reconnect — one task does it all.

`LiveClient` (and `stream_live`, its one-call form) connects through a `Connector`,
turns the protocol's outcomes into facts, sends pings, runs the no-data watchdog and
reconnects with the jittered exponential `Backoff` of `f1daemon.actors.backoff`. One
task does it all (reading, pinging, watching): no nursery, nothing running behind
the caller's back. See the package's docstring for the facts it makes.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import httpx
import orjson
import trio

from f1daemon.domain.events import Fact, MessageReceived, RecordQuarantined
from f1daemon.sources.recording import SERVER_ERROR, FeedMessage, session_key_from_info
from f1daemon.sources.signalr.auth import (
    BearerToken,
    load_token,
    names_auth_failure,
    protocol_refusal,
)
from f1daemon.sources.signalr.errors import SignalRConnectionError
from f1daemon.sources.signalr.protocol import (
    ClientProtocol,
    CloseReceived,
    Feed,
    Garbage,
    HandshakeDone,
    HandshakeFailed,
    Outcome,
    PingReceived,
    Snapshot,
    SubscribeFailed,
)
from f1daemon.sources.signalr.settings import SignalRSettings
from f1daemon.sources.signalr.transport import Connector, MessageSocket, websocket_connector

log = logging.getLogger("f1daemon.sources.signalr")

_ONE_MS = timedelta(milliseconds=1)


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
UtcClock = Callable[[], datetime]
"""The wall clock of receipt times and gaps (tests give one that follows trio's clock)."""


def _wall_clock() -> datetime:
    return datetime.now(UTC)


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
    `quarantined`, `gaps`, `resubscriptions` (new sessions on a connection).
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
        utc_clock: UtcClock = _wall_clock,
    ) -> None:
        self.settings = settings
        self.session = session
        self._send = send
        self._connect = connect or websocket_connector(settings)
        self._origin = origin
        self._rng = rng
        self._on_lost = on_lost
        self._now = utc_clock
        self._token: BearerToken | None = None
        self._lost: _Lost | None = None
        self._clock_start = 0.0
        self._base_ms = 0
        self.connections = 0
        self.pings_sent = 0
        self.pings_received = 0
        self.quarantined = 0
        self.gaps = 0
        self.resubscriptions = 0
        self._delivered = False  # the connection (attempt) under way delivered a fact

    async def run(self) -> NoReturn:
        """Connect, subscribe, record; reconnect after every end, until cancelled."""
        wall = self._now()
        self._clock_start = trio.current_time()
        if self._origin is not None:
            self._base_ms = max(0, (wall - self._origin) // _ONE_MS)
        backoff = self.settings.backoff.start(self._rng)
        while True:
            began = trio.current_time()
            reason = await self._attempt()
            if self._delivered:
                # A connection that delivered data worked, however short: the server
                # ends connections (after ~2 h, or at once when it restarts) and the
                # next one is tried after the initial delay, not a grown one.
                backoff.reset()
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
        self._delivered = False
        if self._lost is not None:
            self._lost.attempts += 1
        stream: _Stream | None = None
        protocol = ClientProtocol(
            self.settings.topics, max_frame_chars=self.settings.max_frame_chars
        )
        try:
            async with self._connect(self._token) as socket:
                self.connections += 1
                opened = self._now().strftime("%Y%m%dT%H%M%S.%fZ")
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
                await self._record(outcome, stream, self._now(), self._offset_ms())
            if self._lost is None:
                self._lost = _Lost(self._now(), reason, stream.name)
        elif self._lost is None:
            # Never connected yet: a gap is reported from the first failure on.
            self._lost = _Lost(self._now(), reason, "")
        return reason

    async def _serve(self, socket: MessageSocket, protocol: ClientProtocol, stream: _Stream) -> str:
        """Handshake, subscribe, then read until the connection ends: why it ended."""
        settings = self.settings
        await socket.send_message(protocol.handshake())
        idle_since = trio.current_time()
        next_ping = math.inf  # pings start with the subscription
        session: str | None = None  # the session the last snapshot was of
        snapshot_by = math.inf  # a new session's subscription must complete by then
        while True:
            watchdog_at = idle_since + settings.watchdog_s
            message: str | bytes | None = None
            with trio.move_on_at(min(watchdog_at, next_ping, snapshot_by)):
                message = await socket.get_message()
            now = trio.current_time()
            if message is None:
                if now >= watchdog_at:
                    return f"watchdog: no frame for {settings.watchdog_s:g} s"
                if now >= snapshot_by:
                    # A new connection's subscription brings the snapshot instead.
                    timeout = settings.connect_timeout_s
                    return f"no snapshot of the new session {session} within {timeout:g} s"
                await socket.send_message(protocol.ping())
                self.pings_sent += 1
                next_ping = now + settings.ping_interval_s
                continue
            received_at = self._now()
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
                if isinstance(outcome, Snapshot):
                    session = _session_of(outcome.messages)
                    snapshot_by = math.inf
                elif isinstance(outcome, Feed) and ended is None and not protocol.subscribing:
                    named = _session_of((outcome.message,))
                    if named is not None and named != session:
                        # A new session on this connection: its messages come as
                        # deltas of a state the log does not have. Subscribing again
                        # gets its snapshot (other clients reconnect for it, losing
                        # what is sent meanwhile).
                        log.info(
                            "live timing: new session %s, subscribing again for its snapshot",
                            named,
                            extra={"fields": {"source": settings.source, "stream": stream.name}},
                        )
                        session = named
                        await socket.send_message(protocol.subscribe())
                        self.resubscriptions += 1
                        snapshot_by = trio.current_time() + settings.connect_timeout_s
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
                reconnected_at=self._now(),
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
            self._delivered = True
            await self._send(self._fact(outcome.message, stream, received_at, offset_ms))
        elif isinstance(outcome, Snapshot):
            self._delivered = self._delivered or bool(outcome.messages)
            for message in outcome.messages:
                await self._send(self._fact(message, stream, received_at, offset_ms))
            for garbage in outcome.rejected:
                await self._quarantine(stream, garbage)
            log.info(
                "live timing: subscribed, snapshot of %d topics (%d quarantined)",
                len(outcome.messages),
                len(outcome.rejected),
                extra={"fields": {"source": self.settings.source, "stream": stream.name}},
            )
        elif isinstance(outcome, PingReceived):
            self.pings_received += 1
        elif isinstance(outcome, CloseReceived):
            if outcome.error is not None and names_auth_failure(outcome.error):
                raise protocol_refusal("a close message", outcome.error, self._token, self.settings)
            return "server closed the connection" + (f": {outcome.error}" if outcome.error else "")
        elif isinstance(outcome, Garbage):
            await self._quarantine(stream, outcome)
        elif isinstance(outcome, HandshakeFailed):
            text, base64 = outcome.text, outcome.payload_base64
            await self._quarantine(
                stream, Garbage(outcome.rule, outcome.reason, None, text, base64)
            )
            if outcome.error is not None and names_auth_failure(outcome.error):
                raise protocol_refusal("the handshake", outcome.error, self._token, self.settings)
            return f"handshake failed: {outcome.reason}"
        elif isinstance(outcome, SubscribeFailed):
            await self._quarantine(
                stream, Garbage(SERVER_ERROR, outcome.reason, None, outcome.text)
            )
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

    async def _quarantine(self, stream: _Stream, garbage: Garbage) -> None:
        self.quarantined += 1
        reason = self._scrub(garbage.reason)
        log.warning(
            "live timing: frame quarantined (%s): %s",
            garbage.rule,
            reason,
            extra={"fields": {"source": self.settings.source, "stream": stream.name}},
        )
        await self._send(
            RecordQuarantined(
                session=self.session,
                source=self.settings.source,
                stream=stream.name,
                sequence=stream.next(),
                topic=garbage.topic,
                rule=garbage.rule,
                reason=reason,
                payload=garbage.text,
                # Bytes that are not UTF-8, whole (the text shows them with U+FFFD).
                payload_base64=garbage.payload_base64,
            )
        )

    def _offset_ms(self) -> int:
        return self._base_ms + math.floor((trio.current_time() - self._clock_start) * 1000)

    def _scrub(self, text: str) -> str:
        return self._token.scrub(text) if self._token is not None else text


def _session_of(messages: Sequence[FeedMessage]) -> str | None:
    """The session a `SessionInfo` among `messages` names (None: none names one)."""
    for message in messages:
        if message.topic != "SessionInfo":
            continue
        try:
            info = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            continue
        named = session_key_from_info(info) if isinstance(info, dict) else None
        if named is not None:
            return named
    return None


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
