"""The QA report of a session: what was checked and where each record ended.

Every checked record ends in exactly one outcome:

* **quarantined**: at least one blocking finding;
* **flagged**: findings, none of them blocking;
* **passed**: no finding.

The quality score is the share of checked records that were not quarantined,
`(passed + flagged) / checked`: flagged records are kept (with their flags), so they
count as usable. A session with nothing to check scores 1.0 (nothing was refused).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from f1daemon.domain.events import Event, QualityChecked, RuleFindings
from f1daemon.qa.rules import (
    RULES,
    Finding,
    QASettings,
    RecordRef,
    Rule,
    SessionRecords,
    check_records,
)

# How often one rule fired in a session (the model the log's QualityChecked holds).
RuleCount = RuleFindings


class QAReport(BaseModel):
    """A session's QA outcome: counts per outcome and per rule, and the quality score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session: str
    records_checked: int
    passed: int
    flagged: int
    quarantined: int
    rules: tuple[RuleCount, ...] = Field(description="Every rule run, in the order run.")
    quality_score: float = Field(
        ge=0, le=1, description="(passed + flagged) / records_checked; 1.0 when nothing checked."
    )

    @classmethod
    def of(cls, checked: QualityChecked) -> QAReport:
        """The report a derivation run recorded (the event holds the report's fields)."""
        return cls.model_validate(checked.model_dump())

    def batch_since(self, previous: QAReport | None) -> QABatch:
        """What changed since an earlier report of the session (None: since nothing)."""

        def change(attribute: str) -> int:
            now: int = getattr(self, attribute)
            return now - (getattr(previous, attribute) if previous is not None else 0)

        before = {r.rule: r.findings for r in previous.rules} if previous is not None else {}
        return QABatch(
            session=self.session,
            records_checked=change("records_checked"),
            passed=change("passed"),
            flagged=change("flagged"),
            quarantined=change("quarantined"),
            findings={
                r.rule: r.findings - before.get(r.rule, 0)
                for r in self.rules
                if r.findings != before.get(r.rule, 0)
            },
            quality_score=self.quality_score,
        )

    def to_json(self) -> str:
        return self.model_dump_json()

    def to_table(self) -> str:
        """The report as text for an operator's terminal."""

        def share(count: int) -> str:
            return f"{100 * count / self.records_checked:5.1f} %" if self.records_checked else ""

        name_width = max([len("rule"), *(len(r.rule) for r in self.rules)])
        lines = [
            f"QA report: {self.session or '(no session)'}",
            f"  records checked  {self.records_checked:8d}",
            f"  passed           {self.passed:8d}  {share(self.passed)}",
            f"  flagged          {self.flagged:8d}  {share(self.flagged)}",
            f"  quarantined      {self.quarantined:8d}  {share(self.quarantined)}",
            f"  quality score    {self.quality_score:8.4f}  (passed + flagged) / checked",
            "",
            f"  {'rule':<{name_width}}  version  severity  findings",
        ]
        lines += [
            f"  {r.rule:<{name_width}}  {r.version:7d}  {r.severity:<8}  {r.findings:8d}"
            for r in self.rules
        ]
        return "\n".join(lines)


class QABatch(BaseModel):
    """What one batch (a derivation run over the facts that came since the last one)
    changed in a session's QA outcome: differences, so a lap that gained its missing
    sector moves from flagged (-1) to passed (+1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session: str
    records_checked: int
    passed: int
    flagged: int
    quarantined: int
    findings: dict[str, int] = Field(description="Change in each rule's findings (non-zero).")
    quality_score: float = Field(description="The session's score after the batch.")

    def summary(self) -> str:
        rules = ", ".join(f"{rule} {count:+d}" for rule, count in sorted(self.findings.items()))
        return (
            f"{self.records_checked:+d} records checked ({self.passed:+d} passed, "
            f"{self.flagged:+d} flagged, {self.quarantined:+d} quarantined); "
            f"findings: {rules or 'unchanged'}; quality score now {self.quality_score:.4f}"
        )


def outcomes(records: Iterable[RecordRef], findings: Iterable[Finding]) -> dict[RecordRef, str]:
    """Each record's outcome: `quarantined`, `flagged` or `passed`."""
    severities: dict[RecordRef, set[str]] = {}
    for finding in findings:
        severities.setdefault(finding.record, set()).add(finding.severity)
    result: dict[RecordRef, str] = {}
    for record in records:
        found = severities.get(record, set())
        if "blocking" in found:
            result[record] = "quarantined"
        elif found:
            result[record] = "flagged"
        else:
            result[record] = "passed"
    return result


def report_of(
    session: str,
    records_checked: int,
    findings: Sequence[Finding],
    rules: Sequence[Rule] = RULES,
) -> QAReport:
    """The report of checking `records_checked` records with `rules`, which found
    `findings` (about those records: a rule reports only records it checked)."""
    # As `outcomes` decides, counted without visiting the records that passed.
    found = {finding.record for finding in findings}
    blocked = {finding.record for finding in findings if finding.severity == "blocking"}
    per_rule = Counter(finding.rule for finding in findings)
    usable = records_checked - len(blocked)
    return QAReport(
        session=session,
        records_checked=records_checked,
        passed=records_checked - len(found),
        flagged=len(found) - len(blocked),
        quarantined=len(blocked),
        rules=tuple(
            RuleCount(
                rule=rule.name,
                version=rule.version,
                severity=rule.severity,
                findings=per_rule[rule.name],
            )
            for rule in rules
        ),
        quality_score=usable / records_checked if records_checked else 1.0,
    )


def check_session(
    events: Iterable[Event],
    *,
    session: str | None = None,
    rules: Sequence[Rule] = RULES,
    settings: QASettings | None = None,
) -> tuple[list[Finding], QAReport]:
    """Run the rules over a session's derived events: the findings and the report.

    `session` names the report; by default the events' session (several are joined).
    """
    materialised = list(events)
    records = SessionRecords.of(materialised)
    findings = check_records(records, rules, settings)
    if session is None:
        session = ", ".join(sorted({event.session for event in materialised}))
    return findings, report_of(session, records.count(), findings, rules)
