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

from f1daemon.domain.events import Event
from f1daemon.qa.rules import (
    RULES,
    Finding,
    QASettings,
    RecordRef,
    Rule,
    SessionRecords,
    check_records,
)


class RuleCount(BaseModel):
    """How often one rule fired in a session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    version: int
    severity: str = Field(description="`blocking` (quarantines) or `flag`.")
    findings: int


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
    checked = records.records()
    outcome_counts = Counter(outcomes(checked, findings).values())
    per_rule = Counter(finding.rule for finding in findings)
    usable = outcome_counts["passed"] + outcome_counts["flagged"]
    if session is None:
        session = ", ".join(sorted({event.session for event in materialised}))
    report = QAReport(
        session=session,
        records_checked=len(checked),
        passed=outcome_counts["passed"],
        flagged=outcome_counts["flagged"],
        quarantined=outcome_counts["quarantined"],
        rules=tuple(
            RuleCount(
                rule=rule.name,
                version=rule.version,
                severity=rule.severity,
                findings=per_rule[rule.name],
            )
            for rule in rules
        ),
        quality_score=usable / len(checked) if checked else 1.0,
    )
    return findings, report
