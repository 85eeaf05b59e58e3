"""The single writer: batches, acknowledgement after commit, retries, back-pressure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from f1daemon.domain.events import Fact, MessageReceived
from f1daemon.store.eventlog import AppendResult, EventLog
from f1daemon.store.url import parse_store_url
from f1daemon.store.writer import StoreWriter

SESSION = "2024/Writer_Test"


def fact(stream: str, sequence: int) -> MessageReceived:
    return MessageReceived(
        session=SESSION,
        source="test",
        stream=stream,
        topic="TrackStatus",
        sequence=sequence,
        offset_ms=sequence,
        payload='{"Status": "1"}',
    )


class CountingLog(EventLog):
    """The real log, counting its append calls and failing the first `failures` of them."""

    def __init__(self, url: str, failures: int = 0) -> None:
        super().__init__(parse_store_url(url))
        self.calls = 0
        self.failures = failures

    def append_facts(self, facts: Sequence[Fact]) -> AppendResult:  # type: ignore[override]
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(28, "No space left on device")
        return super().append_facts(facts)


async def test_every_fact_is_committed_once_before_it_is_acknowledged(
    store_url: str,
) -> None:
    log = CountingLog(store_url)
    writer = StoreWriter(log, max_batch=500)
    reader = EventLog(parse_store_url(store_url))

    async def source(stream: str) -> None:
        for start in range(1, 200, 20):
            facts = [fact(stream, n) for n in range(start, start + 20)]
            await writer.append(facts)
            # Acknowledged: durable and visible to any other reader of the log.
            logged = {(f.stream, f.sequence) for _, f in reader.facts(SESSION)}
            assert {(f.stream, f.sequence) for f in facts} <= logged

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        async with trio.open_nursery() as sources:
            for stream in ("a", "b", "c", "d", "e"):
                sources.start_soon(source, stream)
        await writer.close()
    logged = [(f.stream, f.sequence) for _, f in reader.facts(SESSION)]
    assert sorted(logged) == sorted((s, n) for s in "abcde" for n in range(1, 201))
    assert writer.health.facts == len(logged) == 1000
    assert log.calls < 50  # 50 requests, batched into fewer transactions
    reader.close()
    log.close()


async def test_a_failing_store_is_retried_with_backoff_and_nothing_is_lost(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    log = CountingLog(f"sqlite:///{tmp_path / 'events.db'}", failures=3)
    writer = StoreWriter(log)
    acknowledged_at: list[float] = []

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        start = trio.current_time()
        await writer.append([fact("a", 1), fact("a", 2)])
        acknowledged_at.append(trio.current_time() - start)
        assert writer.health.healthy
        await writer.close()
    # Failed at once, then after 1 s and 2 s more; committed after a further 4 s.
    assert acknowledged_at == [pytest.approx(7.0)]
    assert writer.health.failures == 3
    assert [f.sequence for _, f in log.facts(SESSION)] == [1, 2]
    log.close()


async def test_back_pressure_reaches_the_senders_while_the_store_is_down(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    log = CountingLog(f"sqlite:///{tmp_path / 'events.db'}", failures=1_000_000)
    # One fact a batch, one request in the mailbox: the other sources must wait.
    writer = StoreWriter(log, mailbox_size=1, max_batch=1)
    acknowledged: list[int] = []

    async def source(sequence: int) -> None:
        await writer.append([fact("a", sequence)])
        acknowledged.append(sequence)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for sequence in (1, 2, 3, 4):
            nursery.start_soon(source, sequence)
        # (The store runs on a worker thread: wait for its answers, not for a time.)
        while writer.health.failures < 3:  # noqa: ASYNC110  (set on a worker thread)
            await trio.sleep(1)
        # The store refuses: nothing is acknowledged, the health says why, the
        # mailbox is full, and the sources are held back.
        assert not writer.health.healthy
        assert "No space left on device" in (writer.health.last_error or "")
        assert writer.mailbox_depth() == 1
        assert acknowledged == []
        log.failures = 0  # the disk has room again
        while len(acknowledged) < 4:  # noqa: ASYNC110  (the commits are on a worker thread)
            await trio.sleep(1)
        await writer.close()
    assert writer.health.healthy
    assert sorted(f.sequence for _, f in log.facts(SESSION)) == [1, 2, 3, 4]
    log.close()
