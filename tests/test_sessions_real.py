"""Every session of the real archive, derived and checked against what its data supports.

Each check runs where the session has the topics (and official results) it needs;
the run ends with a count of sessions and checks (see conftest's summary hook).
The ground truth is independent of our decoders: the official results (Jolpica),
and the raw topic lines read here with nothing but `json`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import pytest

from f1daemon.domain.events import (
    LapCompleted,
    LapDeleted,
    NeutralisationPeriod,
    PitStop,
    RaceControlMessage,
    StintStarted,
    TimeBaseEstablished,
    WeatherObserved,
)
from f1daemon.feed.pipeline import Derivation, derive
from f1daemon.feed.timebase import parse_utc
from f1daemon.feed.timing import parse_time_ms
from f1daemon.projections.exports import export_table
from f1daemon.sources.archive import read_facts, topic_files
from tests.conftest import TESTDATA, record_check

# Sessions with official results to compare with: (folder, Jolpica file, results key).
RESULTS = {
    "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race": ("2018/4/results.json", "Results"),
    "2023-04-30_Azerbaijan_Grand_Prix__2023-04-29_Sprint": ("2023/4/sprint.json", "SprintResults"),
}
QUALIFYING = {
    "2019-09-08_Italian_Grand_Prix__2019-09-07_Qualifying": "2019/14/qualifying.json",
    "2021-11-07_Mexico_City_Grand_Prix__2021-11-06_Qualifying": "2021/18/qualifying.json",
    "2022-03-27_Saudi_Arabian_Grand_Prix__2022-03-26_Qualifying": "2022/2/qualifying.json",
    "2023-04-30_Azerbaijan_Grand_Prix__2023-04-28_Qualifying": "2023/4/qualifying.json",
}
# Neutralisations a race engineer remembers from these sessions.
KNOWN_NEUTRALISATIONS = {
    "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race": ["SC", "SC"],
    "2020-08-09_70th_Anniversary_Grand_Prix__2020-08-07_Practice_2": ["VSC", "RED"],
    "2023-04-30_Azerbaijan_Grand_Prix__2023-04-29_Sprint": ["VSC", "SC"],
}
KIND_OF_STATUS = {"4": "SC", "5": "RED", "6": "VSC", "7": "VSC"}

E = TypeVar("E")


def session_folders(testdata: Path) -> list[Path]:
    return sorted(p for p in (testdata / "livetiming").iterdir() if not p.name.startswith("_"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "folder" in metafunc.fixturenames:
        folders = session_folders(TESTDATA) if (TESTDATA / "livetiming").is_dir() else []
        metafunc.parametrize("folder", folders, ids=[f.name for f in folders])


@cache
def derived(folder: Path) -> Derivation:
    return derive(folder.name, enumerate(read_facts(folder.name, topic_files(folder)), start=1))


def of_type(folder: Path, event_type: type[E]) -> list[E]:
    return [e for e in derived(folder).events if isinstance(e, event_type)]


def raw_lines(folder: Path, topic: str) -> Iterator[tuple[int, Any]]:
    """(offset ms, message) of a topic file, read with nothing but json."""
    path = folder / f"{topic}.jsonStream"
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        if line.strip():
            h, m, s = line[:12].split(":")
            yield (
                (int(h) * 3600 + int(m) * 60) * 1000 + round(float(s) * 1000),
                json.loads(line[12:]),
            )


def needs(folder: Path, *topics: str) -> None:
    missing = [t for t in topics if not (folder / f"{t}.jsonStream").is_file()]
    if missing:
        pytest.skip(f"{folder.name} has no {', '.join(missing)}")


def test_every_message_is_derived_or_quarantined(folder: Path, testdata: Path) -> None:
    derivation = derived(folder)
    lines = sum(
        1 for f in topic_files(folder) for line in f.path.read_bytes().splitlines() if line.strip()
    )
    assert derivation.facts == lines
    assert derivation.undecodable == 0
    record_check(folder.name, "every line read")


def test_laps_agree_with_the_official_result(folder: Path, testdata: Path) -> None:
    if folder.name not in RESULTS:
        pytest.skip("no official race or sprint result to compare with")
    jolpica_file, key = RESULTS[folder.name]
    (race,) = json.loads((testdata / "jolpica-ergast" / jolpica_file).read_text())["MRData"][
        "RaceTable"
    ]["Races"]
    laps = of_type(folder, LapCompleted)
    classified = [r for r in race[key] if r["positionText"].isdigit()]
    for result in classified:
        mine = [lap for lap in laps if lap.driver == int(result["number"])]
        assert max(lap.lap for lap in mine) == int(result["laps"])
        fastest = min(
            (lap for lap in mine if lap.lap_time_ms), key=lambda lap: lap.lap_time_ms or 0
        )
        assert (fastest.lap, fastest.lap_time_ms) == (
            int(result["FastestLap"]["lap"]),
            parse_time_ms(result["FastestLap"]["Time"]["time"]),
        )
    record_check(folder.name, f"last and fastest laps of {len(classified)} classified drivers")


def test_qualifying_best_times_agree_with_q1_q2_q3(folder: Path, testdata: Path) -> None:
    if folder.name not in QUALIFYING:
        pytest.skip("no official qualifying result to compare with")
    (race,) = json.loads((testdata / "jolpica-ergast" / QUALIFYING[folder.name]).read_text())[
        "MRData"
    ]["RaceTable"]["Races"]
    laps = of_type(folder, LapCompleted)
    deleted = {(d.driver, d.lap) for d in of_type(folder, LapDeleted) if not d.reinstated}
    compared = 0
    for result in race["QualifyingResults"]:
        driver = int(result["number"])
        for part in (1, 2, 3):
            official = parse_time_ms(result.get(f"Q{part}"))
            if official is None:
                continue
            valid = [
                lap.lap_time_ms
                for lap in laps
                if lap.driver == driver
                and lap.session_part == part
                and lap.lap_time_ms is not None
                and not lap.pit_out
                and not lap.flags
                and (driver, lap.lap) not in deleted
            ]
            assert min(valid) == official, (driver, part)
            compared += 1
    assert compared >= 40
    record_check(folder.name, f"{compared} Q1/Q2/Q3 best times")


def final_stints(folder: Path) -> dict[int, list[dict[str, Any]]]:
    """Each driver's stints as the last TimingAppData state has them."""
    stints: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for _, message in raw_lines(folder, "TimingAppData"):
        for number, line in message.get("Lines", {}).items():
            patch = line.get("Stints") if isinstance(line, dict) else None
            if isinstance(patch, list):
                stints[int(number)] = [dict(s) for s in patch]
            elif isinstance(patch, dict):
                for index, values in sorted(patch.items(), key=lambda kv: int(kv[0])):
                    known = stints[int(number)]
                    if int(index) == len(known):
                        known.append({})
                    known[int(index)].update(values)
    return stints


def test_stints_agree_with_timing_app_data(folder: Path) -> None:
    needs(folder, "TimingAppData")
    truth = final_stints(folder)
    started: dict[int, list[StintStarted]] = defaultdict(list)
    for stint in of_type(folder, StintStarted):
        started[stint.driver].append(stint)
    assert {d: len(s) for d, s in started.items()} == {d: len(s) for d, s in truth.items() if s}
    for stints in started.values():
        assert [s.stint for s in stints] == list(range(1, len(stints) + 1))
    for lap in export_table("laps", derived(folder).events).to_pylist():
        if lap["stint"] is not None:
            assert lap["compound"] == truth[lap["driver"]][lap["stint"] - 1].get("Compound")
    record_check(folder.name, f"stints of {len(started)} drivers")


def test_every_new_race_stint_begins_with_an_out_lap(folder: Path) -> None:
    needs(folder, "TimingData", "TimingAppData", "LapCount")
    laps = of_type(folder, LapCompleted)
    stops = of_type(folder, PitStop)
    # A stint record the feed marks TyresNotChanged is no tyre change.
    changes = {(s.driver, s.stint) for s in of_type(folder, StintStarted) if s.tyres_changed}
    checked = 0
    for driver in {lap.driver for lap in laps}:
        mine = sorted((lap for lap in laps if lap.driver == driver), key=lambda lap: lap.lap)
        for previous, lap in pairwise(mine):
            if (
                lap.stint is not None
                and previous.stint is not None
                and lap.stint > previous.stint
                and (driver, lap.stint) in changes
            ):
                assert lap.pit_out, (driver, lap.lap)
                assert previous.pit_in, (driver, previous.lap)
                assert any(s.driver == driver and s.out_lap == lap.lap for s in stops)
                checked += 1
    assert checked > 0
    record_check(folder.name, f"{checked} tyre changes with in-lap, out-lap and pit stop")


def test_neutralisations_follow_track_status_and_race_control(folder: Path) -> None:
    needs(folder, "TrackStatus")
    periods = of_type(folder, NeutralisationPeriod)
    expected: list[tuple[str, int]] = []
    kind_now = None
    for offset, message in raw_lines(folder, "TrackStatus"):
        kind = KIND_OF_STATUS.get(message.get("Status", ""))
        if kind is not None and kind != kind_now:
            expected.append((kind, offset))
        kind_now = kind
    assert [(p.kind, p.session_time_ms) for p in periods] == expected
    if folder.name in KNOWN_NEUTRALISATIONS:
        assert [p.kind for p in periods] == KNOWN_NEUTRALISATIONS[folder.name]
    if (folder / "RaceControlMessages.jsonStream").is_file():
        messages = of_type(folder, RaceControlMessage)
        for period in periods:
            assert any(
                _announces(message, period.kind)
                and abs(message.session_time_ms - period.session_time_ms) <= 60_000
                for message in messages
            ), (period.kind, period.session_time_ms)
    record_check(folder.name, f"{len(periods)} neutralisation periods")


def _announces(message: RaceControlMessage, kind: str) -> bool:
    text = message.message.upper()
    if kind == "RED":
        return message.flag == "RED" or "RED FLAG" in text
    if kind == "VSC":
        return "VIRTUAL SAFETY CAR" in text
    return "SAFETY CAR" in text and "VIRTUAL" not in text


def test_weather_agrees_with_weather_data(folder: Path) -> None:
    needs(folder, "WeatherData")
    observed = of_type(folder, WeatherObserved)
    lines = list(raw_lines(folder, "WeatherData"))
    assert len(observed) == len(lines)
    for event, (offset, message) in zip(observed, lines, strict=True):
        assert event.session_time_ms == offset
        assert event.air_temp_c == float(message["AirTemp"])
        assert event.track_temp_c == float(message["TrackTemp"])
        assert event.humidity_pct == float(message["Humidity"])
        assert event.rainfall == (float(message["Rainfall"]) > 0)
        assert -10 <= event.track_temp_c <= 70
    record_check(folder.name, f"{len(observed)} weather observations")


def test_the_time_base_agrees_with_race_control_stamps(folder: Path) -> None:
    needs(folder, "RaceControlMessages")
    # The estimate moves as stamps come (each move an event), only ever later.
    estimates = of_type(folder, TimeBaseEstablished)
    stamps = [e.t0_utc for e in estimates if e.t0_utc is not None]
    assert stamps == sorted(stamps)
    time_base = estimates[-1]
    assert time_base.t0_utc is not None
    messages = of_type(folder, RaceControlMessage)
    lags = []
    for offset, message in raw_lines(folder, "RaceControlMessages"):
        items = message["Messages"]
        for item in items if isinstance(items, list) else items.values():
            if "Utc" in item:
                stamp = time_base.t0_utc.timestamp() * 1000 + offset
                lags.append(stamp - _utc_ms(item["Utc"]))
    assert lags
    assert min(lags) >= 0  # t0 is the tightest bound: no message published before it was stamped
    assert sorted(lags)[len(lags) // 2] < 5_000  # and typically within seconds
    assert all(m.utc is not None for m in messages)
    record_check(folder.name, f"time base against {len(lags)} race-control stamps")


def _utc_ms(text: str) -> float:
    stamp = parse_utc(text)
    assert stamp is not None
    return stamp.timestamp() * 1000
