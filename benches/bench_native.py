"""The Rust hot paths (`f1daemon._native`) against their plain-Python references.

1. `split_json_stream` on the Baku 2018 race's `TimingData.jsonStream`;
1b. `digest_timing_stream` on the same file (split, parse every message, keep what the
   lap fitter reads as typed tuples), and the same with `TimingDigest.feed` called per
   line;
2. `decode_z_many` on all 632 `CarData.z` / `Position.z` payloads of the Monaco 2023
   FP2 SignalR capture;
3. `decode_car_data` / `decode_position` (to Arrow) on its 316 payloads of each topic,
   passed as one sequence; both sides single-threaded.

Both sides run in the same process on the same input; the best of several repeats counts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from f1daemon import _native
from tests.native_reference import (
    decode_car_data_reference,
    decode_position_reference,
    decode_z_reference,
    digest_timing_stream_reference,
    split_json_stream_reference,
)

if TYPE_CHECKING:
    from f1daemon._native import TimingDigestOutput

REPO = Path(__file__).resolve().parent.parent
BAKU = "livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race/TimingData.jsonStream"
MONACO = "f1dash-signalr-2023_Monaco/fp2.txt"
Z_TOPICS = ("CarData.z", "Position.z")
REPEATS = 7


@dataclass(frozen=True)
class Row:
    """One measured implementation."""

    name: str
    seconds: float
    megabytes: float  # input (or output) size the MB/s column refers to
    items: int


def best_of(function: Callable[[], object], repeats: int = REPEATS) -> float:
    """Best wall-clock time of `repeats` calls, in seconds."""
    function()  # warm-up: page cache, allocator, lazy imports
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def feed_z_payloads(path: Path, topics: tuple[str, ...] = Z_TOPICS) -> list[str]:
    """The `.z` payloads of `topics` in the capture's `feed` frames (after its 3 log lines)."""
    payloads: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines()[3:]:
        if not line.strip():
            continue
        for message in json.loads(line).get("M", []):
            if message.get("M") == "feed" and message["A"][0] in topics:
                payloads.append(message["A"][1])
    return payloads


def print_table(title: str, unit: str, rows: list[Row]) -> None:
    """Rows with time, MB/s, items/s and the speed-up over the last row (the reference)."""
    baseline = rows[-1].seconds
    print(title)
    print(f"  {'implementation':<28} {'best ms':>9} {'MB/s':>9} {unit + '/s':>14} {'speed-up':>9}")
    for row in rows:
        print(
            f"  {row.name:<28} {row.seconds * 1e3:>9.2f} {row.megabytes / row.seconds:>9.1f}"
            f" {row.items / row.seconds:>14,.0f} {baseline / row.seconds:>8.1f}x"
        )


def bench_split(data: bytes) -> None:
    native = _native.split_json_stream(data)
    assert native == split_json_stream_reference(data)
    megabytes, lines = len(data) / 1e6, len(native)
    rows = [
        Row("native", best_of(lambda: _native.split_json_stream(data)), megabytes, lines),
        Row(
            "python reference", best_of(lambda: split_json_stream_reference(data)), megabytes, lines
        ),
    ]
    print_table(
        f"split_json_stream: Baku 2018 TimingData ({megabytes:.2f} MB, {lines:,} lines)",
        "lines",
        rows,
    )


def digest_by_feed(data: bytes) -> list[tuple[int, int | None, TimingDigestOutput | None]]:
    """`digest_timing_stream` as a caller would do it with `TimingDigest.feed` per line."""
    digest = _native.TimingDigest()
    rows: list[tuple[int, int | None, TimingDigestOutput | None]] = []
    for index, (number, offset, text) in enumerate(_native.split_json_stream(data)):
        result = digest.feed(text)
        if index == 0 or result is not None:
            rows.append((number, offset, result))
    return rows


def bench_digest(data: bytes) -> None:
    native = _native.digest_timing_stream(data)
    assert native == digest_timing_stream_reference(data)
    assert [row[:3] for row in native] == digest_by_feed(data)
    megabytes, lines = len(data) / 1e6, len(_native.split_json_stream(data))
    rows = [
        Row(
            "native digest_timing_stream",
            best_of(lambda: _native.digest_timing_stream(data)),
            megabytes,
            lines,
        ),
        Row("native split + feed loop", best_of(lambda: digest_by_feed(data)), megabytes, lines),
        Row(
            "python reference",
            best_of(lambda: digest_timing_stream_reference(data)),
            megabytes,
            lines,
        ),
    ]
    print_table(
        f"digest_timing_stream: Baku 2018 TimingData ({megabytes:.2f} MB, {lines:,} lines"
        f" -> {len(native):,} kept)",
        "lines",
        rows,
    )


def bench_decode(payloads: list[str]) -> None:
    expected = [decode_z_reference(payload) for payload in payloads]
    assert _native.decode_z_many(payloads) == expected
    # MB/s of inflated JSON (UTF-8 bytes).
    megabytes = sum(len(text.encode()) for text in expected) / 1e6
    count = len(payloads)
    rows = [
        Row(
            "native decode_z_many",
            best_of(lambda: _native.decode_z_many(payloads)),
            megabytes,
            count,
        ),
        Row(
            "native decode_z loop",
            best_of(lambda: [_native.decode_z(payload) for payload in payloads]),
            megabytes,
            count,
        ),
        Row(
            "python reference",
            best_of(lambda: [decode_z_reference(payload) for payload in payloads]),
            megabytes,
            count,
        ),
    ]
    base64_mb = sum(map(len, payloads)) / 1e6
    print_table(
        f"decode_z_many: Monaco 2023 FP2 ({count} payloads, {base64_mb:.2f} MB base64"
        f" -> {megabytes:.2f} MB JSON; MB/s inflated)",
        "payloads",
        rows,
    )


def bench_telemetry(
    topic: str,
    payloads: list[str],
    native: Callable[[list[str]], Any],
    reference: Callable[[list[str]], Any],
) -> None:
    batch = native(payloads)
    assert batch.equals(reference(payloads))
    # MB/s of inflated JSON; "samples" are the batch's rows, one per (entry, car).
    megabytes = sum(len(text.encode()) for text in _native.decode_z_many(payloads)) / 1e6
    rows = [
        Row(
            f"native {native.__name__}",
            best_of(lambda: native(payloads)),
            megabytes,
            batch.num_rows,
        ),
        Row("python reference", best_of(lambda: reference(payloads)), megabytes, batch.num_rows),
    ]
    print_table(
        f"{native.__name__}: Monaco 2023 FP2 {topic} ({len(payloads)} payloads as one sequence,"
        f" {megabytes:.2f} MB JSON -> {batch.num_rows:,} rows; MB/s inflated)",
        "samples",
        rows,
    )
    ours, theirs = rows[0].seconds, rows[-1].seconds
    print(
        f"  => {native.__name__} is {theirs / ours:.1f}x the python reference"
        f" ({ours * 1e3:.2f} ms vs {theirs * 1e3:.2f} ms)"
    )


def main() -> None:
    """Measure both benchmarks and print a table for each."""
    testdata = Path(os.environ.get("F1DAEMON_TESTDATA", REPO.parent / "shared" / "f1data"))
    if not (testdata / BAKU).is_file() or not (testdata / MONACO).is_file():
        print(f"recordings not found under {testdata}; set F1DAEMON_TESTDATA")
        return
    print(f"best of {REPEATS} runs each")
    bench_split((testdata / BAKU).read_bytes())
    bench_digest((testdata / BAKU).read_bytes())
    payloads = feed_z_payloads(testdata / MONACO)
    assert len(payloads) == 632, len(payloads)
    bench_decode(payloads)
    for topic, native, reference in [
        ("CarData.z", _native.decode_car_data, decode_car_data_reference),
        ("Position.z", _native.decode_position, decode_position_reference),
    ]:
        topic_payloads = feed_z_payloads(testdata / MONACO, (topic,))
        assert len(topic_payloads) == 316, (topic, len(topic_payloads))
        bench_telemetry(topic, topic_payloads, native, reference)
