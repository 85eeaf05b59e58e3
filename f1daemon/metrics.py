"""The daemon's Prometheus metrics, in a registry of its own (one per daemon).

Names follow Prometheus' conventions: `_total` for counters, base units (seconds,
bytes). Labels are bounded: source names come from the configuration, topics from
the feed's fixed set, rules from the code, drivers from a session's grid.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Latency buckets from 1 ms to 30 s: appends are milliseconds when healthy, seconds
# while the store recovers.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


class Metrics:
    """Every metric the daemon exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.records = Counter(
            "f1daemon_records",
            "Messages logged, by source and topic.",
            ["source", "topic"],
            registry=r,
        )
        self.bytes = Counter(
            "f1daemon_bytes", "Payload bytes logged, by source.", ["source"], registry=r
        )
        self.errors = Counter(
            "f1daemon_errors",
            "Failures, by component (a source's name, writer, deriver, state-lane) and kind.",
            ["component", "kind"],
            registry=r,
        )
        self.validation_failures = Counter(
            "f1daemon_validation_failures",
            "Inputs quarantined, by source and rule.",
            ["source", "rule"],
            registry=r,
        )
        self.anomalies = Counter(
            "f1daemon_anomalies", "Anomalies the QA rules found, by rule.", ["rule"], registry=r
        )
        self.ingestion_duration = Histogram(
            "f1daemon_ingestion_duration_seconds",
            "Time a source takes to read and frame one batch of messages.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.validation_duration = Histogram(
            "f1daemon_validation_duration_seconds",
            "Time a session's follower takes to derive, check and commit what new facts "
            "made final (one catch-up).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.derive_lag = Histogram(
            "f1daemon_derive_lag_seconds",
            "From the commit of facts to the commit of the derived events they made final.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.derive_facts_behind = Gauge(
            "f1daemon_derive_facts_behind",
            "Facts committed that the session's follower has not read yet.",
            ["session"],
            registry=r,
        )
        self.derived_events = Gauge(
            "f1daemon_derived_events",
            "Derived events the session's current run has appended.",
            ["session"],
            registry=r,
        )
        self.session_laps = Gauge(
            "f1daemon_session_laps",
            "Laps completed in the session's current run, by driver (racing number), as "
            "the laps export counts them.",
            ["session", "driver"],
            registry=r,
        )
        self.append_latency = Histogram(
            "f1daemon_append_latency_seconds",
            "From a message's arrival to its durable append (acknowledgement).",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.quality_score = Gauge(
            "f1daemon_quality_score",
            "QA quality score of a session's derived records (0-1).",
            ["session"],
            registry=r,
        )
        self.qa_records = Gauge(
            "f1daemon_qa_records",
            "A session's records as QA last left them, by outcome (passed, flagged, quarantined).",
            ["session", "outcome"],
            registry=r,
        )
        self.qa_findings = Gauge(
            "f1daemon_qa_findings",
            "Findings of each QA rule over a session's current data, by rule and severity.",
            ["session", "rule", "severity"],
            registry=r,
        )
        self.active_ingestors = Gauge(
            "f1daemon_active_ingestors", "Sources currently running.", registry=r
        )
        self.storage_bytes = Gauge(
            "f1daemon_storage_bytes",
            "Size of the event log on disk (SQLite) or in the database.",
            registry=r,
        )
        self.mailbox_depth = Gauge(
            "f1daemon_mailbox_depth",
            "Requests waiting in an actor's mailbox.",
            ["actor"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "f1daemon_breaker_state",
            "A source's circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["source"],
            registry=r,
        )
        self.restarts = Counter(
            "f1daemon_source_restarts",
            "Failed runs of a source (each restarted).",
            ["source"],
            registry=r,
        )
        self.source_up = Gauge(
            "f1daemon_source_up", "1 while a source is running, else 0.", ["source"], registry=r
        )
        self.feed_lag = Gauge(
            "f1daemon_feed_lag_seconds",
            "How far behind its feed a source is: its last batch's arrival to durable append.",
            ["source"],
            registry=r,
        )
        self.connection_gaps = Counter(
            "f1daemon_connection_gaps",
            "Reconnects of a live source (each a ConnectionGap event), by source.",
            ["source"],
            registry=r,
        )
        self.telemetry_shed = Counter(
            "f1daemon_telemetry_shed",
            "Telemetry messages shed under back-pressure.",
            ["source"],
            registry=r,
        )
        self.writer_healthy = Gauge(
            "f1daemon_writer_healthy", "1 while the store accepts appends, else 0.", registry=r
        )
        self.control_requests = Counter(
            "f1daemon_control_requests",
            "Control-socket requests, by command and outcome.",
            ["command", "outcome"],
            registry=r,
        )
        self.session_state = Gauge(
            "f1daemon_session_state",
            "1 for a session's current lifecycle state.",
            ["session", "state"],
            registry=r,
        )
        self.writer_healthy.set(1)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
