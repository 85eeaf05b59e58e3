"""`f1daemon run`: the daemon — supervised sources, the writer, the control socket, metrics.

The trio program of the design card, wired here from its parts:

* every source is an actor in a supervised nursery of its own (`supervision`):
  restarted with jittered backoff, behind a circuit breaker, watched by a no-data
  watchdog; every state change is a `SourceStateChanged` event in the log
  (`source_states`);
* facts go to the one `StoreWriter`, whose bounded mailbox is the back-pressure; a
  source's batch is acknowledged only once committed (`intake`);
* the daemon's own events (source states, session lifecycle, tags, registrations,
  derivation runs) are written one at a time through the `state_lane`, so they never
  race each other;
* sessions are followed through their lifecycle (`sessions`) and derived again while
  they change, and finally when they end (`derivations`);
* operators use the control socket (`control_handlers`), Prometheus scrapes `/metrics`
  (`daemon_metrics`), systemd gets READY / STATUS / WATCHDOG / STOPPING; SIGTERM
  drains, SIGHUP reloads (`reload`).
"""

from __future__ import annotations

import functools
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import trio

from f1daemon import __version__
from f1daemon.actors import ActorState, StateDetail
from f1daemon.config import Config, SourceSettings
from f1daemon.control.protocol import ProtocolError, Request
from f1daemon.control.server import ControlLimits, ControlServer
from f1daemon.daemon.control_handlers import ControlHandlers
from f1daemon.daemon.daemon_metrics import (
    MetricsService,
    initialise_counters,
    initialise_source_counters,
)
from f1daemon.daemon.derivations import SessionDeriver
from f1daemon.daemon.http_api import HTTPService
from f1daemon.daemon.intake import Intake
from f1daemon.daemon.live import live_feed, live_origin
from f1daemon.daemon.polled import forecast_feed, results_feed
from f1daemon.daemon.reload import ConfigReload
from f1daemon.daemon.sessions import SessionTracker, TrackedSession
from f1daemon.daemon.source_states import SourceStates
from f1daemon.daemon.sources import (
    Feed,
    LoadedData,
    SourceRuntime,
    load_recording,
    load_simulation,
    replay_feed,
)
from f1daemon.daemon.state_lane import StateLane
from f1daemon.daemon.supervision import SourceSupervision
from f1daemon.errors import UserError
from f1daemon.metrics import Metrics
from f1daemon.sdnotify import Notifier
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import StoreURL, parse_store_url
from f1daemon.store.writer import StoreWriter, WriterHealth

log = logging.getLogger("f1daemon.daemon")

T = TypeVar("T")
EXIT_OK, EXIT_FAILED = 0, 1
SOURCES_SHARE = 0.5  # of the shutdown deadline, for the sources to drain


def _running(value: T | None, what: str) -> T:
    """A part of the daemon that exists only while it runs (for the type checker too)."""
    if value is None:
        raise RuntimeError(f"the daemon is not running: no {what}")
    return value


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
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        # Every counter at 0 from the start: no holes in a fresh daemon's dashboards.
        initialise_counters(self.metrics)
        for source in (*config.sources, *(settings for settings, _ in extra_sources)):
            initialise_source_counters(self.metrics, source)
        self.state = "starting"  # running, stopping
        self.started_at = time.time()
        self._extra_sources = list(extra_sources)  # sources built by the caller (tests)
        self._open_log = open_log
        self._shutdown = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.control: ControlServer | None = None
        self.log: EventLog | None = None
        self.writer: StoreWriter | None = None
        self.metrics_port: int | None = None
        self.http = HTTPService(config.http)
        self.sources: dict[str, SourceRuntime] = {}
        self.lane = StateLane(self.running_log, self.metrics)
        self.deriver = SessionDeriver(
            self.lane,
            self.metrics,
            on_finished=self._session_finished,
        )
        self.session_tracker = SessionTracker(self.metrics, self.lane, self.deriver, self._spawn)
        self.intake = Intake(
            writer=self.running_writer,
            settings=lambda: self.config.writer,
            sources=self.sources,
            metrics=self.metrics,
            lane=self.lane,
            sessions=self.session_tracker,
        )
        self.supervision = SourceSupervision(
            self.sources,
            lambda: _running(self._nursery, "the daemon's nursery"),
            lambda: self.config.supervision,
            self.intake.emit,
            rng,
        )
        self.source_states = SourceStates(self.sources, self.metrics, self.lane)
        self._handlers = ControlHandlers(self)
        self._reload = ConfigReload(self, config_path, cli_sources)
        self._metrics_service = MetricsService(self)

    @property
    def sessions(self) -> dict[str, TrackedSession]:
        """The sessions seen so far, by key."""
        return self.session_tracker.sessions

    def running_log(self) -> EventLog:
        """The event log (RuntimeError unless the daemon is running)."""
        return _running(self.log, "the event log")

    def running_writer(self) -> StoreWriter:
        """The writer (RuntimeError unless the daemon is running)."""
        return _running(self.writer, "the writer")

    # -- the program -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> int:
        """Run until SIGTERM/SIGINT or `shutdown`; return the exit status."""
        store = parse_store_url(self.config.store_url)
        # The control socket is claimed first: a second daemon given the same socket
        # stops here (one line naming the first's pid), before it opens the store.
        self.control = self._control_server()
        self.control.bind()
        try:
            self.http.bind()  # so is the HTTP API's address
            self.notifier.status(f"opening {store.redacted}")
            self.log = await trio.to_thread.run_sync(self._open_log, store)
            try:
                return await self._run_open(self.log, task_status)
            finally:
                self._metrics_service.stop_server()
                await trio.to_thread.run_sync(self.log.close)
        finally:
            self.http.close()
            self.control.close()

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
            self.metrics_port = self._metrics_service.start_server(self.config.metrics)
            await self.http.start(nursery, event_log.store)
            await nursery.start(_running(self.control, "the control server").serve)
            for settings, feed in self._configured_feeds():
                await self.start_source(settings, feed)
            self.state = "running"
            self.notifier.ready(self.status_line())
            log.info(
                "f1daemon %s ready",
                __version__,
                extra={"fields": {"store": event_log.store.redacted, "sources": len(self.sources)}},
            )
            task_status.started()
            await self._shutdown.wait()
            self.http.stop()  # no new requests; those under way finish meanwhile
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
                nursery.start_soon(self.lane.run)
                nursery.start_soon(self.deriver.run)
                nursery.start_soon(self._metrics_service.refresh)

    def _spawn(self, task: Callable[[], Awaitable[None]]) -> None:
        _running(self._nursery, "the daemon's nursery").start_soon(task)

    def _session_finished(self, session: str, verified: bool) -> None:
        self.session_tracker.finished(session, verified)

    def request_shutdown(self) -> None:
        self._shutdown.set()

    async def _drain(self, writer: StoreWriter, writer_done: trio.Event) -> bool:
        """Stop the sources, commit what they handed over, derive, within the deadline."""
        deadline = self.config.daemon.shutdown_deadline_s
        self.state = "stopping"
        self.notifier.stopping(f"draining (deadline {deadline:g} s)")
        log.info("shutting down", extra={"fields": {"deadline_s": deadline}})
        with trio.move_on_after(deadline) as scope:
            # The sources get part of the deadline to write what they received; the
            # rest is for the writer, the followers and the record of what was not.
            await self.supervision.stop_all(trio.current_time() + deadline * SOURCES_SHARE)
            await self.intake.flush_shedding()
            await writer.close()
            await writer_done.wait()
            await self.deriver.drain()
            await self.lane.flush()
        if scope.cancelled_caught:
            log.error("shutdown deadline passed with %d requests unwritten", writer.mailbox_depth())
            return False
        if self.source_states.unwritten_facts:
            return False  # recorded (FactsUnwritten) and logged as it happened
        log.info("stopped", extra={"fields": {"facts": writer.health.facts}})
        return True

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

    def status_line(self) -> str:
        """The daemon in a line, for systemd's STATUS."""
        health = "ok" if self.writer is None or self.writer.health.healthy else "STORE FAILING"
        facts = self.writer.health.facts if self.writer else 0
        running = sum(r.state == "running" for r in self.sources.values())
        return (
            f"{self.state}: {running}/{len(self.sources)} sources running, "
            f"{facts} facts logged, store {health}"
        )

    # -- sources ---------------------------------------------------------------------

    def _configured_feeds(self) -> list[tuple[SourceSettings, Feed]]:
        feeds = [(s, self.feed_for(s)) for s in self.config.sources]
        feeds.extend(self._extra_sources)
        return feeds

    def feed_for(self, settings: SourceSettings) -> Feed:
        """The feed of a configured source, wired to the daemon."""
        stall = self.config.supervision.stall_timeout_s
        if settings.kind == "live":
            name = settings.name

            async def find_origin(session: str) -> datetime | None:
                return await self.lane.call(lambda log: live_origin(log, session, name))

            return live_feed(
                settings,
                find_origin=find_origin,
                on_gap=self.source_states.gap,
                on_lost=self.source_states.lost,
                on_unwritten=self.source_states.unwritten,
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

        return replay_feed(timed_load, stall_timeout=stall, on_session=self.session_tracker.seen)

    async def start_source(self, settings: SourceSettings, feed: Feed) -> None:
        initialise_source_counters(self.metrics, settings)  # a source added by a reload
        await self.supervision.start(settings, feed, on_state=self._source_state)

    def _source_state(self, name: str, state: ActorState, detail: StateDetail) -> None:
        """A source's supervisor reports its state."""
        self.source_states.supervised(name, state, detail)

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
            request_timeout_s=settings.request_timeout_s,
            max_clients=settings.max_clients,
            allowed_uids=frozenset(settings.allowed_uids),
            allowed_gids=frozenset(settings.allowed_gids),
        )

    def update_control_limits(self) -> None:
        """Apply the configuration's control limits to the running control server."""
        if self.control is not None:
            self.control.limits = self._control_limits()

    async def handle(self, request: Request) -> object:
        """Answer one control request (ProtocolError for an error reply)."""
        return await self._handlers.handle(request)

    async def reload(self) -> dict[str, object]:
        """Read the configuration again and apply what can change while running."""
        return await self._reload.reload()


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
