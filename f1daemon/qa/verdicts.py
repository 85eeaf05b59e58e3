"""What QA's findings do to a derivation run's events: quarantine, flags and the report.

The rules run over the events the decoders derived; then every checked record ends in
exactly one place:

* a record with a **blocking** finding is taken out of the derived data and replaced by
  a `RecordQuarantined` (rule, reason, the record as derived in JSON) — a lap leaves
  the lap table, a telemetry sample its batch;
* a record with only **non-blocking** findings stays, with `qa:{rule}` added to its
  `flags` (laps, pit stops, weather; a telemetry sample is a row and has none), and
  each finding becomes an `AnomalyDetected` (a quarantined record's do not);
* a record without findings stays as it is.

An operator's `QuarantineReleased` (rule, record) turns that rule's blocking finding
on that record into a flag that says who released it and why.

The run then ends with `QualityChecked`, its QA report. All of this is a pure
function of the derived events and the releases, so a replay gives the same run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

from f1daemon.domain.events import (
    AnomalyDetected,
    DerivedEvent,
    LapCompleted,
    PitStop,
    QualityChecked,
    QuarantineReleased,
    RecordQuarantined,
    TelemetryBatch,
    Timed,
    WeatherObserved,
)
from f1daemon.qa.report import QAReport, report_of
from f1daemon.qa.rules import (
    RULES,
    Finding,
    QASettings,
    RecordRef,
    Rule,
    SessionRecords,
    check_records,
    lap_ref,
    weather_ref,
)

# RecordQuarantined.source and .stream of what QA quarantines.
QA_SOURCE = "qa"
QA_STREAM = "derived-records"


def apply_releases(
    findings: Iterable[Finding], releases: Iterable[QuarantineReleased]
) -> list[Finding]:
    """The findings, with each released blocking finding turned into a flag."""
    released = {(r.rule, r.record): r for r in releases}
    result: list[Finding] = []
    for finding in findings:
        release = released.get((finding.rule, finding.record.describe()))
        if finding.severity == "blocking" and release is not None:
            finding = replace(  # noqa: PLW2901 - the finding, as released
                finding,
                severity="flag",
                reason=f"released by {release.released_by} ({release.reason}); "
                f"was quarantined: {finding.reason}",
                released=True,
            )
        result.append(finding)
    return result


def check_run(
    session: str,
    events: Sequence[DerivedEvent],
    releases: Sequence[QuarantineReleased] = (),
    rules: Sequence[Rule] = RULES,
    settings: QASettings | None = None,
) -> tuple[list[DerivedEvent], QAReport]:
    """A run's derived events with QA's verdicts applied, and the run's QA report."""
    records = SessionRecords.of(events)
    findings = apply_releases(check_records(records, rules, settings), releases)
    report = report_of(session, records.count(), findings, rules)
    blocking: dict[RecordRef, list[Finding]] = defaultdict(list)
    flags: dict[RecordRef, list[Finding]] = defaultdict(list)
    for finding in findings:
        (blocking if finding.severity == "blocking" else flags)[finding.record].append(finding)
    quarantine = _Quarantine(session, blocking)
    samples = quarantine.samples()
    checked: list[DerivedEvent] = []
    for event in events:
        if isinstance(event, TelemetryBatch):
            checked.extend(_telemetry_verdict(event, quarantine, samples))
        else:
            checked.extend(_verdict(event, quarantine, flags))
    # A quarantined record is no longer in the data: its flags would flag nothing.
    checked.extend(
        _anomaly(session, f) for f in findings if f.severity == "flag" and f.record not in blocking
    )
    checked.append(_quality_checked(report))
    return checked, report


class _Quarantine:
    """The records to quarantine, and the `RecordQuarantined` that replace them."""

    def __init__(self, session: str, blocking: dict[RecordRef, list[Finding]]) -> None:
        self.session = session
        self.blocking = blocking
        self.count = 0

    def __contains__(self, record: RecordRef) -> bool:
        return record in self.blocking

    def samples(self) -> frozenset[tuple[int | None, int | None]]:
        """The (driver, UTC ms) of the telemetry samples to quarantine."""
        return frozenset(
            (r.driver, r.time_ms) for r in self.blocking if r.kind == "TelemetrySample"
        )

    def of(self, record: RecordRef, payload: str) -> RecordQuarantined:
        findings = self.blocking[record]
        self.count += 1
        return RecordQuarantined(
            session=self.session,
            source=QA_SOURCE,
            stream=QA_STREAM,
            sequence=self.count,
            topic=record.kind,
            rule=findings[0].rule,
            reason="; ".join(
                f.reason if i == 0 else f"{f.rule}: {f.reason}" for i, f in enumerate(findings)
            ),
            payload=payload,
            record=record.describe(),
        )


def _verdict(
    event: DerivedEvent, quarantine: _Quarantine, flags: dict[RecordRef, list[Finding]]
) -> list[DerivedEvent]:
    """What becomes of one derived event: itself, flagged, or quarantined."""
    record: RecordRef
    if isinstance(event, LapCompleted):
        record = lap_ref(event)
    elif isinstance(event, PitStop):
        record = RecordRef("PitStop", driver=event.driver, number=event.stop)
    elif isinstance(event, WeatherObserved):
        record = weather_ref(event)
    else:
        return [event]
    if record in quarantine:
        return [quarantine.of(record, event.model_dump_json())]
    found = flags.get(record)
    if not found:
        return [event]
    added = tuple(dict.fromkeys(f"qa:{f.rule}" for f in found))
    return [event.model_copy(update={"flags": (*event.flags, *added)})]


# A batch's columns: its fields beyond those of every timed event.
_TELEMETRY_COLUMNS = tuple(
    name for name in TelemetryBatch.model_fields if name not in Timed.model_fields
)


def _telemetry_verdict(
    batch: TelemetryBatch,
    quarantine: _Quarantine,
    samples: frozenset[tuple[int | None, int | None]],
) -> list[DerivedEvent]:
    """The batch without its quarantined samples, then one RecordQuarantined per sample."""
    if not samples:
        return [batch]
    rows = min(len(batch.utc_ms), len(batch.driver))
    refused = [
        row
        for row, key in enumerate(zip(batch.driver[:rows], batch.utc_ms[:rows], strict=True))
        if key in samples
    ]
    if not refused:
        return [batch]
    columns = {name: getattr(batch, name) for name in _TELEMETRY_COLUMNS}
    skip = set(refused)
    kept = batch.model_copy(
        update={
            name: tuple(value for row, value in enumerate(column) if row not in skip)
            for name, column in columns.items()
        }
    )
    quarantined: list[DerivedEvent] = [
        quarantine.of(
            RecordRef("TelemetrySample", driver=batch.driver[row], time_ms=batch.utc_ms[row]),
            # The standard library's json: a corrupt sample may hold integers beyond
            # the 64 bits orjson writes.
            json.dumps(
                {
                    name: column[row] if row < len(column) else None
                    for name, column in columns.items()
                },
                separators=(",", ":"),
            ),
        )
        for row in refused
    ]
    return [kept, *quarantined]


def _anomaly(session: str, finding: Finding) -> AnomalyDetected:
    record = finding.record
    return AnomalyDetected(
        session=session,
        rule=finding.rule,
        rule_version=finding.rule_version,
        record_kind=record.kind,
        record=record.describe(),
        driver=record.driver,
        number=record.number,
        time_ms=record.time_ms,
        reason=finding.reason,
        released=finding.released,
    )


def _quality_checked(report: QAReport) -> QualityChecked:
    return QualityChecked.model_validate(report.model_dump())
