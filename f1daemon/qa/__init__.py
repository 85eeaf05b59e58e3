"""Quality assurance of derived events: named, versioned rules and the session report.

Pure functions over a session's derived events (see `f1daemon.services.derivation.
current_events`); nothing here reads or writes the log.
"""

from f1daemon.qa.report import QABatch, QAReport, RuleCount, check_session, outcomes, report_of
from f1daemon.qa.rules import (
    RULES,
    RULES_BY_NAME,
    Finding,
    QASettings,
    RecordRef,
    Rule,
    SessionRecords,
    check_records,
)

__all__ = [
    "RULES",
    "RULES_BY_NAME",
    "Finding",
    "QABatch",
    "QAReport",
    "QASettings",
    "RecordRef",
    "Rule",
    "RuleCount",
    "SessionRecords",
    "check_records",
    "check_session",
    "outcomes",
    "report_of",
]
