"""`_native.AnomalyDetector` against its plain-Python reference on real telemetry.

The input: the 316 `CarData.z` payloads of the Monaco 2023 FP2 SignalR capture, decoded
once (`decode_car_data`) into Python lists, as a `TelemetryBatch` holds them: 24,040
samples (one per car and time) of 6 channels each. Measured: the native detector on the
whole session in one call, the native detector fed one message at a time (316 calls, as
the daemon receives them), and the reference in one call. Both sides single-threaded, in
the same process; the best of several repeats counts. The anomalies are checked equal
first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benches.bench_native import best_of, feed_z_payloads
from f1daemon import _native
from tests.native_reference import AnomalyDetectorReference

REPO = Path(__file__).resolve().parent.parent
MONACO = "f1dash-signalr-2023_Monaco/fp2.txt"
CHANNELS = ("rpm", "speed", "gear", "throttle", "brake", "drs")
REPEATS = 7
REFERENCE_REPEATS = 3  # about 1.5 s each
REQUIRED_SAMPLES_PER_S = 1_000_000
REQUIRED_SPEED_UP = 20.0

Columns = tuple[list[int], list[int], dict[str, list[Any]]]


def columns_of(payloads: str | list[str]) -> Columns:
    """`(driver, utc_ms, {channel: values})` of decoded `CarData.z` payloads."""
    table = _native.decode_car_data(payloads).to_pydict()
    return table["driver"], table["utc_ms"], {name: table[name] for name in CHANNELS}


def main() -> None:
    """Measure the three ways and print samples/s and the speed-up over the reference."""
    testdata = Path(os.environ.get("F1DAEMON_TESTDATA", REPO.parent / "shared" / "f1data"))
    if not (testdata / MONACO).is_file():
        print(f"recordings not found under {testdata}; set F1DAEMON_TESTDATA")
        return
    payloads = feed_z_payloads(testdata / MONACO, ("CarData.z",))
    whole = columns_of(payloads)
    messages = [columns_of(payload) for payload in payloads]
    samples = len(whole[0])

    expected = AnomalyDetectorReference().feed_columns(*whole)
    assert _native.AnomalyDetector().feed_columns(*whole) == expected

    def streaming() -> None:
        detector = _native.AnomalyDetector()
        for message in messages:
            detector.feed_columns(*message)

    rows = [
        ("native, one call", best_of(lambda: _native.AnomalyDetector().feed_columns(*whole))),
        ("native, one call per message", best_of(streaming)),
        (
            "python reference, one call",
            best_of(
                lambda: AnomalyDetectorReference().feed_columns(*whole), repeats=REFERENCE_REPEATS
            ),
        ),
    ]
    baseline = rows[-1][1]
    print(
        f"AnomalyDetector: Monaco 2023 FP2 CarData.z ({len(payloads)} messages, {samples:,}"
        f" samples x {len(CHANNELS)} channels -> {len(expected):,} anomalies; best of"
        f" {REPEATS}, reference {REFERENCE_REPEATS})"
    )
    header = ("implementation", "best ms", "samples/s", "values/s", "speed-up")
    print("  {:<30} {:>9} {:>12} {:>13} {:>9}".format(*header))
    for name, seconds in rows:
        print(
            f"  {name:<30} {seconds * 1e3:>9.2f} {samples / seconds:>12,.0f}"
            f" {samples * len(CHANNELS) / seconds:>13,.0f} {baseline / seconds:>8.1f}x"
        )
    slowest_native = max(seconds for _, seconds in rows[:-1])
    rate, speed_up = samples / slowest_native, baseline / slowest_native
    verdict = (
        "meets"
        if rate >= REQUIRED_SAMPLES_PER_S and speed_up >= REQUIRED_SPEED_UP
        else "DOES NOT meet"
    )
    print(
        f"  slower native way: {rate:,.0f} samples/s, {speed_up:.1f}x the reference"
        f" ({verdict} the {REQUIRED_SAMPLES_PER_S:,} samples/s and {REQUIRED_SPEED_UP:.0f}x"
        " required)"
    )
