"""The daemon's live path: from a message's arrival to its durable append, p50 / p99.

A real live recording (the 2023 Monaco FP2 SignalR capture: 2,384 messages in 320 s,
timing and telemetry) is replayed through the real daemon at the pace it was
received (1x, the first 30 s) and at 50x (the whole capture in 6.4 s). A message
"arrives" when its recorded time comes; it is acknowledged when the writer has
committed its batch. Baseline in the same run: the same batches appended straight
to the log, one synchronous transaction each, without the daemon around them.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
import trio

from f1daemon.config import Config, load_config
from f1daemon.daemon.app import Daemon
from f1daemon.daemon.sources import load_recording
from f1daemon.domain.events import Fact
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

CAPTURE = "f1dash-signalr-2023_Monaco/fp2.txt"


def _testdata() -> Path:
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "f1data"
    return Path(os.environ.get("F1DAEMON_TESTDATA", default))


class _TimedDaemon(Daemon):
    """The daemon, keeping each acknowledged message's latency."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.latencies: list[float] = []
        count = self.intake.count

        def timed_count(source: str, facts: Sequence[Fact], latency: float) -> None:
            count(source, facts, latency)
            self.latencies.extend([latency] * len(facts))

        self.intake.count = timed_count  # type: ignore[method-assign]


async def _measure(store_url: str, state_dir: Path, speed: float, seconds: float) -> list[float]:
    config_path = state_dir / "f1daemon.toml"
    config_path.write_text(
        f"""
[daemon]
state_dir = "{state_dir}"
store = "{store_url}"
[control]
socket = "{state_dir / "ctl.sock"}"
[metrics]
enabled = false
[[sources]]
name = "live"
kind = "recording"
path = "{_testdata() / CAPTURE}"
speed = {speed}
""",
        encoding="utf-8",
    )
    daemon = _TimedDaemon(load_config(config_path, environ={}))
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        with trio.move_on_after(seconds):
            while daemon.sources["live"].state != "stopped":  # noqa: ASYNC110 (polls)
                await trio.sleep(0.05)
        daemon.request_shutdown()
    return daemon.latencies


def _baseline(store_url: str) -> list[float]:
    data = load_recording(_testdata() / CAPTURE, "bench/baseline")
    latencies = []
    with EventLog(parse_store_url(store_url)) as log:
        for fact in data.facts:
            started = time.perf_counter()
            log.append_facts([fact])
            latencies.append(time.perf_counter() - started)
    return latencies


def _report(label: str, latencies: list[float]) -> None:
    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"  {label:<42} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({len(ms)} messages)")


def _fresh_postgres(url: str, name: str) -> str:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    """Print p50/p99 arrival-to-durable latency at 1x and 50x, SQLite and PostgreSQL."""
    stores: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        stores.append(("SQLite", f"sqlite:///{folder}/{{run}}.db"))
        postgres = os.environ.get("F1DAEMON_TEST_POSTGRES")
        if postgres:
            stores.append(("PostgreSQL", postgres))
        for label, template in stores:
            print(label)
            for run, speed, seconds in (("live1x", 1.0, 30.0), ("live50x", 50.0, 60.0)):
                if label == "SQLite":
                    url = template.format(run=run)
                else:
                    url = _fresh_postgres(template, f"f1daemon_bench_{run}")
                state = Path(folder) / run
                state.mkdir(exist_ok=True)
                latencies = trio.run(_measure, url, state, speed, seconds)
                _report(f"daemon, {speed:g}x the live rate", latencies)
            url = (
                template.format(run="base")
                if label == "SQLite"
                else _fresh_postgres(template, "f1daemon_bench_base")
            )
            _report("baseline: one append per message, no daemon", _baseline(url))
