"""Telemetry of a run, decoded on read from its facts.

`CarData.z` and `Position.z` are hundreds of thousands of samples a race; stored as
JSON events they would be several times the size of the compressed facts they come
from. Since pipeline 3.0 a run does not append them: the fold decodes each batch,
QA checks it (its quarantined samples and findings are the run's events), and the
rows are decoded again from the facts when a reader asks — natively, at well over a
million samples a second — with QA's quarantine applied. The facts and the run's
events are both digested, so `verify` covers what is read here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from f1daemon.domain.events import (
    DerivedEvent,
    MessageReceived,
    PositionBatch,
    TelemetryBatch,
    TimeBaseEstablished,
)
from f1daemon.feed.telemetry import position_batch, telemetry_batch
from f1daemon.feed.timebase import offset_utc
from f1daemon.store.eventlog import EventLog

TELEMETRY_TOPICS = ("CarData.z", "Position.z")


def telemetry_events(
    event_log: EventLog, session: str, events: Sequence[DerivedEvent], until: int
) -> Iterator[TelemetryBatch | PositionBatch]:
    """The run's telemetry batches, decoded from the session's facts up to `until` in
    log order, their times by the run's latest time base (`events`); the samples QA
    quarantined are taken out by `current_data`."""
    t0 = next((e.t0_utc for e in reversed(events) if isinstance(e, TimeBaseEstablished)), None)
    for _, fact in event_log.inputs(session, until=until):
        if not isinstance(fact, MessageReceived) or fact.topic not in TELEMETRY_TOPICS:
            continue
        if fact.offset_ms is None:
            continue
        utc = fact.received_at or offset_utc(t0, fact.offset_ms)
        try:
            if fact.topic == "CarData.z":
                yield telemetry_batch(session, fact.payload, fact.offset_ms, utc)
            else:
                yield position_batch(session, fact.payload, fact.offset_ms, utc)
        except ValueError:
            continue  # the run quarantined it (decode.payload)
