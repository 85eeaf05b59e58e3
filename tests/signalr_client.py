"""The live client's test kit: the capture the local hub replays, settings, and ways to
run a `LiveClient` and read what it handed on (`tests.signalr_server` is the hub)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from f1daemon.actors.backoff import Backoff
from f1daemon.domain.events import MessageReceived, RecordQuarantined
from f1daemon.sources.signalr import (
    RECORD_SEPARATOR,
    Connector,
    LiveClient,
    LiveItem,
    SignalRSettings,
)

FP2 = Path("f1dash-signalr-2023_Monaco") / "fp2.txt"
SESSION = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"
RS = RECORD_SEPARATOR
# A test token, distinctive: a leak is easy to find.
TOKEN = "tok-7Hq2ZsecretXYZ-not-for-logs"  # noqa: S105

VARIABLE = "F1_TEST_TOKEN"
FAST = Backoff(initial=0.01, factor=2.0, cap=0.05, jitter=0.5)


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


async def discard(item: LiveItem) -> None:
    """A ``send`` that keeps nothing."""
    await trio.lowlevel.checkpoint()
