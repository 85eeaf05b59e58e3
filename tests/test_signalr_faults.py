"""The live client against the local SignalR Core server (`tests.signalr_server`)
replaying the 2023 Monaco FP2 capture, with the faults of issue 14: an odd topic in
the snapshot, refusals of the token, short-lived connections. Real sockets where HTTP
matters, in-memory ones on trio's virtual clock (`autojump_clock`) where time does."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest
import trio

from f1daemon.actors.backoff import Backoff
from f1daemon.domain.events import MessageReceived, RecordQuarantined
from f1daemon.sources.recording import Recording, read_recording
from f1daemon.sources.signalr import (
    ClientProtocol,
    Garbage,
    HandshakeDone,
    SignalRSettings,
    Snapshot,
)
from tests.signalr_server import Faults, Interruption, ReplayHub
from tests.test_signalr import FP2, RS, SESSION, messages, received_all, run_client, topics_of


@pytest.fixture(scope="module")
def fp2(testdata: Path) -> Recording:
    return read_recording(testdata / FP2)


@pytest.fixture(scope="module")
def expected(fp2: Recording) -> list[MessageReceived]:
    return [f for f in fp2.facts(SESSION) if isinstance(f, MessageReceived)]


# -- one odd topic in the snapshot: that topic quarantined, every other kept ------------------


def test_a_snapshot_topic_that_cannot_be_read_is_rejected_alone() -> None:
    protocol = ClientProtocol(["TopThree", "CarData.z", "TrackStatus"])
    assert protocol.receive("{}" + RS) == [HandshakeDone()]
    result = {"TopThree": None, "CarData.z": "", "TrackStatus": {"Status": "1"}}
    reply = orjson.dumps({"type": 3, "invocationId": "1", "result": result}).decode()
    (snapshot,) = protocol.receive(reply + RS)
    assert isinstance(snapshot, Snapshot)
    assert [(m.topic, m.payload, m.keyframe) for m in snapshot.messages] == [
        ("TrackStatus", '{"Status":"1"}', True)
    ]
    assert snapshot.rejected == (
        Garbage(
            "framing.type",
            "result['TopThree']: TopThree data must be an object, got null",
            "TopThree",
            '{"TopThree":null}',
        ),
        Garbage(
            "framing.encoding",
            "result['CarData.z']: CarData.z data is an empty string, not base64",
            "CarData.z",
            '{"CarData.z":""}',
        ),
    )


async def test_an_odd_topic_in_the_snapshot_loses_no_other_keyframe(
    fp2: Recording, expected: list[MessageReceived], autojump_clock: trio.testing.MockClock
) -> None:
    hub = ReplayHub.from_recording(fp2)
    good = dict(hub.snapshot)
    hub.snapshot.update({"TopThree": None, "CarData.z": ""})
    feed = [f for f in expected if not f.keyframe]
    settings = SignalRSettings(
        url="http://hub.invalid/x", topics=(*topics_of(expected), "TopThree")
    )
    async with trio.open_nursery() as nursery:
        connect = hub.memory_connector(nursery)
        items, client = await run_client(settings, received_all(len(feed)), connect=connect)
        nursery.cancel_scope.cancel()

    keyframes = {f.topic: orjson.loads(f.payload) for f in messages(items) if f.keyframe}
    del good["CarData.z"], good["TopThree"]  # the odd ones
    assert keyframes == good  # every other topic's keyframe, as the server sent it
    quarantined = [i for i in items if isinstance(i, RecordQuarantined)]
    assert [(q.topic, q.rule, q.payload) for q in quarantined] == [
        ("CarData.z", "framing.encoding", '{"CarData.z":""}'),
        ("TopThree", "framing.type", '{"TopThree":null}'),
    ]
    assert client.quarantined == 2
    # ... and the feed that follows, whole.
    assert [(f.topic, f.payload) for f in messages(items) if not f.keyframe] == [
        (f.topic, f.payload) for f in feed
    ]


# -- backoff: reset by a connection that delivered data ---------------------------------------


async def test_backoff_resets_after_a_connection_that_delivered_data(
    fp2: Recording, expected: list[MessageReceived], autojump_clock: trio.testing.MockClock
) -> None:
    # Two refused attempts (the wait grows), then six connections that each deliver the
    # snapshot and 20 frames and drop within a second (each wait back at the start).
    hub = ReplayHub.from_recording(
        fp2, Faults(refuse_first=2, interruptions=(Interruption(20),) * 6)
    )
    policy = Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=0)
    settings = SignalRSettings(
        url="http://hub.invalid/x", topics=topics_of(expected), backoff=policy
    )
    async with trio.open_nursery() as nursery:
        connect = hub.memory_connector(nursery)
        await run_client(settings, received_all(7 * 20), connect=connect, limit_s=300)
        nursery.cancel_scope.cancel()

    waits = [round(b - a, 3) for a, b in itertools.pairwise(hub.attempt_times)]
    # (before: 1, 2, 4, 8, 16, 32, 60, 60 — each short connection grew the wait)
    assert waits == [1.0, 2.0] + [1.0] * 6
