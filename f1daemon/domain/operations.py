"""Operational events: derivation runs, versions and rollbacks, and the daemon's
sources (their states, connection gaps, shed telemetry, unwritten facts).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from f1daemon.domain.base import Event


class DerivationCompleted(Event):
    """The feed decoders derived a session's events from its facts (one derivation run)."""

    run: int = Field(ge=1, description="Derivation run number within the session.")
    pipeline_version: str = Field(description="Version of the decoders that derived it.")
    facts: int = Field(description="Number of MessageReceived facts read.")
    last_fact_position: int = Field(description="Highest log position among the facts read.")
    derived: int = Field(description="Number of derived events written in this run.")
    undecodable: int = Field(description="Facts whose payload could not be decoded.")
    until_position: int | None = Field(
        default=None, description="Log position the run was limited to (replay --until)."
    )
    facts_sha256: str = Field(
        default="", description="SHA-256 over the facts read, in order (integrity)."
    )
    events_sha256: str = Field(
        default="", description="SHA-256 over the derived events, in order (determinism)."
    )


class DerivationStarted(Event):
    """A derivation run began: from here its events grow in `derived:{session}:{run}`.

    A batch run (ingest, replay) starts and completes in one transaction; the daemon's
    live run grows as facts arrive, each commit carrying its tracking position.
    """

    run: int = Field(ge=1, description="Derivation run number within the session.")
    pipeline_version: str = Field(description="Version of the pipeline that derives it.")
    until_position: int | None = Field(
        default=None, description="Log position the run is limited to (replay --until)."
    )
    sorted_until: int = Field(
        default=0,
        description="The facts up to this log position are read in stream-time order "
        "(offset, then log order), those after it in log order, as they arrive.",
    )


class VersionTagged(Event):
    """A name for a position of the log and the pipeline that derived the data there.

    Tags are global: `session` is empty.
    """

    name: str = Field(description="The tag, e.g. `v1.3.0`.")
    position: int = Field(description="Log position the tag names.")
    pipeline_version: str = Field(description="Version of the decoders at the time.")
    message: str = Field(default="", description="Why the version was tagged.")
    tagged_at: datetime = Field(description="UTC wall-clock time of tagging.")


class RolledBack(Event):
    """A session's current derived data was set back to what it was at a tag.

    Nothing is deleted: the derivation run current at the tag becomes current again.
    """

    tag: str = Field(description="The tag rolled back to.")
    position: int = Field(description="The tag's log position.")
    run: int | None = Field(description="The derivation run now current (null: none then).")


class SourceStateChanged(Event):
    """A source actor of the daemon changed state (supervision and operator actions).

    Daemon-wide: `session` is the session the source was feeding, or empty.
    """

    source: str = Field(description="The source's configured name.")
    state: str = Field(
        description="running, backing-off, circuit-open, stopped, paused or resumed; a live "
        "source's connection: reconnecting, reconnected."
    )
    restarts: int = Field(description="Failed runs of the source so far (each one restarted).")
    delay_s: float | None = Field(
        default=None, description="backing-off / circuit-open: seconds until the next attempt."
    )
    error: str | None = Field(default=None, description="The failure that caused the change.")
    breaker: str = Field(description="The source's circuit breaker: closed, open or half-open.")
    at: datetime = Field(description="UTC wall-clock time of the change.")


class ConnectionGap(Event):
    """A live source lost its connection and got it back: what was sent between is
    missing from the log. The snapshot (keyframe) after the reconnect restores the
    state; the gap says where to look.

    Daemon-wide: `session` is the session the source was feeding, or empty.
    """

    source: str = Field(description="The source's configured name.")
    previous_stream: str = Field(description="The stream that ended (empty: none yet).")
    stream: str = Field(description="The stream of the new connection.")
    disconnected_at: datetime = Field(description="UTC time the connection was lost.")
    reconnected_at: datetime = Field(description="UTC time the new one was subscribed.")
    seconds: float = Field(description="Length of the gap.")
    reason: str = Field(description="Why the connection ended, e.g. `watchdog: …`.")
    attempts: int = Field(description="Connection attempts it took.")


class TelemetryShed(Event):
    """Telemetry a source dropped because the log could not keep up (never silent).

    Only sources configured to shed telemetry do so, and only `CarData.z` and
    `Position.z` messages; everything else waits for the writer instead.
    """

    source: str = Field(description="The source that shed them.")
    stream: str = Field(description="The stream the shed messages belonged to.")
    topic: str = Field(description="`CarData.z` or `Position.z`.")
    first_sequence: int = Field(description="Sequence of the first message shed.")
    last_sequence: int = Field(description="Sequence of the last message shed.")
    count: int = Field(ge=1, description="Messages shed between the two.")
    at: datetime = Field(description="UTC wall-clock time the shedding ended.")


class FactsUnwritten(Event):
    """Facts a source had received that were not acknowledged as written when the
    shutdown's deadline for draining it passed (never silent).

    The count may include a last batch handed to the writer, which commits what it
    holds before the daemon exits; it never misses a fact that was lost.
    Daemon-wide: `session` is the session the source was feeding, or empty.
    """

    source: str = Field(description="The source whose received facts were not written.")
    count: int = Field(ge=1, description="Facts received but not acknowledged as written.")
    reason: str = Field(description="Why, e.g. `the shutdown deadline (10 s) passed`.")
    at: datetime = Field(description="UTC wall-clock time the source was stopped.")
