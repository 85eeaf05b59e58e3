"""The single writer: batches, acknowledgement after commit, retries, back-pressure."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from f1daemon.domain.events import Fact, MessageReceived
from f1daemon.store.eventlog import AppendResult, EventLog
from f1daemon.store.url import parse_store_url
from f1daemon.store.writer import StoreWriter, WriterHealth

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


async def test_closing_commits_the_requests_still_in_the_mailbox(tmp_path: Path) -> None:
    log = CountingLog(f"sqlite:///{tmp_path / 'events.db'}")
    writer = StoreWriter(log)
    async with trio.open_nursery() as nursery:
        for sequence in (1, 2, 3):
            nursery.start_soon(writer.append, [fact("a", sequence)])
        await trio.testing.wait_all_tasks_blocked()  # all three wait in the mailbox
        await writer.close()
        # The writer starts after the close: it takes the three (the channel closed
        # behind them) in one batch, commits them, and returns.
        await writer.run()
    assert sorted(f.sequence for _, f in log.facts(SESSION)) == [1, 2, 3]
    assert (log.calls, writer.health.batches) == (1, 1)
    log.close()


async def test_a_failing_store_is_retried_with_backoff_and_nothing_is_lost(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    log = CountingLog(f"sqlite:///{tmp_path / 'events.db'}", failures=3)
    # (The mock clock jumps while the store works on its thread: no stall watch.)
    writer = StoreWriter(log, stall_after=math.inf)
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
    writer = StoreWriter(log, mailbox_size=1, max_batch=1, stall_after=math.inf)
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


async def test_the_backoff_is_configurable_and_each_change_of_health_is_reported(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    log = CountingLog(f"sqlite:///{tmp_path / 'events.db'}", failures=4)
    changes: list[str | None] = []
    writer = StoreWriter(
        log,
        retry_initial=0.5,
        retry_cap=1.0,
        stall_after=math.inf,
        on_health_change=lambda health: changes.append(health.last_error),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        start = trio.current_time()
        await writer.append([fact("a", 1)])
        # Waits of 0.5 s, then 1 s capped (not 2 and 4): acknowledged 3.5 s in.
        assert trio.current_time() - start == pytest.approx(3.5)
        await writer.close()
    # Four refusals with the same error are one change; the commit is the other.
    assert changes == ["OSError: [Errno 28] No space left on device", None]
    assert writer.health.failures == 4
    assert writer.health.last_success_at is not None
    log.close()


class HeldLog(EventLog):
    """The real log, whose appends wait until the test lets them through."""

    def __init__(self, url: str) -> None:
        super().__init__(parse_store_url(url))
        self.let_through = threading.Event()

    def append_facts(self, facts: Sequence[Fact]) -> AppendResult:  # type: ignore[override]
        self.let_through.wait(timeout=30)
        return super().append_facts(facts)


async def test_an_append_left_unanswered_makes_the_writer_unhealthy_until_it_commits(
    tmp_path: Path,
) -> None:
    log = HeldLog(f"sqlite:///{tmp_path / 'events.db'}")
    reports: list[tuple[bool, str | None]] = []

    def report(health: WriterHealth) -> None:
        reports.append((health.healthy, health.last_error))

    writer = StoreWriter(log, stall_after=0.2, on_health_change=report)
    healthy_since = writer.health.since
    acknowledged = trio.Event()

    async def source() -> None:
        await writer.append([fact("a", 1), fact("a", 2)])
        acknowledged.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            nursery.start_soon(source)
            while writer.health.healthy:  # noqa: ASYNC110  (the watch runs on trio's clock)
                await trio.sleep(0.05)
            # No error came back, yet the store is reported as not answering.
            stalled = "StoreNotAnswering: an append of 2 facts has had no answer for 0.2 s"
            assert writer.health.last_error == stalled
            assert (writer.health.stalls, writer.health.failures) == (1, 0)
            assert writer.health.since > healthy_since
            assert not acknowledged.is_set()
            unhealthy_since = writer.health.since
            log.let_through.set()
            await acknowledged.wait()
            await writer.close()
    assert writer.health.healthy
    assert writer.health.since > unhealthy_since
    assert reports == [(False, stalled), (True, None)]
    assert [f.sequence for _, f in log.facts(SESSION)] == [1, 2]
    log.close()
