"""One car's lap-side QA (or the weather's), brought up to date record by record.

The lap-side rules are pure functions of a car's records (`f1daemon.qa.rules`). Run
again over all of a car's records at each of its laps, their cost would grow with the
car's laps: 80 times the first lap's at the end of an 80-lap race. Instead each
rule's verdicts are extended by the arriving record, by what the rule looks at:

* most rules judge a record by the records with the same key alone (its copies, and
  race control's deletions of that lap): only the arriving record's key is judged
  again;
* `consistency.lap_order` keeps the highest lap number so far: a lap completed after
  every earlier one is judged against it alone;
* `anomaly.lap_time` keeps one streaming detector per car: a clean lap that comes
  after every clean lap fed so far (in lap order) is fed on its own.

Where the arriving record changes what came before — a lap out of order, race
control deleting or reinstating a lap the detector has seen, a rule not named here —
the rule is run again over the car's records, as a batch would. Either way the
findings are those `check_records` gives over the same records (the QA property
tests compare them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from f1daemon._native import AnomalyDetector
from f1daemon.domain.events import (
    LapCompleted,
    LapDeleted,
    PitStop,
    QuarantineReleased,
    WeatherObserved,
)
from f1daemon.qa.rules import (
    Finding,
    LapScores,
    QASettings,
    RecordRef,
    Rule,
    SessionRecords,
    apply_releases,
    check_records,
    deleted_laps,
    is_scored_lap,
    lap_order_finding,
    lap_ref,
    lap_time_anomaly_finding,
    lap_time_detector,
    score_laps,
    scored_order,
    weather_ref,
)

CarRecord = LapCompleted | PitStop | WeatherObserved

# Rules whose findings about a record depend only on the records with its key (and,
# for a lap, race control's deletions of that lap).
KEYED_RULES = frozenset(
    {
        "range.lap_time",
        "range.track_temperature",
        "range.air_temperature",
        "range.humidity",
        "consistency.sector_sum",
        "consistency.track_below_air",
        "consistency.pit_order",
        "completeness.missing_sectors",
        "completeness.missing_lap_time",
        "uniqueness.duplicate_lap",
        "race_control.deleted",
    }
)
LAP_ORDER_RULE = "consistency.lap_order"
LAP_ANOMALY_RULE = "anomaly.lap_time"


def record_ref(record: CarRecord) -> RecordRef:
    """The QA record a lap, pit stop or weather observation is."""
    if isinstance(record, LapCompleted):
        return lap_ref(record)
    if isinstance(record, PitStop):
        return RecordRef("PitStop", driver=record.driver, number=record.stop)
    return weather_ref(record)


class CarChecks:
    """The lap-side findings about one car's records (or the weather observations)."""

    def __init__(self, rules: Sequence[Rule], settings: QASettings) -> None:
        self._settings = settings
        self._rules = tuple(rules)
        self._keyed = tuple(r for r in rules if r.name in KEYED_RULES)
        named = {r.name: r for r in rules}
        self._order_rule = named.get(LAP_ORDER_RULE)
        self._anomaly_rule = named.get(LAP_ANOMALY_RULE)
        # Rules this module cannot extend record by record: all of them run each time.
        known = {*KEYED_RULES, LAP_ORDER_RULE, LAP_ANOMALY_RULE}
        self._whole = any(r.name not in known for r in rules)
        self.laps: list[LapCompleted] = []
        self.deletions: list[LapDeleted] = []
        self.pits: list[PitStop] = []
        self.weather: list[WeatherObserved] = []
        self._by_key: dict[RecordRef, list[CarRecord]] = defaultdict(list)
        self._deletions_of: dict[RecordRef, list[LapDeleted]] = defaultdict(list)
        self._keyed_findings: dict[RecordRef, list[Finding]] = {}
        # consistency.lap_order: the latest (session time, lap) and the highest lap.
        self._order_findings: dict[RecordRef, list[Finding]] = defaultdict(list)
        self._order_key: tuple[int, int] | None = None
        self._highest: int | None = None
        # anomaly.lap_time: the detector, what it said, the last lap fed, deleted laps.
        self._detector: AnomalyDetector | None = None
        self._scored: LapScores = {}
        self._fed: tuple[int, int, int, int] | None = None
        self._deleted: set[RecordRef] = set()
        self._touched: set[RecordRef] = set()
        self.findings: dict[RecordRef, list[Finding]] = {}

    def add(self, event: CarRecord | LapDeleted) -> None:
        """Index an arriving record (or deletion) and bring the verdicts it may change
        up to date; `settle` then assembles them."""
        if isinstance(event, LapDeleted):
            self.deletions.append(event)
            if event.lap is None:
                return  # no rule reads a deletion that names no lap
            key = RecordRef("LapCompleted", driver=event.driver, number=event.lap)
            self._deletions_of[key].append(event)
        else:
            if isinstance(event, LapCompleted):
                self.laps.append(event)
            elif isinstance(event, PitStop):
                self.pits.append(event)
            else:
                self.weather.append(event)
            key = record_ref(event)
            self._by_key[key].append(event)
        self._touched.add(key)
        if self._whole:
            return
        was_deleted = key in self._deleted
        self._judge_key(key)
        if isinstance(event, LapCompleted):
            self._extend_lap_order(event)
        if (key in self._deleted) != was_deleted:
            self._score_again()  # a lap became (or stopped being) clean
        elif isinstance(event, LapCompleted):
            self._extend_scores(event)

    def settle(self, releases: Sequence[QuarantineReleased]) -> set[RecordRef]:
        """The keys whose findings may have changed since the last call, with
        `self.findings` brought up to date (releases applied)."""
        touched, self._touched = self._touched, set()
        if self._whole:
            found = check_records(self._records(), self._rules, self._settings)
            grouped: dict[RecordRef, list[Finding]] = defaultdict(list)
            for finding in apply_releases(found, releases):
                grouped[finding.record].append(finding)
            touched = set(self.findings) | set(grouped) | touched
            self.findings = dict(grouped)
            return touched
        for key in touched:
            findings = [*self._keyed_findings.get(key, ()), *self._order_findings.get(key, ())]
            scored = self._scored.get(key)
            if scored is not None and self._anomaly_rule is not None:
                findings.append(lap_time_anomaly_finding(self._anomaly_rule, key, *scored))
            findings.sort(key=Finding.sort_key)
            if findings:
                self.findings[key] = apply_releases(findings, releases)
            else:
                self.findings.pop(key, None)
        return touched

    def touch(self, keys: Iterable[RecordRef]) -> None:
        """Assemble these keys' findings again at the next `settle` (a release)."""
        self._touched.update(keys)

    # -- the rules, extended ---------------------------------------------------------

    def _records(self) -> SessionRecords:
        return SessionRecords(
            tuple(self.laps), tuple(self.deletions), tuple(self.pits), tuple(self.weather), (), ()
        )

    def _judge_key(self, key: RecordRef) -> None:
        """The keyed rules over the records with this key (and its deletions)."""
        records = self._by_key.get(key, [])
        laps = tuple(r for r in records if isinstance(r, LapCompleted))
        subset = SessionRecords(
            laps,
            tuple(self._deletions_of.get(key, ())),
            tuple(r for r in records if isinstance(r, PitStop)),
            tuple(r for r in records if isinstance(r, WeatherObserved)),
            (),
            (),
        )
        self._keyed_findings[key] = check_records(subset, self._keyed, self._settings)
        if key.kind == "LapCompleted":
            if deleted_laps(subset):
                self._deleted.add(key)
            else:
                self._deleted.discard(key)

    def _extend_lap_order(self, lap: LapCompleted) -> None:
        rule = self._order_rule
        if rule is None:
            return
        order = (lap.session_time_ms, lap.lap)
        if self._order_key is not None and order < self._order_key:
            # Completed before a lap seen already: every later verdict may change.
            self._touched.update(self._order_findings)
            found = rule.check(SessionRecords(tuple(self.laps), (), (), (), (), ()), self._settings)
            self._order_findings = defaultdict(list)
            for finding in found:
                self._order_findings[finding.record].append(finding)
            self._touched.update(self._order_findings)
            self._order_key = max((lap.session_time_ms, lap.lap) for lap in self.laps)
            self._highest = max(lap.lap for lap in self.laps)
            return
        if self._highest is not None and lap.lap < self._highest:
            self._order_findings[lap_ref(lap)].append(lap_order_finding(rule, lap, self._highest))
        self._order_key = order
        self._highest = lap.lap if self._highest is None else max(self._highest, lap.lap)

    def _extend_scores(self, lap: LapCompleted) -> None:
        if self._anomaly_rule is None or not is_scored_lap(lap, self._deleted):
            return
        order = scored_order(lap)
        if self._fed is not None and order < self._fed:
            self._score_again()  # in lap order before a lap fed already
            return
        if self._detector is None:
            self._detector = lap_time_detector(self._settings)
        found: LapScores = {}
        score_laps(self._detector, [lap], found)
        for key, (value, scores) in found.items():
            self._scored.setdefault(key, (value, []))[1].extend(scores)
            self._touched.add(key)
        self._fed = order

    def _score_again(self) -> None:
        """The detector fed every clean lap again, in lap order."""
        if self._anomaly_rule is None:
            return
        self._touched.update(self._scored)
        clean = sorted(
            (lap for lap in self.laps if is_scored_lap(lap, self._deleted)), key=scored_order
        )
        self._detector = lap_time_detector(self._settings)
        self._scored = {}
        score_laps(self._detector, clean, self._scored)
        self._touched.update(self._scored)
        self._fed = scored_order(clean[-1]) if clean else None
