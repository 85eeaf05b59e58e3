"""Events of the log: the facts as received, and what the feed decoders derive from them.

Every event is a frozen pydantic model. `class_version` is stored with each event so
that a later schema can upcast what an earlier one wrote. The classes live in modules
by kind (`base`, `facts`, `timing`, `session`, `telemetry`, `quality`, `operations`,
`results`);
this module is where the rest of f1daemon imports them from, and where the unions of
what a derivation reads and writes are. A stored event's topic names this module
(`f1daemon.domain.events:LapCompleted`) whichever module defines the class, so
moving a class keeps old logs readable.
"""

from __future__ import annotations

from f1daemon.domain.base import (
    Event,
    Timed,
)
from f1daemon.domain.facts import (
    MessageReceived,
    QuarantineReleased,
    RecordQuarantined,
    SessionRegistered,
)
from f1daemon.domain.operations import (
    ConnectionGap,
    DerivationCompleted,
    DerivationStarted,
    FactsUnwritten,
    RolledBack,
    SourceStateChanged,
    TelemetryShed,
    VersionTagged,
)
from f1daemon.domain.quality import (
    AnomalyCleared,
    AnomalyDetected,
    QualityChecked,
    RuleFindings,
)
from f1daemon.domain.results import RESULT_TYPES, ResultEvent
from f1daemon.domain.session import (
    DriverListed,
    NeutralisationCleared,
    NeutralisationDetected,
    NeutralisationPeriod,
    RaceControlMessage,
    SessionDescribed,
    SessionStateChanged,
    TimeBaseEstablished,
    TrackStatusChanged,
    WeatherForecast,
    WeatherObserved,
)
from f1daemon.domain.telemetry import (
    PositionBatch,
    TelemetryBatch,
)
from f1daemon.domain.timing import (
    IntervalBatch,
    LapCompleted,
    LapDeleted,
    PitStop,
    PositionChanged,
    StintCompoundChanged,
    StintStarted,
)

__all__ = [
    "DERIVED_TYPES",
    "EVENT_TYPES",
    "RESULT_TYPES",
    "AnomalyCleared",
    "AnomalyDetected",
    "ConnectionGap",
    "DerivationCompleted",
    "DerivationStarted",
    "DerivedEvent",
    "DriverListed",
    "Event",
    "Fact",
    "FactsUnwritten",
    "Input",
    "IntervalBatch",
    "LapCompleted",
    "LapDeleted",
    "MessageReceived",
    "NeutralisationCleared",
    "NeutralisationDetected",
    "NeutralisationPeriod",
    "PitStop",
    "PositionBatch",
    "PositionChanged",
    "QualityChecked",
    "QuarantineReleased",
    "RaceControlMessage",
    "RecordQuarantined",
    "ResultEvent",
    "RolledBack",
    "RuleFindings",
    "SessionDescribed",
    "SessionRegistered",
    "SessionStateChanged",
    "SourceStateChanged",
    "StintCompoundChanged",
    "StintStarted",
    "TelemetryBatch",
    "TelemetryShed",
    "TimeBaseEstablished",
    "Timed",
    "TrackStatusChanged",
    "VersionTagged",
    "WeatherForecast",
    "WeatherObserved",
]

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
    | IntervalBatch
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
    IntervalBatch,
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
