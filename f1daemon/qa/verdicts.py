"""QA as the records come: each derived record checked once, when it is final.

The derivation hands QA the events each fact completed (`StreamingQA.on_events`), in
log order; every checked record then ends in exactly one place:

* a record with a **blocking** finding is taken out of the derived data and replaced by
  a `RecordQuarantined` (rule, reason, the record as derived in JSON) — a lap leaves
  the lap table, a telemetry sample its batch;
* a record with only **non-blocking** findings stays, with `qa:{rule}` added to its
  `flags` (laps, pit stops, weather; a telemetry sample is a row and has none), and
  each finding becomes an `AnomalyDetected` (a quarantined record's do not);
* a record without findings stays as it is.

Rules that look beyond one record (a car's lap order, its duplicates, race control's
deletions, its lap-time anomalies, telemetry spikes) may change their verdict on a
record already emitted when a later record arrives. That is a **correction**, never a
rewrite: a `RecordQuarantined` for a record kept so far, the record emitted again when
its blocking finding no longer holds, `AnomalyDetected` / `AnomalyCleared` for a flag
that appears or goes. The projections apply them (`f1daemon.projections.current`).
Every lap-side rule is judged per car (or per weather observation), so only the
arriving record's car is checked again: the work per record does not grow with the
session.

An operator's `QuarantineReleased` (rule, record) turns that rule's blocking finding
on that record into a flag that says who released it and why; the record comes back.

Telemetry is checked per batch: the per-sample ranges on the batch alone, the
temporal rules against each car's latest sample before it, and `anomaly.telemetry`
with one streaming detector per session (a spike is decided when the next sample
comes, so it may flag a sample of an earlier batch).

`finish()` ends the run with `QualityChecked`, the running report. All of this is a
pure function of the events and releases in the order given.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence

from f1daemon.domain.events import (
    AnomalyCleared,
    AnomalyDetected,
    DerivedEvent,
    LapCompleted,
    LapDeleted,
    PitStop,
    QualityChecked,
    QuarantineReleased,
    RecordQuarantined,
    SessionStateChanged,
    TelemetryBatch,
    Timed,
    WeatherObserved,
)
from f1daemon.qa.car_checks import CarChecks, record_ref
from f1daemon.qa.report import QAReport, report_of
from f1daemon.qa.rules import (
    RULES,
    TELEMETRY_CHANNELS,
    Finding,
    QASettings,
    RecordRef,
    Rule,
    SessionRecords,
    TelemetrySample,
    apply_releases,
    check_records,
    sample_ref,
    telemetry_anomaly_finding,
    telemetry_detector,
    telemetry_samples,
)
from f1daemon.qa.session_checks import SESSION_RULES, SessionLapChecks

# RecordQuarantined.source and .stream of what QA quarantines.
QA_SOURCE = "qa"
QA_STREAM = "derived-records"

# Telemetry rules by how much of the stream they need.
SAMPLE_RULES = frozenset(
    {
        "range.speed",
        "range.rpm",
        "range.gear",
        "range.throttle",
        "completeness.throttle_unavailable",
    }
)
CONTEXT_RULES = frozenset({"temporal.telemetry_backwards", "temporal.telemetry_gap"})
ANOMALY_RULE = "anomaly.telemetry"
TELEMETRY_RULES = SAMPLE_RULES | CONTEXT_RULES | {ANOMALY_RULE}

# Duplicate samples of a car are told from new ones against its latest this many.
_RECENT_SAMPLES = 256

Record = LapCompleted | PitStop | WeatherObserved


class _Recent:
    """A car's latest sample times: a duplicate sample is told from a new one by them."""

    __slots__ = ("_order", "_times")

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._times: set[int] = set()

    def add(self, utc_ms: int) -> bool:
        """Remember a sample time; False when it is among the latest already."""
        if utc_ms in self._times:
            return False
        if len(self._order) == _RECENT_SAMPLES:
            self._times.discard(self._order.popleft())
        self._order.append(utc_ms)
        self._times.add(utc_ms)
        return True


class _Verdict:
    """What was last emitted about one lap-side record."""

    __slots__ = ("flags", "kept")

    def __init__(self, *, kept: bool, flags: frozenset[tuple[str, str]]) -> None:
        self.kept = kept
        self.flags = flags  # the (rule, reason) whose AnomalyDetected stand


class StreamingQA:
    """One session's QA state, fed the derivation's events in order."""

    def __init__(
        self,
        session: str,
        rules: Sequence[Rule] = RULES,
        settings: QASettings | None = None,
        releases: Sequence[QuarantineReleased] = (),
    ) -> None:
        self.session = session
        self.settings = settings or QASettings()
        lap_side = [r for r in rules if r.name not in TELEMETRY_RULES]
        self._lap_rules = [r for r in lap_side if r.name not in SESSION_RULES]
        self._session_checks = SessionLapChecks(lap_side, self.settings)
        self._sample_rules = [r for r in rules if r.name in SAMPLE_RULES]
        self._context_rules = [r for r in rules if r.name in CONTEXT_RULES]
        self._anomaly_rule = next((r for r in rules if r.name == ANOMALY_RULE), None)
        self._rules = tuple(rules)
        # Lap side: each car's checks (None: the weather's), the latest event of each
        # record, what was emitted about it.
        self._cars: dict[int | None, CarChecks] = {}
        self._latest: dict[RecordRef, Record] = {}
        self._verdicts: dict[RecordRef, _Verdict] = {}
        self._session_changed: set[RecordRef] = set()  # by the session-wide rules
        self._releases: list[QuarantineReleased] = list(releases)
        self._states: list[SessionStateChanged] = []
        # Telemetry: counts, each car's latest sample, its findings, quarantined rows.
        self._samples = 0
        self._recent: dict[int, _Recent] = {}
        self._car_latest: dict[int, TelemetrySample] = {}
        self._context_reported: set[tuple[str, RecordRef]] = set()
        self._telemetry_findings: list[Finding] = []
        self._held_samples: dict[RecordRef, TelemetryBatch] = {}
        self._detector = telemetry_detector(self.settings)
        self._quarantined = 0  # RecordQuarantined numbered in the run

    # -- input ----------------------------------------------------------------------

    def on_events(self, events: Sequence[DerivedEvent]) -> list[DerivedEvent]:
        """The events one fact completed, with QA's verdicts and corrections applied."""
        cars: set[int | None] = set()
        for event in events:
            cars.update(self._remember(event))
        if not cars:
            return [
                out
                for event in events
                for out in (
                    self._telemetry(event) if isinstance(event, TelemetryBatch) else [event]
                )
            ]
        changed = self._settle(cars)
        before = self._verdicts_of(changed)
        checked: list[DerivedEvent] = []
        arrived: set[RecordRef] = set()
        for event in events:
            if isinstance(event, TelemetryBatch):
                checked.extend(self._telemetry(event))
            elif isinstance(event, LapCompleted | PitStop | WeatherObserved):
                ref = record_ref(event)
                arrived.add(ref)
                checked.extend(self._emit(ref, event))
            else:
                checked.append(event)
        checked.extend(self._corrections(before, skip=arrived))
        return checked

    def on_release(self, release: QuarantineReleased) -> list[DerivedEvent]:
        """An operator's release: the record it names comes back, flagged as released."""
        self._releases.append(release)
        self._telemetry_findings = apply_releases(self._telemetry_findings, [release])
        restored: list[DerivedEvent] = []
        for ref, batch in sorted(self._held_samples.items(), key=lambda i: i[0].sort_key()):
            if ref.describe() == release.record and any(
                f.record == ref and f.released for f in self._telemetry_findings
            ):
                del self._held_samples[ref]
                restored.append(batch)
                restored.extend(
                    self._anomaly(f) for f in self._telemetry_findings if f.record == ref
                )
        named = [ref for ref in self._latest if ref.describe() == release.record]
        for ref in named:
            self._car(ref.driver).touch([ref])
        changed = self._settle({ref.driver for ref in named})
        return restored + self._corrections(self._verdicts_of(changed), skip=set())

    def findings(self) -> list[Finding]:
        """Every finding standing now (releases applied), in no particular order."""
        findings = [f for car in self._cars.values() for g in car.findings.values() for f in g]
        findings.extend(f for group in self._session_checks.findings.values() for f in group)
        findings.extend(self._telemetry_findings)
        return findings

    def report(self) -> QAReport:
        """The running QA report: every record checked so far and its findings."""
        findings = self.findings()
        return report_of(self.session, len(self._latest) + self._samples, findings, self._rules)

    def finish(self) -> list[DerivedEvent]:
        """The run's end: its QA report as `QualityChecked`."""
        return [QualityChecked.model_validate(self.report().model_dump())]

    # -- lap side -------------------------------------------------------------------

    def _car(self, car: int | None) -> CarChecks:
        checks = self._cars.get(car)
        if checks is None:
            checks = self._cars[car] = CarChecks(self._lap_rules, self.settings)
        return checks

    def _remember(self, event: DerivedEvent) -> set[int | None]:
        """Hand a lap-side event to its car's checks; return the car (None: weather)."""
        if isinstance(event, SessionStateChanged):
            self._states.append(event)
            return set()
        if not isinstance(event, LapCompleted | LapDeleted | PitStop | WeatherObserved):
            return set()
        car = None if isinstance(event, WeatherObserved) else event.driver
        self._car(car).add(event)
        if isinstance(event, LapCompleted):
            self._session_changed |= self._session_checks.add(event)
        if not isinstance(event, LapDeleted):
            self._latest[record_ref(event)] = event
        return {car}

    def _settle(self, cars: Iterable[int | None]) -> set[RecordRef]:
        """The records whose findings may have changed, the cars' findings up to date."""
        changed, self._session_changed = self._session_changed, set()
        return changed | {ref for car in cars for ref in self._car(car).settle(self._releases)}

    def _verdicts_of(
        self, refs: Iterable[RecordRef]
    ) -> dict[RecordRef, tuple[bool, frozenset[tuple[str, str]]]]:
        """What was emitted about some records (those emitted so far)."""
        return {
            ref: (verdict.kept, verdict.flags)
            for ref in refs
            if (verdict := self._verdicts.get(ref)) is not None
        }

    def _car_findings(self, ref: RecordRef) -> list[Finding]:
        checks = self._cars.get(ref.driver)
        found = checks.findings.get(ref, []) if checks is not None else []
        across = self._session_checks.findings.get(ref)
        if not across:
            return found
        return apply_releases(sorted([*found, *across], key=Finding.sort_key), self._releases)

    def _emit(self, ref: RecordRef, event: Record) -> list[DerivedEvent]:
        """A record as it is now judged: itself (flagged) or its quarantine."""
        findings = self._car_findings(ref)
        blocking = [f for f in findings if f.severity == "blocking"]
        if blocking:
            self._verdicts[ref] = _Verdict(kept=False, flags=frozenset())
            return [self._quarantine(ref, blocking, event.model_dump_json())]
        flags = [f for f in findings if f.severity == "flag"]
        old = self._verdicts.get(ref)
        announced = old.flags if old is not None and old.kept else frozenset()
        added = tuple(dict.fromkeys(f"qa:{f.rule}" for f in flags))
        out: list[DerivedEvent] = [
            event.model_copy(update={"flags": (*event.flags, *added)}) if added else event
        ]
        out.extend(self._flag_changes(ref, announced, flags))
        return out

    def _flag_changes(
        self, ref: RecordRef, announced: frozenset[tuple[str, str]], flags: Sequence[Finding]
    ) -> list[DerivedEvent]:
        """A rule whose findings on the record changed: `AnomalyCleared` if it had any,
        then an `AnomalyDetected` for each it has now."""
        now = frozenset((f.rule, f.reason) for f in flags)
        self._verdicts[ref] = _Verdict(kept=True, flags=now)
        changed = {rule for rule, _ in announced ^ now}
        out: list[DerivedEvent] = [
            self._cleared(ref, rule)
            for rule in sorted(changed)
            if any(r == rule for r, _ in announced)
        ]
        out.extend(self._anomaly(f) for f in flags if f.rule in changed)
        return out

    def _corrections(
        self,
        before: dict[RecordRef, tuple[bool, frozenset[tuple[str, str]]]],
        *,
        skip: set[RecordRef],
    ) -> list[DerivedEvent]:
        """What changed about records emitted earlier, as correction events."""
        out: list[DerivedEvent] = []
        refs = sorted((r for r in before if r not in skip), key=RecordRef.sort_key)
        for ref in refs:
            kept, flags = before[ref]
            findings = self._car_findings(ref)
            blocking = [f for f in findings if f.severity == "blocking"]
            if kept and blocking:
                self._verdicts[ref] = _Verdict(kept=False, flags=frozenset())
                out.append(self._quarantine(ref, blocking, self._latest[ref].model_dump_json()))
            elif not kept and not blocking:
                out.extend(self._emit(ref, self._latest[ref]))
            elif kept:
                out.extend(
                    self._flag_changes(ref, flags, [f for f in findings if f.severity == "flag"])
                )
        return out

    # -- telemetry ------------------------------------------------------------------

    def _telemetry(self, batch: TelemetryBatch) -> list[DerivedEvent]:
        samples = list(telemetry_samples(batch, first_arrival=self._samples))
        self._count_samples(samples)
        context = tuple(self._car_latest.values())
        findings = check_records(
            SessionRecords((), (), (), (), tuple(samples), ()), self._sample_rules, self.settings
        )
        if self._context_rules:
            # A finding may fall on the context (the car's latest sample, of an earlier
            # batch): a correction, reported once per rule and record.
            around = SessionRecords((), (), (), (), (*context, *samples), tuple(self._states))
            context_refs = {sample_ref(s) for s in context}
            for finding in check_records(around, self._context_rules, self.settings):
                key = (finding.rule, finding.record)
                if finding.record in context_refs and key in self._context_reported:
                    continue
                self._context_reported.add(key)
                findings.append(finding)
        for sample in samples:
            latest = self._car_latest.get(sample.driver)
            if latest is None or sample.utc_ms >= latest.utc_ms:
                self._car_latest[sample.driver] = sample
        if self._anomaly_rule is not None:
            findings.extend(self._telemetry_anomalies(self._anomaly_rule, samples))
        findings = apply_releases(findings, self._releases)
        self._telemetry_findings.extend(findings)
        blocking: dict[RecordRef, list[Finding]] = defaultdict(list)
        for finding in findings:
            if finding.severity == "blocking":
                blocking[finding.record].append(finding)
        out: list[DerivedEvent] = []
        out.extend(self._split_batch(batch, blocking))
        out.extend(
            self._anomaly(f)
            for f in findings
            if f.severity == "flag"
            and f.record not in blocking
            and f.record not in self._held_samples
        )
        return out

    def _count_samples(self, samples: Sequence[TelemetrySample]) -> None:
        # A sample of a car and time seen among the car's latest is the same record.
        for sample in samples:
            recent = self._recent.get(sample.driver)
            if recent is None:
                recent = self._recent[sample.driver] = _Recent()
            if recent.add(sample.utc_ms):
                self._samples += 1

    def _telemetry_anomalies(self, rule: Rule, samples: Sequence[TelemetrySample]) -> list[Finding]:
        usable = [s for s in samples if _fits_i64(s.driver) and _fits_i64(s.utc_ms)]
        if not usable:
            return []
        anomalies = self._detector.feed_columns(
            [s.driver for s in usable],
            [s.utc_ms for s in usable],
            {c: [getattr(s, c) for s in usable] for c in TELEMETRY_CHANNELS},
        )
        return telemetry_anomaly_finding(rule, anomalies)

    def _split_batch(
        self, batch: TelemetryBatch, blocking: dict[RecordRef, list[Finding]]
    ) -> list[DerivedEvent]:
        """The batch without its quarantined samples, then one RecordQuarantined per sample."""
        if not blocking:
            return [batch]
        rows = min(len(batch.utc_ms), len(batch.driver))
        refused = [
            row
            for row in range(rows)
            if RecordRef("TelemetrySample", driver=batch.driver[row], time_ms=batch.utc_ms[row])
            in blocking
        ]
        if not refused:
            return [batch]
        skip = set(refused)
        kept = batch.model_copy(
            update={
                name: tuple(v for row, v in enumerate(column) if row not in skip)
                for name, column in telemetry_columns(batch).items()
            }
        )
        out: list[DerivedEvent] = [kept]
        for row in refused:
            ref = RecordRef("TelemetrySample", driver=batch.driver[row], time_ms=batch.utc_ms[row])
            one = batch.model_copy(
                update={
                    name: column[row : row + 1] for name, column in telemetry_columns(batch).items()
                }
            )
            self._held_samples[ref] = one
            out.append(self._quarantine(ref, blocking[ref], _sample_json(batch, row)))
        return out

    # -- events ---------------------------------------------------------------------

    def _quarantine(
        self, ref: RecordRef, findings: Sequence[Finding], payload: str
    ) -> RecordQuarantined:
        self._quarantined += 1
        return RecordQuarantined(
            session=self.session,
            source=QA_SOURCE,
            stream=QA_STREAM,
            sequence=self._quarantined,
            topic=ref.kind,
            rule=findings[0].rule,
            reason="; ".join(
                f.reason if i == 0 else f"{f.rule}: {f.reason}" for i, f in enumerate(findings)
            ),
            payload=payload,
            record=ref.describe(),
        )

    def _anomaly(self, finding: Finding) -> AnomalyDetected:
        record = finding.record
        return AnomalyDetected(
            session=self.session,
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

    def _cleared(self, ref: RecordRef, rule: str) -> AnomalyCleared:
        return AnomalyCleared(
            session=self.session, rule=rule, record_kind=ref.kind, record=ref.describe()
        )


def check_run(
    session: str,
    events: Sequence[DerivedEvent],
    releases: Sequence[QuarantineReleased] = (),
    rules: Sequence[Rule] = RULES,
    settings: QASettings | None = None,
) -> tuple[list[DerivedEvent], QAReport]:
    """QA over events that all became final at once, with releases made before them,
    and the report (the batch view of a session's QA, as before pipeline 3.0)."""
    qa = StreamingQA(session, rules, settings, releases)
    checked = qa.on_events(events)
    checked.extend(qa.finish())
    return checked, qa.report()


# A batch's columns: its fields beyond those of every timed event.
_TELEMETRY_COLUMNS = tuple(
    name for name in TelemetryBatch.model_fields if name not in Timed.model_fields
)
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def telemetry_columns(batch: TelemetryBatch) -> dict[str, tuple[int | None, ...]]:
    """A batch's sample columns by name."""
    return {name: getattr(batch, name) for name in _TELEMETRY_COLUMNS}


def _sample_json(batch: TelemetryBatch, row: int) -> str:
    # The standard library's json: a corrupt sample may hold integers beyond the 64
    # bits orjson writes.
    return json.dumps(
        {
            name: column[row] if row < len(column) else None
            for name, column in telemetry_columns(batch).items()
        },
        separators=(",", ":"),
    )


def _fits_i64(value: int) -> bool:
    return _I64_MIN <= value <= _I64_MAX
