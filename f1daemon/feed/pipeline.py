"""The derivation pipeline: facts in, derived events out.

The same code runs for ingestion, the live path and replay, so a log always derives
to the same events. Facts are taken one at a time in log order, the order they were
appended (an ingest merges its files by offset; a live source appends as it
receives), so a continuous derivation that follows the log and a batch one over the
same facts read the same sequence and derive the same events.
A message whose payload cannot be decoded is quarantined with the reason — never
guessed at, never dropped. Topics without a decoder are kept in the log as facts
and simply derive nothing (yet).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from f1daemon._native import TimingDigest
from f1daemon.domain.events import (
    DerivedEvent,
    Input,
    QuarantineReleased,
    RaceControlMessage,
    RecordQuarantined,
    SessionStateChanged,
    TimeBaseEstablished,
    TrackStatusChanged,
)
from f1daemon.feed import forecast, jolpica, weather
from f1daemon.feed.identities import DriverRoster, SessionDescription
from f1daemon.feed.intervals import IntervalTracker
from f1daemon.feed.laps import LapFitter
from f1daemon.feed.messages import DigestedTiming, FeedMessage
from f1daemon.feed.neutralisation import NeutralisationDetector
from f1daemon.feed.race_control import RaceControl
from f1daemon.feed.replays import ReplayFilter
from f1daemon.feed.session_status import SessionStatusTracker
from f1daemon.feed.state import JSON, merge
from f1daemon.feed.stints import StintTracker
from f1daemon.feed.telemetry import position_batch, telemetry_batch
from f1daemon.feed.timebase import TimeBaseTracker
from f1daemon.feed.track_status import TrackStatusTracker

# 4.2.1: joined mid-session (a live connection's first snapshot), the snapshot's
# LastLapTime is the completed lap's, not the one in progress: laps were timed one
# lap late until the next stay in the pits. QA's `plausibility.lap_time` version 2: a
# fast lap is judged against the session's fastest tenth, not its median (practice's
# cool-down laps made every flying lap "unusual").
# 4.2.0: numbers as numbers: a lap's gap to the leader and interval to the car ahead
# in seconds and laps down; the gaps and intervals over time (`IntervalBatch`); its
# start (time and UTC), `is_personal_best` and `fresh_tyre`; weather's wind speed is
# `wind_speed_mps` (WeatherObserved and WeatherForecast version 2).
# 4.1.0: Jolpica pages decoded into their rows (`f1daemon.domain.results`), not
# quarantined for want of a stream offset.
# 4.0.0: laps numbered as FastF1 and OpenF1 number them (no lap for the time in the
# garage before the first pit exit); a lap time spanning a stay in the pits is the
# lap's `line_to_line_ms`, not its time; the ST speed trap belongs to the lap in
# progress; a later crossing's time does not replace a lap's.
# A replayed message (same content, no later stamp) changes nothing. DriverList and
# SessionInfo derived (`DriverListed`, `SessionDescribed`).
# 3.1.0: a live fact's time base and UTC follow the feed's stamps (`sent_at`), not
# our receipt times; a keyframe's receipt moves the time base no more.
# 3.0.0: one fold over the facts in log order, as the continuous derivation reads
# them (no sort by stream time); the time base is estimated as the facts come, each
# move a new TimeBaseEstablished; QA checks each record once, when it is final.
# 2.3.0: neutralisations detected live (NeutralisationDetected / NeutralisationCleared)
# from track status, race control and timing; WeatherForecast facts decoded.
# 2.2.0: each run ends with its QA outcome (`f1daemon.qa.verdicts`). A QA rule's new
# version changes derived data too, so it is a new pipeline version.
PIPELINE_VERSION = "4.2.1"

# Topics decoded from their merged state; the others' decoders keep what they need.
MERGED_TOPICS = frozenset({"TrackStatus", "WeatherData", "SessionStatus", "LapCount"})
# Who the drivers are and what the session is.
IDENTITY_TOPICS = frozenset({"SessionInfo", "DriverList"})
# Topics decoded besides TimingData (the bulk of the feed, handled first).
DECODED_TOPICS = MERGED_TOPICS | {"TimingAppData", "RaceControlMessages", "CarData.z", "Position.z"}


@dataclass
class Pipeline:
    """Decoders of one session, fed one fact at a time in stream-time order."""

    session: str
    time_base: TimeBaseTracker = field(default_factory=TimeBaseTracker)
    stints: StintTracker = field(init=False)
    track: TrackStatusTracker = field(init=False)
    laps: LapFitter = field(init=False)
    race_control: RaceControl = field(init=False)
    session_status: SessionStatusTracker = field(init=False)
    neutralisation: NeutralisationDetector = field(init=False)
    states: dict[str, JSON] = field(default_factory=dict)
    quarantined: int = 0
    _topics_seen: set[str] = field(default_factory=set)
    _replays: ReplayFilter = field(default_factory=ReplayFilter)
    _timing_digest: TimingDigest = field(default_factory=TimingDigest)

    def __post_init__(self) -> None:
        self.stints = StintTracker(self.session)
        self.track = TrackStatusTracker(self.session)
        self.laps = LapFitter(self.session, self.stints, self.track, self.time_base)
        self.race_control = RaceControl(self.session, self.laps.lap_with_time)
        self.session_status = SessionStatusTracker(self.session)
        self.neutralisation = NeutralisationDetector(self.session, self.time_base)
        self.roster = DriverRoster(self.session)
        self.description = SessionDescription(self.session)
        self.intervals = IntervalTracker(self.session, self.time_base)

    def on_fact(self, fact: FeedMessage) -> list[DerivedEvent]:
        """Derive what one fact tells; returns the events now complete.

        A fact that moves the time base (a later stamp, the session's start) first
        records the new estimate: events before it carry the old one, and the
        projections map their times with the latest (see `f1daemon.projections`).
        """
        if fact.topic == forecast.TOPIC:
            return self._forecast(fact)  # fetched, not streamed: no offset
        if fact.topic.startswith(jolpica.TOPIC_PREFIX):
            return self._jolpica(fact)  # fetched too
        now = fact.offset_ms
        if now is None:
            return [
                self._quarantine(fact, "decode.timestamp", "the line has no HH:MM:SS.mmm offset")
            ]
        if self.time_base.observe(fact):
            moved = self._time_base_event()
            return [moved, *self._on_timed_fact(fact, now)]
        return self._on_timed_fact(fact, now)

    def _time_base_event(self) -> TimeBaseEstablished:
        current = self.time_base.current
        return TimeBaseEstablished(
            session=self.session,
            t0_utc=current.t0,
            session_start_ms=current.session_start_ms,
            samples=current.samples,
        )

    def _on_timed_fact(self, fact: FeedMessage, now: int) -> list[DerivedEvent]:
        topic = fact.topic
        if topic != "TimingData" and self._replays.is_replay(topic, fact.payload, now):
            return []
        # The first message of a topic in an archive stream is its snapshot.
        keyframe = fact.keyframe or topic not in self._topics_seen
        if keyframe:
            self._topics_seen.add(topic)
        if topic == "TimingData":
            return self._timing_data(fact, now, keyframe=keyframe)
        derived: list[DerivedEvent] = list(self.laps.due(now))
        check = self.neutralisation.next_check_ms
        if check is not None and now >= check:
            derived.extend(self.neutralisation.tick(now))
        if topic in IDENTITY_TOPICS:
            # Metadata: who the drivers are, what the session is (its Type also tells
            # races and sprints apart); unreadable is not a fault.
            with contextlib.suppress(orjson.JSONDecodeError):
                message = orjson.loads(fact.payload)
                utc = fact.received_at or self.time_base.utc_at(now)
                if topic == "SessionInfo":
                    self.neutralisation.on_session_info(message)
                    derived.extend(
                        self.description.on_message(message, now, utc, keyframe=keyframe)
                    )
                else:
                    derived.extend(self.roster.on_message(message, now, utc, keyframe=keyframe))
        elif topic in DECODED_TOPICS:
            # The feed's own stamp first (a live fact's), as the time base does.
            utc = fact.sent_at or fact.received_at or self.time_base.utc_at(now)
            try:
                derived.extend(self._decode(fact, now, utc, keyframe=keyframe))
            except ValueError as error:
                derived.append(self._quarantine(fact, "decode.payload", str(error)))
        return derived

    def _timing_data(self, fact: FeedMessage, now: int, *, keyframe: bool) -> list[DerivedEvent]:
        # Most of the feed. The native digest keeps what the lap fitter reads; a
        # message with nothing of that is a no-op (the late-value windows are not
        # even checked), whether it was digested here or ahead with its whole file.
        if isinstance(fact, DigestedTiming):
            digest, error = fact.digest, fact.error
        else:
            try:
                digest, error = self._timing_digest.feed(fact.payload), None
            except ValueError as problem:
                digest, error = None, str(problem)
        if error is not None:
            return [self._quarantine(fact, "decode.payload", error)]
        if digest is None:
            return []
        # What the fitter reads is the content: a line digested ahead of the pipeline
        # has no payload, and two lines alike in it are alike to the laps. (The gap
        # changes need no such check: the digest reports a gap only when it changed, so
        # a replayed line changes none; and a car's gap can come back to an earlier one.)
        part, entries, changes = digest
        if (part is not None or entries) and self._replays.is_replay(
            "TimingData", repr((part, entries)), now
        ):
            return list(self.intervals.on_changes(changes, now))
        derived: list[DerivedEvent] = []
        derived.extend(self.laps.due(now))
        derived.extend(self.laps.on_message(digest, now, keyframe=keyframe))
        derived.extend(self.neutralisation.on_timing(digest, now, keyframe=keyframe))
        derived.extend(self.intervals.on_changes(changes, now))
        return derived

    def finish(self) -> list[DerivedEvent]:
        """The stream has ended: emit what was waiting for late values or an end."""
        return [*self.laps.finish(), *self.track.finish(), *self.intervals.finish()]

    def _decode(
        self, fact: FeedMessage, now: int, utc: datetime | None, *, keyframe: bool
    ) -> list[DerivedEvent]:
        if fact.topic == "CarData.z":
            return [telemetry_batch(self.session, fact.payload, now, utc)]
        if fact.topic == "Position.z":
            return [position_batch(self.session, fact.payload, now, utc)]
        message = _json_object(fact.payload)
        state: JSON = None
        if fact.topic in MERGED_TOPICS:
            # merge() builds its own containers, so the message itself stays unaliased.
            previous = None if keyframe else self.states.get(fact.topic)
            state = self.states[fact.topic] = merge(previous, message)
        events: list[DerivedEvent] = []
        match fact.topic:
            case "TimingAppData":
                events.extend(self.stints.on_message(message, now, utc))
            case "TrackStatus":
                events.extend(self.track.on_message(state, now, utc, self._leader_lap()))
            case "RaceControlMessages":
                events.extend(self.race_control.on_message(message, now, utc))
            case "SessionStatus":
                events.extend(self.session_status.on_message(state, now, utc))
            case "WeatherData":
                observed = weather.observation(self.session, state, now, utc)
                events.extend([observed] if observed else [])
            case _:
                pass  # LapCount: kept as state for the leader's lap
        for event in tuple(events):
            # The live detector reads what these decoders made of the message.
            if isinstance(event, TrackStatusChanged):
                events.extend(self.neutralisation.on_track_status(event))
            elif isinstance(event, RaceControlMessage):
                events.extend(self.neutralisation.on_race_control(event))
            elif isinstance(event, SessionStateChanged):
                self.neutralisation.on_session_status(event.feed_status)
        return events

    def _forecast(self, fact: FeedMessage) -> list[DerivedEvent]:
        # A forecast provider's response: its rows, or the whole body quarantined.
        if fact.received_at is None:
            return [self._quarantine(fact, "decode.forecast", "a forecast without a receipt time")]
        parse = {
            forecast.OPEN_METEO: forecast.parse_open_meteo,
            forecast.OPENWEATHERMAP: forecast.parse_openweathermap,
        }.get(fact.source)
        if parse is None:
            reason = f"no forecast decoder for source {fact.source!r}"
            return [self._quarantine(fact, "decode.forecast", reason)]
        prefix = f"{fact.source}/"
        circuit = fact.stream.removeprefix(prefix) if fact.stream.startswith(prefix) else None
        try:
            rows = parse(
                fact.payload,
                fetched_at=fact.received_at,
                session=self.session,
                circuit=circuit or None,
            )
        except ValueError as error:
            return [self._quarantine(fact, "decode.forecast", str(error))]
        return list(rows)

    def _jolpica(self, fact: FeedMessage) -> list[DerivedEvent]:
        # A Jolpica page: one event per row, or the whole body quarantined.
        kind = jolpica.kind_of_topic(fact.topic)
        if kind is None:
            return [self._quarantine(fact, "decode.jolpica", f"no Jolpica kind {fact.topic!r}")]
        try:
            return list(jolpica.page_events(kind, fact.payload, self.session))
        except jolpica.JolpicaParseError as error:
            return [self._quarantine(fact, "decode.jolpica", str(error))]

    def _leader_lap(self) -> int | None:
        lap_count = self.states.get("LapCount")
        if isinstance(lap_count, dict):
            current = lap_count.get("CurrentLap")
            if isinstance(current, int) and not isinstance(current, bool):
                return current
        return self.laps.leader_lap()

    def _quarantine(self, fact: FeedMessage, rule: str, reason: str) -> RecordQuarantined:
        self.quarantined += 1
        return RecordQuarantined(
            session=self.session,
            source=fact.source,
            stream=fact.stream,
            sequence=fact.sequence,
            topic=fact.topic,
            rule=rule,
            reason=reason,
            payload=fact.payload,
        )


@dataclass(frozen=True)
class Derivation:
    """The result of deriving a session: its events and what was read."""

    events: list[DerivedEvent]
    facts: int
    last_fact_position: int
    undecodable: int


# Called before each fact is derived: a replay at a chosen speed sleeps here.
Pace = Callable[[FeedMessage], None]


def derive(
    session: str, facts: Iterable[tuple[int, Input | FeedMessage]], pace: Pace | None = None
) -> Derivation:
    """Run the pipeline over a session's facts (or messages), each with its log position,
    in log order, to the end of the stream (no QA: see `f1daemon.projections.fold`)."""
    # A derivation allocates many objects that all live to its end: the cyclic
    # garbage collector's passes over them would find nothing to free.
    collecting = gc.isenabled()
    gc.disable()
    pipeline = Pipeline(session)
    events: list[DerivedEvent] = []
    read = 0
    last = 0
    try:
        for position, fact in facts:
            # Only messages derive: quarantined lines hold none, releases are for QA.
            if isinstance(fact, RecordQuarantined | QuarantineReleased):
                continue
            if pace is not None:
                pace(fact)
            events.extend(pipeline.on_fact(fact))
            read += 1
            last = max(last, position)
        events.extend(pipeline.finish())
    finally:
        if collecting:
            gc.enable()
    return Derivation(
        events=events, facts=read, last_fact_position=last, undecodable=pipeline.quarantined
    )


def _json_object(payload: str) -> dict[str, JSON]:
    message = orjson.loads(payload)  # a JSONDecodeError is a ValueError
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, got {type(message).__name__}")
    return message
