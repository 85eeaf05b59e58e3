"""Neutralisations detected live (`f1daemon.feed.neutralisation`), on real sessions and
on synthetic timing.

On the real archive every kind of evidence is checked against the track status's own
`NeutralisationPeriod`s: the track status's live events are those periods told at their
start, race control's match them to within `RC_TOLERANCE_MS`, and timing (races and
sprints with TimingData) matches each one it can see to within `TIMING_START_MS` of the
start and `TIMING_END_MS` after the end, and detects nothing outside them. The
exceptions found in the data are listed with their reasons and asserted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon.domain.events import (
    DerivedEvent,
    MessageReceived,
    NeutralisationCleared,
    NeutralisationDetected,
    NeutralisationPeriod,
    RaceControlMessage,
    TrackStatusChanged,
)
from f1daemon.feed.messages import FeedMessage
from f1daemon.feed.neutralisation import (
    MIN_CARS,
    RACE_CONTROL,
    TIMING,
    TRACK_STATUS,
    NeutralisationDetector,
)
from f1daemon.feed.pipeline import Derivation, Pipeline, derive
from f1daemon.feed.timebase import TimeBase
from f1daemon.sources.archive import read_facts, read_messages, topic_files
from tests.conftest import TESTDATA, record_check

RC_TOLERANCE_MS = 2_000
# Timing sees a slowdown once most cars have run a sector under it: a sector or two.
TIMING_START_MS = 90_000
# The field is released at the control line, after the track status has gone green
# (the safety car turns into the pit lane before it): the restart lap's last sector is
# often the slowest of the period, and timing needs a sector at pace after it.
TIMING_END_MS = 120_000

BAKU_2018 = "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
BAKU_SPRINT_2023 = "2023-04-30_Azerbaijan_Grand_Prix__2023-04-29_Sprint"
FP2_70TH = "2020-08-09_70th_Anniversary_Grand_Prix__2020-08-07_Practice_2"
BRITISH_2022_FP1 = "2022-07-03_British_Grand_Prix__2022-07-01_Practice_1"

# Track-status periods timing sees, but not within the tolerances, and why: (session,
# index of the track-status period) -> reason.
TIMING_LATE = {
    (BAKU_2018, 0): "SC from lap 1: no green pace yet, so timing sees it only once a "
    "few cars' S2 under the SC are compared with the best lap-1 S2 (seven minutes in)",
}
# Track-status periods timing sees as part of the period before them, and why.
TIMING_MERGED = {
    (BAKU_SPRINT_2023, 1): "SC straight after the VSC: one continuous slowdown to timing",
}
# Race-control periods that end differently from the track status's, and why.
RC_END_DIFFERS = {
    (BRITISH_2022_FP1, 0): "red flag to the end: TRACK CLEAR after the session ended, "
    "the track status never left 5",
}


def session_folders() -> list[Path]:
    root = TESTDATA / "livetiming"
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if not p.name.startswith("_") and (p / "TrackStatus.jsonStream").exists()
    )


FOLDERS = session_folders()


@cache
def derived(folder: Path) -> Derivation:
    return derive(folder.name, enumerate(read_messages(topic_files(folder)), start=1))


@dataclass(frozen=True)
class Period:
    source: str
    kind: str
    start_ms: int
    end_ms: int | None


def periods(derivation: Derivation, source: str) -> list[Period]:
    opened: dict[int, NeutralisationDetected] = {}
    found: list[Period] = []
    for event in derivation.events:
        if isinstance(event, NeutralisationDetected) and event.source == source:
            opened[event.period] = event
        elif isinstance(event, NeutralisationCleared) and event.source == source:
            start = opened.pop(event.period)
            assert (start.kind, start.session_time_ms) == (event.kind, event.started_time_ms)
            found.append(Period(source, start.kind, start.session_time_ms, event.session_time_ms))
    found.extend(Period(source, e.kind, e.session_time_ms, None) for e in opened.values())
    return sorted(found, key=lambda p: p.start_ms)


def track_periods(derivation: Derivation) -> list[NeutralisationPeriod]:
    return [e for e in derivation.events if isinstance(e, NeutralisationPeriod)]


def has(folder: Path, topic: str) -> bool:
    return (folder / f"{topic}.jsonStream").exists()


def is_race(folder: Path) -> bool:
    return folder.name.endswith(("_Race", "_Sprint"))


# --- real sessions ---------------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_track_status_evidence_is_the_periods_told_at_their_start(
    testdata: Path, folder: Path
) -> None:
    derivation = derived(folder)
    expected = [
        Period(TRACK_STATUS, p.kind, p.session_time_ms, p.end_time_ms)
        for p in track_periods(derivation)
    ]
    assert periods(derivation, TRACK_STATUS) == expected
    # ... and told when the status changed, not when the period ended.
    changes = {e.session_time_ms for e in derivation.events if isinstance(e, TrackStatusChanged)}
    for event in derivation.events:
        if isinstance(event, NeutralisationDetected) and event.source == TRACK_STATUS:
            assert event.session_time_ms in changes
            assert event.evidence.startswith("track status ")
    record_check(folder.name, f"track-status evidence = {len(expected)} periods")


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_race_control_evidence_matches_the_track_status(testdata: Path, folder: Path) -> None:
    derivation = derived(folder)
    found = periods(derivation, RACE_CONTROL)
    if not has(folder, "RaceControlMessages"):
        assert found == []
        return
    expected = track_periods(derivation)
    assert len(found) == len(expected)
    for index, (rc, ts) in enumerate(zip(found, expected, strict=True)):
        assert rc.kind == ts.kind
        assert abs(rc.start_ms - ts.session_time_ms) <= RC_TOLERANCE_MS
        if (folder.name, index) in RC_END_DIFFERS:
            assert ts.end_time_ms is None
            assert rc.end_ms is not None
        else:
            assert ts.end_time_ms is not None
            assert rc.end_ms is not None
            assert abs(rc.end_ms - ts.end_time_ms) <= RC_TOLERANCE_MS
    record_check(folder.name, f"race-control evidence matches {len(expected)} periods")


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_timing_evidence_matches_the_track_status_where_it_can_see(
    testdata: Path, folder: Path
) -> None:
    derivation = derived(folder)
    found = periods(derivation, TIMING)
    if not (is_race(folder) and has(folder, "TimingData")):
        # Practice and qualifying: out- and cool-down laps look like a neutralisation,
        # so timing is not judged there (e.g. the 70th Anniversary FP2's VSC and red flag).
        assert found == []
        record_check(folder.name, "no timing evidence (not a race with TimingData)")
        return
    expected = track_periods(derivation)
    unmatched = list(found)
    for index, ts in enumerate(expected):
        assert ts.end_time_ms is not None
        key = (folder.name, index)
        if key in TIMING_MERGED:
            [covering] = [
                t
                for t in found
                if t.start_ms < ts.session_time_ms and (t.end_ms or 0) > ts.end_time_ms
            ]
            assert covering.end_ms is not None
            assert covering.end_ms - ts.end_time_ms <= TIMING_END_MS
            continue
        [match] = [t for t in unmatched if ts.session_time_ms <= t.start_ms < ts.end_time_ms]
        unmatched.remove(match)
        assert match.kind == "UNKNOWN"
        late = match.start_ms - ts.session_time_ms > TIMING_START_MS
        assert late == (key in TIMING_LATE)
        assert match.end_ms is not None
        # Where the next period merges into this one, this one ends with it.
        end = ts.end_time_ms
        if (folder.name, index + 1) in TIMING_MERGED:
            end = expected[index + 1].end_time_ms or end
        assert 0 <= match.end_ms - end <= TIMING_END_MS
    assert unmatched == []
    record_check(folder.name, f"timing evidence matches {len(expected)} periods")


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_no_timing_evidence_outside_a_real_neutralisation(testdata: Path, folder: Path) -> None:
    derivation = derived(folder)
    real = [(p.session_time_ms, p.end_time_ms) for p in track_periods(derivation)]
    for event in derivation.events:
        if isinstance(event, NeutralisationDetected) and event.source == TIMING:
            assert any(
                s <= event.session_time_ms and (e is None or event.session_time_ms <= e)
                for s, e in real
            )
        if isinstance(event, NeutralisationCleared) and event.source == TIMING:
            assert any(
                e is not None and e <= event.session_time_ms <= e + TIMING_END_MS for _, e in real
            )


def test_the_known_sessions_are_checked(testdata: Path) -> None:
    names = {f.name for f in FOLDERS}
    assert {BAKU_2018, BAKU_SPRINT_2023, FP2_70TH} <= names
    baku = periods(derived(TESTDATA / "livetiming" / BAKU_2018), TIMING)
    sprint = periods(derived(TESTDATA / "livetiming" / BAKU_SPRINT_2023), TIMING)
    assert [p.kind for p in baku] == ["UNKNOWN", "UNKNOWN"]
    assert [p.kind for p in sprint] == ["UNKNOWN"]
    fp2 = derived(TESTDATA / "livetiming" / FP2_70TH)
    assert [p.kind for p in periods(fp2, TRACK_STATUS)] == ["VSC", "RED"]


def _prefix(facts: list[tuple[int, FeedMessage]], until_ms: int) -> Derivation:
    return derive("x", ((p, f) for p, f in facts if (f.offset_ms or 0) <= until_ms))


@pytest.mark.parametrize("name", [BAKU_2018, BAKU_SPRINT_2023])
def test_detection_is_causal_and_at_the_earliest_moment(testdata: Path, name: str) -> None:
    folder = testdata / "livetiming" / name
    facts = list(enumerate(read_messages(topic_files(folder)), start=1))
    whole = derive("x", facts)
    detections = [e for e in whole.events if isinstance(e, NeutralisationDetected)]
    assert detections
    for detection in detections:
        now = detection.session_time_ms
        assert detection in _prefix(facts, now).events  # only facts up to the moment
        earlier = _prefix(facts, now - 1).events
        assert not [
            e
            for e in earlier
            if isinstance(e, NeutralisationDetected)
            and (e.source, e.period) == (detection.source, detection.period)
        ]


@pytest.mark.parametrize("name", [BAKU_2018, BAKU_SPRINT_2023])
def test_at_once_or_fact_by_fact_the_same(testdata: Path, name: str) -> None:
    folder = testdata / "livetiming" / name
    at_once = [
        e
        for e in derived(folder).events
        if isinstance(e, NeutralisationDetected | NeutralisationCleared)
    ]
    # Fact by fact, as the live path derives: log facts (not digested ahead), one a call.
    facts = [
        f for f in read_facts(folder.name, topic_files(folder)) if isinstance(f, MessageReceived)
    ]
    pipeline = Pipeline(folder.name)
    events: list[DerivedEvent] = []
    for fact in facts:
        events.extend(pipeline.on_fact(fact))
    events.extend(pipeline.finish())
    one_by_one = [
        e for e in events if isinstance(e, NeutralisationDetected | NeutralisationCleared)
    ]
    assert one_by_one == at_once


# --- synthetic timing ------------------------------------------------------------------

SECTORS = (30_000, 36_000, 26_000)
NO = None


def _entry(
    car: int, sector: int | None = None, value: int | None = None, *, in_pit: bool | None = None,
    pit_out: bool | None = None,
) -> tuple[int, int | None, bool | None, bool | None, int | None, int | None, bool | None,
           int | None, int | None, int | None, int | None, int | None, int | None, int | None,
           str | None]:  # fmt: skip
    sectors: list[int | None] = [None, None, None]
    if sector is not None:
        sectors[sector] = value
    return (car, NO, in_pit, pit_out, NO, NO, NO, *sectors, NO, NO, NO, NO, NO)  # type: ignore[return-value]


@dataclass(frozen=True)
class Race:
    """A synthetic race: cars spread around the lap, each a little slower than the last."""

    cars: int = 18
    laps: int = 14
    slow_cars: frozenset[int] = frozenset()  # slowed throughout by `factor`
    slowdown: tuple[int, int] | None = None  # (from, to) ms: everyone slowed by `factor`
    factor: float = 1.4
    pitting: frozenset[int] = frozenset()  # these cars stop at the end of `pit_lap`
    pit_lap: int = 6
    parked_from: int | None = None  # every car enters the pit lane and stays (red flag)

    def messages(self) -> list[tuple[int, list[tuple[object, ...]]]]:
        out: list[tuple[int, list[tuple[object, ...]]]] = []
        for car in range(1, self.cars + 1):
            t = car * 4_000.0
            for lap in range(1, self.laps + 1):
                for sector, base in enumerate(SECTORS):
                    duration = base * (1 + 0.004 * car) + (lap * 37 + car * 11 + sector * 7) % 400
                    if car in self.slow_cars or (
                        self.slowdown and self.slowdown[0] <= t < self.slowdown[1]
                    ):
                        duration *= self.factor
                    pit = car in self.pitting and lap == self.pit_lap
                    if pit and sector == 2:
                        out.append((int(t + duration / 2), [_entry(car, in_pit=True)]))
                        duration += 12_000
                    if car in self.pitting and lap == self.pit_lap + 1 and sector == 0:
                        out.append((int(t + 1_000), [_entry(car, in_pit=False, pit_out=True)]))
                        out.append((int(t + 3_000), [_entry(car, pit_out=False)]))
                        duration += 15_000
                    if self.parked_from is not None and t + duration >= self.parked_from:
                        out.append((int(t + duration), [_entry(car, in_pit=True)]))
                        break
                    t += duration
                    out.append((int(t), [_entry(car, sector, int(duration))]))
                else:
                    continue
                break
        return sorted(out, key=lambda m: m[0])


def detect(race: Race) -> list[NeutralisationDetected | NeutralisationCleared]:
    detector = NeutralisationDetector("synthetic/2025-07-06_Race", TimeBase(None, None, 0))
    detector.on_session_status("Started")
    events: list[NeutralisationDetected | NeutralisationCleared] = []
    last = 0
    for now, entries in race.messages():
        events.extend(detector.on_timing((None, entries), now, keyframe=False))  # type: ignore[arg-type]
        last = now
    for step in range(1, 20):  # time passes (other topics' facts)
        events.extend(detector.tick(last + step * 10_000))
    return events


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cars=st.integers(min_value=8, max_value=22),
    factor=st.floats(min_value=1.3, max_value=2.2),
    start_lap=st.integers(min_value=3, max_value=6),
    length_laps=st.integers(min_value=2, max_value=4),
)
def test_a_field_wide_slowdown_is_detected(
    cars: int, factor: float, start_lap: int, length_laps: int
) -> None:
    lap = sum(SECTORS)
    start = start_lap * lap + 7_000
    end = start + length_laps * lap
    events = detect(Race(cars=cars, slowdown=(start, end), factor=factor))
    detected = [e for e in events if isinstance(e, NeutralisationDetected)]
    cleared = [e for e in events if isinstance(e, NeutralisationCleared)]
    assert len(detected) == 1
    assert len(cleared) == 1
    [d], [c] = detected, cleared
    assert d.source == TIMING
    assert d.kind == "UNKNOWN"
    assert d.period == 1
    # Within two sectors of the slowest car once it started.
    assert start < d.session_time_ms <= start + 2 * max(SECTORS) * factor
    assert len(d.cars) >= MIN_CARS
    assert d.ratio is not None
    assert d.ratio >= 1.2
    assert end < c.session_time_ms <= end + 2 * max(SECTORS) * factor
    assert c.started_time_ms == d.session_time_ms


@settings(max_examples=30, deadline=None)
@given(
    cars=st.integers(min_value=6, max_value=22),
    factor=st.floats(min_value=1.2, max_value=5.0),
    which=st.integers(min_value=1, max_value=22),
)
def test_a_single_slow_car_is_not_a_neutralisation(cars: int, factor: float, which: int) -> None:
    assert detect(Race(cars=cars, slow_cars=frozenset({min(which, cars)}), factor=factor)) == []


@settings(max_examples=30, deadline=None)
@given(
    cars=st.integers(min_value=8, max_value=22),
    pit_lap=st.integers(min_value=2, max_value=10),
    data=st.data(),
)
def test_half_the_field_pitting_is_not_a_neutralisation(
    cars: int, pit_lap: int, data: st.DataObject
) -> None:
    pitting = data.draw(st.sets(st.integers(1, cars), min_size=cars // 2, max_size=cars // 2))
    assert detect(Race(cars=cars, pitting=frozenset(pitting), pit_lap=pit_lap)) == []


def test_the_field_parked_in_the_pit_lane_is_a_red_flag() -> None:
    lap = sum(SECTORS)
    events = detect(Race(parked_from=5 * lap))
    detected = [e for e in events if isinstance(e, NeutralisationDetected)]
    assert [e.kind for e in detected][-1:] == ["RED"]
    red = detected[-1]
    assert red.session_time_ms >= 5 * lap + 90_000
    assert "in the pit lane" in red.evidence


def test_timing_is_not_judged_outside_races() -> None:
    detector = NeutralisationDetector("synthetic/2025-07-05_Qualifying", TimeBase(None, None, 0))
    detector.on_session_status("Started")
    race = Race(slowdown=(5 * sum(SECTORS), 8 * sum(SECTORS)))
    for now, entries in race.messages():
        assert detector.on_timing((None, entries), now, keyframe=False) == []  # type: ignore[arg-type]
    detector.on_session_info({"Type": "Race", "Name": "Sprint"})  # SessionInfo decides
    assert detector.race is True


_optional_int = st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**40))
_optional_bool = st.one_of(st.none(), st.booleans())
_entries = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=99999),
        _optional_int,
        _optional_bool,
        _optional_bool,
        _optional_int,
        _optional_int,
        _optional_bool,
        _optional_int,
        _optional_int,
        _optional_int,
        _optional_int,
        _optional_int,
        _optional_int,
        _optional_int,
        st.one_of(st.none(), st.text(max_size=8)),
    ),
    max_size=6,
)
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("timing"), st.integers(0, 10**8), _entries, st.booleans()),
        st.tuples(
            st.just("status"), st.sampled_from(["Inactive", "Started", "Aborted", "Finished", "?"])
        ),
        st.tuples(st.just("track"), st.integers(0, 10**8), st.text(max_size=2)),
        st.tuples(
            st.just("rc"),
            st.integers(0, 10**8),
            st.text(max_size=40),
            st.one_of(st.none(), st.sampled_from(["RED", "CLEAR", "GREEN", "YELLOW"])),
        ),
        st.tuples(
            st.just("info"),
            st.one_of(
                st.none(), st.integers(), st.dictionaries(st.text(max_size=5), st.text(max_size=5))
            ),
        ),
        st.tuples(st.just("tick"), st.integers(0, 10**8)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(steps=_steps, race=st.booleans())
def test_the_detector_never_raises(steps: list[tuple[object, ...]], race: bool) -> None:
    session = "synthetic/2025-07-06_Race" if race else "synthetic/x"
    detector = NeutralisationDetector(session, TimeBase(None, None, 0))
    for step in steps:
        match step:
            case ("timing", int(now), list(entries), bool(keyframe)):
                detector.on_timing((None, entries, []), now, keyframe=keyframe)
            case ("status", str(status)):
                detector.on_session_status(status)
            case ("track", int(now), str(code)):
                change = TrackStatusChanged(
                    session=session, session_time_ms=now, utc=None, status=code or "1", message=""
                )
                detector.on_track_status(change)
            case ("rc", int(now), str(text), flag):
                message = RaceControlMessage(
                    session=session,
                    session_time_ms=now,
                    utc=None,
                    category="SafetyCar" if "S" in text else "Flag",
                    message=text,
                    flag=flag if isinstance(flag, str) else None,
                    status="DEPLOYED" if "D" in text else None,
                )
                detector.on_race_control(message)
            case ("info", info):
                detector.on_session_info(info)
            case ("tick", int(now)):
                detector.tick(now)
