"""A run's events as current data: its corrections applied.

A run never rewrites what it appended; a later event corrects an earlier one, and
every reader of derived data (exports, the lake, the PostgreSQL tables, diffs) reads
them through `current_data`:

* `TimeBaseEstablished` — the time base moved: every time that was computed from the
  earlier estimate (`utc` = t0 + `session_time_ms`, `end_utc` = t0 + `end_time_ms`,
  a lap's `date_start` = t0 + `lap_start_time_ms`) is mapped with the latest one;
* `RecordQuarantined` from QA naming a record emitted earlier — the record leaves the
  data (it comes back if QA emits it again, e.g. after a release);
* `AnomalyDetected` / `AnomalyCleared` — the rule's `qa:{rule}` flag is added to, or
  taken off, the record's rows;
* a telemetry sample QA quarantined (and no operator released) leaves every batch
  that holds it, earlier or later.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from f1daemon.domain.events import (
    AnomalyCleared,
    AnomalyDetected,
    DerivedEvent,
    LapCompleted,
    NeutralisationPeriod,
    PitStop,
    RecordQuarantined,
    TelemetryBatch,
    TimeBaseEstablished,
    Timed,
    WeatherObserved,
)
from f1daemon.feed.timebase import offset_utc
from f1daemon.projections.telemetry import telemetry_events
from f1daemon.qa.car_checks import record_ref
from f1daemon.qa.verdicts import QA_SOURCE, telemetry_columns
from f1daemon.store.eventlog import EventLog

_SAMPLE = re.compile(r"car (-?\d+) telemetry sample at UTC (-?\d+) ms")


# Events with a second moment besides `utc`: (its UTC field, its offset field).
_SECOND_TIMES: dict[type[Timed], tuple[str, str]] = {
    NeutralisationPeriod: ("end_utc", "end_time_ms"),
    LapCompleted: ("date_start", "lap_start_time_ms"),
}


def _on_base(event: Timed, t0: datetime | None, utc_field: str, ms_field: str) -> bool:
    """The event's second time was computed from `t0` (and so moves with it)."""
    offset = getattr(event, ms_field)
    return offset is not None and getattr(event, utc_field) == offset_utc(t0, offset)


def current_data(events: Sequence[DerivedEvent]) -> list[DerivedEvent]:
    """The events with their corrections applied (those that correct nothing stay)."""
    result: list[DerivedEvent | None] = list(events)
    t0: datetime | None = None
    on_base: list[tuple[int, datetime | None, bool]] = []  # (index, t0 used, 2nd time too)
    rows: dict[str, list[int]] = defaultdict(list)  # record -> indices of its rows
    for index, event in enumerate(events):
        if isinstance(event, TimeBaseEstablished):
            t0 = event.t0_utc
            continue
        if isinstance(event, Timed) and event.utc == offset_utc(t0, event.session_time_ms):
            second = _SECOND_TIMES.get(type(event))
            ends = second is not None and _on_base(event, t0, *second)
            on_base.append((index, t0, ends))
        if isinstance(event, LapCompleted | PitStop | WeatherObserved):
            rows[record_ref(event).describe()].append(index)
        elif isinstance(event, RecordQuarantined) and event.source == QA_SOURCE and event.record:
            for row in rows.pop(event.record, []):
                result[row] = None
        elif isinstance(event, AnomalyDetected | AnomalyCleared):
            _flag(result, rows.get(event.record, []), event)
    for index, used, ends in on_base:
        kept = result[index]
        if kept is None or used == t0:
            continue
        assert isinstance(kept, Timed)  # noqa: S101 - indexed as one above
        update: dict[str, object] = {"utc": offset_utc(t0, kept.session_time_ms)}
        second = _SECOND_TIMES.get(type(kept))
        if ends and second is not None:
            utc_field, ms_field = second
            update[utc_field] = offset_utc(t0, getattr(kept, ms_field))
        result[index] = kept.model_copy(update=update)
    refused = _quarantined_samples(events)
    return [
        _without(event, refused) if isinstance(event, TelemetryBatch) else event
        for event in result
        if event is not None
    ]


class LapCount:
    """The laps of a run's current data per driver, kept up as its events are appended
    (as the laps export counts them, without reading the run back): a `LapCompleted`
    counts until QA quarantines its record, as `current_data` has it."""

    def __init__(self) -> None:
        self.by_driver: dict[int, int] = {}  # racing number -> laps
        self._laps: dict[str, list[int]] = defaultdict(list)  # lap record -> its drivers

    def add(self, events: Sequence[DerivedEvent]) -> None:
        """`events` were appended to the run, after those added before."""
        for event in events:
            if isinstance(event, LapCompleted):
                self._laps[record_ref(event).describe()].append(event.driver)
                self.by_driver[event.driver] = self.by_driver.get(event.driver, 0) + 1
            elif (
                isinstance(event, RecordQuarantined) and event.source == QA_SOURCE and event.record
            ):
                for driver in self._laps.pop(event.record, ()):
                    self.by_driver[driver] -= 1


def standing_anomalies(events: Sequence[DerivedEvent]) -> list[AnomalyDetected]:
    """The run's `AnomalyDetected` that no later `AnomalyCleared` withdrew, in order."""
    standing: dict[tuple[str, str], list[AnomalyDetected]] = defaultdict(list)
    for event in events:
        if isinstance(event, AnomalyDetected):
            standing[(event.record, event.rule)].append(event)
        elif isinstance(event, AnomalyCleared):
            standing.pop((event.record, event.rule), None)
    kept = {id(e) for group in standing.values() for e in group}
    return [e for e in events if isinstance(e, AnomalyDetected) and id(e) in kept]


def _quarantined_samples(events: Sequence[DerivedEvent]) -> set[tuple[int, int]]:
    refused: set[tuple[int, int]] = set()
    for event in events:
        if (
            isinstance(event, RecordQuarantined)
            and event.source == QA_SOURCE
            and event.topic == "TelemetrySample"
        ):
            key = _sample_key(event.record)
            if key is not None:
                refused.add(key)
        elif (
            isinstance(event, AnomalyDetected)
            and event.released
            and event.record_kind == "TelemetrySample"
        ):
            key = _sample_key(event.record)
            if key is not None:
                refused.discard(key)
    return refused


def _sample_key(record: str | None) -> tuple[int, int] | None:
    match = _SAMPLE.fullmatch(record or "")
    return None if match is None else (int(match[1]), int(match[2]))


def _without(batch: TelemetryBatch, refused: set[tuple[int, int]]) -> TelemetryBatch:
    if not refused:
        return batch
    rows = min(len(batch.driver), len(batch.utc_ms))
    skip = {row for row in range(rows) if (batch.driver[row], batch.utc_ms[row]) in refused}
    if not skip:
        return batch
    return batch.model_copy(
        update={
            name: tuple(v for row, v in enumerate(column) if row not in skip)
            for name, column in telemetry_columns(batch).items()
        }
    )


def _flag(
    result: list[DerivedEvent | None], indices: list[int], event: AnomalyDetected | AnomalyCleared
) -> None:
    flag = f"qa:{event.rule}"
    for index in indices:
        row = result[index]
        if not isinstance(row, LapCompleted | PitStop | WeatherObserved):
            continue
        if isinstance(event, AnomalyDetected) and flag not in row.flags:
            result[index] = row.model_copy(update={"flags": (*row.flags, flag)})
        elif isinstance(event, AnomalyCleared) and flag in row.flags:
            result[index] = row.model_copy(
                update={"flags": tuple(f for f in row.flags if f != flag)}
            )


def session_data(
    event_log: EventLog, session: str, at: int | None = None, *, telemetry: bool = False
) -> tuple[int, list[DerivedEvent]] | None:
    """A session's current run and data (as at a log position), corrections applied;
    None when it has no run then. With `telemetry`, the run's telemetry batches come
    after its events (decoded from the facts, `f1daemon.projections.telemetry`)."""
    selected = event_log.current_selection(session, at)
    if selected is None:
        return None
    run, cap = selected
    if run is None:
        return None
    limits = [p for p in (cap, at) if p is not None]
    limit = min(limits, default=None)
    events = event_log.derived_events_at(session, run, limit)
    if telemetry:
        # Runs since pipeline 3.0 read up to their tracking position; older runs
        # stored their batches as events.
        tracked = event_log.run_position(session, run)
        if tracked is not None:
            until = tracked if limit is None else min(tracked, limit)
            events.extend(telemetry_events(event_log, session, events, until))
    return run, current_data(events)
