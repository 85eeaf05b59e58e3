"""What becomes of a source's changes of state: its runtime, metrics, a log line, and a
`SourceStateChanged` event (or `ConnectionGap`) in the log's `source-states` stream.

The states come from the source's supervisor (running, backing-off, circuit-open,
stopped), from a live source's connection (reconnecting, reconnected), and from the
operators (paused, resumed).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from f1daemon.actors import ActorState, PersistentFailure, StateDetail
from f1daemon.daemon.sources import SourceRuntime
from f1daemon.daemon.state_lane import StateLane
from f1daemon.domain.events import ConnectionGap, FactsUnwritten, SourceStateChanged
from f1daemon.metrics import Metrics
from f1daemon.sources.signalr import ConnectionGap as LiveGap

log = logging.getLogger("f1daemon.daemon")

SOURCE_STATES_STREAM = "source-states"


class SourceStates:
    """Records the state changes of the daemon's `sources` (runtimes by name)."""

    def __init__(
        self, sources: dict[str, SourceRuntime], metrics: Metrics, lane: StateLane
    ) -> None:
        self._sources = sources
        self._metrics = metrics
        self._lane = lane
        self.unwritten_facts = 0
        """Facts sources received but did not write (stopped at a deadline)."""

    def supervised(self, name: str, state: ActorState, detail: StateDetail) -> None:
        """The supervisor's report: a run of source `name` started, failed or stopped."""
        runtime = self._sources.get(name)
        if runtime is None or (state == "stopped" and runtime.state == "stopped"):
            return
        runtime.state = state
        error = None
        level = logging.INFO
        if detail.error is not None and state in ("backing-off", "circuit-open"):
            error = f"{type(detail.error).__name__}: {detail.error}"
            runtime.last_error = error
            level = logging.WARNING
            if isinstance(detail.error, PersistentFailure):
                # The operator must act (renew the token): said once, loudly; each
                # trial at the breaker's pace that fails alike is only recorded.
                level = logging.DEBUG if error == runtime.persistent_error else logging.ERROR
                runtime.persistent_error = error
            else:
                runtime.persistent_error = None
        elif runtime.persistent_error is not None and state == "running":
            level = logging.DEBUG  # a trial of a source that keeps failing alike
        if detail.restarts > runtime.restarts:  # a run failed since the last report
            failed = detail.restarts - runtime.restarts
            self._metrics.restarts.labels(name).inc(failed)
            self._metrics.errors.labels(name, type(detail.error).__name__).inc(failed)
        runtime.restarts = detail.restarts
        self._metrics.source_up.labels(name).set(1 if state == "running" else 0)
        self.record(runtime, state, detail.delay, error, level=level)

    def record(
        self,
        runtime: SourceRuntime,
        state: str,
        delay: float | None,
        error: str | None,
        *,
        level: int | None = None,
    ) -> None:
        """Log `runtime`'s `state` (at `level`; default: a warning with an error, else
        info) and record it in the log."""
        fields = {"source": runtime.name, "state": state, "restarts": runtime.restarts}
        if error:
            fields["error"] = error
        if level is None:
            level = logging.WARNING if error else logging.INFO
        if error and level >= logging.ERROR:  # the one line an operator acts on: say why
            log.log(
                level, "source %s: %s: %s", runtime.name, state, error, extra={"fields": fields}
            )
        else:
            log.log(level, "source %s: %s", runtime.name, state, extra={"fields": fields})
        event = SourceStateChanged(
            session=runtime.session or "",
            source=runtime.name,
            state=state,
            restarts=runtime.restarts,
            delay_s=delay,
            error=error,
            breaker=runtime.breaker.state.value,
            at=datetime.now(UTC),
        )
        self._lane.queue(SOURCE_STATES_STREAM, event)

    def lost(self, runtime: SourceRuntime, reason: str, delay: float) -> None:
        """A live source lost its connection (or cannot make one): visible at once, in
        `ctl sources`, `f1daemon_source_up` and the log."""
        runtime.state = "reconnecting"
        runtime.last_error = reason
        self._metrics.source_up.labels(runtime.name).set(0)
        self.record(runtime, "reconnecting", delay, reason)

    def gap(self, runtime: SourceRuntime, gap: LiveGap) -> None:
        """A live source reconnected: the gap, and the state change that says why."""
        self._metrics.connection_gaps.labels(runtime.name).inc()
        log.warning(
            "source %s: reconnected after %.1f s (%s)",
            runtime.name,
            gap.seconds,
            gap.reason,
            extra={"fields": {"source": runtime.name, "gap_s": gap.seconds}},
        )
        self._lane.queue(
            SOURCE_STATES_STREAM,
            ConnectionGap(
                session=runtime.session or "",
                source=runtime.name,
                previous_stream=gap.previous_stream,
                stream=gap.stream,
                disconnected_at=gap.disconnected_at,
                reconnected_at=gap.reconnected_at,
                seconds=gap.seconds,
                reason=gap.reason,
                attempts=gap.attempts,
            ),
        )
        runtime.state = "running"
        self._metrics.source_up.labels(runtime.name).set(1)
        self.record(runtime, "reconnected", None, gap.reason)

    def unwritten(self, runtime: SourceRuntime, count: int, reason: str) -> None:
        """A stopped source had received `count` facts it could not write: never silent."""
        self.unwritten_facts += count
        log.error(
            "source %s: %d received facts not written: %s",
            runtime.name,
            count,
            reason,
            extra={"fields": {"source": runtime.name, "unwritten": count}},
        )
        self._lane.queue(
            SOURCE_STATES_STREAM,
            FactsUnwritten(
                session=runtime.session or "",
                source=runtime.name,
                count=count,
                reason=reason,
                at=datetime.now(UTC),
            ),
        )
