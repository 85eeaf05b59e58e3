"""The seeded race simulator: determinism, physics, and the feed's real shapes and quirks."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys
import zlib
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon.sources.simulator import (
    COMPOUNDS,
    FUEL_EFFECT_MS_PER_LAP,
    RACE_START_OFFSET_MS,
    TOPIC_FILES,
    TRACK_EVOLUTION_MS_PER_LAP,
    TRACKS,
    SimulatedLap,
    SimulatedRace,
    simulate_race,
    write_race,
)

LINE = re.compile(r"(\d{2}):(\d{2}):(\d{2})\.(\d{3})(.*)")
UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z")
GEAR_TOP_KMH = (0, 85, 120, 155, 190, 225, 260, 295, 351)


def read_stream(path: Path) -> list[tuple[int, Any]]:
    """An archive file as (offset ms, message); checks the BOM, CRLF and the line format."""
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), path.name
    assert raw.endswith(b"\r\n"), path.name
    text = raw[3:].decode("utf-8")
    body = text[: -len("\r\n")]
    assert "\n" not in body.replace("\r\n", ""), f"{path.name}: bare LF"
    out = []
    for line in body.split("\r\n"):
        match = LINE.fullmatch(line)
        assert match, line[:80]
        h, m, s, ms, payload = match.groups()
        out.append((((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms), json.loads(payload)))
    return out


def decode_z(payload: str) -> Any:
    return json.loads(zlib.decompress(base64.b64decode(payload), -15))


def laps_of(race: SimulatedRace) -> dict[int, list[SimulatedLap]]:
    by_driver: dict[int, list[SimulatedLap]] = defaultdict(list)
    for lap in race.laps:
        by_driver[lap.driver].append(lap)
    return by_driver


def check_invariants(race: SimulatedRace) -> None:
    """The physics invariants every simulated race keeps."""
    assert len(set(race.drivers)) == len(race.drivers)
    assert sorted(race.classification) == sorted(race.drivers)
    by_driver = laps_of(race)
    assert set(by_driver) == set(race.drivers)
    completed = {}
    for driver, laps in by_driver.items():
        assert [lap.lap for lap in laps] == list(range(1, len(laps) + 1))
        assert race.total_laps - 1 <= len(laps) <= race.total_laps
        completed[driver] = len(laps)
        first = laps[0]
        assert first.lap_time_ms is None
        assert first.sector1_ms is None
        assert first.sector2_ms
        assert first.sector2_ms > 0
        assert first.sector3_ms
        assert first.sector3_ms > 0
        for lap in laps[1:]:
            assert lap.sector1_ms
            assert lap.sector2_ms
            assert lap.sector3_ms
            assert min(lap.sector1_ms, lap.sector2_ms, lap.sector3_ms) > 0
            assert lap.sector1_ms + lap.sector2_ms + lap.sector3_ms == lap.lap_time_ms
        # at least one stop, with a compound change; stints count from 1
        assert any(lap.pit_in for lap in laps)
        assert len({lap.compound for lap in laps}) >= 2
        assert {lap.compound for lap in laps} <= set(COMPOUNDS)
        assert laps[0].stint == 1
        assert not laps[0].pit_out
        for before, after in itertools.pairwise(laps):
            assert after.pit_out == before.pit_in
            if before.pit_in:
                assert after.stint == before.stint + 1
                assert after.compound != before.compound
            else:
                assert (after.stint, after.compound) == (before.stint, before.compound)
        assert not laps[-1].pit_in  # the out-lap always follows
    # lapped cars are classified behind those who completed more laps
    counts = [completed[d] for d in race.classification]
    assert counts == sorted(counts, reverse=True)


# --------------------------------------------------------------------------- determinism


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    args: dict[str, Any] = {"track": "monaco", "seed": 42, "cars": 6, "laps": 6}
    first = write_race(tmp_path / "a", **args)
    write_race(tmp_path / "b", **args)
    other = write_race(tmp_path / "c", **{**args, "seed": 43})
    assert [p.name for p in first.files] == list(TOPIC_FILES)
    for name in TOPIC_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "TimingData.jsonStream").read_bytes() != (
        tmp_path / "c" / "TimingData.jsonStream"
    ).read_bytes()
    assert first.laps != other.laps
    assert dataclasses.replace(first, files=()) == simulate_race(**args)


def test_output_does_not_depend_on_the_process(tmp_path: Path) -> None:
    """No hash randomisation, no wall clock: another interpreter writes the same bytes."""
    write_race(tmp_path / "here", seed=5, cars=4, laps=4)
    code = (
        "import sys; from pathlib import Path; from f1daemon.sources.simulator import write_race;"
        "write_race(Path(sys.argv[1]), seed=5, cars=4, laps=4)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], check=True, env=env)
    for name in TOPIC_FILES:
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "there" / name).read_bytes()


# --------------------------------------------------------------------------- physics


def test_the_default_race_keeps_the_invariants() -> None:
    race = simulate_race()
    assert (race.track, race.seed, race.total_laps) == ("monza", 1, 12)
    assert len(race.drivers) == 20
    check_invariants(race)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    track=st.sampled_from(sorted(TRACKS)),
    seed=st.integers(min_value=-(2**40), max_value=2**40),
    cars=st.integers(min_value=1, max_value=10),
    laps=st.integers(min_value=2, max_value=16),
)
def test_physics_invariants_hold_for_any_seed(track: str, seed: int, cars: int, laps: int) -> None:
    race = simulate_race(track=track, seed=seed, cars=cars, laps=laps)
    check_invariants(race)
    assert race == simulate_race(track=track, seed=seed, cars=cars, laps=laps)
    # the out-lap carries most of the pit-lane loss in its first sector
    for lap in race.laps:
        if lap.pit_out:
            assert lap.sector1_ms
            assert lap.sector1_ms > TRACKS[track].pit_loss_ms * 0.5


def test_lap_times_follow_fuel_degradation_and_track_evolution() -> None:
    """Within a stint, on clean laps, the lap time trend is degradation minus fuel and track."""
    race = simulate_race(track="spa", seed=7, cars=20, laps=50)
    stints: dict[tuple[int, int], list[SimulatedLap]] = defaultdict(list)
    for lap in race.laps:
        clean = not (lap.pit_in or lap.pit_out or lap.lap in race.safety_car_laps)
        if lap.lap_time_ms is not None and clean:
            stints[lap.driver, lap.stint].append(lap)
    sxy: dict[str, float] = defaultdict(float)
    sxx: dict[str, float] = defaultdict(float)
    for laps in stints.values():
        if len(laps) < 3:
            continue
        mean_x = sum(lap.lap for lap in laps) / len(laps)
        mean_y = sum(lap.lap_time_ms or 0 for lap in laps) / len(laps)
        for lap in laps:
            sxy[lap.compound] += (lap.lap - mean_x) * ((lap.lap_time_ms or 0) - mean_y)
            sxx[lap.compound] += (lap.lap - mean_x) ** 2
    assert len(sxx) >= 2
    for compound, spread in sxx.items():
        slope = sxy[compound] / spread
        model = (
            COMPOUNDS[compound].degradation_ms_per_lap
            - FUEL_EFFECT_MS_PER_LAP
            - TRACK_EVOLUTION_MS_PER_LAP
        )
        assert abs(slope - model) < 6, (compound, slope, model)


def test_safety_car_likelihood_follows_the_track() -> None:
    def rate(track: str) -> float:
        runs = [simulate_race(track=track, seed=s, cars=3, laps=12) for s in range(300)]
        return sum(bool(r.safety_car_laps) for r in runs) / len(runs)

    assert abs(rate("monaco") - TRACKS["monaco"].safety_car_likelihood) < 0.1
    assert abs(rate("spa") - TRACKS["spa"].safety_car_likelihood) < 0.1
    assert TRACKS["monaco"].safety_car_likelihood == 0.70
    assert TRACKS["spa"].safety_car_likelihood == 0.25


# --------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def race_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulatedRace, Path]:
    folder = tmp_path_factory.mktemp("sim") / "race"
    race = write_race(folder, track="monaco", seed=11, cars=10, laps=10)
    return race, folder


def test_every_file_parses_in_offset_order(race_folder: tuple[SimulatedRace, Path]) -> None:
    race, folder = race_folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(TOPIC_FILES)
    assert tuple(race.files) == tuple(folder / name for name in TOPIC_FILES)
    for name in TOPIC_FILES:
        messages = read_stream(folder / name)
        offsets = [t for t, _ in messages]
        assert offsets == sorted(offsets), name
        assert messages, name


def test_session_status_lap_count_and_info(race_folder: tuple[SimulatedRace, Path]) -> None:
    race, folder = race_folder
    status = read_stream(folder / "SessionStatus.jsonStream")
    assert [m["Status"] for _, m in status] == [
        "Inactive",
        "Started",
        "Finished",
        "Finalised",
        "Ends",
    ]
    assert status[1][0] == RACE_START_OFFSET_MS == race.race_start_offset_ms
    (info,) = read_stream(folder / "SessionInfo.jsonStream")
    assert info[0] == 0
    assert info[1]["Type"] == "Race"
    assert "Simulated" in info[1]["Meeting"]["Name"]
    laps = read_stream(folder / "LapCount.jsonStream")
    assert laps[0][1] == {"CurrentLap": 1, "TotalLaps": race.total_laps}
    assert [m["CurrentLap"] for _, m in laps] == list(range(1, race.total_laps + 1))
    assert all(status[1][0] < t < status[2][0] for t, _ in laps[1:])


def test_weather_every_minute_with_track_above_air(race_folder: tuple[SimulatedRace, Path]) -> None:
    race, folder = race_folder
    weather = read_stream(folder / "WeatherData.jsonStream")
    low, high = TRACKS[race.track].air_temp_range
    assert len(weather) > 10
    for (t0, _), (t1, _) in itertools.pairwise(weather):
        assert 59_000 <= t1 - t0 <= 61_000
    for _, message in weather:
        air, track = float(message["AirTemp"]), float(message["TrackTemp"])
        assert 8.0 <= track - air <= 15.0
        assert low <= air <= high
        assert message["Rainfall"] == "0"


def test_track_status_shows_the_safety_car(race_folder: tuple[SimulatedRace, Path]) -> None:
    race, folder = race_folder
    statuses = [m for _, m in read_stream(folder / "TrackStatus.jsonStream")]
    assert statuses[0] == {"Status": "1", "Message": "AllClear"}
    codes = [m["Status"] for m in statuses]
    if race.safety_car_laps:
        assert codes == ["1", "2", "4", "1"]
        slow = [lap.lap_time_ms for lap in race.laps if lap.lap in race.safety_car_laps]
        green = sorted(
            lap.lap_time_ms or 0
            for lap in race.laps
            if lap.lap > 1 and lap.lap not in race.safety_car_laps and not lap.pit_out
        )
        median = green[len(green) // 2]
        assert min(t or 0 for t in slow) > median
    else:
        assert codes == ["1"]


def test_a_race_with_a_safety_car(tmp_path: Path) -> None:
    seed = next(
        s for s in range(100) if simulate_race(track="baku", seed=s, cars=5, laps=8).safety_car_laps
    )
    race = write_race(tmp_path, track="baku", seed=seed, cars=5, laps=8)
    statuses = read_stream(tmp_path / "TrackStatus.jsonStream")
    deployed = next(t for t, m in statuses if m["Status"] == "4")
    clear = next(t for t, m in statuses if m["Status"] == "1" and t > deployed)
    assert deployed < clear
    leader_laps = [lap for lap in race.laps if lap.driver == race.classification[0]]
    sc = [lap.lap_time_ms or 0 for lap in leader_laps if lap.lap in race.safety_car_laps]
    green = [lap.lap_time_ms or 0 for lap in leader_laps if lap.lap not in race.safety_car_laps]
    assert min(sc) > 1.1 * min(t for t in green if t)


def test_car_data_entries_and_channel_ranges(tmp_path: Path) -> None:
    race = write_race(tmp_path, track="spa", seed=2, cars=4, laps=3, telemetry_hz=3.0)
    start = race.stream_start_utc
    messages = read_stream(tmp_path / "CarData.z.jsonStream")
    assert len(messages) > 100
    seen_pit_box = seen_top_gear = seen_drs_or_brake = False
    previous_utc = ""
    for offset, payload in messages:
        assert isinstance(payload, str)
        entries = decode_z(payload)["Entries"]
        assert len(entries) == 3
        for entry in entries:
            assert UTC.fullmatch(entry["Utc"])
            assert entry["Utc"] > previous_utc
            previous_utc = entry["Utc"]
            utc = datetime.fromisoformat(entry["Utc"][:26] + "+00:00")
            sampled_ms = (utc - start).total_seconds() * 1000
            assert 0 <= offset - sampled_ms <= 1300  # published within a second of sampling
            assert set(entry["Cars"]) == {str(d) for d in race.drivers}
            for car in entry["Cars"].values():
                ch = car["Channels"]
                assert set(ch) == {"0", "2", "3", "4", "5", "45"}
                rpm, speed, gear, throttle, brake, drs = (
                    ch[k] for k in ("0", "2", "3", "4", "5", "45")
                )
                assert 0 <= rpm <= 15_000
                assert 0 <= speed <= 350
                assert 0 <= throttle <= 100
                assert brake in (0, 100)
                assert 0 <= drs <= 14
                assert 0 <= gear <= 8
                assert (speed == 0) == (gear == 0)
                if gear:
                    assert GEAR_TOP_KMH[gear - 1] < speed <= GEAR_TOP_KMH[gear]
                seen_pit_box |= speed == 0 and offset > RACE_START_OFFSET_MS
                seen_top_gear |= gear == 8
                seen_drs_or_brake |= brake == 100
    assert seen_pit_box
    assert seen_top_gear
    assert seen_drs_or_brake


# --------------------------------------------------------------------------- the feed


def reconstruct(folder: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """Laps as a simple reader of the real feed would fit them (independent of f1daemon)."""
    events = [(t, 0, m) for t, m in read_stream(folder / "TimingData.jsonStream")]
    events += [(t, 1, m) for t, m in read_stream(folder / "TimingAppData.jsonStream")]
    events.sort(key=lambda e: (e[0], e[1]))
    laps: dict[tuple[int, int], dict[str, Any]] = {}
    current: dict[int, dict[str, Any]] = defaultdict(dict)
    closed: dict[int, tuple[int, int]] = {}  # driver -> (lap, offset closed)
    stints: dict[int, list[str]] = defaultdict(list)

    def ms(value: str) -> int:
        minutes, _, seconds = value.rpartition(":")
        return round((int(minutes or 0) * 60 + float(seconds)) * 1000)

    for t, topic, message in events:
        for key, patch in message["Lines"].items():
            driver = int(key)
            if topic == 1:
                raw = patch.get("Stints")
                items = (
                    enumerate(raw)
                    if isinstance(raw, list)
                    else ((int(k), v) for k, v in (raw or {}).items())
                )
                for index, stint in items:
                    if "Compound" in stint:
                        assert index == len(stints[driver])
                        stints[driver].append(stint["Compound"])
                continue
            if isinstance(patch.get("Sectors"), list):
                continue  # the snapshot
            if "NumberOfLaps" in patch:
                n = patch["NumberOfLaps"]
                lap = current.pop(driver, {})
                lap["stint"] = len(stints[driver])
                lap["compound"] = stints[driver][-1]
                laps[driver, n] = lap
                closed[driver] = (n, t)

            def target(driver: int = driver, t: int = t, patch: Any = patch) -> dict[str, Any]:
                if "NumberOfLaps" in patch:
                    return laps[driver, patch["NumberOfLaps"]]
                if driver in closed and t - closed[driver][1] <= 3_000:
                    return laps[driver, closed[driver][0]]
                return current[driver]

            for index, sector in (patch.get("Sectors") or {}).items():
                if sector.get("Value"):
                    where = target() if index == "2" else current[driver]
                    where[f"s{int(index) + 1}"] = ms(sector["Value"])
            if (patch.get("LastLapTime") or {}).get("Value"):
                target()["lap_time"] = ms(patch["LastLapTime"]["Value"])
            if patch.get("InPit") is True:
                current[driver]["pit_in"] = True
            if patch.get("PitOut") is True:
                current[driver]["pit_out"] = True
    return laps


def test_timing_data_tells_the_ground_truth(race_folder: tuple[SimulatedRace, Path]) -> None:
    race, folder = race_folder
    fitted = reconstruct(folder)
    assert len(fitted) == len(race.laps)
    for lap in race.laps:
        got = fitted[lap.driver, lap.lap]
        assert got.get("lap_time") == lap.lap_time_ms, lap
        assert got.get("s1") == lap.sector1_ms, lap
        assert (got.get("s2"), got.get("s3")) == (lap.sector2_ms, lap.sector3_ms), lap
        assert (got.get("pit_in", False), got.get("pit_out", False)) == (lap.pit_in, lap.pit_out)
        assert (got["stint"], got["compound"]) == (lap.stint, lap.compound), lap


def test_timing_data_snapshot_and_messages_have_the_real_shapes(
    race_folder: tuple[SimulatedRace, Path],
) -> None:
    race, folder = race_folder
    messages = read_stream(folder / "TimingData.jsonStream")
    t0, snapshot = messages[0]
    assert t0 == 5_000
    assert list(snapshot["Lines"]) == [str(d) for d in race.drivers]
    for position, (key, line) in enumerate(snapshot["Lines"].items(), start=1):
        assert line["RacingNumber"] == key
        assert line["Line"] == position
        assert line["Position"] == str(position)
        assert (line["InPit"], line["PitOut"], line["Retired"], line["Stopped"]) == (False,) * 4
        assert line["NumberOfPitStops"] == 0
        assert [s["Value"] for s in line["Sectors"]] == ["", "", ""]
        assert set(line["Speeds"]) == {"I1", "I2", "FL", "ST"}
        assert line["LastLapTime"]["Value"] == line["BestLapTime"]["Value"] == ""
    sector = re.compile(r"\d+\.\d{3}")
    lap_time = re.compile(r"\d+:\d{2}\.\d{3}")
    for _, message in messages[1:]:
        for patch in message["Lines"].values():
            for value in (patch.get("Sectors") or {}).values():
                assert value["Value"] == "" or sector.fullmatch(value["Value"])
            if "LastLapTime" in patch:
                assert lap_time.fullmatch(patch["LastLapTime"]["Value"])
    # lap 1 has no lap time, the final order matches the classification
    first_crossings = [
        patch
        for _, m in messages
        for patch in m["Lines"].values()
        if patch.get("NumberOfLaps") == 1
    ]
    assert len(first_crossings) == len(race.drivers)
    assert not any("LastLapTime" in patch for patch in first_crossings)
    final: dict[str, int] = {}
    for _, message in messages:
        for key, patch in message["Lines"].items():
            if "Position" in patch:
                final[key] = int(patch["Position"])
    assert tuple(sorted(race.drivers, key=lambda d: final[str(d)])) == race.classification


def test_the_feed_has_the_real_quirks(tmp_path: Path) -> None:
    race = write_race(tmp_path, seed=4, cars=20, laps=12)
    messages = read_stream(tmp_path / "TimingData.jsonStream")
    timed_laps = sum(1 for lap in race.laps if lap.lap_time_ms is not None)

    def is_late(patch: dict[str, Any]) -> bool:
        last_sector = (patch.get("Sectors") or {}).get("2", {}).get("Value")
        return "NumberOfLaps" not in patch and ("LastLapTime" in patch or bool(last_sector))

    late = sum(1 for _, m in messages[1:] for patch in m["Lines"].values() if is_late(patch))
    assert 0.05 * timed_laps < late < 0.3 * timed_laps
    bundled = [m for _, m in messages[1:] if len(m["Lines"]) > 1]
    assert bundled
    pit = [p for _, m in messages for p in m["Lines"].values() if p.get("InPit") is True]
    assert len(pit) == sum(lap.pit_in for lap in race.laps)
    assert all(p["NumberOfPitStops"] >= 1 for p in pit)


def test_line_crossings_follow_cumulative_race_time(
    race_folder: tuple[SimulatedRace, Path],
) -> None:
    """TimingAppData's tyre-age updates mark each crossing: the gaps are the lap times."""
    race, folder = race_folder
    crossings: dict[int, list[int]] = defaultdict(list)
    for t, message in read_stream(folder / "TimingAppData.jsonStream")[2:]:
        for key, patch in message["Lines"].items():
            stint = next(iter(patch["Stints"].values()))
            if set(stint) == {"TotalLaps"}:
                crossings[int(key)].append(t)
    by_driver = laps_of(race)
    for driver, laps in by_driver.items():
        times = crossings[driver]
        assert len(times) == len(laps)
        assert times[0] > RACE_START_OFFSET_MS
        for lap, (before, after) in zip(laps[1:], itertools.pairwise(times), strict=True):
            assert after - before == lap.lap_time_ms
    # finishing order: more laps first, then who crossed the line first
    order = sorted(race.drivers, key=lambda d: (-len(by_driver[d]), crossings[d][-1]))
    assert tuple(order) == race.classification


def test_timing_app_data_stints(race_folder: tuple[SimulatedRace, Path]) -> None:
    race, folder = race_folder
    messages = read_stream(folder / "TimingAppData.jsonStream")
    assert messages[0][1]["Lines"][str(race.drivers[0])] == {
        "RacingNumber": str(race.drivers[0]),
        "Line": 1,
        "GridPos": "1",
    }
    starts = messages[1][1]["Lines"]
    for driver in race.drivers:
        (stint,) = starts[str(driver)]["Stints"]
        first_lap = next(lap for lap in race.laps if lap.driver == driver)
        assert stint == {
            "Compound": first_lap.compound,
            "New": "true",
            "TyresNotChanged": "0",
            "TotalLaps": 0,
            "StartLaps": 0,
        }


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown track"):
        simulate_race(track="nowhere")
    with pytest.raises(ValueError, match="cars"):
        simulate_race(cars=0)
    with pytest.raises(ValueError, match="laps"):
        write_race(tmp_path, laps=1)
    with pytest.raises(ValueError, match="telemetry_hz"):
        simulate_race(telemetry_hz=0)
    assert not list(tmp_path.iterdir())
    assert {"monza", "monaco", "spa", "silverstone", "baku"} <= set(TRACKS)
