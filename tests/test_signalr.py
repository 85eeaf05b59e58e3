"""The live-timing client over SignalR Core, against a local server replaying fp2.txt:
the replay, reconnects, pings, the watchdog, backoff and stream time.

Real sockets (`serve_signalr`: HTTP negotiate + websocket on one port) where the
protocol's HTTP side matters; in-memory sockets on trio's virtual clock
(`autojump_clock`) where time does. Garbage and the sans-IO protocol are in
`test_signalr_protocol`, the bearer token in `test_signalr_token`.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing

from f1daemon.actors.backoff import Backoff
from f1daemon.domain.events import MessageReceived, RecordQuarantined
from f1daemon.sources.recording import Recording, read_recording
from f1daemon.sources.signalr import (
    ConnectionGap,
    LiveClient,
    LiveItem,
    SignalRSettings,
)
from tests.signalr_client import (
    FAST,
    FP2,
    SESSION,
    check_streams,
    discard,
    messages,
    per_topic,
    received_all,
    run_client,
    topics_of,
)
from tests.signalr_server import Faults, Interruption, ReplayHub, serve_signalr


@pytest.fixture(scope="module")
def fp2(testdata: Path) -> Recording:
    return read_recording(testdata / FP2)


@pytest.fixture(scope="module")
def expected(fp2: Recording) -> list[MessageReceived]:
    facts = list(fp2.facts(SESSION))
    assert all(isinstance(f, MessageReceived) for f in facts)  # fp2 has no damaged line
    return [f for f in facts if isinstance(f, MessageReceived)]


# -- (1) the replay over the protocol equals the recording --------------------------------------


@pytest.mark.parametrize(
    "faults",
    [Faults(), Faults(frames_per_message=5, split=True)],
    ids=["one-frame-a-message", "packed-and-split"],
)
async def test_replay_over_the_protocol_equals_the_recording(
    fp2: Recording, expected: list[MessageReceived], faults: Faults
) -> None:
    hub = ReplayHub.from_recording(fp2, faults)
    feed = [f for f in expected if not f.keyframe]
    async with serve_signalr(hub) as url:
        settings = SignalRSettings(url=url, topics=topics_of(expected), watchdog_s=10)
        items, client = await run_client(settings, received_all(len(feed)))
    got = messages(items)

    assert Counter((f.topic, f.payload, f.keyframe) for f in got) == Counter(
        (f.topic, f.payload, f.keyframe) for f in expected
    )
    assert per_topic(got) == per_topic(expected)
    assert [(f.topic, f.payload) for f in got if not f.keyframe] == [
        (f.topic, f.payload) for f in feed
    ]
    assert sum(f.keyframe for f in got) == 14  # fp2's subscribe reply: 14 topics
    assert not any(isinstance(i, RecordQuarantined | ConnectionGap) for i in items)
    assert len(check_streams(items)) == 1
    assert client.connections == 1
    offsets = [f.offset_ms for f in got]
    assert all(o is not None for o in offsets)
    assert offsets == sorted(offsets)  # type: ignore[type-var]
    assert all(f.received_at is not None and f.received_at.tzinfo == UTC for f in got)

    # The negotiate protocol: OPTIONS sets the cookie, POST and the websocket send it.
    options, post, upgrade = hub.http
    assert (options.method, options.status) == ("OPTIONS", 204)
    assert "cookie" not in options.headers
    assert (post.method, post.status) == ("POST", 200)
    assert post.target.endswith("/negotiate?negotiateVersion=1")
    assert hub.cookie in post.headers["cookie"]
    assert (upgrade.method, upgrade.status) == ("GET", 101)  # the id was quoted right
    assert hub.cookie in upgrade.headers["cookie"]
    assert "authorization" not in upgrade.headers  # no token configured, none sent
    assert hub.connections[0].handshake == {"protocol": "json", "version": 1}
    assert hub.connections[0].topics == topics_of(expected)


# -- (2) reconnects: nothing lost, nothing doubled -------------------------------------------


async def test_reconnects_lose_and_double_nothing(
    fp2: Recording, expected: list[MessageReceived]
) -> None:
    faults = Faults(
        interruptions=(
            Interruption(400),
            Interruption(300, "drop-mid-frame"),
            Interruption(500, "close", error="test close"),
        ),
        frames_per_message=3,
        split=True,
    )
    hub = ReplayHub.from_recording(fp2, faults)
    feed = [f for f in expected if not f.keyframe]
    async with serve_signalr(hub) as url:
        settings = SignalRSettings(url=url, topics=topics_of(expected), watchdog_s=10, backoff=FAST)
        items, client = await run_client(settings, received_all(len(feed)))
    got = messages(items)

    # Every feed message exactly once, in the order published.
    assert [(f.topic, f.payload) for f in got if not f.keyframe] == [
        (f.topic, f.payload) for f in feed
    ]
    streams = check_streams(items)
    assert len(streams) == 4 == client.connections == len(hub.connections)
    # Each connection starts with a fresh snapshot: its first 14 facts are keyframes.
    snapshot = [(f.topic, f.payload) for f in expected if f.keyframe]
    for stream in streams:
        facts = [f for f in got if f.stream == stream]
        assert [(f.topic, f.payload) for f in facts[:14]] == snapshot
        assert all(f.keyframe for f in facts[:14])
        assert not any(f.keyframe for f in facts[14:])
    # A gap before each new connection's snapshot, saying why.
    gaps = [i for i in items if isinstance(i, ConnectionGap)]
    assert [(g.previous_stream, g.stream) for g in gaps] == list(itertools.pairwise(streams))
    dropped = "connection lost: the server ended the connection without a websocket close"
    assert [g.reason for g in gaps[:2]] == [dropped, dropped]
    assert gaps[2].reason == "server closed the connection: test close"
    assert all(g.disconnected_at <= g.reconnected_at and g.attempts == 1 for g in gaps)
    for gap in gaps:  # reported right before the new connection's first fact
        after = items[items.index(gap) + 1]
        assert isinstance(after, MessageReceived)
        assert (after.stream, after.sequence, after.keyframe) == (gap.stream, 1, True)
    # The frame cut by the mid-frame drop is kept, quarantined as truncated, in stream 2.
    (cut,) = [i for i in items if isinstance(i, RecordQuarantined)]
    assert cut.stream == streams[1]
    assert cut.rule == "framing.syntax"
    assert cut.reason.startswith("truncated: the connection ended inside a frame")
    assert hub.feed_frames[hub.connections[2].first_feed].startswith(cut.payload)
    # Stream time runs on across connections (the decoders sort by it).
    offsets = [f.offset_ms or 0 for f in got]
    assert offsets == sorted(offsets)


# -- (3) pings, (4) watchdog and backoff (virtual time) ---------------------------------------


async def test_pings_both_ways(
    fp2: Recording, expected: list[MessageReceived], autojump_clock: trio.testing.MockClock
) -> None:
    # The server stalls after 10 frames but pings every second: the connection is alive.
    hub = ReplayHub.from_recording(
        fp2, Faults(interruptions=(Interruption(10, "stall"),), stall_ping_interval_s=1.0)
    )
    settings = SignalRSettings(
        url="http://hub.invalid/x", topics=topics_of(expected), ping_interval_s=2.0, watchdog_s=5
    )
    async with trio.open_nursery() as nursery:
        client = LiveClient(settings, SESSION, discard, connect=hub.memory_connector(nursery))
        nursery.start_soon(client.run)
        await trio.sleep(21)
        nursery.cancel_scope.cancel()

    (connection,) = hub.connections  # no watchdog reconnect: server pings count
    times = connection.ping_times
    assert len(times) == 10 == client.pings_sent
    assert [round(b - a, 3) for a, b in itertools.pairwise(times)] == [2.0] * 9
    assert client.pings_received in (20, 21)


async def test_watchdog_reconnects_a_stalled_connection(
    fp2: Recording, expected: list[MessageReceived], autojump_clock: trio.testing.MockClock
) -> None:
    hub = ReplayHub.from_recording(fp2, Faults(interruptions=(Interruption(50, "stall"),)))
    feed = [f for f in expected if not f.keyframe]
    settings = SignalRSettings(
        url="http://hub.invalid/x",
        topics=topics_of(expected),
        ping_interval_s=2.0,
        watchdog_s=5,
        backoff=Backoff(initial=1.0, jitter=0),
    )
    async with trio.open_nursery() as hub_nursery:
        connect = hub.memory_connector(hub_nursery)
        items, _ = await run_client(settings, received_all(len(feed)), connect=connect)
        hub_nursery.cancel_scope.cancel()

    # Stalled at t=0: the watchdog fires at 5 s (client pings do not feed it), then 1 s backoff.
    assert hub.attempt_times == [pytest.approx(0, abs=0.01), pytest.approx(6, abs=0.01)]
    assert len(hub.connections[0].ping_times) == 2  # at 2 s and 4 s
    (gap,) = [i for i in items if isinstance(i, ConnectionGap)]
    assert gap.reason == "watchdog: no frame for 5 s"
    assert [(f.topic, f.payload) for f in messages(items) if not f.keyframe] == [
        (f.topic, f.payload) for f in feed
    ]


async def test_backoff_between_failed_attempts_is_jittered_exponential(
    fp2: Recording, expected: list[MessageReceived], autojump_clock: trio.testing.MockClock
) -> None:
    hub = ReplayHub.from_recording(fp2, Faults(refuse_first=4))
    policy = Backoff(initial=1.0, factor=2.0, cap=5.0, jitter=0.5)
    settings = SignalRSettings(
        url="http://hub.invalid/x", topics=topics_of(expected), backoff=policy
    )
    async with trio.open_nursery() as hub_nursery:
        connect = hub.memory_connector(hub_nursery)
        items, _ = await run_client(
            settings, lambda items: len(items) > 20, connect=connect, limit_s=60
        )
        hub_nursery.cancel_scope.cancel()

    waits = [b - a for a, b in itertools.pairwise(hub.attempt_times)]
    state = policy.start(random.Random(7))  # the client's rng, seeded alike
    assert waits == pytest.approx([state.next_delay(0) for _ in range(4)], abs=0.01)
    for wait, base in zip(waits, [1, 2, 4, 5], strict=True):
        assert base <= wait <= base * 1.5
    assert len({round(w / b, 6) for w, b in zip(waits, [1, 2, 4, 5], strict=True)}) > 1
    (gap,) = [i for i in items if isinstance(i, ConnectionGap)]
    assert gap.reason == "connection lost: ConnectionRefusedError: connection refused (test hub)"
    assert (gap.previous_stream, gap.attempts) == ("", 4)
    assert isinstance(items[0], ConnectionGap)  # before the first snapshot


async def test_offsets_count_from_the_session_origin(
    fp2: Recording, expected: list[MessageReceived], autojump_clock: trio.testing.MockClock
) -> None:
    hub = ReplayHub.from_recording(fp2)
    settings = SignalRSettings(url="http://hub.invalid/x", topics=topics_of(expected))
    items: list[LiveItem] = []

    async def send(item: LiveItem) -> None:
        items.append(item)
        await trio.lowlevel.checkpoint()

    origin = datetime.now(UTC) - timedelta(hours=1)
    async with trio.open_nursery() as nursery:
        connect = hub.memory_connector(nursery)
        client = LiveClient(settings, SESSION, send, connect=connect, origin=origin)
        nursery.start_soon(client.run)
        await trio.sleep(2.5)
        nursery.cancel_scope.cancel()
    first = messages(items)[0]
    assert first.offset_ms is not None
    assert 3_600_000 <= first.offset_ms < 3_600_000 + 60_000  # an hour in, not 0
