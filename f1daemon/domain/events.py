"""Events of the log: the facts as received, and what the feed decoders derive from them.

Every event is a frozen pydantic model. `class_version` is stored with each event so
that a later schema can upcast what an earlier one wrote.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class Event(BaseModel):
    """Base of every event in the log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_version: ClassVar[int] = 1

    session: str = Field(
        description="Session key, e.g. `2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race`."
    )


class MessageReceived(Event):
    """A message exactly as a source received it: the fact everything else derives from."""

    source: str = Field(description="The source that received it, e.g. `archive`.")
    stream: str = Field(description="What `sequence` counts within: a topic file, a connection.")
    topic: str = Field(description="Feed topic, e.g. `TimingData` or `CarData.z`.")
    sequence: int = Field(ge=1, description="Position in the stream (line number for files).")
    offset_ms: int | None = Field(
        description="Milliseconds since the stream's start; null when the line had no valid stamp."
    )
    received_at: datetime | None = Field(
        default=None, description="UTC wall-clock time of receipt (live sources only)."
    )
    sent_at: datetime | None = Field(
        default=None,
        description="The feed's own UTC stamp of the message, when it has one (live sources; "
        "a snapshot's topics have none).",
    )
    payload: str = Field(description="The message text exactly as received.")
    keyframe: bool = Field(
        default=False, description="A full snapshot (subscribe reply) that replaces the state."
    )


class SessionRegistered(Event):
    """A session appeared in the log for the first time."""

    origin: str = Field(description="Where its facts came from, e.g. the ingested folder.")


class RecordQuarantined(Event):
    """Input that could not be accepted, kept whole with the rule it broke and why.

    A source appends one when a line cannot even be framed as a message (it is still
    a fact: it arrived); the decoders derive one when a message's content breaks a
    blocking rule. Nothing is dropped: the original text is here.
    """

    source: str = Field(description="The source the input came from.")
    stream: str = Field(description="What `sequence` counts within.")
    sequence: int = Field(ge=1, description="Position of the input in its stream.")
    topic: str | None = Field(description="Feed topic, when it could be read.")
    rule: str = Field(description="The rule it broke, e.g. `framing.syntax`.")
    reason: str = Field(description="Why, in words an operator can act on.")
    payload: str = Field(
        description="The input exactly as received (when it is not UTF-8: as text, with "
        "U+FFFD for the bytes that are not, and the bytes in `payload_base64`)."
    )
    record: str | None = Field(
        default=None,
        description="QA quarantine only: the derived record, e.g. `car 44 lap 12` "
        "(`payload` is then the record as derived, in JSON).",
    )
    payload_base64: str | None = Field(
        default=None,
        description="The input's exact bytes, base64-encoded, when they are not valid "
        "UTF-8 (a text `payload` cannot hold them); null otherwise.",
    )

    @model_serializer(mode="wrap")
    def _without_absent_bytes(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Stored events are compared byte for byte (verify, digests): an event without
        # bytes serialises as it did before the field existed.
        data: dict[str, Any] = handler(self)
        if data.get("payload_base64") is None:
            data.pop("payload_base64", None)
        return data


class TimeBaseEstablished(Event):
    """How stream offsets map to UTC for a session (derived from stamped messages)."""

    t0_utc: datetime | None = Field(description="UTC of offset 0; null without any stamp.")
    session_start_ms: int | None = Field(
        description="Offset (ms) at which the session started (SessionStatus Started)."
    )
    samples: int = Field(description="Number of messages that carried both offset and UTC.")


class Timed(Event):
    """An event that happened at a moment of the session."""

    session_time_ms: int = Field(description="Milliseconds since the stream's start (offset).")
    utc: datetime | None = Field(description="UTC of the moment; null if no time base.")


class LapCompleted(Timed):
    """A driver crossed the timing line: one lap as the timing feed tells it.

    `session_time_ms` / `utc` are when the lap count moved on (the car at the line).
    Version 2 added `utc` (and, with defaults, speeds, tyre age, track statuses,
    position, gap, qualifying part and `deleted`).
    """

    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        """Pipeline 1.0.0 had no time base: its laps have no UTC."""
        return {**data, "utc": None}

    driver: int = Field(description="Racing number.")
    lap: int = Field(
        ge=1,
        description="The driver's lap number, as FastF1 and OpenF1 count it: lap 1 is the "
        "first lap the car starts (NumberOfLaps, less the feed's count at a first pit exit).",
    )
    lap_time_ms: int | None = Field(
        description="Lap time (ms) from LastLapTime; null if not timed (and on a lap that "
        "spans a stay in the pits: see `line_to_line_ms`)."
    )
    sector1_ms: int | None = Field(description="Sector 1 time (ms); null if not timed.")
    sector2_ms: int | None = Field(description="Sector 2 time (ms); null if not timed.")
    sector3_ms: int | None = Field(description="Sector 3 time (ms); null if not timed.")
    pit_in: bool = Field(description="The car entered the pit lane on this lap (in-lap).")
    pit_out: bool = Field(description="The car left the pit lane on this lap (out-lap).")
    compound: str | None = Field(description="Tyre compound from TimingAppData, if known.")
    stint: int | None = Field(description="Stint number (1 = first set of tyres), if known.")
    speed_i1_kmh: int | None = Field(
        default=None, description="Speed trap at intermediate 1 (km/h)."
    )
    speed_i2_kmh: int | None = Field(
        default=None, description="Speed trap at intermediate 2 (km/h)."
    )
    speed_fl_kmh: int | None = Field(default=None, description="Speed at the finish line (km/h).")
    speed_st_kmh: int | None = Field(default=None, description="Speed trap on the straight (km/h).")
    tyre_age_laps: int | None = Field(
        default=None, description="Laps on the set at the end of this lap (incl. earlier use)."
    )
    track_statuses: tuple[str, ...] = Field(
        default=(), description="Track status codes in force during the lap (1, 2, 4, 5, 6, 7)."
    )
    position: int | None = Field(default=None, description="Running position at the line.")
    gap_to_leader: str | None = Field(
        default=None, description="Gap to the leader at the line as the feed shows it."
    )
    session_part: int | None = Field(
        default=None, description="Qualifying part (1 = Q1, 2 = Q2, 3 = Q3); null otherwise."
    )
    deleted: bool = Field(
        default=False, description="Deleted by race control (as known when the lap was derived)."
    )
    flags: tuple[str, ...] = Field(
        default=(),
        description="Quality flags: raised while fitting the lap, e.g. `lap_not_reported`, "
        "and by QA, e.g. `qa:consistency.sector_sum`.",
    )
    line_to_line_ms: int | None = Field(
        default=None,
        description="Where LastLapTime spans a stay in the pits (an out- or in-lap of "
        "practice or qualifying): that value, the time since the car last crossed the line; "
        "`lap_time_ms` is then null.",
    )


class LapDeleted(Timed):
    """Race control deleted a lap time (or reinstated one it had deleted)."""

    driver: int = Field(description="Racing number.")
    lap: int | None = Field(description="The lap, when race control names it or it can be matched.")
    lap_time_ms: int | None = Field(description="The lap time race control quoted.")
    reinstated: bool = Field(description="True when this reinstates a deleted lap.")
    reason: str = Field(description="The race-control message.")


class StintStarted(Timed):
    """A driver started a stint on a set of tyres (from TimingAppData).

    Version 2 added `utc` (and `tyres_changed`, with a default).
    """

    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        """Pipeline 1.0.0 had no time base: its stints have no UTC."""
        return {**data, "utc": None}

    driver: int = Field(description="Racing number.")
    stint: int = Field(ge=1, description="Stint number, 1 for the first set.")
    compound: str | None = Field(description="Compound as first reported (may be UNKNOWN).")
    new_tyres: bool | None = Field(description="Whether the set was new.")
    tyre_age_laps: int | None = Field(
        description="Laps already on the set when fitted (StartLaps)."
    )
    tyres_changed: bool = Field(
        default=True, description="False when the feed says the tyres were not changed."
    )


class StintCompoundChanged(Timed):
    """The feed re-named a stint's compound (e.g. UNKNOWN, then MEDIUM)."""

    driver: int = Field(description="Racing number.")
    stint: int = Field(ge=1, description="Stint number, 1 for the first set.")
    compound: str | None = Field(description="The compound now reported.")
    previous: str | None = Field(description="The compound reported before.")


class PitStop(Timed):
    """A pass through the pit lane: `session_time_ms` / `utc` are the pit entry."""

    driver: int = Field(description="Racing number.")
    stop: int = Field(ge=1, description="The driver's pit stop number in the session.")
    in_lap: int | None = Field(description="Lap on which the car entered the pit lane.")
    out_lap: int | None = Field(description="Lap on which it left (null if it did not).")
    pit_exit_time_ms: int | None = Field(description="Offset (ms) at which it left the pit lane.")
    pit_lane_ms: int | None = Field(description="Entry to exit (ms), when both were seen.")
    flags: tuple[str, ...] = Field(
        default=(), description="QA findings that flag it, e.g. `qa:consistency.pit_order`."
    )


class TrackStatusChanged(Timed):
    """The track status changed (TrackStatus)."""

    status: str = Field(
        description="Code: 1 AllClear, 2 Yellow, 4 SCDeployed, 5 Red, 6 VSCDeployed, 7 VSCEnding."
    )
    message: str = Field(description="The feed's name for it, e.g. `SCDeployed`.")


class NeutralisationPeriod(Timed):
    """A safety car, virtual safety car or red flag: `session_time_ms` / `utc` are its start."""

    kind: str = Field(description="`SC`, `VSC` or `RED`.")
    end_time_ms: int | None = Field(
        description="Offset (ms) at which it ended; null if open at the end."
    )
    end_utc: datetime | None = Field(description="UTC of its end.")
    first_lap: int | None = Field(description="Leader's lap in progress when it started.")
    last_lap: int | None = Field(description="Leader's lap in progress when it ended.")


class NeutralisationDetected(Timed):
    """A neutralisation detected live from one kind of evidence, as soon as it sufficed.

    `session_time_ms` / `utc` are the fact that made the evidence sufficient. Each
    source numbers its own periods from 1; the same period seen by several sources is
    told once by each (see `f1daemon.feed.neutralisation` for the rules). The end is a
    `NeutralisationCleared` of the same source and period (none if the stream ended
    first). `NeutralisationPeriod` (from the track status, at its end) is unchanged.
    """

    source: str = Field(description="Kind of evidence: `track_status`, `race_control` or `timing`.")
    period: int = Field(ge=1, description="The source's period number in the session (from 1).")
    kind: str = Field(
        description="`SC`, `VSC`, `RED`, or `UNKNOWN` (timing: a slowdown of either safety car)."
    )
    evidence: str = Field(
        description="The evidence in words, e.g. `race control: SAFETY CAR DEPLOYED` or "
        "`14 of 18 running cars at least 25 % slower than their green pace …`."
    )
    cars: tuple[int, ...] = Field(
        default=(), description="Timing: the cars whose data made the evidence (racing numbers)."
    )
    cars_compared: int | None = Field(
        default=None, description="Timing: the running cars the evidence was judged among."
    )
    ratio: float | None = Field(
        default=None,
        description="Timing slowdown: median of the slow cars' sector time / green pace.",
    )


class NeutralisationCleared(Timed):
    """The end of a `NeutralisationDetected` period, by the same kind of evidence.

    `session_time_ms` / `utc` are the fact that said it was over (for timing, the
    moment the field was back at pace, so some seconds after the restart).
    """

    source: str = Field(description="Kind of evidence: `track_status`, `race_control` or `timing`.")
    period: int = Field(ge=1, description="The period's number, as its NeutralisationDetected.")
    kind: str = Field(description="The period's kind, as detected.")
    started_time_ms: int = Field(description="Offset (ms) of its NeutralisationDetected.")
    evidence: str = Field(description="What said it was over, in words.")


class RaceControlMessage(Timed):
    """A race-control message; `utc` is the message's own stamp when it has one."""

    category: str = Field(description="E.g. Flag, SafetyCar, Drs, CarEvent, Other.")
    message: str = Field(description="The text.")
    flag: str | None = Field(default=None, description="Flag shown, e.g. YELLOW, RED, CLEAR.")
    scope: str | None = Field(default=None, description="Track, Sector or Driver.")
    sector: int | None = Field(default=None, description="Sector the flag applies to.")
    driver: int | None = Field(default=None, description="Racing number concerned.")
    lap: int | None = Field(default=None, description="Lap race control stamped it with.")
    status: str | None = Field(default=None, description="E.g. DRS ENABLED / DISABLED.")


class WeatherObserved(Timed):
    """A weather observation from the circuit's station (WeatherData)."""

    air_temp_c: float | None = Field(description="Air temperature (°C).")
    track_temp_c: float | None = Field(description="Track temperature (°C).")
    humidity_pct: float | None = Field(description="Relative humidity (%).")
    pressure_mbar: float | None = Field(description="Air pressure (mbar).")
    rainfall: bool | None = Field(description="Whether it is raining.")
    wind_direction_deg: int | None = Field(description="Wind direction (degrees).")
    wind_speed_ms: float | None = Field(description="Wind speed (m/s).")
    flags: tuple[str, ...] = Field(
        default=(), description="QA findings that flag it, e.g. `qa:consistency.track_below_air`."
    )


class WeatherForecast(Event):
    """The weather one provider forecasts for one time at a circuit."""

    provider: str = Field(description="`open-meteo` or `openweathermap`.")
    circuit: str | None = Field(description="Ergast circuitId, when fetched for a circuit.")
    latitude: float = Field(description="Latitude the provider answered for.")
    longitude: float = Field(description="Longitude the provider answered for.")
    issued_at: datetime | None = Field(
        description="When the provider issued the forecast (neither API says: null)."
    )
    fetched_at: datetime = Field(description="UTC time the response was received.")
    valid_at: datetime = Field(description="UTC time the values are forecast for.")
    period_h: float = Field(
        description="Hours before `valid_at` that `rain_mm` accumulates over (1 or 3)."
    )
    air_temp_c: float | None = Field(description="Air temperature at 2 m (°C).")
    humidity_pct: float | None = Field(description="Relative humidity at 2 m (%).")
    rain_probability_pct: float | None = Field(description="Probability of precipitation (%).")
    rain_mm: float | None = Field(description="Precipitation (rain, showers, snow) in the period.")
    wind_speed_ms: float | None = Field(description="Wind speed at 10 m (m/s).")
    wind_direction_deg: float | None = Field(description="Wind direction at 10 m (° from).")
    pressure_hpa: float | None = Field(description="Surface (ground-level) air pressure (hPa).")


class SessionStateChanged(Timed):
    """The session moved between PRE_SESSION, ACTIVE, POST_SESSION and COMPLETED."""

    state: str = Field(description="PRE_SESSION, ACTIVE, POST_SESSION or COMPLETED.")
    feed_status: str = Field(
        description="The feed's SessionStatus, e.g. Started, Aborted, Finished."
    )


class PositionChanged(Timed):
    """A driver's running position changed (TimingData Position)."""

    driver: int = Field(description="Racing number.")
    position: int = Field(ge=1, description="New running position.")


class TelemetryBatch(Timed):
    """Car telemetry decoded from one CarData.z message, as columns of equal length."""

    utc_ms: tuple[int, ...] = Field(description="Sample time, UTC epoch milliseconds.")
    driver: tuple[int, ...] = Field(description="Racing number.")
    rpm: tuple[int | None, ...] = Field(description="Engine speed (1/min), channel 0.")
    speed: tuple[int | None, ...] = Field(description="Speed (km/h), channel 2.")
    gear: tuple[int | None, ...] = Field(description="Gear (0 = neutral), channel 3.")
    throttle: tuple[int | None, ...] = Field(description="Throttle (%), channel 4.")
    brake: tuple[int | None, ...] = Field(description="Brake (0/100 or %), channel 5.")
    drs: tuple[int | None, ...] = Field(description="DRS state code, channel 45 (null if absent).")


class PositionBatch(Timed):
    """Car positions decoded from one Position.z message, as columns of equal length."""

    utc_ms: tuple[int, ...] = Field(description="Sample time, UTC epoch milliseconds.")
    driver: tuple[int, ...] = Field(description="Racing number.")
    status: tuple[str | None, ...] = Field(description="OnTrack / OffTrack.")
    x: tuple[int | None, ...] = Field(description="X (1/10 m).")
    y: tuple[int | None, ...] = Field(description="Y (1/10 m).")
    z: tuple[int | None, ...] = Field(description="Z (1/10 m).")


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


class QuarantineReleased(Event):
    """An operator released a record QA had quarantined: derivations from here on keep it.

    A fact of the session (stream `facts:{session}:operator:quarantine-releases`), so a
    replay `--until` before it derives the record quarantined again. The rule's finding
    stays, as a flag naming who released it and why.
    """

    source: str = Field(description="Always `operator`.")
    stream: str = Field(description="Always `quarantine-releases`.")
    sequence: int = Field(ge=1, description="Release number within the session.")
    rule: str = Field(description="The blocking rule whose verdict is overridden.")
    record: str = Field(description="The record released, e.g. `car 44 lap 12`.")
    reason: str = Field(description="Why the operator released it.")
    released_by: str = Field(description="Who released it (user name).")
    quarantine_position: int = Field(description="Log position of the quarantine released.")
    at: datetime = Field(description="UTC wall-clock time of the release.")


class AnomalyDetected(Event):
    """A QA rule's non-blocking finding: the record is kept, flagged, and this says why."""

    rule: str = Field(description="The rule, e.g. `anomaly.lap_time`.")
    rule_version: int = Field(description="The rule's version.")
    record_kind: str = Field(
        description="LapCompleted, PitStop, WeatherObserved or TelemetrySample."
    )
    record: str = Field(description="The record, e.g. `car 44 lap 12`.")
    driver: int | None = Field(description="Racing number, for a car's record.")
    number: int | None = Field(description="Lap number of a lap, stop number of a pit stop.")
    time_ms: int | None = Field(
        description="UTC ms of a telemetry sample, session time (ms) of a weather observation."
    )
    reason: str = Field(description="Why, in words an operator can act on.")
    released: bool = Field(
        default=False, description="A blocking finding an operator released (kept as a flag)."
    )


class AnomalyCleared(Event):
    """A correction: an earlier `AnomalyDetected` no longer holds (a later fact changed
    the record's context, e.g. race control reinstated a deleted lap); the projections
    take the rule's flag off the record."""

    rule: str = Field(description="The rule whose finding no longer holds.")
    record_kind: str = Field(description="LapCompleted, PitStop or WeatherObserved.")
    record: str = Field(description="The record, e.g. `car 44 lap 12`.")


class RuleFindings(BaseModel):
    """How often one QA rule fired in a session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    version: int
    severity: str = Field(description="`blocking` (quarantines) or `flag`.")
    findings: int


class QualityChecked(Event):
    """The QA outcome of a derivation run: the last event of every run since pipeline 2.2.

    Every checked record ends in exactly one outcome: passed, flagged or quarantined.
    """

    records_checked: int = Field(description="Laps, pit stops, weather and telemetry samples.")
    passed: int = Field(description="Records without findings.")
    flagged: int = Field(description="Records with findings, none blocking (kept, flagged).")
    quarantined: int = Field(description="Records with a blocking finding (RecordQuarantined).")
    quality_score: float = Field(description="(passed + flagged) / records_checked; 1 if none.")
    rules: tuple[RuleFindings, ...] = Field(description="Every rule run, with its findings.")


class DriverListed(Timed):
    """Who a racing number is in the session, as `DriverList` tells it (again when the
    feed changes it). Names as OpenF1's `drivers`."""

    driver: int = Field(description="Racing number.")
    name_acronym: str | None = Field(default=None, description="Three-letter code, e.g. VER.")
    first_name: str | None = Field(default=None, description="First name.")
    last_name: str | None = Field(default=None, description="Last name.")
    full_name: str | None = Field(default=None, description="Full name as the feed writes it.")
    broadcast_name: str | None = Field(default=None, description="Name on the TV graphics.")
    team_name: str | None = Field(default=None, description="Team.")
    team_colour: str | None = Field(default=None, description="Team colour, hex RRGGBB.")
    country_code: str | None = Field(default=None, description="Driver's country, if given.")
    headshot_url: str | None = Field(default=None, description="Photo URL, if given.")


class SessionDescribed(Timed):
    """The session as `SessionInfo` describes it, with F1's own numeric keys. Names as
    OpenF1's `sessions`; dates in UTC (the feed gives local time and its offset)."""

    session_key: int | None = Field(default=None, description="F1's numeric session key.")
    meeting_key: int | None = Field(default=None, description="F1's numeric meeting key.")
    meeting_name: str | None = Field(default=None, description="E.g. Mexico City Grand Prix.")
    session_name: str | None = Field(default=None, description="E.g. Qualifying, Practice 2.")
    session_type: str | None = Field(default=None, description="Race, Qualifying, Practice…")
    circuit_key: int | None = Field(default=None, description="F1's numeric circuit key.")
    circuit_short_name: str | None = Field(default=None, description="Circuit, e.g. Monza.")
    country_key: int | None = Field(default=None, description="F1's numeric country key.")
    country_code: str | None = Field(default=None, description="Country code, e.g. MEX.")
    country_name: str | None = Field(default=None, description="Country name.")
    location: str | None = Field(default=None, description="City or area.")
    date_start: datetime | None = Field(default=None, description="Scheduled start, UTC.")
    date_end: datetime | None = Field(default=None, description="Scheduled end, UTC.")
    gmt_offset: str | None = Field(default=None, description="Local time's offset, ±HH:MM:SS.")
    year: int | None = Field(default=None, description="Season.")


# Official results (Jolpica's rows) are in their own module, built on Event above;
# `f1daemon.domain` imports this module first, so either may be imported first.
from f1daemon.domain.results import RESULT_TYPES, ResultEvent  # noqa: E402

# What sources send: every message as received, or the line that could not be one.
Fact = MessageReceived | RecordQuarantined
# What a derivation reads: the facts and the operators' releases.
Input = MessageReceived | RecordQuarantined | QuarantineReleased

DerivedEvent = (
    TimeBaseEstablished
    | LapCompleted
    | LapDeleted
    | StintStarted
    | StintCompoundChanged
    | PitStop
    | TrackStatusChanged
    | NeutralisationPeriod
    | NeutralisationDetected
    | NeutralisationCleared
    | RaceControlMessage
    | WeatherObserved
    | SessionStateChanged
    | PositionChanged
    | TelemetryBatch
    | PositionBatch
    | RecordQuarantined
    | AnomalyDetected
    | AnomalyCleared
    | QualityChecked
    | WeatherForecast
    | DriverListed
    | SessionDescribed
    | ResultEvent
)

DERIVED_TYPES: tuple[type[Event], ...] = (
    TimeBaseEstablished,
    LapCompleted,
    LapDeleted,
    StintStarted,
    StintCompoundChanged,
    PitStop,
    TrackStatusChanged,
    NeutralisationPeriod,
    NeutralisationDetected,
    NeutralisationCleared,
    RaceControlMessage,
    WeatherObserved,
    SessionStateChanged,
    PositionChanged,
    TelemetryBatch,
    PositionBatch,
    RecordQuarantined,
    AnomalyDetected,
    AnomalyCleared,
    QualityChecked,
    WeatherForecast,
    DriverListed,
    SessionDescribed,
    *RESULT_TYPES,
)

EVENT_TYPES: tuple[type[Event], ...] = (
    MessageReceived,
    SessionRegistered,
    DerivationStarted,
    DerivationCompleted,
    VersionTagged,
    RolledBack,
    SourceStateChanged,
    TelemetryShed,
    ConnectionGap,
    FactsUnwritten,
    QuarantineReleased,
    *DERIVED_TYPES,
)
