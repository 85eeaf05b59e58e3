"""`_native.AnomalyDetector` against its plain-Python reference (`AnomalyDetectorReference`).

Hand-built series check each detector's rules on both implementations. Generated input
checks that they agree exactly (the same anomalies, scores equal bit for bit, the same
exceptions), that splitting the rows over several calls changes nothing, and that no
input makes the native side panic. The real telemetry of the Monaco 2023 FP2 capture
(24,040 `CarData.z` rows) checks both on real data, fed whole and payload by payload.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon import _native
from tests.conftest import record_check
from tests.native_reference import MEAN_AD_FACTOR, Anomaly, AnomalyDetectorReference

Detector = _native.AnomalyDetector | AnomalyDetectorReference
Factory = Callable[..., Detector]
IMPLEMENTATIONS: dict[str, Factory] = {
    "native": _native.AnomalyDetector,
    "reference": AnomalyDetectorReference,
}
CAR_CHANNELS = ("rpm", "speed", "gear", "throttle", "brake", "drs")
KINDS = {"zscore", "mad", "spike", "flatline"}
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def make(request: pytest.FixtureRequest) -> Factory:
    """Each hand-built test runs on both implementations."""
    return IMPLEMENTATIONS[request.param]


def wave(n: int, base: float, amplitude: float = 10.0) -> list[float]:
    """A smooth, varied series: nothing in it is anomalous by any rule."""
    return [base + amplitude * math.sin(i * 0.3) for i in range(n)]


def series(
    detector: Detector,
    channel: str,
    values: Sequence[float | None],
    *,
    driver: int = 1,
    start: int = 0,
) -> Sequence[Anomaly]:
    """Feeds one driver's channel, the samples timed `start`, `start + 1`, ..."""
    times = list(range(start, start + len(values)))
    return detector.feed([driver] * len(values), times, channel, values)


def of_kind(found: Iterable[Anomaly], kind: str) -> list[Anomaly]:
    return [anomaly for anomaly in found if anomaly[5] == kind]


# --- each rule, by hand --------------------------------------------------------------------


def test_a_smooth_series_gives_nothing(make: Factory) -> None:
    detector = make()
    for channel in CAR_CHANNELS:
        assert series(detector, channel, wave(500, 150.0)) == []


def test_a_speed_spike_is_found_when_the_next_sample_comes_back(make: Factory) -> None:
    detector = make()
    values = wave(100, 200.0)
    values[60] += 120.0
    first = series(detector, "speed", values[:61])
    # Sample 60 is an outlier at once, but a spike only once sample 61 comes back.
    assert [(a[2], a[5]) for a in first] == [(60, "zscore"), (60, "mad")]
    rest = series(detector, "speed", values[61:], start=61)
    assert [a[:4] + a[5:] for a in rest] == [(1, "speed", 60, values[60], "spike")]
    window = values[10:60]
    expected = min(values[60] - values[59], values[60] - values[61]) / statistics.pstdev(window)
    assert rest[0][4] == pytest.approx(expected, rel=1e-12)
    # A dip scores negative.
    dip = wave(100, 200.0)
    dip[60] -= 120.0
    spikes = of_kind(series(make(), "speed", dip), "spike")
    assert [(a[2], a[4] < -3) for a in spikes] == [(60, True)]


def test_a_step_is_not_a_spike(make: Factory) -> None:
    values = wave(50, 200.0) + wave(50, 320.0)
    found = series(make(), "speed", values)
    assert of_kind(found, "spike") == []
    assert {a[2] for a in of_kind(found, "zscore")} >= {50}  # the step itself is an outlier


def test_flat_rpm_is_flagged_once_per_run_while_moving(make: Factory) -> None:
    detector = make()
    rpm = wave(20, 10_000.0) + [11_000.0] * 120 + [11_500.0] * 60
    speed = wave(len(rpm), 200.0)
    rows = len(rpm)
    found = detector.feed_columns([16] * rows, list(range(rows)), {"rpm": rpm, "speed": speed})
    # Runs start at rows 20 and 140; each is reported once, at its 50th sample.
    assert of_kind(found, "flatline") == [
        (16, "rpm", 69, 11_000.0, 50.0, "flatline"),
        (16, "rpm", 189, 11_500.0, 50.0, "flatline"),
    ]


def test_flat_values_while_standing_are_not_flagged(make: Factory) -> None:
    assert series(make(), "speed", [0.0] * 200) == []
    detector = make()
    rows = 250
    # rpm is flat throughout; the car stands for rows 100-149, which ends rpm's run; a new
    # run starts when it moves again.
    speed = [100.0] * 60 + wave(40, 150.0) + [0.0] * 50 + wave(100, 150.0)
    found = detector.feed_columns(
        [1] * rows, list(range(rows)), {"rpm": [9000] * rows, "speed": speed}
    )
    assert [a[1:3] for a in of_kind(found, "flatline")] == [
        ("rpm", 49),
        ("speed", 49),
        ("rpm", 199),
    ]
    # Without the gate both flat stretches count, and an unwatched channel never does.
    ungated = make(flatline_while_moving=False)
    assert of_kind(series(ungated, "speed", [0.0] * 200), "flatline") == [
        (1, "speed", 49, 0.0, 50.0, "flatline")
    ]
    assert series(ungated, "gear", [3] * 200) == []
    assert make(flatline_channels={"gear"}, flatline_run=5).flatline_channels == {"gear"}
    assert of_kind(series(make(flatline_channels=["gear"]), "gear", [3] * 60), "flatline") == [
        (1, "gear", 49, 3.0, 50.0, "flatline")
    ]


def test_mad_zero_uses_the_mean_absolute_deviation(make: Factory) -> None:
    # At sample 10 the window is 8 zeros and 2 hundreds: median 0, MAD 0, mean |dev| 20.
    found = series(make(), "brake", [0] * 8 + [100] * 3)
    assert of_kind(found, "mad") == [
        (1, "brake", 10, 100.0, 100.0 / (MEAN_AD_FACTOR * 20.0), "mad")
    ]
    # A window of one repeated value scores nothing, however far the next value is.
    assert series(make(), "throttle", [7.0] * 30 + [1e9]) == []


def test_thresholds_are_configurable(make: Factory) -> None:
    values = wave(60, 200.0)
    values[40] += 60.0  # z 7.6, MAD score 4.9, spike 8.0
    default = series(make(), "speed", values)
    assert [(a[2], a[5]) for a in default] == [(40, "zscore"), (40, "mad"), (40, "spike")]
    assert of_kind(series(make(zscore_threshold=7.5), "speed", values), "zscore") != []
    assert of_kind(series(make(zscore_threshold=7.7), "speed", values), "zscore") == []
    assert of_kind(series(make(mad_threshold=5.0), "speed", values), "mad") == []
    assert of_kind(series(make(spike_threshold=math.inf), "speed", values), "spike") == []
    loose = series(
        make(zscore_threshold=1.0, mad_threshold=1.0, spike_threshold=1.0), "speed", values
    )
    assert len(loose) > len(default)
    detector = make(window=20, min_samples=5, zscore_threshold=2.5, flatline_run=7)
    settings_read = (detector.window, detector.min_samples, detector.zscore_threshold)
    assert settings_read == (20, 5, 2.5)
    assert (detector.mad_threshold, detector.spike_threshold, detector.flatline_run) == (
        3.5,
        3.0,
        7,
    )
    assert detector.flatline_channels == {"rpm", "speed"}
    assert detector.flatline_while_moving is True


def test_min_samples_and_window(make: Factory) -> None:
    jump = [*wave(15, 200.0), 400.0, *wave(5, 200.0)]
    assert series(make(min_samples=20), "speed", jump) == []
    assert of_kind(series(make(min_samples=10), "speed", jump), "zscore") != []
    # After a level shift, the median moves once the new level is half the window: 5
    # samples for a window of 10, 25 for one of 50; the mean moves sooner.
    shift = [level + (0, 1, 2, 1)[i % 4] for level in (0, 100) for i in range(40)]
    assert series(make(window=10), "speed", shift[:40]) == []
    short = series(make(window=10), "speed", shift)
    assert [(a[2], a[5]) for a in short] == [
        (40, "zscore"),
        (40, "mad"),
        (41, "zscore"),
        (41, "mad"),
        (42, "mad"),
        (43, "mad"),
        (44, "mad"),
    ]
    long = series(make(window=50), "speed", shift)
    assert [a[2] for a in of_kind(long, "mad")] == list(range(40, 65))


def test_unusable_values_are_skipped(make: Factory) -> None:
    values = wave(80, 200.0)
    values[50] += 100.0
    clean = make().feed([1] * 80, list(range(80)), "speed", values)
    assert {a[5] for a in clean} == {"zscore", "mad", "spike"}
    # The same samples with junk rows between them: the junk changes nothing.
    junk = [None, math.nan, math.inf, -math.inf, 10**400, -(10**400)]
    mixed: list[Any] = []
    times: list[int] = []
    for time, value in enumerate(values):
        mixed += [value, junk[time % len(junk)]]
        times += [time, 1_000 + time]
    assert make().feed([1] * len(mixed), times, "speed", mixed) == clean


def test_negative_zero_reads_as_zero(make: Factory) -> None:
    found = series(make(flatline_run=2, flatline_while_moving=False), "rpm", [-0.0, 0.0])
    assert found == [(1, "rpm", 1, 0.0, 2.0, "flatline")]
    assert math.copysign(1.0, found[0][3]) == 1.0


def test_lap_times_are_a_channel_too(make: Factory) -> None:
    laps = [80_000 + (lap * 137) % 700 for lap in range(20)] + [101_400, 80_300]
    found = series(make(), "lap_time_ms", laps, driver=44, start=1)
    assert {(a[0], a[2], a[5]) for a in found} == {
        (44, 21, "zscore"),
        (44, 21, "mad"),
        (44, 21, "spike"),
    }


def test_drivers_and_channels_have_their_own_state(make: Factory) -> None:
    one, two = wave(80, 200.0), wave(80, 90.0, 30.0)
    one[50] += 100.0
    two[60] -= 200.0
    alone = [*series(make(), "speed", one, driver=1), *series(make(), "speed", two, driver=2)]
    interleaved = make().feed(
        [1, 2] * 80,
        [time for time in range(80) for _ in (1, 2)],
        "speed",
        [value for pair in zip(one, two, strict=True) for value in pair],
    )
    assert sorted(interleaved) == sorted(alone)
    assert {anomaly[0] for anomaly in interleaved} == {1, 2}
    # Channels of one driver do not mix either.
    both = make().feed_columns([1] * 80, list(range(80)), {"speed": one, "throttle": two})
    assert sorted(both) == sorted([*series(make(), "speed", one), *series(make(), "throttle", two)])


def test_feed_is_feed_columns_with_one_channel(make: Factory) -> None:
    values = wave(80, 200.0)
    values[40] = 900.0
    by_feed = series(make(), "rpm", values)
    assert by_feed == make().feed_columns([1] * 80, list(range(80)), {"rpm": values})
    assert by_feed  # not vacuous


def test_empty_input(make: Factory) -> None:
    detector = make()
    assert detector.feed([], [], "rpm", []) == []
    assert detector.feed_columns([], [], {}) == []
    assert detector.feed_columns((), (), {"rpm": (), "speed": iter([])}) == []


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (([1, 2], [0], {"rpm": [1, 2]}), ValueError),  # lengths
        (([1], [0], {"rpm": [1, 2]}), ValueError),
        (([2**63], [0], {"rpm": [1]}), ValueError),  # beyond i64
        (([1], [-(2**63) - 1], {"rpm": [1]}), ValueError),
        (([1.0], [0], {"rpm": [1]}), TypeError),
        (([1], ["0"], {"rpm": [1]}), TypeError),
        (([1], [0], {"rpm": ["1"]}), TypeError),
        (([1], [0], {"rpm": [[1]]}), TypeError),
        (([1], [0], {7: [1]}), TypeError),
        (([1], [0], [("rpm", [1])]), TypeError),  # not a mapping
        (([1], [0], {"rpm": 1}), TypeError),  # not iterable
        ((1, [0], {"rpm": [1]}), TypeError),
    ],
)
def test_bad_input_raises_and_changes_nothing(
    make: Factory, arguments: tuple[Any, Any, Any], error: type[Exception]
) -> None:
    values = wave(80, 200.0)
    values[40] = 900.0
    whole = series(make(), "rpm", values)
    detector = make()
    first = series(detector, "rpm", values[:40])
    with pytest.raises(error):
        detector.feed_columns(*arguments)
    assert list(first) + list(series(detector, "rpm", values[40:], start=40)) == whole


@pytest.mark.parametrize(
    ("settings_given", "error"),
    [
        ({"window": 1}, ValueError),
        ({"window": 65_537}, ValueError),
        ({"window": -5}, ValueError),
        ({"min_samples": 1}, ValueError),
        ({"window": 10, "min_samples": 11}, ValueError),
        ({"zscore_threshold": math.nan}, ValueError),
        ({"mad_threshold": -0.5}, ValueError),
        ({"flatline_run": 1}, ValueError),
        ({"flatline_channels": "rpm"}, TypeError),
        ({"flatline_channels": [1]}, TypeError),
    ],
)
def test_bad_settings_raise(make: Factory, settings_given: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        make(**settings_given)


def test_separate_detectors_work_in_threads() -> None:
    """The native detector releases the GIL; detectors of different threads share nothing."""
    rng = random.Random(7)
    columns = [[rng.gauss(200, 20) for _ in range(20_000)] for _ in range(4)]

    def run(values: list[float]) -> Sequence[Anomaly]:
        return series(_native.AnomalyDetector(), "speed", values)

    sequential = [run(values) for values in columns]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(run, columns)) == sequential
    assert all(sequential)


# --- generated input: native == reference, split invariance, no panics ---------------------

ROW_VALUES = st.one_of(
    st.none(),
    st.integers(-3, 3),  # ties, flat runs, spikes on a small scale
    st.integers(-300, 300),
    st.sampled_from([0, 0.0, -0.0, 0.5, 100, True, False]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),  # beyond i64 too
    st.sampled_from([10**400, -(10**400), 2**63, 2**53 + 1, 1e308, -1e308, 5e-324, 1e154]),
)
# Mostly one value: flat runs, MAD == 0 windows.
FLAT_VALUES = st.sampled_from([7, 7, 7, 7.0, 8, None, 0])
CHANNEL_NAMES = ["speed", "rpm", "x", ""]


@st.composite
def settings_drawn(draw: st.DrawFn) -> dict[str, Any]:
    """Small windows and runs, so that short series reach every rule."""
    window = draw(st.integers(2, 12))
    thresholds = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, math.inf])
    return {
        "window": window,
        "min_samples": draw(st.integers(2, window)),
        "zscore_threshold": draw(thresholds),
        "mad_threshold": draw(thresholds),
        "spike_threshold": draw(thresholds),
        "flatline_run": draw(st.integers(2, 6)),
        "flatline_channels": draw(st.sampled_from([(), ("rpm",), ("rpm", "speed"), ("x", "")])),
        "flatline_while_moving": draw(st.booleans()),
    }


Rows = tuple[list[Any], list[Any], dict[str, list[Any]]]


@st.composite
def rows_drawn(draw: st.DrawFn, max_rows: int = 60) -> Rows:
    count = draw(st.integers(0, max_rows))

    def column(items: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(items, min_size=count, max_size=count))

    drivers = column(st.sampled_from([1, 44, -(2**63), 2**63 - 1]))
    times = column(st.integers(-(2**63), 2**63 - 1))
    names = draw(st.lists(st.sampled_from(CHANNEL_NAMES), unique=True, max_size=3))
    values = st.sampled_from([ROW_VALUES, FLAT_VALUES])
    return drivers, times, {name: column(draw(values)) for name in names}


def piece(rows: Rows, start: int, stop: int) -> Rows:
    drivers, times, channels = rows
    return (
        drivers[start:stop],
        times[start:stop],
        {name: column[start:stop] for name, column in channels.items()},
    )


@PROPERTY
@given(settings_drawn(), st.lists(rows_drawn(), min_size=1, max_size=3))
def test_native_equals_reference(settings_given: dict[str, Any], batches: list[Rows]) -> None:
    native = _native.AnomalyDetector(**settings_given)
    reference = AnomalyDetectorReference(**settings_given)
    for batch in batches:
        expected = reference.feed_columns(*batch)
        assert native.feed_columns(*batch) == expected
        assert all(math.isfinite(a[3]) and math.isfinite(a[4]) for a in expected)


@PROPERTY
@given(settings_drawn(), rows_drawn(max_rows=120), st.lists(st.integers(0, 120), max_size=4))
def test_splitting_the_rows_changes_nothing(
    settings_given: dict[str, Any], rows: Rows, cuts: list[int]
) -> None:
    bounds = [0, *sorted(min(cut, len(rows[0])) for cut in cuts), len(rows[0])]
    for factory in IMPLEMENTATIONS.values():
        whole = factory(**settings_given).feed_columns(*rows)
        detector = factory(**settings_given)
        pieces: list[Anomaly] = []
        for start, stop in itertools.pairwise(bounds):
            pieces += detector.feed_columns(*piece(rows, start, stop))
        assert pieces == whole


ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=2),
    st.binary(max_size=2),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.integers(), st.integers(), max_size=1),
)
COLUMNS = st.one_of(st.lists(st.one_of(ANYTHING, ROW_VALUES), max_size=4), ANYTHING)


def outcome(call: Callable[[], object]) -> object:
    """The result, or the exception's type (a panic fails the test at once)."""
    try:
        return call()
    except (ValueError, TypeError) as error:
        return type(error)
    except BaseException as error:  # pyo3's PanicException derives from BaseException
        pytest.fail(f"{type(error).__name__}: {error}")


@PROPERTY
@given(
    COLUMNS,
    COLUMNS,
    st.one_of(
        st.dictionaries(
            st.one_of(
                st.sampled_from(CHANNEL_NAMES), st.text(max_size=2), st.integers(), st.none()
            ),
            COLUMNS,
            max_size=2,
        ),
        ANYTHING,
    ),
    st.one_of(st.sampled_from(CHANNEL_NAMES), ANYTHING),
)
def test_any_input_gives_the_same_outcome_and_never_panics(
    driver: Any, time_ms: Any, channels: Any, channel: Any
) -> None:
    native, reference = (
        _native.AnomalyDetector(min_samples=2),
        AnomalyDetectorReference(min_samples=2),
    )
    column = next(iter(channels.values()), []) if isinstance(channels, dict) else channels
    for _ in range(2):  # the second time with state
        expected = outcome(lambda: reference.feed_columns(driver, time_ms, channels))
        assert outcome(lambda: native.feed_columns(driver, time_ms, channels)) == expected
        expected = outcome(lambda: reference.feed(driver, time_ms, channel, column))
        assert outcome(lambda: native.feed(driver, time_ms, channel, column)) == expected


def test_seeded_random_telemetry_agrees_and_reaches_every_rule() -> None:
    """Long random-walk series with spikes, flat stretches, stops and junk."""
    rng = random.Random(2023)
    rows = 6_000
    drivers = [rng.choice([1, 11, 44, 63]) for _ in range(rows)]
    speed: list[Any] = []
    rpm: list[Any] = []
    level = dict.fromkeys(drivers, 150.0)
    for driver in drivers:
        level[driver] = max(0.0, level[driver] + rng.gauss(0, 5))
        roll = rng.random()
        speed.append(
            None if roll < 0.02 else math.nan if roll < 0.03 else round(level[driver] * 10) / 10
        )
        rpm.append(11_000 if roll > 0.6 else rng.randrange(9_000, 12_000))
        if rng.random() < 0.01:
            speed[-1] = level[driver] + rng.choice([-1, 1]) * 200
    times = list(range(rows))
    channels = {"speed": speed, "rpm": rpm}
    settings_given: dict[str, Any] = {"flatline_run": 3}
    expected = AnomalyDetectorReference(**settings_given).feed_columns(drivers, times, channels)
    assert (
        _native.AnomalyDetector(**settings_given).feed_columns(drivers, times, channels) == expected
    )
    assert {a[5] for a in expected} == KINDS
    # Windows above 128 values find positions by binary search instead of counting.
    large: dict[str, Any] = {"window": 300, "min_samples": 150, "flatline_run": 3}
    expected = AnomalyDetectorReference(**large).feed_columns(drivers, times, channels)
    assert _native.AnomalyDetector(**large).feed_columns(drivers, times, channels) == expected
    assert {a[5] for a in expected} == KINDS


# --- real telemetry --------------------------------------------------------------------------


def car_data_payloads(path: Path) -> list[str]:
    """The `CarData.z` payloads of the capture's `feed` frames (after its 3 log lines)."""
    payloads: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines()[3:]:
        if not line.strip():
            continue
        for message in json.loads(line).get("M", []):
            if message.get("M") == "feed" and message["A"][0] == "CarData.z":
                payloads.append(message["A"][1])
    return payloads


@pytest.fixture(scope="module")
def monaco_car_data(testdata: Path) -> list[str]:
    path = testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt"
    if not path.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{path} is required under CI=true")
        pytest.skip(f"{path} not available")
    return car_data_payloads(path)


def telemetry_columns(payloads: str | list[str]) -> tuple[list[int], list[int], dict[str, Any]]:
    columns: Mapping[str, list[Any]] = _native.decode_car_data(payloads).to_pydict()
    return columns["driver"], columns["utc_ms"], {name: columns[name] for name in CAR_CHANNELS}


def test_real_telemetry_native_equals_reference(monaco_car_data: list[str]) -> None:
    assert len(monaco_car_data) == 316
    driver, utc_ms, channels = telemetry_columns(monaco_car_data)
    assert len(driver) == 24_040
    expected = AnomalyDetectorReference().feed_columns(driver, utc_ms, channels)
    native = _native.AnomalyDetector()
    assert native.feed_columns(driver, utc_ms, channels) == expected
    # Streaming, one message at a time as the daemon receives them: the same anomalies.
    streaming = _native.AnomalyDetector()
    pieces: list[Anomaly] = []
    for payload in monaco_car_data:
        pieces += streaming.feed_columns(*telemetry_columns(payload))
    assert pieces == expected
    kinds = Counter(a[5] for a in expected)
    assert set(kinds) == {"zscore", "mad", "spike"}  # no flat lines in this session
    assert {a[0] for a in expected} <= set(driver)
    record_check(
        "2023 Monaco FP2",
        f"anomaly detector native = reference on {len(driver):,} CarData rows"
        f" ({', '.join(f'{n} {kind}' for kind, n in sorted(kinds.items()))})",
    )
