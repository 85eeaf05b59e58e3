"""The one writer of the event log: a trio actor that appends facts in batches.

Sources hand facts to the writer through its bounded mailbox and wait for the
acknowledgement. The writer takes every request waiting (up to a batch), appends
them in one call on a worker thread — the blocking store never stalls the trio
loop — and acknowledges each request only after its facts are committed. When the
store fails (a full disk, PostgreSQL gone) the writer keeps the batch, reports the
error, and retries with backoff; meanwhile its mailbox fills and senders wait: the
back-pressure reaches the sources, and nothing acknowledged is ever lost. Appends
are idempotent, so a retry after a commit whose reply was lost adds nothing twice.

A store can also fail by not answering: a server that went away may hold an append
for as long as its client library keeps trying. An append unanswered for
`stall_after` seconds makes the writer unhealthy at once, with a `StoreNotAnswering`
error, while the append goes on (a thread cannot be interrupted, and a second
append beside it would only queue behind it); its answer settles the health.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import trio

from f1daemon.actors.backoff import Backoff
from f1daemon.domain.events import Fact
from f1daemon.store.eventlog import EventLog

RETRY_INITIAL_S = 1.0
RETRY_CAP_S = 30.0
# A batch of 5000 facts commits in about 0.2 s on PostgreSQL and 0.05 s on SQLite:
# an append still unanswered after 3 s is a store in trouble, not a slow batch.
STALL_AFTER_S = 3.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Request:
    facts: Sequence[Fact]
    done: trio.Event = field(default_factory=trio.Event)


@dataclass
class WriterHealth:
    """What an operator sees of the writer."""

    batches: int = 0
    facts: int = 0
    failures: int = 0  # appends the store refused (each retried)
    stalls: int = 0  # appends the store left unanswered for `stall_after`
    last_error: str | None = None
    since: datetime = field(default_factory=_now)  # when `healthy` last changed
    last_success_at: datetime | None = None  # the last commit

    @property
    def healthy(self) -> bool:
        """False while the store refuses appends or leaves one unanswered."""
        return self.last_error is None


class StoreWriter:
    """Owns the event log's appends; `append()` returns once the facts are durable.

    `on_health_change` is called (on the trio thread, and must not raise) whenever the
    health's `healthy` or `last_error` changes. `stall_after` is measured on trio's
    clock: tests on a mock clock that jumps while a thread works pass `math.inf`.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        mailbox_size: int = 256,
        max_batch: int = 5_000,
        retry_initial: float = RETRY_INITIAL_S,
        retry_cap: float = RETRY_CAP_S,
        stall_after: float = STALL_AFTER_S,
        on_health_change: Callable[[WriterHealth], None] | None = None,
    ) -> None:
        if not 0 < retry_initial <= retry_cap or stall_after <= 0:
            raise ValueError("need 0 < retry_initial <= retry_cap and stall_after > 0")
        self._log = log
        self._max_batch = max_batch
        self._retry = Backoff(initial=retry_initial, cap=retry_cap, jitter=0)
        self._stall_after = stall_after
        self._on_health_change = on_health_change
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
                except (trio.WouldBlock, trio.EndOfChannel):  # none waiting, or closed
                    break
                batch.append(request)
                size += len(request.facts)
            await self._append_until_committed(batch)
            for request in batch:
                request.done.set()

    async def _append_until_committed(self, batch: list[_Request]) -> None:
        facts = [fact for request in batch for fact in request.facts]
        delays = self._retry.start()
        while True:
            error = await self._attempt(facts)
            if error is None:
                self.health.batches += 1
                self.health.facts += len(facts)
                self.health.last_success_at = _now()
                self._report(None)
                return
            self.health.failures += 1
            self._report(f"{type(error).__name__}: {error}")
            await trio.sleep(delays.next_delay(0.0))

    async def _attempt(self, facts: list[Fact]) -> Exception | None:
        """One append on a worker thread, watched for a stall; the error it raised."""
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_for_stall, len(facts))
            try:
                await trio.to_thread.run_sync(self._log.append_facts, facts)
            except Exception as raised:
                error = raised
            nursery.cancel_scope.cancel()
        return error

    async def _watch_for_stall(self, count: int) -> None:
        await trio.sleep(self._stall_after)
        self.health.stalls += 1
        # A refusal already reported says more than a silence: keep it.
        if self.health.healthy:
            self._report(
                f"StoreNotAnswering: an append of {count} facts has had no answer"
                f" for {self._stall_after:g} s"
            )

    def _report(self, error: str | None) -> None:
        was_healthy, previous = self.health.healthy, self.health.last_error
        self.health.last_error = error
        if self.health.healthy != was_healthy:
            self.health.since = _now()
        if error != previous and self._on_health_change is not None:
            self._on_health_change(self.health)
