"""The one writer of the event log: a trio actor that appends facts in batches.

Sources hand facts to the writer through its bounded mailbox and wait for the
acknowledgement. The writer takes every request waiting (up to a batch), appends
them in one call on a worker thread — the blocking store never stalls the trio
loop — and acknowledges each request only after its facts are committed. When the
store fails (a full disk, PostgreSQL gone) the writer keeps the batch, reports the
error, and retries with backoff; meanwhile its mailbox fills and senders wait: the
back-pressure reaches the sources, and nothing acknowledged is ever lost. Appends
are idempotent, so a retry after a commit whose reply was lost adds nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from f1daemon.domain.events import Fact
from f1daemon.store.eventlog import EventLog

RETRY_INITIAL_S = 1.0
RETRY_CAP_S = 30.0


@dataclass
class _Request:
    facts: Sequence[Fact]
    done: trio.Event = field(default_factory=trio.Event)


@dataclass
class WriterHealth:
    """What an operator sees of the writer."""

    batches: int = 0
    facts: int = 0
    failures: int = 0
    last_error: str | None = None

    @property
    def healthy(self) -> bool:
        """False while the store refuses appends (the last attempt failed)."""
        return self.last_error is None


class StoreWriter:
    """Owns the event log's appends; `append()` returns once the facts are durable."""

    def __init__(self, log: EventLog, *, mailbox_size: int = 256, max_batch: int = 5_000) -> None:
        self._log = log
        self._max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[_Request](mailbox_size)
        self.health = WriterHealth()

    async def append(self, facts: Sequence[Fact]) -> None:
        """Hand facts to the writer; return when they are committed (waits while full)."""
        request = _Request(facts)
        await self._send.send(request)
        await request.done.wait()

    async def close(self) -> None:
        """No more requests: the writer commits what is waiting, then `run()` returns."""
        await self._send.aclose()

    def mailbox_depth(self) -> int:
        """Requests waiting in the mailbox."""
        return self._receive.statistics().current_buffer_used

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer's loop: batch, append on a worker thread, acknowledge, repeat."""
        task_status.started()
        async for first in self._receive:
            batch = [first]
            size = len(first.facts)
            while size < self._max_batch:
                try:
                    request = self._receive.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(request)
                size += len(request.facts)
            await self._append_until_committed(batch)
            for request in batch:
                request.done.set()

    async def _append_until_committed(self, batch: list[_Request]) -> None:
        facts = [fact for request in batch for fact in request.facts]
        delay = RETRY_INITIAL_S
        while True:
            try:
                await trio.to_thread.run_sync(self._log.append_facts, facts)
            except Exception as error:
                self.health.failures += 1
                self.health.last_error = f"{type(error).__name__}: {error}"
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_CAP_S)
                continue
            self.health.last_error = None
            self.health.batches += 1
            self.health.facts += len(facts)
            return
