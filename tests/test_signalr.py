"""The live-timing client over SignalR Core, against a local server replaying fp2.txt.

Real sockets (`serve_signalr`: HTTP negotiate + websocket on one port) where the
protocol's HTTP side matters; in-memory sockets on trio's virtual clock
(`autojump_clock`) where time does (pings, watchdog, backoff).
"""

from __future__ import annotations

import itertools
import logging
import pickle
import random
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from f1daemon.actors.backoff import Backoff
from f1daemon.domain.events import MessageReceived, RecordQuarantined
from f1daemon.sources.recording import Recording, read_recording
from f1daemon.sources.signalr import (
    RECORD_SEPARATOR,
    ClientProtocol,
    CloseReceived,
    ConnectionGap,
    Connector,
    Feed,
    Garbage,
    HandshakeDone,
    HandshakeFailed,
    LiveClient,
    LiveItem,
    PingReceived,
    SignalRAuthError,
    SignalRSettings,
    Snapshot,
    SubscribeFailed,
    TokenError,
    load_token,
    websocket_url,
)
from tests.signalr_server import Faults, Interruption, ReplayHub, serve_signalr

FP2 = Path("f1dash-signalr-2023_Monaco") / "fp2.txt"
SESSION = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"
RS = RECORD_SEPARATOR
# A test token, distinctive: a leak is easy to find.
TOKEN = "tok-7Hq2ZsecretXYZ-not-for-logs"  # noqa: S105

VARIABLE = "F1_TEST_TOKEN"
FAST = Backoff(initial=0.01, factor=2.0, cap=0.05, jitter=0.5)


@pytest.fixture(scope="module")
def fp2(testdata: Path) -> Recording:
    return read_recording(testdata / FP2)


@pytest.fixture(scope="module")
def expected(fp2: Recording) -> list[MessageReceived]:
    facts = list(fp2.facts(SESSION))
    assert all(isinstance(f, MessageReceived) for f in facts)  # fp2 has no damaged line
    return [f for f in facts if isinstance(f, MessageReceived)]


def topics_of(facts: Sequence[MessageReceived]) -> tuple[str, ...]:
    return tuple(sorted({f.topic for f in facts}))


def messages(items: Sequence[LiveItem]) -> list[MessageReceived]:
    return [i for i in items if isinstance(i, MessageReceived)]


def per_topic(facts: Sequence[MessageReceived]) -> dict[str, list[tuple[str, bool]]]:
    order: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for fact in facts:
        order[fact.topic].append((fact.payload, fact.keyframe))
    return dict(order)


async def run_client(
    settings: SignalRSettings,
    until: Callable[[list[LiveItem]], bool],
    *,
    connect: Connector | None = None,
    limit_s: float = 10,
) -> tuple[list[LiveItem], LiveClient]:
    """Run a client until ``until(items)`` holds; what it sent, and the client."""
    items: list[LiveItem] = []
    done = trio.Event()

    async def send(item: LiveItem) -> None:
        items.append(item)
        if until(items):
            done.set()

    client = LiveClient(settings, SESSION, send, connect=connect, rng=random.Random(7))
    with trio.fail_after(limit_s):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            await done.wait()
            nursery.cancel_scope.cancel()
    return items, client


def received_all(count: int) -> Callable[[list[LiveItem]], bool]:
    """Until the feed's messages (not keyframes) number ``count``."""
    return lambda items: (
        sum(isinstance(i, MessageReceived) and not i.keyframe for i in items) >= (count)
    )


def check_streams(items: Sequence[LiveItem]) -> list[str]:
    """Each stream numbers its facts 1, 2, … in order; the streams in order of first use."""
    streams: dict[str, list[int]] = {}
    for item in items:
        if isinstance(item, MessageReceived | RecordQuarantined):
            assert item.session == SESSION
            assert item.source == "live"
            streams.setdefault(item.stream, []).append(item.sequence)
    for sequences in streams.values():
        assert sequences == list(range(1, len(sequences) + 1))
    return list(streams)


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


# -- (3) garbage is quarantined, never fatal --------------------------------------------------

GARBAGE = {
    "not json": "framing.syntax",
    '{"type":1,"target":"feed","arguments":["TimingData",{"Lines":': "framing.syntax",
    "": "framing.syntax",
    "[1,2,3]": "framing.shape",
    '{"no":"type"}': "framing.shape",
    '{"type":99}': "framing.shape",
    '{"type":2,"invocationId":"1","item":{}}': "framing.shape",
    '{"type":3,"invocationId":"42","result":{}}': "framing.shape",
    '{"type":1,"target":"Other","arguments":[]}': "framing.shape",
    '{"type":1,"target":"feed"}': "framing.missing_field",
    '{"type":1,"target":"feed","arguments":["TimingData"]}': "framing.missing_field",
    '{"type":1,"target":"feed","arguments":["TimingData",[],"2023-05-26T12:00:00Z"]}': (
        "framing.type"
    ),
    '{"type":1,"target":"feed","arguments":["TimingData",{},"yesterday"]}': "framing.timestamp",
    '{"type":1,"target":"feed","arguments":["CarData.z","%%%","2023-05-26T12:00:00Z"]}': (
        "framing.encoding"
    ),
}


async def test_garbage_frames_are_quarantined_and_the_feed_goes_on(
    fp2: Recording, expected: list[MessageReceived], autojump_clock: trio.testing.MockClock
) -> None:
    hub = ReplayHub.from_recording(
        fp2, Faults(garbage={10: tuple(GARBAGE)[:7], 1000: tuple(GARBAGE)[7:]})
    )
    feed = [f for f in expected if not f.keyframe]
    settings = SignalRSettings(url="http://hub.invalid/x", topics=topics_of(expected))
    async with trio.open_nursery() as hub_nursery:
        connect = hub.memory_connector(hub_nursery)
        items, client = await run_client(settings, received_all(len(feed)), connect=connect)
        hub_nursery.cancel_scope.cancel()

    quarantined = [i for i in items if isinstance(i, RecordQuarantined)]
    assert [(q.payload, q.rule) for q in quarantined] == list(GARBAGE.items())
    assert all(q.reason and q.stream == quarantined[0].stream for q in quarantined)
    topics = {q.payload: q.topic for q in quarantined}
    assert topics['{"type":1,"target":"feed","arguments":["TimingData",{"Lines":'] == "TimingData"
    assert topics['{"type":1,"target":"feed","arguments":["TimingData",{},"yesterday"]}'] == (
        "TimingData"
    )
    # The garbage took its place in the stream; the feed is whole; no reconnect.
    check_streams(items)
    assert [(f.topic, f.payload) for f in messages(items) if not f.keyframe] == [
        (f.topic, f.payload) for f in feed
    ]
    assert client.connections == 1
    assert client.quarantined == len(GARBAGE)


def test_protocol_outcomes() -> None:
    protocol = ClientProtocol(["TimingData"])
    assert protocol.receive("{") == []  # the handshake reply, split in two messages
    assert orjson.loads(protocol.subscribe()[:-1]) == {
        "type": 1,
        "invocationId": "1",
        "target": "Subscribe",
        "arguments": [["TimingData"]],
    }
    feed = '{"type":1,"target":"feed","arguments":["TimingData",{"A":1},"2023-05-26T12:00:00Z"]}'
    completion = '{"type":3,"invocationId":"1","result":{"TimingData":{"Lines":{}}}}'
    outcomes = protocol.receive("}" + RS + completion + RS + feed + RS + feed[:20])
    assert [type(o) for o in outcomes] == [HandshakeDone, Snapshot, Feed]
    assert isinstance(outcomes[1], Snapshot)
    assert [(m.topic, m.payload, m.keyframe) for m in outcomes[1].messages] == [
        ("TimingData", '{"Lines":{}}', True)
    ]
    assert isinstance(outcomes[2], Feed)
    assert (outcomes[2].message.payload, outcomes[2].message.keyframe) == ('{"A":1}', False)
    outcomes = protocol.receive(
        feed[20:] + RS + '{"type":6}' + RS + '{"type":7,"error":"bye"}' + RS
    )
    assert [type(o) for o in outcomes] == [Feed, PingReceived, CloseReceived]
    assert outcomes[2] == CloseReceived("bye", None)
    assert protocol.end() == []
    (binary,) = protocol.receive(b"\xff\xfe" + RS.encode())
    assert isinstance(binary, Garbage)
    assert binary.rule == "framing.encoding"
    assert protocol.receive('{"type":1') == []
    (cut,) = protocol.end()
    assert isinstance(cut, Garbage)
    assert (cut.text, cut.reason[:10]) == ('{"type":1', "truncated:")
    # Subscribed again (a new session): invocation 2, whose completion is a snapshot;
    # a completion of one already completed, or never made, is garbage.
    assert orjson.loads(protocol.subscribe()[:-1])["invocationId"] == "2"
    again = completion.replace('"1"', '"2"')
    outcomes = protocol.receive(completion + RS + again + RS + again + RS)
    assert [type(o) for o in outcomes] == [Garbage, Snapshot, Garbage]
    assert [o.reason for o in outcomes if isinstance(o, Garbage)] == [
        "a second completion of subscription 1",
        "a second completion of subscription 2",
    ]


def test_protocol_refusals() -> None:
    refused = ClientProtocol(["TimingData"]).receive('{"error":"no json for you"}' + RS)
    assert refused == [
        HandshakeFailed(
            "framing.server_error",
            "the server refused the handshake: 'no json for you'",
            '{"error":"no json for you"}',
            "no json for you",
        )
    ]
    protocol = ClientProtocol(["TimingData"])
    protocol.subscribe()
    error = '{"type":3,"invocationId":"1","error":"unknown topic"}'
    outcomes = protocol.receive("{}" + RS + error + RS)
    assert outcomes == [
        HandshakeDone(),
        SubscribeFailed("the server refused the subscription: 'unknown topic'", error),
    ]


FRAMES = st.sampled_from(
    [
        "{}",
        '{"type":6}',
        '{"type":7}',
        '{"type":3,"invocationId":"1","result":{"TimingData":{}}}',
        '{"type":1,"target":"feed","arguments":["TimingData",{"A":1},"2023-05-26T12:00:00Z"]}',
        '{"type":1,"target":"feed","arguments":["CarData.z","7ZSxCs","2023-05-26T12:00:00Z"]}',
        *GARBAGE,
    ]
)
CHUNKS = st.lists(
    st.one_of(
        st.text(alphabet=st.sampled_from('{}[]":,0123456789type\x1e \\\ud800é'), max_size=40),
        st.text(max_size=20),
        FRAMES.map(lambda f: f + RS),
        st.binary(max_size=20),
    ),
    max_size=12,
)


@given(CHUNKS)
@settings(max_examples=300, deadline=None)
def test_any_input_gives_one_outcome_per_frame_and_never_raises(chunks: list[str | bytes]) -> None:
    limit = 120
    protocol = ClientProtocol(["TimingData", "CarData.z"], max_frame_chars=limit)
    outcomes: list[object] = []
    pending = ""  # a reference model of the splitter: the text of an incomplete frame
    for chunk in chunks:
        got = protocol.receive(chunk)
        outcomes.extend(got)
        if isinstance(chunk, bytes):
            try:
                chunk_text = chunk.decode("utf-8")
            except UnicodeDecodeError:
                assert [type(g) for g in got] == [Garbage]
                continue
        else:
            chunk_text = chunk
        # One outcome per complete frame, plus one for an incomplete frame grown too long.
        *frames, rest = (pending + chunk_text).split(RS)
        overflow = len(rest) > limit
        assert len(got) == len(frames) + overflow
        too_long = [g for g in got if isinstance(g, Garbage) and "longer than" in g.reason]
        assert len(too_long) == sum(len(f) > limit for f in frames) + overflow
        for frame, result in zip(frames, got, strict=False):
            if isinstance(result, Garbage | HandshakeFailed):
                assert result.text == frame  # kept whole, as received
        pending = "" if overflow else rest
    ended = protocol.end()
    assert [g.text for g in ended if isinstance(g, Garbage)] == ([pending] if pending else [])
    for outcome in [*outcomes, *ended]:
        if isinstance(outcome, Garbage | HandshakeFailed):
            assert outcome.rule.startswith("framing.")
            assert outcome.reason


# -- (4) pings, (5) watchdog and backoff (virtual time) ---------------------------------------


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
        client = LiveClient(settings, SESSION, _discard, connect=hub.memory_connector(nursery))
        nursery.start_soon(client.run)
        await trio.sleep(21)
        nursery.cancel_scope.cancel()

    (connection,) = hub.connections  # no watchdog reconnect: server pings count
    times = connection.ping_times
    assert len(times) == 10 == client.pings_sent
    assert [round(b - a, 3) for a, b in itertools.pairwise(times)] == [2.0] * 9
    assert client.pings_received in (20, 21)


async def _discard(item: LiveItem) -> None:
    await trio.lowlevel.checkpoint()


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


# -- (6) the bearer token: sent, never leaked -------------------------------------------------


async def test_bearer_token_is_sent_and_never_leaked(
    fp2: Recording,
    expected: list[MessageReceived],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every library's debug logging too
    monkeypatch.setenv(VARIABLE, TOKEN)
    hub = ReplayHub.from_recording(
        fp2,
        Faults(require_token=TOKEN, interruptions=(Interruption(100),)),
    )
    async with serve_signalr(hub) as url:
        settings = SignalRSettings(
            url=url, topics=topics_of(expected), token_env=VARIABLE, backoff=FAST
        )
        items, _ = await run_client(settings, received_all(300))

    assert len(hub.connections) == 2  # reconnected (and re-authorised) after the drop
    assert [(h.method, h.status) for h in hub.http] == [
        ("OPTIONS", 204), ("POST", 200), ("GET", 101)
    ] * 2  # fmt: skip
    assert all(h.headers["authorization"] == f"Bearer {TOKEN}" for h in hub.http)
    token = load_token(settings)
    assert token is not None
    assert token.reveal() == TOKEN
    seen = [caplog.text, repr(settings), repr(token), str(token), repr(items)]
    assert "live timing: connected" in caplog.text  # the log was captured
    assert not any(TOKEN in text for text in seen)
    with pytest.raises(TypeError):
        pickle.dumps(token)


async def test_a_refused_token_is_a_clear_error_without_the_token(
    fp2: Recording,
    expected: list[MessageReceived],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = tmp_path / "token"
    wrong.write_text(TOKEN + "-wrong\n")
    hub = ReplayHub.from_recording(fp2, Faults(require_token=TOKEN))
    async with serve_signalr(hub) as url:
        settings = SignalRSettings(url=url, topics=topics_of(expected), token_file=wrong)
        client = LiveClient(settings, SESSION, _discard)
        with trio.fail_after(5), pytest.raises(SignalRAuthError) as refused:
            await client.run()
        anonymous = LiveClient(SignalRSettings(url=url, topics=("TimingData",)), SESSION, _discard)
        with trio.fail_after(5), pytest.raises(SignalRAuthError) as missing:
            await anonymous.run()

    error = refused.value
    assert error.status == 401
    assert str(error) == (
        f"POST negotiate refused with HTTP 401: the bearer token from {wrong} "
        "was not accepted (expired?): renew it"
    )
    formatted = "".join(traceback.format_exception(error))
    assert not any(TOKEN in text for text in (formatted, repr(error), caplog.text))
    assert "configure token_file or token_env" in str(missing.value)
    # OPTIONS' status is ignored (its cookie taken, if any); the POST's refusal ends it.
    assert [(h.method, h.status) for h in hub.http] == [("OPTIONS", 401), ("POST", 401)] * 2


def test_token_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "token"
    file.write_text(f"Bearer {TOKEN}\n")
    token = load_token(SignalRSettings(token_file=file))
    assert token is not None
    assert token.reveal() == TOKEN
    assert token.scrub(f"x {TOKEN} y") == "x <redacted> y"
    assert load_token(SignalRSettings()) is None
    with pytest.raises(TokenError, match="no such file"):
        load_token(SignalRSettings(token_file=tmp_path / "missing"))
    monkeypatch.delenv(VARIABLE, raising=False)
    with pytest.raises(TokenError, match=r"F1_TEST_TOKEN .* is not set"):
        load_token(SignalRSettings(token_env=VARIABLE))
    monkeypatch.setenv(VARIABLE, f"{TOKEN}\nX-Injected: 1")
    with pytest.raises(TokenError, match="characters an HTTP header cannot carry") as bad:
        load_token(SignalRSettings(token_env=VARIABLE))
    assert TOKEN not in str(bad.value)
    with pytest.raises(ValueError, match="not both"):
        SignalRSettings(token_file=file, token_env=VARIABLE)


def test_websocket_url_quotes_the_connection_token() -> None:
    base = "https://livetiming.formula1.com/signalrcore"
    assert websocket_url(base, "a+b/c=") == (
        "wss://livetiming.formula1.com/signalrcore?id=a%2Bb%2Fc%3D"
    )
