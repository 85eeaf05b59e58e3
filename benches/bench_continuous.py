"""The continuous derivation through the real daemon (`f1daemon run`, a child process).

1. The 2018 Baku race from a recording source at 50x: stored derived rows against one
   batch derivation of the same facts (the baseline, derived in the same run), the
   correction events among them, the laps export against `f1daemon ingest` of the
   folder, `verify`, the log's size against the ingest's, derive lag p99 (from
   `f1daemon_derive_lag_seconds`).
2. The 2023 Monaco FP2 capture (timing and telemetry) at 1x for 60 s: derive lag p99.
3. A simulated two-hour race (Monza, 80 laps, 20 cars, CarData at 4 Hz and
   Position) at 20x: the log's size against its facts' bytes, the daemon's peak RSS,
   derivation CPU per fact in the first and the last 10 % of the race.

SQLite always; PostgreSQL too when `F1DAEMON_TEST_POSTGRES` is set (`make bench`).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from benches.bench_daemon_latency import _fresh_postgres
from f1daemon.cli import main as cli
from f1daemon.domain.events import (
    AnomalyCleared,
    MessageReceived,
    RecordQuarantined,
    TimeBaseEstablished,
)
from f1daemon.projections.fold import SessionFold
from f1daemon.projections.follower import DerivationFollower
from f1daemon.sources.archive import read_facts, topic_files
from f1daemon.store.eventlog import EventLog
from f1daemon.store.persistence import plain_state
from f1daemon.store.url import parse_store_url

F1DAEMON = str(Path(sys.executable).with_name("f1daemon"))
BAKU = "livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
BAKU_SESSION = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"
CAPTURE = "f1dash-signalr-2023_Monaco/fp2.txt"


def _testdata() -> Path:
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "f1data"
    return Path(os.environ.get("F1DAEMON_TESTDATA", default))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Daemon:
    """A child `f1daemon run` and what is sampled from it while it runs."""

    process: subprocess.Popen[bytes]
    port: int
    samples: list[tuple[float, float, float, int]] = field(default_factory=list)
    peak_rss_kb: int = 0

    def metrics(self) -> dict[str, float]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return {}
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = values.get(name, 0.0) + float(value)
        return values

    def sample(self) -> None:
        """CPU seconds spent deriving, facts logged, peak RSS (from /proc)."""
        values = self.metrics()
        derive = values.get("f1daemon_validation_duration_seconds_sum", 0.0)
        facts = sum(v for k, v in values.items() if k.startswith("f1daemon_records_total"))
        status = Path(f"/proc/{self.process.pid}/status")
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kb = int(line.split()[1])
        except OSError:
            return
        self.samples.append((time.monotonic(), derive, facts, self.peak_rss_kb))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


def start(state: Path, store: str, source: str) -> Daemon:
    port = _free_port()
    config = state / "f1daemon.toml"
    config.write_text(
        f"""
[daemon]
store = "{store}"
state_dir = "{state}"
[control]
socket = "{state / "ctl.sock"}"
[metrics]
port = {port}
{source}
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("F1DAEMON_STORE", "NOTIFY_SOCKET")}
    with (state / "daemon.log").open("ab") as stderr:
        process = subprocess.Popen(
            [F1DAEMON, "run", "--config", str(config)], env=env, stderr=stderr
        )
    return Daemon(process, port)


def lag_p99(values: dict[str, float]) -> str:
    """The derive lag's p99 as the histogram's bucket bound (`<= x s`)."""
    prefix = "f1daemon_derive_lag_seconds_bucket{le="
    buckets = sorted(
        (float(k[len(prefix) + 1 : -2]), v)
        for k, v in values.items()
        if k.startswith(prefix) and "+Inf" not in k
    )
    count = values.get("f1daemon_derive_lag_seconds_count", 0.0)
    if not count:
        return "no commits"
    for bound, cumulative in buckets:
        if cumulative >= 0.99 * count:
            return f"<= {bound * 1000:g} ms ({int(count)} commits)"
    return f"> {buckets[-1][0]} s ({int(count)} commits)"


def caught_up(store: str, session: str | None, source_done: bool) -> bool:
    """The source has sent everything and the session's run has read every fact."""
    if not source_done:
        return False
    with EventLog(parse_store_url(store)) as log:
        session = session or (log.sessions() or [""])[-1]
        runs = log.started_runs(session) if session in log.sessions() else []
        position = log.run_position(session, runs[-1].run) if runs else None
        return position is not None and not log.has_facts_after(session, position)


def source_stopped(state: Path) -> bool:
    """Whether the daemon's only source has stopped (its log line)."""
    return '"state":"stopped"' in (state / "daemon.log").read_text()


def store_bytes(store: str) -> int:
    url = parse_store_url(store)
    if url.sqlite_path is not None:
        return sum(
            p.stat().st_size for p in url.sqlite_path.parent.glob(url.sqlite_path.name + "*")
        )
    with psycopg.connect(store) as connection:
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def stored_bytes(store: str) -> tuple[int, int, int]:
    """Bytes of the facts' states as JSON, as stored (deflated), and of the derived
    events' stored states (eventsourcing's table)."""
    query = "SELECT originator_id, state FROM stored_events"
    url = parse_store_url(store)
    if url.sqlite_path is not None:
        with sqlite3.connect(url.sqlite_path) as connection:
            rows = connection.execute(query).fetchall()
    else:
        with psycopg.connect(store) as connection:
            rows = connection.execute(query).fetchall()
    facts = [bytes(state) for originator, state in rows if originator.startswith("facts:")]
    derived = sum(len(state) for originator, state in rows if originator.startswith("derived:"))
    return sum(len(plain_state(s)) for s in facts), sum(map(len, facts)), derived


def baku_at_50x(folder: Path, store: str, clean: str) -> None:
    source = f'[[sources]]\nname = "baku"\nkind = "recording"\npath = "{folder}"\nspeed = 50'
    state = Path(tempfile.mkdtemp(prefix="bench-baku-"))
    began = time.monotonic()
    daemon = start(state, store, source)
    try:
        while not caught_up(store, BAKU_SESSION, source_stopped(state)):
            if daemon.process.poll() is not None:
                raise RuntimeError((state / "daemon.log").read_text()[-2000:])
            time.sleep(1.0)
        values = daemon.metrics()
    finally:
        daemon.stop()
    took = time.monotonic() - began
    with EventLog(parse_store_url(store)) as log:
        runs = log.started_runs(BAKU_SESSION)
        stored = sum(log.derived_count(BAKU_SESSION, s.run) for s in runs)
        events = log.derived_events(BAKU_SESSION, runs[-1].run)
        fold = SessionFold(BAKU_SESSION)
        batch = [e for p, f in log.inputs(BAKU_SESSION) for e in fold.feed(p, f)]
        batch += fold.finish()
    corrections = sum(
        isinstance(e, AnomalyCleared) or (isinstance(e, RecordQuarantined) and e.source == "qa")
        for e in events
    ) + max(0, sum(isinstance(e, TimeBaseEstablished) for e in events) - 1)
    verified = cli(["verify", "--store", store]) == 0
    cli(["ingest", str(folder), "--store", clean])
    exports: list[bytes] = []
    for url in (store, clean):
        out = state / f"laps-{len(exports)}.csv"
        cli(["export", "laps", "--store", url, "--format", "csv", "-o", str(out)])
        exports.append(out.read_bytes())
    print(f"  Baku 2018 race at 50x through `f1daemon run`: {took:.0f} s, {len(runs)} run(s)")
    print(
        f"    stored derived rows {stored:,} for {len(batch):,} events of one batch "
        f"derivation: {stored / len(batch):.3f}x (corrections among them: {corrections})"
    )
    print(
        f"    laps export equal to `ingest`: {exports[0] == exports[1]}; verify passes: "
        f"{verified}; log {store_bytes(store) / 1e6:.1f} MB against the ingest's "
        f"{store_bytes(clean) / 1e6:.1f} MB"
    )
    print(f"    derive lag p99: {lag_p99(values)}")


def monaco_at_1x(path: Path, store: str, seconds: float) -> None:
    source = f'[[sources]]\nname = "fp2"\nkind = "recording"\npath = "{path}"\nspeed = 1'
    state = Path(tempfile.mkdtemp(prefix="bench-monaco-"))
    daemon = start(state, store, source)
    try:
        time.sleep(seconds)
        values = daemon.metrics()
    finally:
        daemon.stop()
    print(f"  Monaco 2023 FP2 capture at 1x, {seconds:g} s: derive lag p99 {lag_p99(values)}")


def simulated_race(store: str, speed: float) -> None:
    source = (
        '[[sources]]\nname = "sim"\nkind = "simulator"\ntrack = "monza"\nseed = 3\n'
        f"laps = 80\ncars = 20\ntelemetry_hz = 4\nspeed = {speed:g}"
    )
    state = Path(tempfile.mkdtemp(prefix="bench-sim-"))
    daemon = start(state, store, source)
    try:
        while daemon.process.poll() is None:
            daemon.sample()
            if caught_up(store, None, source_stopped(state)):
                break
            time.sleep(2.0)
        daemon.sample()
    finally:
        daemon.stop()
    with EventLog(parse_store_url(store)) as log:
        payloads = sum(
            len(f.payload.encode())
            for s in log.sessions()
            for _, f in log.facts(s)
            if isinstance(f, MessageReceived)
        )
    facts, deflated, derived = stored_bytes(store)
    size = store_bytes(store)
    samples = daemon.samples
    total = samples[-1][2] or 1.0

    def cpu_per_fact(low: float, high: float) -> float:
        window = [s for s in samples if low * total <= s[2] <= high * total]
        if len(window) < 2 or window[-1][2] == window[0][2]:
            return float("nan")
        return (window[-1][1] - window[0][1]) / (window[-1][2] - window[0][2])

    first, last = cpu_per_fact(0.0, 0.1), cpu_per_fact(0.9, 1.0)
    print(f"  simulated 2-hour race (80 laps, 20 cars, 4 Hz telemetry) at {speed:g}x:")
    print(
        f"    log {size / 1e6:.1f} MB: the facts {facts / 1e6:.1f} MB as JSON (stored deflated: "
        f"{deflated / 1e6:.1f} MB; their payloads {payloads / 1e6:.1f} MB), derived rows "
        f"{derived / 1e6:.2f} MB; log / the facts' JSON {size / facts:.2f}x, log / payloads "
        f"{size / payloads:.2f}x; peak RSS {daemon.peak_rss_kb / 1024:.0f} MB"
    )
    print(
        f"    derivation per fact: first 10 % {first * 1e6:.0f} us, last 10 % "
        f"{last * 1e6:.0f} us ({last / first:.2f}x)"
    )


def derivation_over_the_race(store: str, scratch: Path) -> None:
    """The derivation's own cost per fact, first tenth of the race against the last:
    the simulated race's facts appended again to a fresh log in commits of
    `COMMIT_FACTS`, a follower catching up after each (what the daemon's deriver does),
    timed in this process alone. The daemon's CPU above counts the sources, the writer
    and the metrics too, and on this two-core machine whatever else runs beside it."""
    with EventLog(parse_store_url(store)) as log:
        sessions = log.sessions()
        facts = [f for s in sessions for _, f in log.facts(s)]
    costs: list[tuple[int, float]] = []
    with EventLog(parse_store_url(f"sqlite:///{scratch}/again.db")) as log:
        for session in sessions:
            log.register_session(session, "bench")
        followers = {s: DerivationFollower.start(log, s) for s in sessions}
        for start in range(0, len(facts), COMMIT_FACTS):
            batch = facts[start : start + COMMIT_FACTS]
            began = time.process_time()
            log.append_facts(batch)
            for follower in followers.values():
                follower.catch_up()
            costs.append((len(batch), time.process_time() - began))
    tenth = max(1, len(costs) // 10)

    def per_fact(part: list[tuple[int, float]]) -> float:
        return sum(c for _, c in part) / max(1, sum(n for n, _ in part))

    first, last = per_fact(costs[:tenth]), per_fact(costs[-tenth:])
    print(
        f"    the derivation alone, per fact ({len(facts):,} facts, commits of {COMMIT_FACTS}):"
        f" first 10 % {first * 1e6:.0f} us, last 10 % {last * 1e6:.0f} us "
        f"({last / first:.2f}x)"
    )


# Facts per commit when the race is derived again: about what the writer commits at
# a time at 20x the feed's pace.
COMMIT_FACTS = 20


def resume_a_full_race(folder: Path, store: str) -> None:
    """A restart's start-up: the open run of a whole race rebuilt from its facts, against
    one batch derivation of the same facts (the baseline)."""
    with EventLog(parse_store_url(store)) as log:
        log.register_session(BAKU_SESSION, "bench")
        follower = DerivationFollower.start(log, BAKU_SESSION)
        log.append_facts(read_facts(BAKU_SESSION, topic_files(folder)))
        follower.catch_up()
        began = time.perf_counter()
        resumed = DerivationFollower.resume(log, BAKU_SESSION)
        took = time.perf_counter() - began
        assert resumed is not None
        assert resumed.derived == follower.derived
        began = time.perf_counter()
        fold = SessionFold(BAKU_SESSION)
        for position, fact in log.inputs(BAKU_SESSION):
            fold.feed(position, fact)
        batch = time.perf_counter() - began
    print(
        f"  restart: the Baku race's open run ({follower.derived:,} events) resumed in "
        f"{took * 1000:.0f} ms; one batch derivation of its facts: {batch * 1000:.0f} ms"
    )


def main() -> None:
    data = _testdata()
    with tempfile.TemporaryDirectory() as folder:
        stores: list[tuple[str, str]] = [("SQLite", f"sqlite:///{folder}/{{run}}.db")]
        postgres = os.environ.get("F1DAEMON_TEST_POSTGRES")
        if postgres:
            stores.append(("PostgreSQL", postgres))
        for label, template in stores:

            def fresh(run: str, label: str = label, template: str = template) -> str:
                if label == "SQLite":
                    return template.format(run=run)
                return _fresh_postgres(template, f"f1daemon_bench_{run}")

            print(label)
            baku_at_50x(data / BAKU, fresh("baku"), f"sqlite:///{folder}/clean-{label}.db")
            monaco_at_1x(data / CAPTURE, fresh("monaco"), 60.0)
            resume_a_full_race(data / BAKU, fresh("resume"))
        simulated_race(f"sqlite:///{folder}/sim.db", 20.0)
        derivation_over_the_race(f"sqlite:///{folder}/sim.db", Path(folder))


if __name__ == "__main__":
    main()
