"""What the pipeline reads: a message of the feed, as a fact of the log or straight from a file.

Facts of the log (`MessageReceived`) and messages read from files for a derivation in
memory have the same attributes; the pipeline needs nothing more. A TimingData line
may come pre-digested (see `f1daemon._native.digest_timing_stream`): the native
digest of a whole file, done ahead in one call, carries only what the lap fitter
reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, Protocol

# Every topic the live feed publishes during a session: everything the decoders read,
# and the rest (facts first: decoders may come later). The last five are what the
# other live clients (FastF1's, f1-dash, OpenF1's) subscribe to besides: the pipeline
# keeps them as facts and derives nothing from them yet (it decodes `DECODED_TOPICS`
# and lets every other topic through, never quarantining a topic it does not read).
FEED_TOPICS = (
    "Heartbeat",
    "SessionInfo",
    "SessionStatus",
    "SessionData",
    "ExtrapolatedClock",
    "TrackStatus",
    "LapCount",
    "DriverList",
    "TimingData",
    "TimingAppData",
    "TimingStats",
    "TopThree",
    "TyreStintSeries",
    "RaceControlMessages",
    "TeamRadio",
    "WeatherData",
    "CarData.z",
    "Position.z",
    "PitLaneTimeCollection",
    "DriverRaceInfo",
    "PitStopSeries",
    "RcmSeries",
    "ChampionshipPrediction",
)
# Car telemetry: the bulk of the feed, and since late 2025 for F1 TV subscribers only.
TELEMETRY_TOPICS = frozenset({"CarData.z", "Position.z"})

if TYPE_CHECKING:
    # What the native digest makes of a TimingData message: the qualifying part, if
    # the message names one, and one typed entry per driver with lap-related values.
    from f1daemon._native import TimingDigestOutput


class FeedMessage(Protocol):
    """A message of the feed with where it came from and when."""

    @property
    def source(self) -> str: ...
    @property
    def stream(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def sequence(self) -> int: ...
    @property
    def offset_ms(self) -> int | None: ...
    @property
    def received_at(self) -> datetime | None: ...
    @property
    def sent_at(self) -> datetime | None: ...
    @property
    def payload(self) -> str: ...
    @property
    def keyframe(self) -> bool: ...


class RawMessage(NamedTuple):
    """A message read from a file for a derivation in memory (not a fact of a log)."""

    source: str
    stream: str
    topic: str
    sequence: int
    offset_ms: int | None
    payload: str
    received_at: datetime | None = None
    keyframe: bool = False
    sent_at: datetime | None = None  # (files carry the feed's stamps as received_at)


class DigestedTiming(NamedTuple):
    """A TimingData line digested natively ahead of the pipeline.

    `digest` is what the lap fitter reads (None when the line carries nothing for
    it); `error` says why the line could not be read. `payload` holds the line's
    text only where it may be quarantined (an error, or no offset).
    """

    source: str
    stream: str
    sequence: int
    offset_ms: int | None
    digest: TimingDigestOutput | None
    error: str | None
    payload: str = ""
    topic: str = "TimingData"
    received_at: datetime | None = None
    keyframe: bool = False
    sent_at: datetime | None = None
