"""One session's derivation as a fold: facts in, final events out, one fact at a time.

The pipeline's decoders and QA's streaming checks, with what the run has read (how
many facts, the last position, a digest). The same fold runs for the daemon's live
run, which feeds it the facts of each commit as they come, and for a batch run
(ingest, replay, verify), which feeds it all of them: the events depend only on the
facts and their order, never on how they were split into commits.

The order is stream time. A run reads the facts already logged when it starts in
stream-time order (`stream_ordered`), and those logged after that as they arrive,
which is stream-time order too: a live source stamps its facts with the feed's own
clock, which never goes back, and an ingest merges its files by offset. A fact that
arrives earlier in stream time than one already read (the rest of a session ingested
later) cannot be folded in where it belongs, so the run stops there
(`SessionFold.would_reorder`) and a new run starts, which reads it in its place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from f1daemon.domain.events import (
    DerivedEvent,
    Input,
    PositionBatch,
    QuarantineReleased,
    RecordQuarantined,
    TelemetryBatch,
)
from f1daemon.feed.messages import FeedMessage
from f1daemon.feed.pipeline import Pace, Pipeline
from f1daemon.qa.report import QAReport
from f1daemon.qa.verdicts import StreamingQA


class SessionFold:
    """The state of one session's derivation run between facts."""

    def __init__(self, session: str, pace: Pace | None = None) -> None:
        self.session = session
        self.pipeline = Pipeline(session)
        self.qa = StreamingQA(session)
        self.facts = 0  # messages read (quarantined lines and releases are not)
        self.inputs = 0  # everything read
        self.last_position = 0
        self.stream_ms = -1  # the latest offset read
        self._digest = hashlib.sha256()
        self._pace = pace

    def feed(self, position: int, fact: Input | FeedMessage) -> list[DerivedEvent]:
        """Take the next input of the session (its log position), or a message read
        from files for a derivation in memory; return what became final."""
        self._hash(position, fact)
        self.inputs += 1
        self.last_position = max(self.last_position, position)
        if isinstance(fact, QuarantineReleased):
            return _stored(self.qa.on_release(fact))
        if isinstance(fact, RecordQuarantined):
            return []  # a line no source could frame: nothing to derive
        self.facts += 1
        if fact.offset_ms is not None:
            self.stream_ms = max(self.stream_ms, fact.offset_ms)
        if self._pace is not None:
            self._pace(fact)
        return _stored(self.qa.on_events(self.pipeline.on_fact(fact)))

    def finish(self) -> list[DerivedEvent]:
        """The stream has ended: what waited for late values, then the QA report."""
        return _stored([*self.qa.on_events(self.pipeline.finish()), *self.qa.finish()])

    def would_reorder(self, fact: Input | FeedMessage) -> bool:
        """Whether a fact is earlier in stream time than one already read."""
        if isinstance(fact, QuarantineReleased | RecordQuarantined) or fact.offset_ms is None:
            return False
        return fact.offset_ms < self.stream_ms

    @property
    def undecodable(self) -> int:
        """Facts whose payload could not be decoded (quarantined by the decoders)."""
        return self.pipeline.quarantined

    def report(self) -> QAReport:
        """QA's running report."""
        return self.qa.report()

    def facts_sha256(self) -> str:
        """SHA-256 over every input read, in order (`DerivationCompleted.facts_sha256`)."""
        return self._digest.hexdigest()

    def _hash(self, position: int, fact: Input | FeedMessage) -> None:
        digest = self._digest
        digest.update(f"{position}\0{fact.source}\0{fact.stream}\0{fact.sequence}\0".encode())
        if isinstance(fact, QuarantineReleased):
            digest.update(f"{fact.rule}\0{fact.record}".encode())
        else:
            digest.update(fact.payload.encode())
        digest.update(b"\0")


def stream_ordered(inputs: Iterable[tuple[int, Input]]) -> list[tuple[int, Input]]:
    """Inputs in stream-time order: by offset, then log position; one without an offset
    (a line that had none, a release) keeps its place after the input before it."""
    keyed: list[tuple[int, int, Input]] = []
    offset = -1
    for position, fact in inputs:
        if (
            not isinstance(fact, QuarantineReleased | RecordQuarantined)
            and fact.offset_ms is not None
        ):
            offset = fact.offset_ms
        keyed.append((offset, position, fact))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [(position, fact) for _, position, fact in keyed]


def _stored(events: list[DerivedEvent]) -> list[DerivedEvent]:
    # Telemetry batches are checked, not stored: readers decode them from the facts
    # (`f1daemon.projections.telemetry`); what QA made of them is in the other events.
    if not any(isinstance(e, TelemetryBatch | PositionBatch) for e in events):
        return events
    return [e for e in events if not isinstance(e, TelemetryBatch | PositionBatch)]
