"""The time base of a session: how stream offsets map to UTC.

Archive offsets count from the stream's start t0, not from the session's start. A
message that carries a UTC stamp (race-control messages, heartbeats, the session
data series, the clock) was published at or after that moment, so `utc - offset`
is a lower bound of t0; the largest such bound is the estimate (stamps are often
truncated to the second, so it is good to about a second). A live recording's
receipt times give t0 directly.

A live source's facts carry the feed's own stamp (`sent_at`) besides our receipt
time: the stamp is the evidence, so the time base follows the feed's clock, not the
moment a message reached us (how late a reconnect's catch-up or the log's
back-pressure made that). A keyframe's receipt is no evidence at all: a snapshot is
unstamped and its offset is only the stream time reached when it came — after an
outage, the time before it — so its receipt minus its offset would move t0 by the
length of the outage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from f1daemon.feed.messages import FeedMessage
from f1daemon.feed.state import JSON

# Topics whose messages carry UTC stamps, and where.
STAMPED_TOPICS = (
    "RaceControlMessages",
    "Heartbeat",
    "SessionData",
    "ExtrapolatedClock",
    "TeamRadio",
)


@dataclass(frozen=True)
class TimeBase:
    """Stream offsets to UTC for one session."""

    t0: datetime | None
    session_start_ms: int | None
    samples: int

    def utc_at(self, offset_ms: int) -> datetime | None:
        """The UTC moment of a stream offset, if the session has a time base."""
        return offset_utc(self.t0, offset_ms)


def offset_utc(t0: datetime | None, offset_ms: int) -> datetime | None:
    """The UTC moment of a stream offset by a time base's t0 (None without one)."""
    return None if t0 is None else t0 + timedelta(milliseconds=offset_ms)


@dataclass
class TimeBaseTracker:
    """The time base as the facts come: the estimate so far, moved by each new bound.

    The continuous derivation reads facts once, in log order, so it cannot wait for
    the session's last stamp: each fact may raise the estimate (or find the start),
    and the derivation records every move as a new `TimeBaseEstablished`.
    """

    current: TimeBase = field(default_factory=lambda: TimeBase(None, None, 0))

    def utc_at(self, offset_ms: int) -> datetime | None:
        """The UTC moment of a stream offset by the estimate so far."""
        return self.current.utc_at(offset_ms)

    def observe(self, fact: FeedMessage) -> bool:
        """Take one fact's evidence; return whether t0 or the session's start moved."""
        if fact.offset_ms is None:
            return False
        best, start, samples = self.current.t0, self.current.session_start_ms, self.current.samples
        if fact.topic == "SessionStatus" and start is None and '"Started"' in fact.payload:
            start = fact.offset_ms
        stamps: list[datetime] = []
        if fact.sent_at is not None:
            stamps.append(fact.sent_at)
        elif fact.received_at is not None:
            if not fact.keyframe:
                stamps.append(fact.received_at)  # a recording's: the message's stamp
        elif fact.topic in STAMPED_TOPICS:
            stamps.extend(_stamps(fact.payload))
        for stamp in stamps:
            bound = stamp - timedelta(milliseconds=fact.offset_ms)
            samples += 1
            if best is None or bound > best:
                best = bound
        moved = best != self.current.t0 or start != self.current.session_start_ms
        self.current = TimeBase(t0=best, session_start_ms=start, samples=samples)
        return moved


def establish(facts: Iterable[FeedMessage]) -> TimeBase:
    """Estimate t0 from a session's stamped messages, and find the session's start."""
    tracker = TimeBaseTracker()
    for fact in facts:
        tracker.observe(fact)
    return tracker.current


def parse_utc(text: object) -> datetime | None:
    """A feed UTC stamp (`2019-09-07T13:00:00`, `…:34.2188616Z`) as an aware datetime."""
    if not isinstance(text, str) or len(text) < 19:
        return None
    base, _, fraction = text.rstrip("Z").partition(".")
    try:
        moment = datetime.fromisoformat(base)
    except ValueError:
        return None
    if fraction:
        if not fraction.isdigit():
            return None
        moment += timedelta(microseconds=int(fraction[:6].ljust(6, "0")))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _stamps(payload: str) -> Iterator[datetime]:
    try:
        message: JSON = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return
    yield from _find_utc(message)


def _find_utc(value: JSON) -> Iterator[datetime]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Utc":
                stamp = parse_utc(item)
                if stamp is not None:
                    yield stamp
            else:
                yield from _find_utc(item)
    elif isinstance(value, list):
        for item in value:
            yield from _find_utc(item)
