"""The daemon's state lane: its own events (source states, lifecycles, tags, registrations,
derivation runs) written one at a time, apart from the facts the `StoreWriter` batches.

A call on the lane runs on a worker thread under a lock, so the daemon's writes never
race each other. Events that need no answer are queued and written in the background
by `run`, which retries with backoff while the store refuses them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import trio

from f1daemon.actors import Backoff
from f1daemon.domain.events import Event
from f1daemon.metrics import Metrics
from f1daemon.store.eventlog import EventLog

log = logging.getLogger("f1daemon.daemon")

T = TypeVar("T")
RETRY = Backoff(initial=0.5, cap=30.0, jitter=0)


class StateLane:
    """Runs the daemon's own reads and writes of the log, one at a time."""

    def __init__(self, event_log: Callable[[], EventLog], metrics: Metrics) -> None:
        self._event_log = event_log  # the log, once the daemon has opened it
        self._metrics = metrics
        self._pending: list[tuple[str, Event]] = []
        self._wakeup = trio.Event()
        self._call_lock = trio.Lock()
        self._pending_lock = trio.Lock()

    async def call(self, call: Callable[[EventLog], T]) -> T:
        """Run `call(log)` on a worker thread, one at a time (the daemon's own writes)."""
        event_log = self._event_log()
        async with self._call_lock:
            return await trio.to_thread.run_sync(call, event_log)

    def queue(self, stream: str, event: Event) -> None:
        """Record `event` in `stream` soon, in the order queued."""
        self._pending.append((stream, event))
        self._wakeup.set()

    async def run(self) -> None:
        """Write queued events as they come, retrying while the store refuses them."""
        delays = RETRY.start()
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            try:
                await self.flush()
                delays.reset()
            except Exception as error:
                self._metrics.errors.labels("state-lane", type(error).__name__).inc()
                log.warning("recording state events failed: %s; retrying", error)
                await trio.sleep(delays.next_delay(0.0))
                self._wakeup.set()

    async def flush(self) -> None:
        """Write every queued event now."""
        # One writer of the queue at a time (the recorder task, or the drain): two would
        # both write the batch the other has not yet removed.
        async with self._pending_lock:
            while self._pending:
                batch = list(self._pending)
                by_stream: dict[str, list[Event]] = {}
                for stream, event in batch:
                    by_stream.setdefault(stream, []).append(event)

                def write(event_log: EventLog, groups: dict[str, list[Event]] = by_stream) -> None:
                    for stream, events in groups.items():
                        event_log.record_events(stream, events)

                await self.call(write)
                del self._pending[: len(batch)]
