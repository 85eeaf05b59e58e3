"""The HTTP API against DuckDB on the Parquet export, in the same run.

* a full race's laps for all drivers: the 2018 Baku race, `GET /v1/laps?session_key=5090`;
* one driver's telemetry for one lap: Alonso's lap 18 of the Monaco capture (the only
  real telemetry), `GET /v1/car_data?session_key=9088&driver_number=14&date>…&date<=…`.

The server is `f1daemon serve` (Hypercorn, trio) in its own process, asked by one
client over a kept-alive connection, rows parsed from JSON; the baseline is DuckDB
reading the same rows from `f1daemon export --format parquet` files into Python. The
first request (which reads the log and fills the reader's cache) is shown apart;
p50/p99 are of the warm requests after it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx

from f1daemon.cli import main as cli

BAKU = "livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
MONACO = "f1dash-signalr-2023_Monaco/fp2.txt"
MONACO_SESSION = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"
BAKU_SESSION = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"
REQUESTS = 200


def _testdata() -> Path:
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "f1data"
    return Path(os.environ.get("F1DAEMON_TESTDATA", default))


def _timed(read: Callable[[], int]) -> tuple[float, list[float], int]:
    """The first call's seconds, the warm calls' seconds, and the rows each returns."""
    started = time.perf_counter()
    rows = read()
    first = time.perf_counter() - started
    warm = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        assert read() == rows
        warm.append(time.perf_counter() - started)
    return first, warm, rows


def _report(label: str, first: float, warm: list[float], rows: int) -> None:
    p50 = statistics.median(warm)
    p99 = statistics.quantiles(warm, n=100)[98]
    print(
        f"  {label:<26} {rows:>6} rows  first {first * 1000:>7.1f} ms  "
        f"p50 {p50 * 1000:>6.2f} ms  p99 {p99 * 1000:>6.2f} ms  {rows / p50:>11,.0f} rows/s"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        url = f"sqlite:///{root / 'events.db'}"
        data = _testdata()
        assert cli(["ingest", str(data / BAKU), str(data / MONACO), "--store", url]) == 0
        for kind, session in (("laps", BAKU_SESSION), ("laps", MONACO_SESSION)):
            out = root / f"{kind}-{session.split('/')[0]}.parquet"
            argv = ["export", kind, "--session", session, "--format", "parquet", "-o", str(out)]
            assert cli([*argv, "--store", url]) == 0
        telemetry = root / "telemetry.parquet"
        argv = ["export", "telemetry", "--session", MONACO_SESSION, "--format", "parquet"]
        assert cli([*argv, "-o", str(telemetry), "--store", url]) == 0
        _compare(url, root, telemetry)


def _compare(url: str, root: Path, telemetry: Path) -> None:
    baku_laps = root / "laps-2018-04-29_Azerbaijan_Grand_Prix.parquet"
    monaco_laps = root / "laps-2023-05-28_Monaco_Grand_Prix.parquet"
    db = duckdb.connect()
    # Alonso's lap 18: it starts its lap time before the line crossing that ends it.
    end_us, time_ms = db.execute(
        f"SELECT epoch_us(utc), lap_time_ms FROM '{monaco_laps}' WHERE driver = 14 AND lap = 18"  # noqa: S608 - our own path
    ).fetchone() or (0, 0)
    low_ms, high_ms = (end_us // 1000) - time_ms, end_us // 1000

    server = subprocess.Popen(
        [sys.executable, "-m", "f1daemon", "serve", "--store", url, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        base = server.stderr.readline().split(" on ")[1].strip()
        with httpx.Client(base_url=base, timeout=60) as http:
            start = _iso(low_ms)
            end = _iso(high_ms)

            def laps_http() -> int:
                return len(http.get("laps?session_key=5090").json())

            def telemetry_http() -> int:
                query = f"car_data?session_key=9088&driver_number=14&date>{start}&date<={end}"
                return len(http.get(query).json())

            print(f"HTTP (f1daemon serve, {REQUESTS} warm requests each)")
            _report("race laps, all drivers", *_timed(laps_http))
            _report("one lap of telemetry", *_timed(telemetry_http))
    finally:
        server.terminate()
        server.wait()
        if server.stderr is not None:
            server.stderr.close()

    def laps_duckdb() -> int:
        return len(db.execute(f"SELECT * FROM '{baku_laps}'").fetchall())  # noqa: S608

    def telemetry_duckdb() -> int:
        query = f"SELECT * FROM '{telemetry}' WHERE driver = 14 AND utc_ms > ? AND utc_ms <= ?"  # noqa: S608
        return len(db.execute(query, [low_ms, high_ms]).fetchall())

    print(f"DuckDB {duckdb.__version__} on the Parquet export (the baseline)")
    _report("race laps, all drivers", *_timed(laps_duckdb))
    _report("one lap of telemetry", *_timed(telemetry_duckdb))


def _iso(ms: int) -> str:
    # Millisecond precision, as the samples' times; `+` encoded for the query string.
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    text = when.isoformat(timespec="milliseconds")
    return text.replace("+", "%2B")
