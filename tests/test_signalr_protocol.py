"""The live client's protocol (sans-IO): one outcome per frame, never raising; garbage
quarantined whole (its exact bytes when they are not UTF-8), the feed going on."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from f1daemon.domain.events import MessageReceived, RecordQuarantined
from f1daemon.sources.recording import Recording, read_recording
from f1daemon.sources.signalr import (
    ClientProtocol,
    CloseReceived,
    Feed,
    Garbage,
    HandshakeDone,
    HandshakeFailed,
    PingReceived,
    SignalRSettings,
    Snapshot,
    SubscribeFailed,
)
from tests.signalr_client import (
    FP2,
    RS,
    SESSION,
    check_streams,
    messages,
    received_all,
    run_client,
    topics_of,
)
from tests.signalr_server import Faults, ReplayHub, serve_signalr


@pytest.fixture(scope="module")
def fp2(testdata: Path) -> Recording:
    return read_recording(testdata / FP2)


@pytest.fixture(scope="module")
def expected(fp2: Recording) -> list[MessageReceived]:
    facts = list(fp2.facts(SESSION))
    assert all(isinstance(f, MessageReceived) for f in facts)  # fp2 has no damaged line
    return [f for f in facts if isinstance(f, MessageReceived)]


# -- garbage is quarantined, never fatal --------------------------------------------------

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
    assert binary == Garbage(
        "framing.encoding",
        "not UTF-8: invalid start byte at byte 1; the frame's exact bytes are kept in "
        "payload_base64",
        None,
        "\ufffd\ufffd",
        base64.b64encode(b"\xff\xfe").decode(),
    )
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


# A race control message whose text came out of the feed's encoder broken: a lone
# continuation byte and an invalid one, in a frame that is otherwise whole.
BROKEN_FRAME = (
    b'{"type":1,"target":"feed","arguments":["RaceControlMessages",{"Messages":{"7":'
    b'{"Utc":"2023-05-26T12:40:00","Category":"Other","Message":"CAR 1 (VER) \xa9\xff'
    b' NOTED"}}},"2023-05-26T12:40:00.123Z"]}'
)
BROKEN_REASON = (
    "not UTF-8: invalid start byte at byte {}; the frame's exact bytes are kept in payload_base64"
)


def test_a_binary_frame_that_is_not_utf8_keeps_its_bytes_and_its_neighbours_are_read() -> None:
    protocol = ClientProtocol(["RaceControlMessages"])
    assert [type(o) for o in protocol.receive("{}" + RS)] == [HandshakeDone]
    feed = '{"type":1,"target":"feed","arguments":["TimingData",{"A":"é"},"2023-05-26T12:00:00Z"]}'
    # One binary message: a feed frame, the broken frame, a ping and half a feed frame
    # whose "é" is cut between its two bytes; the next message completes it.
    raw = feed.encode()
    cut = raw.index(b"\xa9")
    first = raw + RS.encode() + BROKEN_FRAME + RS.encode() + b'{"type":6}' + RS.encode()
    outcomes = protocol.receive(first + raw[:cut])
    assert [type(o) for o in outcomes] == [Feed, Garbage, PingReceived]
    garbage = outcomes[1]
    assert isinstance(garbage, Garbage)
    assert base64.b64decode(garbage.payload_base64 or "") == BROKEN_FRAME  # to the byte
    assert garbage.rule == "framing.encoding"
    assert garbage.reason == BROKEN_REASON.format(BROKEN_FRAME.index(b"\xa9") + 1)
    assert garbage.topic == "RaceControlMessages"
    assert garbage.text == BROKEN_FRAME.decode("utf-8", "replace")
    (rest,) = protocol.receive(raw[cut:] + RS.encode())
    assert isinstance(rest, Feed)  # the straddling character joined: UTF-8 after all
    assert rest.message.payload == '{"A":"é"}'
    # Bytes left in a frame the connection cut short are kept too.
    assert protocol.receive(BROKEN_FRAME[:-10]) == []
    (truncated,) = protocol.end()
    assert isinstance(truncated, Garbage)
    assert base64.b64decode(truncated.payload_base64 or "") == BROKEN_FRAME[:-10]
    assert truncated.reason.startswith("truncated: the connection ended inside a frame")
    assert "the frame's exact bytes are kept in payload_base64" in truncated.reason


async def test_a_frame_that_is_not_utf8_from_the_hub_is_quarantined_with_its_bytes(
    fp2: Recording, expected: list[MessageReceived]
) -> None:
    # Over real sockets: the hub sends the broken frame in a binary websocket message.
    hub = ReplayHub.from_recording(fp2, Faults(garbage={25: (BROKEN_FRAME + RS.encode(),)}))
    feed = [f for f in expected if not f.keyframe]
    async with serve_signalr(hub) as url:
        settings = SignalRSettings(url=url, topics=topics_of(expected), watchdog_s=10)
        items, client = await run_client(settings, received_all(len(feed)))

    (quarantined,) = [i for i in items if isinstance(i, RecordQuarantined)]
    assert quarantined.payload_base64 is not None
    assert base64.b64decode(quarantined.payload_base64) == BROKEN_FRAME
    assert quarantined.payload == BROKEN_FRAME.decode("utf-8", "replace")
    assert quarantined.reason == BROKEN_REASON.format(BROKEN_FRAME.index(b"\xa9") + 1)
    assert (quarantined.rule, quarantined.topic) == ("framing.encoding", "RaceControlMessages")
    # It took its place in the stream (after feed message 25); the feed is whole.
    check_streams(items)
    assert items.index(quarantined) == 14 + 25  # the snapshot's 14 topics, 25 messages
    assert [(f.topic, f.payload) for f in messages(items) if not f.keyframe] == [
        (f.topic, f.payload) for f in feed
    ]
    assert client.connections == 1


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


def exact(text: str) -> bytes:
    """The bytes a frame was received as (a binary message's are surrogate-escaped)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def kept(outcome: Garbage | HandshakeFailed) -> bytes:
    """The bytes a quarantined frame keeps: its text's, or in base64 if not UTF-8."""
    if outcome.payload_base64 is not None:
        assert "the frame's exact bytes are kept in payload_base64" in outcome.reason
        return base64.b64decode(outcome.payload_base64)
    return exact(outcome.text)


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
        # A binary message's bytes that are not UTF-8 stay in the frames they belong to.
        chunk_text = chunk.decode("utf-8", "surrogateescape") if isinstance(chunk, bytes) else chunk
        # One outcome per complete frame, plus one for an incomplete frame grown too long.
        *frames, rest = (pending + chunk_text).split(RS)
        overflow = len(rest) > limit
        assert len(got) == len(frames) + overflow
        too_long = [g for g in got if isinstance(g, Garbage) and "longer than" in g.reason]
        assert len(too_long) == sum(len(f) > limit for f in frames) + overflow
        for frame, result in zip(frames, got, strict=False):
            if isinstance(result, Garbage | HandshakeFailed):
                assert kept(result) == exact(frame)  # kept whole, as received
        pending = "" if overflow else rest
    ended = protocol.end()
    assert [kept(g) for g in ended if isinstance(g, Garbage)] == (
        [exact(pending)] if pending else []
    )
    for outcome in [*outcomes, *ended]:
        if isinstance(outcome, Garbage | HandshakeFailed):
            assert outcome.rule.startswith("framing.")
            assert outcome.reason
