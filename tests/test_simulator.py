"""The seeded race simulator: determinism, physics, and the feed's real shapes and quirks."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon.demo import lap_values
from f1daemon.domain.events import (
    LapCompleted,
    NeutralisationPeriod,
    PositionBatch,
    RaceControlMessage,
    TelemetryBatch,
    WeatherObserved,
)
from f1daemon.feed.pipeline import derive
from f1daemon.qa.rules import SessionRecords, check_records
from f1daemon.qa.verdicts import check_run
from f1daemon.sources.archive import read_messages, topic_files
from f1daemon.sources.simulator import (
    COMPOUNDS,
    FUEL_EFFECT_MS_PER_LAP,
    RACE_START_OFFSET_MS,
    TOPIC_FILES,
    TRACK_EVOLUTION_MS_PER_LAP,
    TRACKS,
    SimulatedLap,
    SimulatedRace,
    plan_incidents,
    simulate_race,
    write_race,
)

LINE = re.compile(r"(\d{2}):(\d{2}):(\d{2})\.(\d{3})(.*)")
UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z")


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


def solve(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Ordinary least squares by the normal equations (Gauss-Jordan, partial pivoting)."""
    n = len(rows[0])
    a = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    b = [sum(r[i] * y for r, y in zip(rows, ys, strict=True)) for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for r in range(n):
            if r != col and a[r][col]:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
                b[r] -= f * b[col]
    return [b[i] / a[i][i] for i in range(n)]


def clean_laps(race: SimulatedRace) -> list[SimulatedLap]:
    """Racing laps: timed, not an in- or out-lap, not neutralised, dry."""
    return [
        lap
        for lap in race.laps
        if lap.lap_time_ms is not None
        and not (lap.pit_in or lap.pit_out or lap.neutralised or lap.wet)
    ]


def test_lap_times_fit_degradation_fuel_and_track_evolution() -> None:
    """Fit the record of a long race: time = car + compound + degradation x tyre age +
    trend x lap. Tyre age resets at each stop while the lap count runs on, so the
    compound's degradation and the fuel-plus-track trend are told apart."""
    race = simulate_race(track="monza", seed=3, cars=20, laps=60)
    laps = clean_laps(race)
    ages: dict[tuple[int, int], int] = {}
    for lap in race.laps:  # tyre age: laps since the stint's first lap
        ages[lap.driver, lap.lap] = lap.lap - min(
            other.lap
            for other in race.laps
            if other.driver == lap.driver and other.stint == lap.stint
        )
    drivers = sorted(race.drivers)
    compounds = sorted(COMPOUNDS)
    rows, ys = [], []
    for lap in laps:
        car = [float(lap.driver == d) for d in drivers]
        offset = [float(lap.compound == c) for c in compounds[1:]]  # HARD is the base
        wear = [float(lap.compound == c) * ages[lap.driver, lap.lap] for c in compounds]
        rows.append([*car, *offset, *wear, float(lap.lap)])
        ys.append(float(lap.lap_time_ms or 0))
    fit = solve(rows, ys)
    wear_fit = dict(zip(compounds, fit[len(drivers) + 2 : len(drivers) + 5], strict=True))
    trend = fit[-1]
    for compound, slope in wear_fit.items():
        # ~0.03 s per lap of tyre age, softer compounds wear faster
        assert abs(slope - COMPOUNDS[compound].degradation_ms_per_lap) < 8, (compound, slope)
    assert wear_fit["SOFT"] > wear_fit["MEDIUM"] > wear_fit["HARD"] > 0
    # fuel burn (~0.035 s/lap) and track evolution (~0.02 s/lap) both make laps faster
    assert abs(trend + FUEL_EFFECT_MS_PER_LAP + TRACK_EVOLUTION_MS_PER_LAP) < 6, trend


def test_neutralisations_and_rain_slow_the_laps() -> None:
    def ratio(race: SimulatedRace, pick: Callable[[SimulatedLap], bool]) -> float:
        green = statistics.median(lap.lap_time_ms or 0 for lap in clean_laps(race))
        slow = [
            lap.lap_time_ms
            for lap in race.laps
            if pick(lap) and lap.lap_time_ms is not None and not (lap.pit_in or lap.pit_out)
        ]
        return statistics.median(slow) / green

    vsc = next(
        r for s in range(50) if (r := simulate_race(track="spa", seed=s, cars=6, laps=20)).vsc_laps
    )
    assert 1.25 < ratio(vsc, lambda lap: lap.neutralised == "VSC") < 1.45  # ~35 %
    sc = next(
        r
        for s in range(50)
        if (r := simulate_race(track="monaco", seed=s, cars=6, laps=20)).safety_car_laps
    )
    assert 1.3 < ratio(sc, lambda lap: lap.neutralised == "SC") < 1.6  # ~45 %
    red = next(
        r
        for s in range(100)
        if (r := simulate_race(track="baku", seed=s, cars=6, laps=20)).red_flag_laps
    )
    (suspended,) = red.red_flag_laps
    assert all(
        (lap.lap_time_ms or 0) > 600_000  # the suspension is in the lap
        for lap in red.laps
        if lap.lap == suspended
    )
    wet = next(
        r
        for s in range(50)
        if (r := simulate_race(track="spa", seed=s, cars=6, laps=20)).incidents
        and r.incidents.shower
        and r.incidents.shower.intensity > 0.5
    )
    assert ratio(wet, lambda lap: lap.wet and not lap.neutralised and not lap.pit_in) > 1.02


TRACK_LIKELIHOODS = [
    (track, kind) for track in sorted(TRACKS) for kind in ("SC", "VSC", "RED", "rain")
]


@pytest.mark.parametrize(("track", "kind"), TRACK_LIKELIHOODS)
def test_incident_likelihood_follows_the_track(track: str, kind: str) -> None:
    """Over 400 seeds the decision matches the track's table (binomial: within ~3.5 sigma)."""
    circuit = TRACKS[track]
    expected = {
        "SC": circuit.safety_car_likelihood,
        "VSC": circuit.vsc_likelihood,
        "RED": circuit.red_flag_likelihood,
        "rain": circuit.rain_likelihood,
    }[kind]
    plans = [plan_incidents(track, seed, 50) for seed in range(400)]
    if kind == "rain":
        rate = sum(p.shower is not None for p in plans) / len(plans)
    else:
        rate = sum(any(n.kind == kind for n in p.neutralisations) for p in plans) / len(plans)
    assert abs(rate - expected) < 0.085, rate
    assert TRACKS["monaco"].safety_car_likelihood == 0.70
    assert TRACKS["spa"].safety_car_likelihood == 0.25


def test_monaco_has_a_safety_car_more_often_than_spa() -> None:
    def rate(track: str) -> float:
        return sum(bool(plan_incidents(track, s, 50).laps_of("SC")) for s in range(200)) / 200

    assert rate("monaco") >= 0.55
    assert rate("spa") <= 0.40
    assert rate("monaco") > rate("baku") > rate("monza") > rate("spa")


@settings(max_examples=200, deadline=None)
@given(
    track=st.sampled_from(sorted(TRACKS)),
    seed=st.integers(min_value=-(2**40), max_value=2**40),
    laps=st.integers(min_value=2, max_value=80),
)
def test_planned_periods_fit_the_race(track: str, seed: int, laps: int) -> None:
    plan = plan_incidents(track, seed, laps)
    assert plan == plan_incidents(track, seed, laps)
    covered: list[int] = []
    for period in plan.neutralisations:
        assert 2 <= period.first <= period.last <= laps - 2
        if period.kind == "RED":
            assert period.last > period.first  # the restart behind the safety car
        covered.extend(range(period.first - 1, period.last + 2))
    assert len(covered) == len(set(covered))  # apart, with a green lap between
    if plan.shower is not None:
        assert RACE_START_OFFSET_MS < plan.shower.start_ms < plan.shower.end_ms
        assert 0.3 <= plan.shower.intensity <= 1.0


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


@settings(max_examples=15, deadline=None)
@given(track=st.sampled_from(sorted(TRACKS)), seed=st.integers(0, 10_000))
def test_weather_rains_when_the_plan_says(track: str, seed: int) -> None:
    """Track 8-15 °C above air in any weather; Rainfall is "1" exactly during the shower."""
    race = simulate_race(track=track, seed=seed, cars=2, laps=8)
    with tempfile.TemporaryDirectory() as folder:
        write_race(Path(folder), track=track, seed=seed, cars=2, laps=8, telemetry_hz=1.0)
        weather = read_stream(Path(folder) / "WeatherData.jsonStream")
    shower = race.incidents.shower if race.incidents else None
    for t, message in weather:
        assert 8.0 <= float(message["TrackTemp"]) - float(message["AirTemp"]) <= 15.0
        raining = shower is not None and shower.start_ms <= t < shower.end_ms
        assert message["Rainfall"] == ("1" if raining else "0")


EXPECTED_CODES = {"SC": ["2", "4", "1"], "VSC": ["2", "6", "7", "1"], "RED": ["2", "5", "4", "1"]}
ANNOUNCED = {
    "SC": ("SAFETY CAR DEPLOYED", "SAFETY CAR IN THIS LAP"),
    "VSC": ("VIRTUAL SAFETY CAR DEPLOYED", "VIRTUAL SAFETY CAR ENDING"),
    "RED": ("RED FLAG", "SAFETY CAR DEPLOYED"),
}


@pytest.mark.parametrize(("kind", "track"), [("SC", "monaco"), ("VSC", "spa"), ("RED", "baku")])
def test_neutralisations_are_told_and_derived(tmp_path: Path, kind: str, track: str) -> None:
    """TrackStatus and RaceControlMessages tell each period; the decoders see every lap
    the simulator slowed as neutralised, and QA quarantines nothing."""
    seed = next(
        s
        for s in range(200)
        if [n.kind for n in plan_incidents(track, s, 10).neutralisations] == [kind]
    )
    race = write_race(tmp_path, track=track, seed=seed, cars=5, laps=10, telemetry_hz=2.0)
    codes = [m["Status"] for _, m in read_stream(tmp_path / "TrackStatus.jsonStream")]
    assert codes == ["1", *EXPECTED_CODES[kind]]
    rc = read_stream(tmp_path / "RaceControlMessages.jsonStream")
    assert isinstance(rc[0][1]["Messages"], list)
    items = [rc[0][1]["Messages"][0]] + [item for _, m in rc[1:] for item in m["Messages"].values()]
    assert [int(k) for _, m in rc[1:] for k in m["Messages"]] == list(range(1, len(rc)))
    texts = [item["Message"] for item in items]
    for text in ANNOUNCED[kind]:
        assert text in texts
    assert texts[-1] == "CHEQUERED FLAG"
    assert all(set(item) >= {"Utc", "Lap", "Category", "Message"} for item in items)

    derivation = derive("sim", enumerate(read_messages(topic_files(tmp_path)), start=1))
    assert derivation.undecodable == 0
    periods = [e for e in derivation.events if isinstance(e, NeutralisationPeriod)]
    assert [p.kind for p in periods] == (["RED", "SC"] if kind == "RED" else [kind])
    laps = {(e.driver, e.lap): e for e in derivation.events if isinstance(e, LapCompleted)}
    for lap in race.laps:
        derived = laps[lap.driver, lap.lap]
        assert lap_values(derived) == lap_values(lap)
        if lap.neutralised:
            assert set(derived.track_statuses) & {"4", "5", "6", "7"}, lap
    messages = [e for e in derivation.events if isinstance(e, RaceControlMessage)]
    assert [m.message for m in messages] == texts
    _, report = check_run("sim", derivation.events)
    assert report.quarantined == 0


# --------------------------------------------------------------------------- telemetry


@dataclass
class Telemetry:
    """Decoded CarData.z and Position.z: per car, (stream ms, channels) and (ms, place)."""

    cars: dict[str, list[tuple[float, dict[str, int]]]]
    places: dict[str, list[tuple[float, dict[str, Any]]]]
    car_offsets: list[tuple[int, float]]  # (published, sampled) per entry


def read_telemetry(folder: Path, start: datetime) -> Telemetry:
    def ms(utc: str) -> float:
        stamp = datetime.fromisoformat(utc[:26] + "+00:00")
        return (stamp - start).total_seconds() * 1000

    cars: dict[str, list[tuple[float, dict[str, int]]]] = defaultdict(list)
    places: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    offsets = []
    previous = ""
    for offset, payload in read_stream(folder / "CarData.z.jsonStream"):
        for entry in decode_z(payload)["Entries"]:
            assert UTC.fullmatch(entry["Utc"])
            assert entry["Utc"] > previous
            previous = entry["Utc"]
            offsets.append((offset, ms(entry["Utc"])))
            for number, car in entry["Cars"].items():
                cars[number].append((ms(entry["Utc"]), car["Channels"]))
    for _, payload in read_stream(folder / "Position.z.jsonStream"):
        for entry in decode_z(payload)["Position"]:
            for number, place in entry["Entries"].items():
                places[number].append((ms(entry["Timestamp"]), place))
    return Telemetry(cars, places, offsets)


@settings(max_examples=10, deadline=None)
@given(
    track=st.sampled_from(sorted(TRACKS)),
    seed=st.integers(min_value=0, max_value=2**32),
    hz=st.sampled_from([4.0, 10.0, 25.0, 60.0]),
)
def test_telemetry_is_physically_consistent(track: str, seed: int, hz: float) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        race = write_race(folder, track=track, seed=seed, cars=2, laps=2, telemetry_hz=hz)
        telemetry = read_telemetry(folder, race.stream_start_utc)
    assert set(telemetry.cars) == set(telemetry.places) == {str(d) for d in race.drivers}
    for published, sampled in telemetry.car_offsets:
        assert 0 <= published - sampled <= 1300  # sent within a second of sampling
    for number, samples in telemetry.cars.items():
        top_gear_at: dict[int, int] = {}  # speed -> highest gear seen at it
        low_gear_at: dict[int, int] = {}
        ratios: dict[int, list[float]] = defaultdict(list)
        for _, ch in samples:
            assert set(ch) == {"0", "2", "3", "4", "5", "45"}
            rpm, speed, gear, throttle, brake, drs = (
                ch[k] for k in ("0", "2", "3", "4", "5", "45")
            )
            assert 0 <= rpm <= 15_500
            assert 0 <= speed <= 360
            assert 0 <= gear <= 8
            assert 0 <= throttle <= 100
            assert brake in {0, 100}
            assert not (brake == 100 and throttle > 0)  # never both pedals
            assert (speed == 0) == (gear == 0)
            assert drs in {0, 8, 10, 12, 14}
            if drs >= 10:  # the flap opens only flat out on a straight, at speed
                assert speed >= 200
                assert throttle == 100
            top_gear_at[speed] = max(gear, top_gear_at.get(speed, 0))
            low_gear_at[speed] = min(gear, low_gear_at.get(speed, 9))
            if gear >= 2:
                ratios[gear].append(rpm / speed)
        # gear is a non-decreasing function of speed for each car
        speeds = sorted(top_gear_at)
        for slower, faster in itertools.pairwise(speeds):
            assert top_gear_at[slower] <= low_gear_at[faster], (number, slower, faster)
        # rpm is proportional to speed within a gear (the gear's ratio)
        for gear, values in ratios.items():
            assert max(values) / min(values) < 1.03, (number, gear)
        assert max(top_gear_at) > 250  # flat out somewhere
        # the configured rate, over the race
        racing = [
            t for t, _ in samples if RACE_START_OFFSET_MS <= t < RACE_START_OFFSET_MS + 60_000
        ]
        assert abs(len(racing) / 60 - hz) <= 0.1 * hz
    # positions move as fast as the speed says (on track, both samples moving)
    for number, places in telemetry.places.items():
        channels_at = dict(telemetry.cars[number])
        ratios_ok = total = 0
        for (t0, p0), (t1, p1) in itertools.pairwise(places):
            v0, v1 = channels_at[t0]["2"], channels_at[t1]["2"]
            if p0["Status"] != "OnTrack" or min(v0, v1) < 150 or t1 <= t0:
                continue
            moved = math.hypot(p1["X"] - p0["X"], p1["Y"] - p0["Y"]) / 10  # m
            said = (v0 + v1) / 2 / 3.6 * (t1 - t0) / 1000
            total += 1
            ratios_ok += 0.85 <= moved / said <= 1.15
        assert total > 20
        assert ratios_ok >= 0.95 * total, (number, ratios_ok, total)


def test_car_data_and_positions_through_a_race(tmp_path: Path) -> None:
    race = write_race(tmp_path, track="monza", seed=2, cars=10, laps=6, telemetry_hz=3.0)
    telemetry = read_telemetry(tmp_path, race.stream_start_utc)
    stopped = [
        (t, ch)
        for samples in telemetry.cars.values()
        for t, ch in samples
        if ch["2"] == 0 and t > RACE_START_OFFSET_MS
    ]
    assert stopped  # in the pit box
    assert any(ch["3"] == 8 for samples in telemetry.cars.values() for _, ch in samples)
    assert any(ch["5"] == 100 for samples in telemetry.cars.values() for _, ch in samples)
    assert any(ch["45"] >= 10 for samples in telemetry.cars.values() for _, ch in samples)
    # the outline: a closed loop about the track's length, cars spread round it
    xs = [p["X"] for places in telemetry.places.values() for _, p in places]
    ys = [p["Y"] for places in telemetry.places.values() for _, p in places]
    span = math.hypot(max(xs) - min(xs), max(ys) - min(ys)) / 10
    assert 0.1 * TRACKS["monza"].length_m < span < TRACKS["monza"].length_m / 2


@settings(max_examples=6, deadline=None)
@given(
    track=st.sampled_from(sorted(TRACKS)),
    seed=st.integers(min_value=0, max_value=10_000),
    cars=st.integers(min_value=2, max_value=5),
    laps=st.integers(min_value=6, max_value=12),
)
def test_the_real_decoders_and_qa_accept_the_race(
    track: str, seed: int, cars: int, laps: int
) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        race = write_race(folder, track=track, seed=seed, cars=cars, laps=laps, telemetry_hz=2.0)
        derivation = derive("sim", enumerate(read_messages(topic_files(folder)), start=1))
    assert derivation.undecodable == 0
    derived = sorted(lap_values(e) for e in derivation.events if isinstance(e, LapCompleted))
    assert derived == sorted(lap_values(lap) for lap in race.laps)
    assert any(isinstance(e, TelemetryBatch) for e in derivation.events)
    assert any(isinstance(e, PositionBatch) for e in derivation.events)
    assert any(isinstance(e, WeatherObserved) for e in derivation.events)
    records = SessionRecords.of(derivation.events)
    blocking = [f for f in check_records(records) if f.severity == "blocking"]
    assert blocking == []
    _, report = check_run("sim", derivation.events)
    assert report.quarantined == 0


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
    with pytest.raises(ValueError, match="telemetry_hz"):
        simulate_race(telemetry_hz=61)
    assert simulate_race(cars=2, laps=2, telemetry_hz=60).laps
    with pytest.raises(ValueError, match="unknown track"):
        plan_incidents("nowhere", 1, 10)
    assert not list(tmp_path.iterdir())
    assert {"monza", "monaco", "spa", "silverstone", "baku"} <= set(TRACKS)
