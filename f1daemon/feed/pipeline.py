"""The derivation pipeline: facts in, derived events out.

The same code runs for ingestion, the live path and replay, so a log always derives
to the same events. Facts are taken in stream-time order (offset, then log order);
a message whose payload cannot be decoded is counted, never guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from f1daemon.domain.events import DerivedEvent, MessageReceived
from f1daemon.feed.laps import LapFitter
from f1daemon.feed.state import JSON
from f1daemon.feed.stints import StintTracker

PIPELINE_VERSION = "1.0.0"


@dataclass
class Pipeline:
    """Decoders of one session, fed one fact at a time in stream-time order."""

    session: str
    stints: StintTracker = field(init=False)
    laps: LapFitter = field(init=False)
    undecodable: int = 0
    _topics_seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.stints = StintTracker(self.session)
        self.laps = LapFitter(self.session, self.stints)

    def on_fact(self, fact: MessageReceived) -> list[DerivedEvent]:
        """Derive what one fact tells; returns the events now complete."""
        now = fact.offset_ms
        if now is None:
            self.undecodable += 1
            return []
        keyframe = fact.topic not in self._topics_seen
        self._topics_seen.add(fact.topic)
        derived: list[DerivedEvent] = []
        if fact.topic in ("TimingData", "TimingAppData"):
            message = self._decode(fact)
            if message is None:
                return list(self.laps.due(now))
            if fact.topic == "TimingData":
                derived.extend(self.laps.on_message(message, now, keyframe=keyframe))
            else:
                derived.extend(self.laps.due(now))
                derived.extend(self.stints.on_message(message, now))
            return derived
        derived.extend(self.laps.due(now))
        return derived

    def finish(self) -> list[DerivedEvent]:
        """The stream has ended: emit what was waiting for late values."""
        return list(self.laps.finish())

    def _decode(self, fact: MessageReceived) -> JSON | None:
        try:
            message: JSON = orjson.loads(fact.payload)
        except orjson.JSONDecodeError:
            self.undecodable += 1
            return None
        return message


@dataclass(frozen=True)
class Derivation:
    """The result of deriving a session: its events and what was read."""

    events: list[DerivedEvent]
    facts: int
    last_fact_position: int
    undecodable: int


def derive(session: str, facts: Iterable[tuple[int, MessageReceived]]) -> Derivation:
    """Run the pipeline over a session's facts (with their log positions)."""
    ordered = sorted(facts, key=_stream_time_order)
    pipeline = Pipeline(session)
    events: list[DerivedEvent] = []
    for _, fact in ordered:
        events.extend(pipeline.on_fact(fact))
    events.extend(pipeline.finish())
    return Derivation(
        events=events,
        facts=len(ordered),
        last_fact_position=max((position for position, _ in ordered), default=0),
        undecodable=pipeline.undecodable,
    )


def _stream_time_order(item: tuple[int, MessageReceived]) -> tuple[int, int]:
    position, fact = item
    # Undated lines keep their place in the log; they carry nothing to derive.
    return (fact.offset_ms if fact.offset_ms is not None else -1, position)
