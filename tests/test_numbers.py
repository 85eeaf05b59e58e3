"""Numbers as numbers, on real sessions: gaps and intervals (per lap and over time, as
OpenF1's `intervals`) and stints with their first and last lap (OpenF1's `stints`).

The gaps are checked against the feed's own text, read here from the recording without
the pipeline; the names against OpenF1's documents in the corpus.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from f1daemon.domain.events import DerivedEvent, LapCompleted, TimeBaseEstablished
from f1daemon.feed.pipeline import derive
from f1daemon.feed.timebase import offset_utc
from f1daemon.feed.timing import parse_gap
from f1daemon.projections.current import current_data
from f1daemon.projections.exports import export_table
from f1daemon.sources.archive import read_messages, topic_files
from tests.conftest import record_check

BAKU = "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
BAKU_SPRINT = "2023-04-30_Azerbaijan_Grand_Prix__2023-04-29_Sprint"
OPENF1 = "openf1-tests-2024_Spanish_FP1"


@functools.cache
def _derived(folder: Path) -> list[DerivedEvent]:
    return derive("numbers", enumerate(read_messages(topic_files(folder)), start=1)).events


def _feed_changes(path: Path) -> list[tuple[int, int, str | None, str | None]]:
    """Each (offset, driver, gap, interval) a TimingData line changed, read plainly."""
    gaps: dict[int, str] = {}
    intervals: dict[int, str] = {}
    changes: list[tuple[int, int, str | None, str | None]] = []
    for line in path.read_bytes().decode("utf-8-sig").splitlines():
        if len(line) < 12 or line[2] != ":":
            continue
        h, m, s = line[:12].split(":")
        offset = round((int(h) * 3600 + int(m) * 60 + float(s)) * 1000)
        message = orjson.loads(line[12:])
        lines = message.get("Lines") if isinstance(message, dict) else None
        moved: list[int] = []
        for key, entry in (lines or {}).items() if isinstance(lines, dict) else ():
            if not (key.isdigit() and len(key) <= 5 and isinstance(entry, dict)):
                continue
            driver = int(key)
            interval = entry.get("IntervalToPositionAhead")
            interval = interval.get("Value") if isinstance(interval, dict) else None
            for remembered, value in ((gaps, entry.get("GapToLeader")), (intervals, interval)):
                if isinstance(value, str) and remembered.get(driver) != (value or None):
                    if value:
                        remembered[driver] = value
                    else:
                        remembered.pop(driver)
                    if driver not in moved:
                        moved.append(driver)
        changes.extend((offset, d, gaps.get(d), intervals.get(d)) for d in moved)
    return changes


@pytest.mark.parametrize("session", [BAKU, BAKU_SPRINT])
def test_intervals_are_every_change_of_the_feeds_gaps_as_seconds_and_laps(
    testdata: Path, session: str
) -> None:
    folder = testdata / "livetiming" / session
    events = _derived(folder)
    table = export_table("intervals", current_data(events))
    # OpenF1's names (our `driver` is its `driver_number`), and our laps columns.
    assert {"date", "driver", "gap_to_leader", "interval"} <= set(table.column_names)
    assert {"gap_to_leader_laps", "interval_laps"} <= set(table.column_names)
    rows = table.to_pylist()
    expected = _feed_changes(folder / "TimingData.jsonStream")
    assert len(rows) == len(expected) > 1000
    for row, (offset, driver, gap, interval) in zip(rows, expected, strict=True):
        assert (row["time_ms"], row["driver"]) == (offset, driver)
        assert (row["gap_to_leader"], row["gap_to_leader_laps"]) == parse_gap(gap)
        assert (row["interval"], row["interval_laps"]) == parse_gap(interval)
    # The leader ("LAP 12") is 0 s and 0 laps from itself; numbers are seconds.
    leaders = [r for r, (_, _, gap, _) in zip(rows, expected, strict=True) if gap and "LAP" in gap]
    assert leaders
    assert all((r["gap_to_leader"], r["gap_to_leader_laps"]) == (0.0, 0) for r in leaders)
    assert max(r["gap_to_leader"] or 0 for r in rows) > 60  # a real race's spread
    # Each change at its UTC, on the session's (latest) time base (none: no UTC).
    t0 = [e.t0_utc for e in events if isinstance(e, TimeBaseEstablished)][-1]
    assert t0 is not None or session != BAKU
    assert all(r["date"] == offset_utc(t0, r["time_ms"]) for r in rows)
    assert {r["driver_code"] for r in rows} >= {"HAM", "VER"}
    record_check(session, f"intervals: {len(rows)} changes = the feed's, as seconds and laps")


def test_each_lap_has_the_gap_and_interval_in_force_when_it_ended(testdata: Path) -> None:
    events = _derived(testdata / "livetiming" / BAKU)
    changes = export_table("intervals", events).to_pylist()
    laps = [e for e in events if isinstance(e, LapCompleted)]
    checked = 0
    for lap in laps:
        before = [
            c for c in changes if c["driver"] == lap.driver and c["time_ms"] <= lap.session_time_ms
        ]
        if not before:
            continue
        latest = before[-1]
        assert (lap.gap_to_leader_s, lap.gap_to_leader_laps) == parse_gap(lap.gap_to_leader)
        assert (lap.interval_s, lap.interval_laps) == (latest["interval"], latest["interval_laps"])
        assert lap.gap_to_leader_s == latest["gap_to_leader"]
        checked += 1
    assert checked > 0.95 * len(laps)


def test_gaps_read_as_the_feed_writes_them() -> None:
    assert parse_gap("+13.078") == (13.078, 0)
    assert parse_gap("1 L") == (None, 1)
    assert parse_gap("+2 LAPS") == (None, 2)
    assert parse_gap("LAP 5") == (0.0, 0)
    assert parse_gap("") == (None, None)
    assert parse_gap("+x") == (None, None)


def _openf1(testdata: Path, table: str) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = orjson.loads(
        (testdata / OPENF1 / f"{table}.json").read_bytes()
    )
    return documents


def test_stints_have_openf1s_laps_and_tyre_age(testdata: Path) -> None:
    theirs = _openf1(testdata, "stints")
    shared = {"compound", "lap_start", "lap_end", "tyre_age_at_start"}
    assert all(shared <= set(doc) for doc in theirs)
    # OpenF1's stints start on lap 1 with the tyre's laps before it (new: 0).
    assert all(doc["lap_start"] == 1 and doc["tyre_age_at_start"] == 0 for doc in theirs)
    sessions = 0
    for folder in sorted((testdata / "livetiming").glob("*/TimingAppData.jsonStream")):
        if not (folder.parent / "TimingData.jsonStream").exists():
            continue
        events = _derived(folder.parent)
        stints = export_table("stints", events)
        assert shared <= set(stints.column_names)
        laps = export_table("laps", events).to_pylist()
        by_driver: dict[int, list[dict[str, Any]]] = {}
        for stint in sorted(stints.to_pylist(), key=lambda s: (s["driver"], s["stint"])):
            by_driver.setdefault(stint["driver"], []).append(stint)
            on_it = [
                lap["lap"]
                for lap in laps
                if (lap["driver"], lap["stint"]) == (stint["driver"], stint["stint"])
            ]
            assert (stint["lap_start"], stint["lap_end"]) == (
                (min(on_it), max(on_it)) if on_it else (None, None)
            )
            if stint["new_tyres"]:
                assert stint["tyre_age_at_start"] == 0
        for driver_stints in by_driver.values():
            if driver_stints[0]["lap_start"] is not None:
                assert driver_stints[0]["lap_start"] == 1  # lap 1, as FastF1 numbers it
            timed = [s for s in driver_stints if s["lap_start"] is not None]
            for earlier, later in itertools.pairwise(timed):
                assert later["lap_start"] == earlier["lap_end"] + 1
        sessions += 1
    assert sessions >= 10
    record_check("all TimingAppData", f"stints: lap_start/lap_end in {sessions} sessions")
