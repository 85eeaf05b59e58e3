"""The daemon's live source: the F1 feed over SignalR Core, logged as it arrives.

The client (`f1daemon.sources.signalr`) connects, subscribes, reconnects and watches
for silence on its own; this module puts what it receives into the log:

* **Sessions.** A live connection carries whatever session is on: facts are logged
  under the session the feed's `SessionInfo` names (the snapshot holds one, and a new
  one comes when the next session starts), unless the source's configuration pins
  `session`. Facts that arrive before any SessionInfo wait for it until the
  snapshot is over (a feed message, or 2 s without one); if it named none, they go
  to `{date}_Live/{source}`.
* **Stream time.** A session's facts are sorted by `offset_ms` when derived, so it
  must grow across reconnects and daemon restarts. As for a recording, it follows the
  feed's own stamps (`sent_at`): the milliseconds since the session's origin — the
  stamp of its first stamped fact from this source, found again in the log after a
  restart — never going backwards. A snapshot's topics are unstamped: they take the
  feed's time at their receipt, our receipt time less the feed's lag behind our clock
  (receipt minus stamp of the latest stamped fact; 0 before any), and never less than
  the time reached — so a reconnect's snapshot after an outage sits where the feed
  was when it was taken, not where it was when the connection was lost. Our receipt
  time is kept (`received_at`), but the decoders' lap fitting and the session's time
  base need the feed's clock, not the pace at which a reconnect catches up.
* **Reconnects.** A lost connection (or one that cannot be made) is a
  `SourceStateChanged` "reconnecting" with the reason and the wait, at once; when a
  connection is back, the `ConnectionGap` is recorded (stream `source-states`) with a
  `SourceStateChanged` "reconnected".

Facts are handed to the log in batches of what has arrived, and the client is held
(by a bounded channel) while the log catches up.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import trio

from f1daemon.actors.backoff import Backoff
from f1daemon.config import SourceSettings
from f1daemon.daemon.sources import Emit, Feed, SourceRuntime
from f1daemon.domain.events import Fact, MessageReceived
from f1daemon.feed.messages import TELEMETRY_TOPICS
from f1daemon.sources.recording import session_key_from_info
from f1daemon.sources.signalr import (
    LIVE_URL,
    ConnectionGap,
    LiveItem,
    SignalRSettings,
    stream_live,
)
from f1daemon.store.eventlog import EventLog

MAX_BATCH = 500  # facts handed to the writer at once
CHANNEL_SIZE = 1_000  # received items held while the log catches up
UNKEYED = ""  # the session of facts whose session is not known yet
_ONE_MS = timedelta(milliseconds=1)
SNAPSHOT_WAIT_S = 2.0  # how long facts wait for a SessionInfo before the fallback session

FindOrigin = Callable[[str], Awaitable[datetime | None]]
OnGap = Callable[[SourceRuntime, ConnectionGap], None]
OnLost = Callable[[SourceRuntime, str, float], None]
# Told the facts a stopped feed had received but not written, and why.
OnUnwritten = Callable[[SourceRuntime, int, str], None]


def signalr_settings(settings: SourceSettings) -> SignalRSettings:
    """The client's settings from a `live` source's configuration.

    Without a token the default topics leave out `CarData.z` and `Position.z` (asking
    for them would only be refused); topics listed in the configuration are asked for
    as listed.
    """
    topics = settings.topics
    tokenless = settings.token_file is None and settings.token_env is None
    if tokenless and "topics" not in settings.model_fields_set:
        topics = tuple(topic for topic in topics if topic not in TELEMETRY_TOPICS)
    return SignalRSettings(
        url=settings.url or LIVE_URL,
        topics=topics,
        source=settings.name,
        ping_interval_s=settings.ping_interval_s,
        watchdog_s=settings.watchdog_s,
        backoff=Backoff(
            initial=settings.reconnect_initial_s,
            factor=2.0,
            cap=max(settings.reconnect_cap_s, settings.reconnect_initial_s),
            jitter=0.5,
        ),
        token_file=settings.token_file,
        token_env=settings.token_env,
    )


def live_origin(log: EventLog, session: str, source: str) -> datetime | None:
    """The origin of a session's stream time for a live source, from its first stamped
    fact in the log (None: the source has logged none for the session)."""
    if session not in log.sessions():
        return None  # a new session (the common case): no need to read the log's facts
    for _, fact in log.facts(session):
        if (
            isinstance(fact, MessageReceived)
            and fact.source == source
            and fact.sent_at is not None
            and fact.offset_ms is not None
        ):
            return fact.sent_at - timedelta(milliseconds=fact.offset_ms)
    return None


class SessionPlacer:
    """Gives each fact of a live connection its session and its stream time."""

    def __init__(self, source: str, pinned: str | None, find_origin: FindOrigin) -> None:
        self.source = source
        self.pinned = pinned
        self.current = pinned or UNKEYED
        self._find_origin = find_origin
        self._origins: dict[str, datetime | None] = {}
        self._latest: dict[str, int] = {}
        self._lag = timedelta(0)  # receipt minus stamp of the latest stamped fact
        self._waiting: list[Fact] = []

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    async def place(self, fact: Fact) -> list[Fact]:
        """The facts now ready to log (none while the session is still unknown)."""
        if self.pinned is None and isinstance(fact, MessageReceived):
            named = _session_named(fact)
            if named is not None:
                self.current = named
            elif self.current == UNKEYED and not fact.keyframe:
                return [*await self.flush(), await self._timed(fact)]  # the snapshot is over
        if self.current == UNKEYED:
            self._waiting.append(fact)
            return []
        ready, self._waiting = [*self._waiting, fact], []
        return [await self._timed(each) for each in ready]

    async def flush(self) -> list[Fact]:
        """The facts waiting for a session whose snapshot named none: to the fallback
        session `{date}_Live/{source}`, rather than left in memory, where a shutdown
        would lose them."""
        if self.current == UNKEYED:
            first = next(
                (f.received_at for f in self._waiting if isinstance(f, MessageReceived)), None
            )
            self.current = f"{first or datetime.now(UTC):%Y-%m-%d}_Live/{self.source}"
        ready, self._waiting = self._waiting, []
        return [await self._timed(each) for each in ready]

    async def _timed(self, fact: Fact) -> Fact:
        session = self.current
        if not isinstance(fact, MessageReceived):
            return fact.model_copy(update={"session": session})
        offset = self._latest.get(session, 0)
        origin = await self._origin(session, fact.sent_at)
        if fact.sent_at is not None and origin is not None:
            offset = max(offset, (fact.sent_at - origin) // _ONE_MS)
            if fact.received_at is not None:
                self._lag = fact.received_at - fact.sent_at
        elif fact.received_at is not None and origin is not None:
            # Unstamped (a snapshot's topic): the feed's time at its receipt.
            offset = max(offset, (fact.received_at - self._lag - origin) // _ONE_MS)
        self._latest[session] = offset
        return fact.model_copy(update={"session": session, "offset_ms": offset})

    async def _origin(self, session: str, stamp: datetime | None) -> datetime | None:
        """The origin of `session`'s stream time: found in the log (a restarted
        daemon's), else the first stamp seen; None until either is known."""
        if session not in self._origins:
            self._origins[session] = await self._find_origin(session)
        origin = self._origins[session]
        if origin is None and stamp is not None:
            origin = self._origins[session] = stamp
        return origin


def _session_named(fact: MessageReceived) -> str | None:
    if fact.topic != "SessionInfo":
        return None
    try:
        info = orjson.loads(fact.payload)
    except orjson.JSONDecodeError:
        return None
    return session_key_from_info(info) if isinstance(info, dict) else None


def live_feed(
    settings: SourceSettings,
    *,
    find_origin: FindOrigin,
    on_gap: OnGap,
    on_lost: OnLost,
    on_unwritten: OnUnwritten,
) -> Feed:
    """A feed that runs the live client and logs what it receives.

    It drains (`SourceRuntime.drains`): when the runtime's `stopping` is set, the
    connection is closed and everything it handed on is written before the feed
    returns — the facts of a live feed exist nowhere else. Whatever is not written
    when the feed is cancelled (the shutdown's deadline passed, or the source was
    stopped) is counted and reported to `on_unwritten`. A failure of the client (a
    refused token) is raised once what it received is written.
    """
    client = signalr_settings(settings)

    async def feed(runtime: SourceRuntime, emit: Emit) -> None:
        # The client has its own no-data watchdog (a quiet feed between sessions is
        # normal, and pings keep the connection alive): the daemon's would only fire.
        runtime.deadline = math.inf
        runtime.drains = True
        placer = SessionPlacer(settings.name, settings.session, find_origin)
        send, receive = trio.open_memory_channel[LiveItem](CHANNEL_SIZE)
        counts = _Counts()
        failed: list[Exception] = []

        async def hand_on(item: LiveItem) -> None:
            await send.send(item)
            if not isinstance(item, ConnectionGap):
                counts.received += 1
                runtime.received += 1

        async def connection(scope: trio.CancelScope) -> None:
            async with send:  # closed when the connection ends: the queue then drains
                with scope:
                    try:
                        await stream_live(
                            client,
                            UNKEYED,
                            hand_on,
                            on_lost=functools.partial(on_lost, runtime),
                        )
                    except Exception as error:  # raised once what it handed on is written
                        failed.append(error)

        try:
            async with trio.open_nursery() as nursery:
                scope = trio.CancelScope()
                nursery.start_soon(connection, scope)
                nursery.start_soon(_stop_when, runtime.stopping, scope)
                async with receive:
                    await _Logging(runtime, emit, placer, on_gap, counts).drain(receive)
                nursery.cancel_scope.cancel()  # (the stop watcher)
        finally:
            unwritten = counts.received - counts.logged
            if unwritten > 0:
                reason = (
                    "the shutdown's deadline for draining it passed"
                    if runtime.stopping.is_set()
                    else "the source was stopped"
                )
                on_unwritten(runtime, unwritten, reason)
        if failed:
            raise failed[0]

    return feed


@dataclass
class _Counts:
    """Facts of one run of the feed: handed on by the connection, and acknowledged."""

    received: int = 0
    logged: int = 0


async def _stop_when(stopping: trio.Event, connection: trio.CancelScope) -> None:
    await stopping.wait()
    connection.cancel()  # no more from the feed; what was received is written


@dataclass
class _Logging:
    """One run's way from the connection's queue into the log."""

    runtime: SourceRuntime
    emit: Emit
    placer: SessionPlacer
    on_gap: OnGap
    counts: _Counts

    async def drain(self, receive: trio.MemoryReceiveChannel[LiveItem]) -> None:
        """Log what the connection hands on, in batches, until it is closed and all in;
        then what still waits for a session."""
        while True:
            first: LiveItem | None = None
            # Facts waiting for their session wait only so long for more.
            with trio.move_on_after(SNAPSHOT_WAIT_S if self.placer.waiting else math.inf):
                try:
                    first = await receive.receive()
                except trio.EndOfChannel:
                    break
            batch = [first] if first is not None else []
            while batch and len(batch) < MAX_BATCH:
                try:
                    batch.append(receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            # Nothing came for a while: the snapshot named no session.
            await self.log(batch, flush=not batch)
        await self.log([], flush=True)

    async def log(self, batch: list[LiveItem], *, flush: bool) -> None:
        arrived = trio.current_time()
        facts: list[Fact] = []
        for item in batch:
            if isinstance(item, ConnectionGap):
                self.on_gap(self.runtime, item)
            else:
                facts.extend(await self.placer.place(item))
        if flush:
            facts.extend(await self.placer.flush())
        if facts:
            self.runtime.session = facts[-1].session
            await self.emit(self.runtime, facts, arrived)
            self.counts.logged += len(facts)
