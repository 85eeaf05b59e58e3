"""The lap-side rules judged against the whole session so far, record by record.

`plausibility.lap_time` judges each green lap by the session's green laps completed
before it (every car's): their median and their fastest tenth. Kept as a running,
sorted list, a lap that comes after every lap seen is judged on its own and joins
the list; a lap completed before one already seen (a late message) changes the
judgement of every later lap, so the rule runs again over the session's laps, as a
batch would. Either way the findings are those `check_records` gives (the QA property
tests compare them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from f1daemon.domain.events import LapCompleted
from f1daemon.qa.lap_rules import PaceScan, pace_order
from f1daemon.qa.records import Finding, QASettings, RecordRef, Rule

PACE_RULE = "plausibility.lap_time"
SESSION_RULES = frozenset({PACE_RULE})


class SessionLapChecks:
    """The findings of the session-wide lap rules, brought up to date lap by lap."""

    def __init__(self, rules: Sequence[Rule], settings: QASettings) -> None:
        self._settings = settings
        self._rule = next((r for r in rules if r.name == PACE_RULE), None)
        self._laps: list[LapCompleted] = []
        self._scan = PaceScan(self._rule) if self._rule is not None else None
        self._latest: tuple[int, int, int, int] | None = None
        self.findings: dict[RecordRef, list[Finding]] = defaultdict(list)

    def add(self, lap: LapCompleted) -> set[RecordRef]:
        """Judge an arriving lap; the records whose findings changed."""
        if self._rule is None or self._scan is None:
            return set()
        self._laps.append(lap)
        order = pace_order(lap)
        if self._latest is not None and order < self._latest:
            return self._judge_again(self._rule)
        self._latest = order
        finding = self._scan.judge(lap)
        if finding is None:
            return set()
        self.findings[finding.record].append(finding)
        return {finding.record}

    def _judge_again(self, rule: Rule) -> set[RecordRef]:
        before = set(self.findings)
        self._scan = PaceScan(rule)
        self.findings = defaultdict(list)
        for lap in sorted(self._laps, key=pace_order):
            finding = self._scan.judge(lap)
            if finding is not None:
                self.findings[finding.record].append(finding)
        self._latest = max(pace_order(lap) for lap in self._laps)
        return before | set(self.findings)
