"""The live client against the local SignalR Core server (`tests.signalr_server`)
replaying the 2023 Monaco FP2 capture, with the faults of issue 14: an odd topic in
the snapshot, refusals of the token, short-lived connections. Real sockets where HTTP
matters, in-memory ones on trio's virtual clock (`autojump_clock`) where time does."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Literal

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
    LiveClient,
    LiveItem,
    SignalRAuthError,
    SignalRSettings,
    Snapshot,
)
from tests.signalr_client import (
    FAST,
    FP2,
    RS,
    SESSION,
    TOKEN,
    VARIABLE,
    messages,
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
    return [f for f in fp2.facts(SESSION) if isinstance(f, MessageReceived)]


# -- one odd topic in the snapshot: that topic quarantined, every other kept ------------------


def test_a_snapshot_topic_that_cannot_be_read_is_rejected_alone() -> None:
    protocol = ClientProtocol(["TopThree", "CarData.z", "TrackStatus"])
    assert protocol.receive("{}" + RS) == [HandshakeDone()]
    protocol.subscribe()
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


# -- negotiate and the token ------------------------------------------------------------------


async def test_an_options_negotiate_refusal_is_ignored_like_the_public_clients(
    fp2: Recording, expected: list[MessageReceived]
) -> None:
    # A load balancer that does not route OPTIONS (405) but sets its cookie all the same.
    hub = ReplayHub.from_recording(fp2, Faults(options_status=405))
    feed = [f for f in expected if not f.keyframe]
    async with serve_signalr(hub) as url:
        settings = SignalRSettings(url=url, topics=topics_of(expected), backoff=FAST)
        items, client = await run_client(settings, received_all(len(feed)))

    assert [(h.method, h.status) for h in hub.http] == [
        ("OPTIONS", 405),
        ("POST", 200),
        ("GET", 101),
    ]
    assert client.connections == 1
    assert [(f.topic, f.payload) for f in messages(items) if not f.keyframe] == [
        (f.topic, f.payload) for f in feed
    ]


@pytest.mark.parametrize(
    ("refused_in", "where", "said"),
    [
        ("handshake", "the handshake", "Unauthorized: the access token has expired"),
        (
            "close",
            "a close message",
            "Connection closed with an error. HubException: Unauthorized",
        ),
    ],
)
async def test_a_token_refused_in_the_protocol_is_an_auth_failure(
    fp2: Recording,
    expected: list[MessageReceived],
    *,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
    refused_in: Literal["handshake", "close"],
    where: str,
    said: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(VARIABLE, TOKEN + "-expired")
    hub = ReplayHub.from_recording(fp2, Faults(require_token=TOKEN, auth_check=refused_in))
    settings = SignalRSettings(
        url="http://hub.invalid/x", topics=topics_of(expected), token_env=VARIABLE
    )
    async with trio.open_nursery() as nursery:
        client = LiveClient(settings, SESSION, _discard, connect=hub.memory_connector(nursery))
        with trio.fail_after(60), pytest.raises(SignalRAuthError) as refused:
            await client.run()
        nursery.cancel_scope.cancel()

    assert hub.attempts == 1  # recognised at once: not reconnected
    assert refused.value.status is None
    assert str(refused.value) == (
        f"the server refused the token in {where} ({said}): the bearer token from "
        f"${VARIABLE} was not accepted (expired?): renew it"
    )
    assert TOKEN not in caplog.text


async def _discard(item: LiveItem) -> None:
    await trio.lowlevel.checkpoint()
