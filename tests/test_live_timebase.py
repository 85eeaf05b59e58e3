"""The live time base follows the feed's own stamps: a reconnect after a 60 s outage
derives the laps at the same UTC as an uninterrupted run.

The 2023 Monaco FP2 capture is sent by the local SignalR Core server at the pace of
its stamps (on trio's virtual clock), through the real client, the daemon's session
placer and the pipeline; receipt times follow the same virtual clock, so the outage
is an outage for them too.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing

from f1daemon.actors.backoff import Backoff
from f1daemon.daemon.live import UNKEYED, SessionPlacer
from f1daemon.domain.events import (
    Fact,
    LapCompleted,
    MessageReceived,
    TimeBaseEstablished,
)
from f1daemon.feed.messages import FeedMessage
from f1daemon.projections.current import current_data
from f1daemon.projections.fold import SessionFold
from f1daemon.sources.recording import Recording, read_recording
from f1daemon.sources.signalr import ConnectionGap as LiveGap
from f1daemon.sources.signalr import LiveClient, LiveItem, SignalRSettings
from tests.signalr_client import FP2, SESSION, topics_of
from tests.signalr_server import Faults, Interruption, ReplayHub

# Our clock at the test's start (virtual time 0): a day after the session, as if the
# capture were live now; the feed's stamps are the capture's.
WALL_AT_ZERO = datetime(2023, 5, 27, 15, 0, tzinfo=UTC)
OUTAGE_S = 60.0
DROP_AFTER = 600  # feed frames: about two minutes into the capture


@pytest.fixture(scope="module")
def fp2(testdata: Path) -> Recording:
    return read_recording(testdata / FP2)


def virtual_utc() -> datetime:
    return WALL_AT_ZERO + timedelta(seconds=trio.current_time())


async def live_run(hub: ReplayHub, topics: Sequence[str]) -> tuple[list[Fact], list[LiveGap]]:
    """The facts the daemon would log from a live run against `hub`, and its gaps."""
    placer = SessionPlacer("live", None, _no_origin)
    facts: list[Fact] = []
    gaps: list[LiveGap] = []

    async def send(item: LiveItem) -> None:
        if isinstance(item, LiveGap):
            gaps.append(item)
        else:
            facts.extend(await placer.place(item))

    settings = SignalRSettings(
        url="http://hub.invalid/x",
        topics=tuple(topics),
        backoff=Backoff(initial=1.0, factor=2.0, cap=8.0, jitter=0),
    )
    async with trio.open_nursery() as nursery:
        client = LiveClient(
            settings,
            UNKEYED,
            send,
            connect=hub.memory_connector(nursery),
            rng=random.Random(7),
            utc_clock=virtual_utc,
        )
        nursery.start_soon(client.run)
        while hub.position < len(hub.feed_frames):  # noqa: ASYNC110 - virtual time
            await trio.sleep(1)
        await trio.sleep(1)  # the last frames through the client
        nursery.cancel_scope.cancel()
    facts.extend(await placer.flush())
    return facts, gaps


async def _no_origin(session: str) -> datetime | None:
    await trio.lowlevel.checkpoint()
    return None


def derived_laps(facts: Sequence[FeedMessage | Fact]) -> dict[tuple[int, int], LapCompleted]:
    fold = SessionFold(SESSION)
    events = [e for i, fact in enumerate(facts, 1) for e in fold.feed(i, fact)]
    events += fold.finish()
    return {(e.driver, e.lap): e for e in current_data(events) if isinstance(e, LapCompleted)}


def t0(facts: Sequence[Fact]) -> datetime | None:
    fold = SessionFold(SESSION)
    events = [e for i, fact in enumerate(facts, 1) for e in fold.feed(i, fact)]
    bases = [e.t0_utc for e in events if isinstance(e, TimeBaseEstablished)]
    return bases[-1] if bases else None


async def test_a_reconnect_after_a_60_s_outage_keeps_the_laps_utc(
    fp2: Recording, autojump_clock: trio.testing.MockClock
) -> None:
    expected = [f for f in fp2.facts(SESSION) if isinstance(f, MessageReceived)]
    topics = topics_of(expected)
    steady, no_gaps = await live_run(
        ReplayHub.from_recording(fp2, Faults(paced=True, current_snapshot=True)), topics
    )
    broken_hub = ReplayHub.from_recording(
        fp2,
        Faults(
            paced=True,
            current_snapshot=True,
            interruptions=(Interruption(DROP_AFTER, outage_s=OUTAGE_S),),
        ),
    )
    broken, (gap,) = await live_run(broken_hub, topics)

    assert not no_gaps
    assert gap.seconds >= OUTAGE_S  # a real outage, on the receipt clock too
    assert {f.session for f in steady} == {f.session for f in broken} == {SESSION}
    # The time base is the feed's: the capture's own (a direct ingest's), not our clock.
    direct = derived_laps(expected)
    assert t0(steady) == t0(broken) == t0(expected)
    steady_laps, broken_laps = derived_laps(steady), derived_laps(broken)

    # Laps that ended inside the outage cannot be timed by the broken run; every other
    # lap both runs have is at the same UTC (within 1 s), and at the capture's.
    received = [f for f in broken if isinstance(f, MessageReceived)]
    lost = range(
        max(f.offset_ms or 0 for f in received if f.stream == gap.previous_stream),
        min(f.offset_ms or 0 for f in received if f.stream == gap.stream and not f.keyframe),
    )
    assert lost.stop - lost.start >= OUTAGE_S * 1000 - 1000
    compared = 0
    for key, lap in broken_laps.items():
        if key not in steady_laps or lap.session_time_ms in lost:
            continue
        assert lap.utc is not None
        reference = steady_laps[key].utc
        assert reference is not None
        assert abs((lap.utc - reference).total_seconds()) <= 1.0, key
        assert direct[key].utc == reference
        compared += 1
    after = [lap for lap in broken_laps.values() if lap.session_time_ms >= lost.stop]
    assert compared >= 40
    assert len(after) >= 20  # laps after the reconnect were compared too
    # ... and the reconnect's snapshot sits where the feed was when it was taken.
    snapshot = [f for f in received if f.stream == gap.stream and f.keyframe]
    assert snapshot
    assert all(f.offset_ms is not None and f.offset_ms >= lost.stop - 2000 for f in snapshot)
