"""What the daemon does with the facts a source emits: log them, count them, follow them.

`Intake.emit` is every source's `Emit`: it hands the facts to the `StoreWriter` and
returns once they are durable (the acknowledgement a source waits for), then counts
them in the metrics and tells the `SessionTracker` about them. A source that sheds
telemetry drops it, counted and recorded as `TelemetryShed`, while the store fails or
the writer's mailbox is full.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from f1daemon.config import WriterSettings
from f1daemon.daemon.sessions import SessionTracker
from f1daemon.daemon.source_states import SOURCE_STATES_STREAM
from f1daemon.daemon.sources import SourceRuntime
from f1daemon.daemon.state_lane import StateLane
from f1daemon.domain.events import Fact, MessageReceived, RecordQuarantined, TelemetryShed
from f1daemon.feed.messages import TELEMETRY_TOPICS
from f1daemon.metrics import Metrics
from f1daemon.store.writer import StoreWriter

log = logging.getLogger("f1daemon.daemon")


@dataclass
class _Shedding:
    """Telemetry being shed by one source, until the writer catches up."""

    stream: str
    topic: str
    first: int
    last: int
    count: int = 0


class Intake:
    """The path of a source's facts into the log.

    `writer` gives the daemon's writer (once running), `settings` the current writer
    settings; `sources` are the daemon's source runtimes by name.
    """

    def __init__(
        self,
        *,
        writer: Callable[[], StoreWriter],
        settings: Callable[[], WriterSettings],
        sources: dict[str, SourceRuntime],
        metrics: Metrics,
        lane: StateLane,
        sessions: SessionTracker,
    ) -> None:
        self._writer = writer
        self._settings = settings
        self._sources = sources
        self._metrics = metrics
        self._lane = lane
        self._sessions = sessions
        self._shedding: dict[tuple[str, str, str], _Shedding] = {}

    async def emit(self, runtime: SourceRuntime, facts: Sequence[Fact], arrived: float) -> None:
        """Log a source's facts; returns once they are durable (the acknowledgement)."""
        writer = self._writer()
        await runtime.unpaused.wait()
        to_log = self._shed(runtime, facts, writer)
        runtime.deadline = math.inf  # waiting for the writer is not a stalled source
        if to_log:
            await writer.append(to_log)
        if runtime.settings.shed_telemetry and len(to_log) == len(facts):
            await self.flush_shedding(runtime.name)  # logging everything again: record the gap
        if runtime.persistent_error is not None:
            log.info(
                "source %s works again (it failed with %s)",
                runtime.name,
                runtime.persistent_error,
                extra={"fields": {"source": runtime.name}},
            )
            runtime.persistent_error = None
        now = trio.current_time()
        runtime.position += len(facts)
        self.count(runtime.name, to_log, now - arrived)
        self._sessions.logged(runtime.name, to_log)

    async def flush_shedding(self, source: str | None = None) -> None:
        """Record the telemetry shed so far (by `source`, or by every source)."""
        for key in [k for k in self._shedding if source is None or k[0] == source]:
            shed = self._shedding.pop(key)
            runtime = self._sources.get(key[0])
            log.warning(
                "source %s shed %d %s messages",
                key[0],
                shed.count,
                shed.topic,
                extra={"fields": {"source": key[0], "shed": shed.count, "topic": shed.topic}},
            )
            event = TelemetryShed(
                session=(runtime.session if runtime else None) or "",
                source=key[0],
                stream=shed.stream,
                topic=shed.topic,
                first_sequence=shed.first,
                last_sequence=shed.last,
                count=shed.count,
                at=datetime.now(UTC),
            )
            self._lane.queue(SOURCE_STATES_STREAM, event)

    def _shed(
        self, runtime: SourceRuntime, facts: Sequence[Fact], writer: StoreWriter
    ) -> Sequence[Fact]:
        """Drop telemetry (counted, recorded) while the store fails or the writer's mailbox
        is full: a live connection cannot wait for the log without losing its place."""
        if not runtime.settings.shed_telemetry or (
            writer.health.healthy and writer.mailbox_depth() < self._settings().mailbox_size
        ):
            return facts
        kept: list[Fact] = []
        for fact in facts:
            if isinstance(fact, MessageReceived) and fact.topic in TELEMETRY_TOPICS:
                key = (runtime.name, fact.stream, fact.topic)
                shed = self._shedding.setdefault(
                    key, _Shedding(fact.stream, fact.topic, fact.sequence, fact.sequence)
                )
                shed.last = fact.sequence
                shed.count += 1
                self._metrics.telemetry_shed.labels(runtime.name).inc()
            else:
                kept.append(fact)
        return kept

    def count(self, source: str, facts: Sequence[Fact], latency: float) -> None:
        """Count `source`'s logged facts, `latency` s after they arrived, in the metrics."""
        m = self._metrics
        m.append_latency.labels(source).observe(max(latency, 0.0))
        m.feed_lag.labels(source).set(max(latency, 0.0))
        topics: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        size = 0
        for fact in facts:
            if isinstance(fact, RecordQuarantined):
                rules[fact.rule] += 1
            else:
                topics[fact.topic] += 1
                size += len(fact.payload)
        for topic, n in topics.items():
            m.records.labels(source, topic).inc(n)
        for rule, n in rules.items():
            m.validation_failures.labels(source, rule).inc(n)
        m.bytes.labels(source).inc(size)
