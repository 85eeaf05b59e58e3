"""Our laps against FastF1's, on every corpus session with TimingData.

FastF1's laps (driver, lap number, lap time) were computed once from the same files
by FastF1's own parser (`scripts/fastf1-laps`, kept in tests/data/fastf1-laps): its
numbering is the ecosystem's (OpenF1 numbers laps the same way), so a lap numbered
one off, an out-lap timed with the feed's line-to-line value, or a lap time given to
the wrong lap shows here as a disagreement.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from f1daemon.domain.events import LapCompleted, StintStarted
from f1daemon.feed.pipeline import derive
from f1daemon.projections.exports import lap_rows
from f1daemon.sources.archive import read_messages, topic_files
from tests.conftest import record_check

REFERENCE = Path(__file__).parent / "data" / "fastf1-laps"
SESSIONS = sorted(p.stem for p in REFERENCE.glob("*.json"))
REQUIRED_AGREEMENT = 0.995
# FastF1's lap `Time` is the line crossing as its sector times place it, ours the
# message that moved the count on (up to a second or so later): lap starts within
# this of FastF1's, except on laps around a stay in the pits, where FastF1 and we
# end a lap at different pit-lane moments.
LAP_START_TOLERANCE_MS = 1_000
# FastF1 drops a lap time of 150 s or more unless the sectors sum to it; we keep
# them (cool-down laps, laps behind the safety car, slow out-laps at Baku: real laps).
FASTF1_SLOW_LAP_MS = 150_000
# Laps we time below that which FastF1 leaves untimed, each with the reason.
EXPLAINED: dict[tuple[str, int, int], str] = {
    ("2022-03-27_Saudi_Arabian_Grand_Prix__2022-03-26_Qualifying", 1, 12): (
        "an out-lap of 61.871 s at Jeddah (laps there take 88 s and more): the feed's "
        "LastLapTime from the pit lane; FastF1 leaves it untimed, QA flags it"
    ),
}


@functools.cache
def _ours(folder: Path) -> list[LapCompleted | StintStarted]:
    derivation = derive("fastf1", enumerate(read_messages(topic_files(folder)), start=1))
    return [e for e in derivation.events if isinstance(e, LapCompleted | StintStarted)]


def test_the_reference_covers_every_corpus_session_with_timing_data(testdata: Path) -> None:
    with_timing = {p.parent.name for p in (testdata / "livetiming").glob("*/TimingData.jsonStream")}
    assert set(SESSIONS) == with_timing


@pytest.mark.parametrize("session", SESSIONS)
def test_fastf1s_timed_laps_are_ours_and_ours_are_explained(testdata: Path, session: str) -> None:
    events = _ours(testdata / "livetiming" / session)
    ours = {(e.driver, e.lap): e for e in events if isinstance(e, LapCompleted)}
    reference = json.loads((REFERENCE / f"{session}.json").read_text())
    theirs = {(int(driver), lap[0]): lap[1] for driver, laps in reference.items() for lap in laps}
    timed = {key: ms for key, ms in theirs.items() if ms is not None}
    agree = [key for key, ms in timed.items() if key in ours and ours[key].lap_time_ms == ms]
    share = len(agree) / len(timed)
    missed = sorted(set(timed) - set(agree))
    assert share >= REQUIRED_AGREEMENT, f"{share:.2%}; first missed: {missed[:10]}"
    # Every lap we time that FastF1 does not is a slow lap FastF1 drops, or explained.
    extra = {
        key: lap.lap_time_ms
        for key, lap in ours.items()
        if lap.lap_time_ms is not None and timed.get(key) is None
    }
    unexplained = {
        key: ms
        for key, ms in extra.items()
        if ms is not None and ms < FASTF1_SLOW_LAP_MS and (session, *key) not in EXPLAINED
    }
    assert not unexplained
    # Lap 1 is the first lap a car starts; each car's laps are numbered from it.
    assert min(lap for _, lap in ours) == 1
    record_check(
        session,
        f"FastF1 laps: {len(agree)}/{len(timed)} timed laps alike ({share:.2%}); "
        f"{len(extra)} more timed by us ({len(extra) - len(unexplained)} explained)",
    )


@pytest.mark.parametrize("session", SESSIONS)
def test_lap_1_of_every_car_has_the_stint_that_timing_app_data_reports(
    testdata: Path, session: str
) -> None:
    events = _ours(testdata / "livetiming" / session)
    if not any(isinstance(e, StintStarted) for e in events):
        pytest.skip("no TimingAppData in this recording: no tyre to tell")
    laps = [e for e in events if isinstance(e, LapCompleted)]
    rows = lap_rows(laps, events)
    first = [row for row in rows if row["lap"] == 1]
    stinted = {e.driver for e in events if isinstance(e, StintStarted)}
    assert first
    assert all(row["compound"] for row in first if row["driver"] in stinted)
    assert all(row["stint"] == 1 for row in first if row["driver"] in stinted)


@pytest.mark.parametrize("session", SESSIONS)
def test_lap_start_personal_best_and_fresh_tyre_are_fastf1s(testdata: Path, session: str) -> None:
    events = _ours(testdata / "livetiming" / session)
    rows = {(r["driver"], r["lap"]): r for r in lap_rows(_laps(events), events)}
    reference = json.loads((REFERENCE / f"{session}.json").read_text())
    personal_best, start, fresh = [], [], []
    for driver, laps in reference.items():
        previous_in_lap = False
        for lap, lap_ms, pit_out, pit_in, is_pb, start_ms, fresh_tyre in laps:
            ours = rows.get((int(driver), lap))
            if ours is not None:
                if lap_ms is not None:
                    personal_best.append(bool(ours["is_personal_best"]) == is_pb)
                if start_ms is not None and not pit_out and not previous_in_lap:
                    ours_ms = ours["lap_start_time_ms"]
                    start.append(
                        ours_ms is not None and abs(ours_ms - start_ms) <= LAP_START_TOLERANCE_MS
                    )
                if fresh_tyre is not None:
                    fresh.append(ours["fresh_tyre"] == fresh_tyre)
            previous_in_lap = pit_in
    share = {name: sum(v) / len(v) for name, v in (("pb", personal_best), ("start", start))}
    assert share["pb"] >= 0.95, share
    assert share["start"] >= 0.85, share
    assert not fresh or sum(fresh) / len(fresh) >= 0.98
    # Every lap has its start, and its UTC when the session has a time base.
    assert all(r["lap_start_time_ms"] is not None for r in rows.values())
    assert all((r["date_start"] is None) == (r["utc"] is None) for r in rows.values())
    record_check(
        session,
        f"FastF1 IsPersonalBest {sum(personal_best)}/{len(personal_best)}, LapStartTime "
        f"within 1 s {sum(start)}/{len(start)}, FreshTyre {sum(fresh)}/{len(fresh)}",
    )


def _laps(events: list[LapCompleted | StintStarted]) -> list[LapCompleted]:
    return [e for e in events if isinstance(e, LapCompleted)]
