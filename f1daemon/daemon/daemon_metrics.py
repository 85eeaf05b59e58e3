"""The daemon's metrics: the `/metrics` server, and the gauges refreshed every second.

Most metrics are set where things happen (a fact logged, a source's state); the ones
that describe a state rather than an event (the writer's mailbox, breakers, sources
running, the store's size) are sampled here, as is systemd's STATUS line.

Every counter is exported at 0 from the start (`initialise_counters`,
`initialise_source_counters`): the label values known up front (the configured
sources, their topics and quarantine rules, the QA anomaly rules, the control
commands) each get a sample, so dashboards and `rate()` have no holes before the
first event.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import psycopg
import trio

from f1daemon.config import MetricsSettings, SourceSettings
from f1daemon.control.protocol import COMMANDS
from f1daemon.control.server import CONNECTION_OUTCOMES, REQUEST_OUTCOMES
from f1daemon.feed.forecast import TOPIC as FORECAST_TOPIC
from f1daemon.feed.jolpica import Kind
from f1daemon.metrics import BREAKER_STATES, Metrics
from f1daemon.qa.rules import RULES
from f1daemon.sources.recording import lines
from f1daemon.store.url import StoreURL

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from f1daemon.daemon.app import Daemon

log = logging.getLogger("f1daemon.daemon")

METRICS_TICK_S = 1.0
STORAGE_EVERY_TICKS = 30  # a database size query is not free: every 30 s

# The rules a source quarantines its inputs by (stage "source"): the framing rules of
# the feed's lines (recordings, archive files, the live feed's frames), and a polled
# API's answer that cannot be used (`sources/forecast.py`, `sources/jolpica.py`).
FRAMING_RULES = (
    lines.ENCODING,
    lines.SYNTAX,
    lines.SHAPE,
    lines.MISSING_FIELD,
    lines.TYPE,
    lines.TIMESTAMP,
    lines.SERVER_ERROR,
)
HTTP_RULES = ("http.response",)
# The QA rules `f1daemon_anomalies` counts the findings of.
ANOMALY_RULES = tuple(rule.name for rule in RULES if rule.name.startswith("anomaly."))


def initialise_counters(metrics: Metrics) -> None:
    """Export every counter whose labels do not depend on the sources at 0."""
    for command in COMMANDS:
        for outcome in REQUEST_OUTCOMES:
            metrics.control_requests.labels(command, outcome)
    for outcome in CONNECTION_OUTCOMES:
        metrics.control_requests.labels("-", outcome)
    metrics.errors.labels("writer", "append")
    for rule in ANOMALY_RULES:
        metrics.anomalies.labels(rule)


def source_topics(settings: SourceSettings) -> tuple[str, ...]:
    """The topics a source's messages are logged under."""
    if settings.kind == "forecast":
        return (FORECAST_TOPIC,)
    if settings.kind == "results":
        return tuple(Kind(resource).topic for resource in settings.resources)
    return settings.topics  # live: those subscribed; recordings, simulator: the feed's


def initialise_source_counters(metrics: Metrics, settings: SourceSettings) -> None:
    """Export every counter of the source `settings` describes at 0."""
    name = settings.name
    for topic in source_topics(settings):
        metrics.records.labels(name, topic)
    rules = HTTP_RULES if settings.kind in ("forecast", "results") else FRAMING_RULES
    for rule in rules:
        metrics.validation_failures.labels(name, rule)
    for counter in (
        metrics.bytes,
        metrics.restarts,
        metrics.connection_gaps,
        metrics.telemetry_shed,
    ):
        counter.labels(name)


class MetricsService:
    """Serves and refreshes `daemon`'s metrics."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._server: WSGIServer | None = None

    def start_server(self, settings: MetricsSettings) -> int | None:
        """Serve `/metrics` (if enabled); the port it listens on."""
        if not settings.enabled:
            return None
        from prometheus_client import start_http_server

        server, _thread = start_http_server(
            settings.port, addr=settings.host, registry=self._daemon.metrics.registry
        )
        self._server = server
        return server.server_port

    def stop_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    async def refresh(self) -> None:
        """Sample the daemon's state into its gauges, and its STATUS line, every tick."""
        daemon = self._daemon
        m = daemon.metrics
        last_status = ""
        ticks = 0
        writer_failures = 0
        while True:
            if daemon.writer is not None:
                m.mailbox_depth.labels("writer").set(daemon.writer.mailbox_depth())
                failures = daemon.writer.health.failures
                if failures > writer_failures:
                    m.errors.labels("writer", "append").inc(failures - writer_failures)
                    writer_failures = failures
            running = 0
            for name, runtime in daemon.sources.items():
                m.breaker_state.labels(name).set(BREAKER_STATES[runtime.breaker.state.value])
                running += runtime.state == "running" and not runtime.paused
            m.active_ingestors.set(running)
            if ticks % STORAGE_EVERY_TICKS == 0:
                await self._measure_storage()
            ticks += 1
            status = daemon.status_line()
            if status != last_status:
                daemon.notifier.status(status)
                last_status = status
            await trio.sleep(METRICS_TICK_S)

    async def _measure_storage(self) -> None:
        """The log's size: its files for SQLite, the database's size for PostgreSQL."""
        if self._daemon.log is None:
            return
        store = self._daemon.log.store
        try:
            size = await trio.to_thread.run_sync(_storage_bytes, store)
        except (OSError, psycopg.Error) as error:
            log.warning("cannot measure the store's size: %s", store.scrub(str(error)))
            return
        self._daemon.metrics.storage_bytes.set(size)


def _storage_bytes(store: StoreURL) -> int:
    if store.sqlite_path is not None:
        path = store.sqlite_path
        files = (path, path.with_name(path.name + "-wal"))
        return sum(p.stat().st_size for p in files if p.exists())
    with psycopg.connect(store.url, connect_timeout=5) as connection:
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0
