"""`f1daemon run`: the daemon — supervised sources, the writer, the control socket, metrics.

The trio program of the design card:

* every source is an actor in a supervised nursery of its own (`f1daemon.actors`):
  restarted with jittered backoff, behind a circuit breaker, watched by a no-data
  watchdog; every state change is a `SourceStateChanged` event in the log;
* facts go to the one `StoreWriter`, whose bounded mailbox is the back-pressure; a
  source's batch is acknowledged only once committed;
* the daemon's own events (source states, session lifecycle, tags, registrations,
  derivation runs) are written one at a time through the *state lane*, a lock held
  around a worker-thread call, so they never race each other;
* sessions are derived again while they change (often while ACTIVE), and finally
  when they end (`lifecycle`);
* operators use the control socket, Prometheus scrapes `/metrics`, systemd gets
  READY / STATUS / WATCHDOG / STOPPING; SIGTERM drains, SIGHUP reloads.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import orjson
import psycopg
import trio

from f1daemon import __version__
from f1daemon.actors import (
    ActorState,
    Backoff,
    CircuitBreaker,
    StateDetail,
    open_supervisor,
)
from f1daemon.config import Config, SourceSettings, load_config
from f1daemon.control.protocol import ProtocolError, Request
from f1daemon.control.server import ControlLimits, ControlServer
from f1daemon.daemon.lifecycle import SessionLifecycle, SessionState
from f1daemon.daemon.live import live_feed, live_origin
from f1daemon.daemon.polled import forecast_feed, results_feed
from f1daemon.daemon.sources import (
    Feed,
    LoadedData,
    SourceRuntime,
    SourceStalledError,
    load_recording,
    load_simulation,
    replay_feed,
)
from f1daemon.domain.events import (
    ConnectionGap,
    Event,
    Fact,
    MessageReceived,
    RecordQuarantined,
    SessionStateChanged,
    SourceStateChanged,
    TelemetryShed,
)
from f1daemon.errors import UserError
from f1daemon.feed.messages import TELEMETRY_TOPICS
from f1daemon.feed.pipeline import PIPELINE_VERSION
from f1daemon.logs import set_level
from f1daemon.metrics import BREAKER_STATES, Metrics
from f1daemon.qa import QAReport
from f1daemon.sdnotify import Notifier
from f1daemon.sources.signalr import ConnectionGap as LiveGap
from f1daemon.store.derivation import derive_if_changed, run_report, verify_run
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import StoreURL, parse_store_url
from f1daemon.store.writer import StoreWriter, WriterHealth

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

log = logging.getLogger("f1daemon.daemon")

T = TypeVar("T")
SOURCE_STATES_STREAM = "source-states"
DERIVE_TICK_S = 0.5
METRICS_TICK_S = 1.0
STORAGE_EVERY_TICKS = 30  # a database size query is not free: every 30 s
EXIT_OK, EXIT_FAILED = 0, 1


@dataclass
class _SessionTrack:
    lifecycle: SessionLifecycle
    dirty: bool = False
    next_derive: float = 0.0
    anomalies: dict[str, int] = field(default_factory=dict)  # by rule, as last checked
    last_report: QAReport | None = None


@dataclass
class _Shedding:
    """Telemetry being shed by one source, until the writer catches up."""

    stream: str
    topic: str
    first: int
    last: int
    count: int = 0


def _running(value: T | None, what: str) -> T:
    """A part of the daemon that exists only while it runs (for the type checker too)."""
    if value is None:
        raise RuntimeError(f"the daemon is not running: no {what}")
    return value


def _single(error: BaseException) -> BaseException:
    # A nursery wraps its child's exception in a group; a supervisor reports the
    # underlying error, so unwrap a group of one.
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


class Daemon:
    """One daemon: build with a configuration, then ``await daemon.run()``."""

    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        cli_sources: tuple[str, ...] = (),
        notifier: Notifier | None = None,
        extra_sources: Sequence[tuple[SourceSettings, Feed]] = (),
        rng: random.Random | None = None,
        open_log: Callable[[StoreURL], EventLog] = EventLog,
    ) -> None:
        self.config = config
        self._config_path = config_path
        self._cli_sources = cli_sources
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.state = "starting"  # running, stopping
        self.started_at = time.time()
        self._extra_sources = list(extra_sources)  # sources built by the caller (tests)
        self._rng = rng
        self._open_log = open_log
        self.sources: dict[str, SourceRuntime] = {}
        self._source_scopes: dict[str, trio.CancelScope] = {}
        self.sessions: dict[str, _SessionTrack] = {}
        self._shedding: dict[tuple[str, str, str], _Shedding] = {}
        self._pending_state: list[tuple[str, Event]] = []
        self._state_wakeup = trio.Event()
        self._state_lock = trio.Lock()
        self._pending_lock = trio.Lock()
        self._shutdown = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._metrics_server: WSGIServer | None = None
        self.control: ControlServer | None = None
        self.log: EventLog | None = None
        self.writer: StoreWriter | None = None
        self.metrics_port: int | None = None

    # -- the program -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> int:
        """Run until SIGTERM/SIGINT or `shutdown`; return the exit status."""
        store = parse_store_url(self.config.store_url)
        self.notifier.status(f"opening {store.redacted}")
        self.log = await trio.to_thread.run_sync(self._open_log, store)
        try:
            return await self._run_open(self.log, task_status)
        finally:
            self._stop_metrics_server()
            await trio.to_thread.run_sync(self.log.close)

    async def _run_open(self, event_log: EventLog, task_status: trio.TaskStatus[None]) -> int:
        writer = self.writer = StoreWriter(
            event_log,
            mailbox_size=self.config.writer.mailbox_size,
            max_batch=self.config.writer.max_batch,
            on_health_change=self._writer_health_changed,
        )
        drained = True
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            writer_done = trio.Event()
            nursery.start_soon(self._run_writer, writer, writer_done)
            background = trio.CancelScope()
            nursery.start_soon(self._background, background)
            await self._start_metrics_server()
            self.control = self._control_server()
            await nursery.start(self.control.serve)
            for settings, feed in self._configured_feeds():
                await self._start_source(settings, feed)
            self.state = "running"
            self.notifier.ready(self._status_line())
            log.info(
                "f1daemon %s ready",
                __version__,
                extra={"fields": {"store": event_log.store.redacted, "sources": len(self.sources)}},
            )
            task_status.started()
            await self._shutdown.wait()
            drained = await self._drain(writer, writer_done)
            background.cancel()
            nursery.cancel_scope.cancel()
        return EXIT_OK if drained else EXIT_FAILED

    def _writer_health_changed(self, health: WriterHealth) -> None:
        self.metrics.writer_healthy.set(1 if health.healthy else 0)
        if health.healthy:
            log.info("store accepts appends again", extra={"fields": {"facts": health.facts}})
        else:
            log.warning(
                "store refuses appends: %s",
                health.last_error,
                extra={"fields": {"error": health.last_error, "failures": health.failures}},
            )

    async def _run_writer(self, writer: StoreWriter, done: trio.Event) -> None:
        try:
            await writer.run()
        finally:
            done.set()

    async def _background(self, scope: trio.CancelScope) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.notifier.run_watchdog)
                nursery.start_soon(self._signals)
                nursery.start_soon(self._record_states)
                nursery.start_soon(self._derive_loop)
                nursery.start_soon(self._refresh_metrics)

    def request_shutdown(self) -> None:
        self._shutdown.set()

    async def _drain(self, writer: StoreWriter, writer_done: trio.Event) -> bool:
        """Stop the sources, commit what they handed over, derive, within the deadline."""
        deadline = self.config.daemon.shutdown_deadline_s
        self.state = "stopping"
        self.notifier.stopping(f"draining (deadline {deadline:g} s)")
        log.info("shutting down", extra={"fields": {"deadline_s": deadline}})
        with trio.move_on_after(deadline) as scope:
            for name in list(self._source_scopes):
                self._source_scopes.pop(name).cancel()
            await self._flush_shedding()
            await writer.close()
            await writer_done.wait()
            for key, track in self.sessions.items():
                if track.dirty:
                    await self._derive(key, track)
            await self._write_pending_states()
        if scope.cancelled_caught:
            log.error("shutdown deadline passed with %d requests unwritten", writer.mailbox_depth())
            return False
        log.info("stopped", extra={"fields": {"facts": writer.health.facts}})
        return True

    # -- sources ---------------------------------------------------------------------

    def _configured_feeds(self) -> list[tuple[SourceSettings, Feed]]:
        feeds = [(s, self._feed_for(s)) for s in self.config.sources]
        feeds.extend(self._extra_sources)
        return feeds

    def _feed_for(self, settings: SourceSettings) -> Feed:
        stall = self.config.supervision.stall_timeout_s
        if settings.kind == "live":
            name = settings.name

            async def find_origin(session: str) -> datetime | None:
                return await self._state_call(lambda log: live_origin(log, session, name))

            return live_feed(
                settings,
                find_origin=find_origin,
                on_gap=self._record_gap,
                on_lost=self._record_lost,
            )
        if settings.kind == "forecast":
            return forecast_feed(settings)
        if settings.kind == "results":
            return results_feed(settings)
        load: Callable[[], LoadedData]
        if settings.kind == "simulator":
            load = functools.partial(load_simulation, settings, self.config.daemon.state_dir)
        else:
            path = _running(settings.path, "a recording source's path")
            load = functools.partial(load_recording, path, settings.session)
        duration = self.metrics.ingestion_duration.labels(settings.name)

        def timed_load() -> LoadedData:
            with duration.time():  # reading and framing the source's messages
                return load()

        return replay_feed(timed_load, stall_timeout=stall, on_session=self._session_seen)

    async def _start_source(self, settings: SourceSettings, feed: Feed) -> None:
        nursery = _running(self._nursery, "the daemon's nursery")
        supervision = self.config.supervision
        runtime = SourceRuntime(
            settings,
            CircuitBreaker(
                failure_threshold=supervision.breaker_failures,
                reset_timeout=supervision.breaker_reset_s,
            ),
        )
        self.sources[settings.name] = runtime
        scope = trio.CancelScope()
        self._source_scopes[settings.name] = scope
        await nursery.start(self._supervise_source, runtime, feed, scope)

    async def _supervise_source(
        self,
        runtime: SourceRuntime,
        feed: Feed,
        scope: trio.CancelScope,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        supervision = self.config.supervision
        backoff = Backoff(
            initial=supervision.backoff_initial_s,
            cap=max(supervision.backoff_cap_s, supervision.backoff_initial_s),
            jitter=supervision.backoff_jitter,
            healthy_after=supervision.healthy_after_s,
        )
        with scope:
            # One supervised nursery per source: its failures stay inside it.
            async with open_supervisor(
                on_state=self._source_state, backoff=backoff, rng=self._rng
            ) as supervisor:
                await supervisor.start(
                    runtime.name,
                    functools.partial(self._watched, runtime, feed),
                    breaker=runtime.breaker,
                )
                task_status.started()

    async def _watched(self, runtime: SourceRuntime, feed: Feed) -> None:
        """One run of a source's feed, under the no-data watchdog."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._stall_watch, runtime)
                await feed(runtime, self._emit)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _single(group) from None

    async def _stall_watch(self, runtime: SourceRuntime) -> None:
        while True:
            now = trio.current_time()
            if runtime.paused or math.isinf(runtime.deadline):
                await trio.sleep(1.0)
                continue
            if now >= runtime.deadline:
                timeout = self.config.supervision.stall_timeout_s
                raise SourceStalledError(f"no data for {timeout:g} s")
            await trio.sleep_until(runtime.deadline)

    def _source_state(self, name: str, state: ActorState, detail: StateDetail) -> None:
        runtime = self.sources.get(name)
        if runtime is None or (state == "stopped" and runtime.state == "stopped"):
            return
        runtime.state = state
        error = None
        if detail.error is not None and state in ("backing-off", "circuit-open"):
            error = f"{type(detail.error).__name__}: {detail.error}"
            runtime.last_error = error
        if detail.restarts > runtime.restarts:  # a run failed since the last report
            failed = detail.restarts - runtime.restarts
            self.metrics.restarts.labels(name).inc(failed)
            self.metrics.errors.labels(name, type(detail.error).__name__).inc(failed)
        runtime.restarts = detail.restarts
        self.metrics.source_up.labels(name).set(1 if state == "running" else 0)
        self._record_source_state(runtime, state, detail.delay, error)

    def _record_source_state(
        self, runtime: SourceRuntime, state: str, delay: float | None, error: str | None
    ) -> None:
        fields = {"source": runtime.name, "state": state, "restarts": runtime.restarts}
        if error:
            fields["error"] = error
        level = logging.WARNING if error else logging.INFO
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
        self._queue_state(SOURCE_STATES_STREAM, event)

    def _record_lost(self, runtime: SourceRuntime, reason: str, delay: float) -> None:
        """A live source lost its connection (or cannot make one): visible at once, in
        `ctl sources`, `f1daemon_source_up` and the log."""
        runtime.state = "reconnecting"
        runtime.last_error = reason
        self.metrics.source_up.labels(runtime.name).set(0)
        self._record_source_state(runtime, "reconnecting", delay, reason)

    def _record_gap(self, runtime: SourceRuntime, gap: LiveGap) -> None:
        """A live source reconnected: the gap, and the state change that says why."""
        self.metrics.connection_gaps.labels(runtime.name).inc()
        log.warning(
            "source %s: reconnected after %.1f s (%s)",
            runtime.name,
            gap.seconds,
            gap.reason,
            extra={"fields": {"source": runtime.name, "gap_s": gap.seconds}},
        )
        self._queue_state(
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
        self.metrics.source_up.labels(runtime.name).set(1)
        self._record_source_state(runtime, "reconnected", None, gap.reason)

    async def _emit(self, runtime: SourceRuntime, facts: Sequence[Fact], arrived: float) -> None:
        """Log a source's facts; returns once they are durable (the acknowledgement)."""
        writer = _running(self.writer, "the writer")
        await runtime.unpaused.wait()
        to_log = self._shed(runtime, facts, writer)
        runtime.deadline = math.inf  # waiting for the writer is not a stalled source
        if to_log:
            await writer.append(to_log)
        if runtime.settings.shed_telemetry and len(to_log) == len(facts):
            await self._flush_shedding(runtime.name)  # logging everything again: record the gap
        now = trio.current_time()
        runtime.position += len(facts)
        self._count(runtime.name, to_log, now - arrived)
        self._follow_sessions(runtime.name, to_log)

    def _shed(
        self, runtime: SourceRuntime, facts: Sequence[Fact], writer: StoreWriter
    ) -> Sequence[Fact]:
        """Drop telemetry (counted, recorded) while the store fails or the writer's mailbox
        is full: a live connection cannot wait for the log without losing its place."""
        if not runtime.settings.shed_telemetry or (
            writer.health.healthy and writer.mailbox_depth() < self.config.writer.mailbox_size
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
                self.metrics.telemetry_shed.labels(runtime.name).inc()
            else:
                kept.append(fact)
        return kept

    async def _flush_shedding(self, source: str | None = None) -> None:
        for key in [k for k in self._shedding if source is None or k[0] == source]:
            shed = self._shedding.pop(key)
            runtime = self.sources.get(key[0])
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
            self._queue_state(SOURCE_STATES_STREAM, event)

    def _count(self, source: str, facts: Sequence[Fact], latency: float) -> None:
        m = self.metrics
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

    # -- sessions --------------------------------------------------------------------

    def _session_seen(self, session: str, origin: str) -> None:
        if session in self.sessions:
            return
        self.sessions[session] = _SessionTrack(SessionLifecycle(session))
        self.metrics.session_state.labels(session, SessionState.PRE_SESSION).set(1)
        nursery = _running(self._nursery, "the daemon's nursery")
        nursery.start_soon(self._register_session, session, origin)

    async def _register_session(self, session: str, origin: str) -> None:
        await self._state_call(lambda event_log: event_log.register_session(session, origin))

    def _follow_sessions(self, source: str, facts: Sequence[Fact]) -> None:
        for fact in facts:
            track = self.sessions.get(fact.session)
            if track is None:
                self._session_seen(fact.session, f"source {source}")
                track = self.sessions[fact.session]
            track.dirty = True
            if isinstance(fact, MessageReceived) and fact.topic == "SessionStatus":
                status = _feed_status(fact.payload)
                if status is not None:
                    changed = track.lifecycle.on_feed_status(status)
                    if changed is not None:
                        self._lifecycle_changed(track, status, fact)

    def _lifecycle_changed(
        self, track: _SessionTrack, cause: str, fact: MessageReceived | None = None
    ) -> None:
        state = track.lifecycle.state
        session = track.lifecycle.session
        for each in SessionState:
            self.metrics.session_state.labels(session, each).set(1 if each is state else 0)
        log.info(
            "session %s: %s (%s)",
            session,
            state,
            cause,
            extra={"fields": {"session": session, "state": state.value, "cause": cause}},
        )
        event = SessionStateChanged(
            session=session,
            session_time_ms=(fact.offset_ms or 0) if fact is not None else 0,
            utc=fact.received_at if fact is not None else datetime.now(UTC),
            state=state.value,
            feed_status=cause,
        )
        self._queue_state(f"lifecycle:{session}", event)
        track.next_derive = 0.0  # a change of state is worth a derivation now

    async def _derive_loop(self) -> None:
        while True:
            now = trio.current_time()
            for key, track in list(self.sessions.items()):
                if track.lifecycle.state is SessionState.POST_SESSION:
                    await self._finish_session(key, track)
                elif track.dirty and now >= track.next_derive:
                    await self._derive(key, track)
            await trio.sleep(DERIVE_TICK_S)

    async def _derive(self, session: str, track: _SessionTrack) -> None:
        track.dirty = False
        settings = self.config.session
        interval = (
            settings.derive_active_s
            if track.lifecycle.state is SessionState.ACTIVE
            else settings.derive_idle_s
        )
        track.next_derive = trio.current_time() + interval
        began = time.perf_counter()
        try:
            checked = await self._state_call(
                lambda event_log: _derive_and_check(event_log, session)
            )
        except Exception as error:
            track.dirty = True
            self.metrics.errors.labels("deriver", type(error).__name__).inc()
            log.exception("deriving %s failed", session)
            return
        if checked is None:
            return  # nothing new since the latest run
        self.metrics.validation_duration.observe(time.perf_counter() - began)
        self._report_quality(session, track, checked)

    def _report_quality(self, session: str, track: _SessionTrack, report: QAReport) -> None:
        """A run's QA report: as metrics, and as a log line of what this batch changed."""
        m = self.metrics
        m.quality_score.labels(session).set(report.quality_score)
        for outcome in ("passed", "flagged", "quarantined"):
            m.qa_records.labels(session, outcome).set(getattr(report, outcome))
        for rule in report.rules:
            m.qa_findings.labels(session, rule.rule, rule.severity).set(rule.findings)
            if rule.rule.startswith("anomaly."):
                # A derivation checks the whole session again: count only what is new.
                new = rule.findings - track.anomalies.get(rule.rule, 0)
                if new > 0:
                    m.anomalies.labels(rule.rule).inc(new)
                track.anomalies[rule.rule] = rule.findings
        batch = report.batch_since(track.last_report)
        log.info(
            "QA of %s: %s",
            session,
            batch.summary(),
            extra={"fields": {"session": session, "qa_batch": batch.model_dump()}},
        )
        track.last_report = report

    async def _finish_session(self, session: str, track: _SessionTrack) -> None:
        """POST_SESSION: derive and verify one last time, then the session is COMPLETED."""
        await self._derive(session, track)
        latest = await self._state_call(lambda event_log: event_log.latest_derivation(session))
        ok = True
        if latest is not None:
            check = await self._state_call(lambda event_log: verify_run(event_log, session, latest))
            ok = not check.problems
        if not ok:
            log.error("session %s: final derivation does not verify", session)
        if track.lifecycle.complete() is not None:
            self._lifecycle_changed(track, "verified" if ok else "verify-failed")

    # -- the state lane ----------------------------------------------------------------

    async def _state_call(self, call: Callable[[EventLog], T]) -> T:
        """Run `call(log)` on a worker thread, one at a time (the daemon's own writes)."""
        event_log = _running(self.log, "the event log")
        async with self._state_lock:
            return await trio.to_thread.run_sync(call, event_log)

    def _queue_state(self, stream: str, event: Event) -> None:
        self._pending_state.append((stream, event))
        self._state_wakeup.set()

    async def _record_states(self) -> None:
        delay = 0.5
        while True:
            await self._state_wakeup.wait()
            self._state_wakeup = trio.Event()
            try:
                await self._write_pending_states()
                delay = 0.5
            except Exception as error:
                self.metrics.errors.labels("state-lane", type(error).__name__).inc()
                log.warning("recording state events failed: %s; retrying", error)
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)
                self._state_wakeup.set()

    async def _write_pending_states(self) -> None:
        # One writer of the queue at a time (the recorder task, or the drain): two would
        # both write the batch the other has not yet removed.
        async with self._pending_lock:
            await self._write_pending_states_locked()

    async def _write_pending_states_locked(self) -> None:
        while self._pending_state:
            batch = list(self._pending_state)
            by_stream: dict[str, list[Event]] = {}
            for stream, event in batch:
                by_stream.setdefault(stream, []).append(event)

            def write(event_log: EventLog, groups: dict[str, list[Event]] = by_stream) -> None:
                for stream, events in groups.items():
                    event_log.record_events(stream, events)

            await self._state_call(write)
            del self._pending_state[: len(batch)]

    # -- control ---------------------------------------------------------------------

    def _control_server(self) -> ControlServer:
        settings = self.config.control
        return ControlServer(
            settings.socket,
            self.handle,
            self._control_limits(),
            mode=settings.mode,
            on_request=lambda command, outcome: self.metrics.control_requests.labels(
                command, outcome
            ).inc(),
        )

    def _control_limits(self) -> ControlLimits:
        settings = self.config.control
        return ControlLimits(
            max_line_bytes=settings.max_line_bytes,
            client_timeout_s=settings.client_timeout_s,
            max_clients=settings.max_clients,
            allowed_uids=frozenset(settings.allowed_uids),
            allowed_gids=frozenset(settings.allowed_gids),
        )

    async def handle(self, request: Request) -> object:
        """Answer one control request (ProtocolError for an error reply)."""
        args = request.args
        answers: dict[str, Callable[[], object]] = {
            "status": self._status,
            "health": self._health,
            "sources": lambda: [self._source_info(r) for r in self.sources.values()],
            "pause": lambda: self._pause_resume("pause", args[0]),
            "resume": lambda: self._pause_resume("resume", args[0]),
            "session": lambda: self._session_command(args),
            "tag": lambda: self._tag(args[0], args[1] if len(args) > 1 else ""),
            "metrics": lambda: self.metrics.exposition().decode(),
            "reload": self.reload,
            "shutdown": self._shutdown_command,
        }
        answer = answers.get(request.command)
        if answer is None:  # parse_request lets only known commands through
            raise ProtocolError(f"unknown command {request.command!r}")
        result = answer()
        return await result if inspect.isawaitable(result) else result

    def _shutdown_command(self) -> dict[str, object]:
        self.request_shutdown()
        return {"shutting_down": True, "deadline_s": self.config.daemon.shutdown_deadline_s}

    def _status(self) -> dict[str, object]:
        event_log = _running(self.log, "event log")
        return {
            "version": __version__,
            "pipeline_version": PIPELINE_VERSION,
            "pid": os.getpid(),
            "state": self.state,
            "uptime_s": round(time.time() - self.started_at, 3),
            "store": event_log.store.redacted,
            "facts_logged": _running(self.writer, "writer").health.facts,
            "sources": {name: r.state for name, r in self.sources.items()},
            "sessions": {key: t.lifecycle.state.value for key, t in self.sessions.items()},
            "metrics_port": self.metrics_port,
        }

    def _health(self) -> dict[str, object]:
        writer = _running(self.writer, "writer")
        health = writer.health
        problems: list[str] = []
        if not health.healthy:
            problems.append(f"store refuses appends: {health.last_error}")
        for runtime in self.sources.values():
            if runtime.state in ("backing-off", "circuit-open"):
                problems.append(f"source {runtime.name} {runtime.state}: {runtime.last_error}")
        return {
            "healthy": not problems,
            "problems": problems,
            "writer": {
                "healthy": health.healthy,
                "since": health.since,
                "last_success_at": health.last_success_at,
                "batches": health.batches,
                "facts": health.facts,
                "failures": health.failures,
                "stalls": health.stalls,
                "last_error": health.last_error,
                "mailbox_depth": writer.mailbox_depth(),
            },
            "watchdog_s": self.notifier.watchdog_interval,
        }

    def _source_info(self, runtime: SourceRuntime) -> dict[str, object]:
        return {
            "name": runtime.name,
            "kind": runtime.settings.kind,
            "state": runtime.state,
            "paused": runtime.paused,
            "breaker": runtime.breaker.state.value,
            "restarts": runtime.restarts,
            "last_error": runtime.last_error,
            "session": runtime.session,
            "position": runtime.position,
            "total": runtime.total,
        }

    def _pause_resume(self, command: str, name: str) -> dict[str, object]:
        runtime = self.sources.get(name)
        if runtime is None:
            raise ProtocolError(f"no source named {name!r}; sources: {', '.join(self.sources)}")
        changed = runtime.pause() if command == "pause" else runtime.resume()
        if changed:
            state = "paused" if command == "pause" else "resumed"
            self.metrics.source_up.labels(name).set(0 if runtime.paused else 1)
            self._record_source_state(runtime, state, None, None)
        return {"source": name, "paused": runtime.paused, "changed": changed}

    def _session_command(self, args: tuple[str, ...]) -> dict[str, object]:
        action = args[0]
        if action not in ("start", "stop"):
            raise ProtocolError("usage: session start|stop [SESSION]")
        if len(args) > 1:
            key = args[1]
            if key not in self.sessions:
                self._session_seen(key, "control")
        elif len(self.sessions) == 1:
            (key,) = self.sessions
        else:
            known = ", ".join(self.sessions) or "none yet"
            raise ProtocolError(f"name the session (sessions: {known})")
        track = self.sessions[key]
        changed = track.lifecycle.start() if action == "start" else track.lifecycle.stop()
        if changed is not None:
            self._lifecycle_changed(track, f"operator:{action}")
        return {
            "session": key,
            "state": track.lifecycle.state.value,
            "changed": changed is not None,
        }

    async def _tag(self, name: str, message: str) -> dict[str, object]:
        try:
            tagged = await self._state_call(
                lambda event_log: event_log.tag(
                    name, pipeline_version=PIPELINE_VERSION, message=message
                )
            )
        except UserError as error:
            raise ProtocolError(str(error)) from None
        return {"name": tagged.name, "position": tagged.position}

    async def reload(self) -> dict[str, object]:
        """Read the configuration again and apply what can change while running."""
        try:
            new = await trio.to_thread.run_sync(
                functools.partial(load_config, self._config_path, sources=self._cli_sources)
            )
        except UserError as error:
            log.error("reload refused: %s", error)
            raise ProtocolError(f"reload refused, configuration unchanged: {error}") from None
        old, self.config = self.config, new
        set_level(new.daemon.log_level)
        if self.control is not None:
            self.control.limits = self._control_limits()
        started, stopped = [], []
        old_sources = {s.name: s for s in old.sources}
        new_sources = {s.name: s for s in new.sources}
        for name, settings in old_sources.items():
            if new_sources.get(name) != settings and name in self._source_scopes:
                self._source_scopes.pop(name).cancel()
                self.sources.pop(name, None)
                stopped.append(name)
        for name, settings in new_sources.items():
            if name not in self.sources:
                await self._start_source(settings, self._feed_for(settings))
                started.append(name)
        needs_restart = [
            section
            for section in ("metrics", "writer")
            if getattr(old, section) != getattr(new, section)
        ]
        if old.store_url != new.store_url:
            needs_restart.append("store")
        log.info(
            "configuration reloaded",
            extra={"fields": {"started": started, "stopped": stopped, "restart": needs_restart}},
        )
        self.notifier.status(self._status_line())
        return {"started": started, "stopped": stopped, "needs_restart": needs_restart}

    # -- signals, metrics ------------------------------------------------------------

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    try:
                        await self.reload()
                    except ProtocolError as error:
                        log.error("%s", error)
                else:
                    log.info("received %s", signal.Signals(signum).name)
                    self.request_shutdown()

    async def _start_metrics_server(self) -> None:
        settings = self.config.metrics
        if not settings.enabled:
            return
        from prometheus_client import start_http_server

        server, _thread = start_http_server(
            settings.port, addr=settings.host, registry=self.metrics.registry
        )
        self._metrics_server = server
        self.metrics_port = server.server_port

    def _stop_metrics_server(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None

    async def _refresh_metrics(self) -> None:
        m = self.metrics
        last_status = ""
        ticks = 0
        writer_failures = 0
        while True:
            if self.writer is not None:
                m.mailbox_depth.labels("writer").set(self.writer.mailbox_depth())
                failures = self.writer.health.failures
                if failures > writer_failures:
                    m.errors.labels("writer", "append").inc(failures - writer_failures)
                    writer_failures = failures
            running = 0
            for name, runtime in self.sources.items():
                m.breaker_state.labels(name).set(BREAKER_STATES[runtime.breaker.state.value])
                running += runtime.state == "running" and not runtime.paused
            m.active_ingestors.set(running)
            if ticks % STORAGE_EVERY_TICKS == 0:
                await self._measure_storage()
            ticks += 1
            status = self._status_line()
            if status != last_status:
                self.notifier.status(status)
                last_status = status
            await trio.sleep(METRICS_TICK_S)

    async def _measure_storage(self) -> None:
        """The log's size: its files for SQLite, the database's size for PostgreSQL."""
        if self.log is None:
            return
        store = self.log.store
        try:
            size = await trio.to_thread.run_sync(_storage_bytes, store)
        except (OSError, psycopg.Error) as error:
            log.warning("cannot measure the store's size: %s", error)
            return
        self.metrics.storage_bytes.set(size)

    def _status_line(self) -> str:
        health = "ok" if self.writer is None or self.writer.health.healthy else "STORE FAILING"
        facts = self.writer.health.facts if self.writer else 0
        running = sum(r.state == "running" for r in self.sources.values())
        return (
            f"{self.state}: {running}/{len(self.sources)} sources running, "
            f"{facts} facts logged, store {health}"
        )


def _derive_and_check(event_log: EventLog, session: str) -> QAReport | None:
    """Derive (and check) a session if it changed: the new run's QA report."""
    completed = derive_if_changed(event_log, session)
    if completed is None:
        return None
    return run_report(event_log, session, completed.run)


def _storage_bytes(store: StoreURL) -> int:
    if store.sqlite_path is not None:
        path = store.sqlite_path
        files = (path, path.with_name(path.name + "-wal"))
        return sum(p.stat().st_size for p in files if p.exists())
    with psycopg.connect(store.url, connect_timeout=5) as connection:
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def _feed_status(payload: str) -> str | None:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    status = data.get("Status") if isinstance(data, dict) else None
    return status if isinstance(status, str) else None


def run_daemon(config: Config, *, config_path: Path | None, cli_sources: tuple[str, ...]) -> int:
    """The `f1daemon run` entry point: the daemon in the foreground until stopped."""
    daemon = Daemon(config, config_path=config_path, cli_sources=cli_sources)
    try:
        return trio.run(daemon.run)
    except UserError:
        raise
    except Exception:
        log.exception("the daemon failed")
        return EXIT_FAILED
