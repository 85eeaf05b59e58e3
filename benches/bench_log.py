"""The event log: durable batched appends on SQLite and PostgreSQL, replay, peak memory.

* appends: the 2018 Baku race's 24,237 facts, 5,000 a transaction, into a new log
  (SQLite on disk; PostgreSQL on the throw-away server `make bench` starts, named
  by $F1DAEMON_TEST_POSTGRES);
* replay: the whole race derived again from the log (facts read back, every derived
  event, a new run appended), then every export built from it;
* the peak RSS of the (child) process that does all of it.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from f1daemon.projections.exports import EXPORTS, export_table
from f1daemon.services.derivation import current_events
from f1daemon.services.versions import replay
from f1daemon.sources.archive import read_facts, topic_files
from f1daemon.store.eventlog import APPEND_BATCH, EventLog
from f1daemon.store.url import parse_store_url

BAKU = "livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
SESSION = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"


def _testdata() -> Path:
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "f1data"
    return Path(os.environ.get("F1DAEMON_TESTDATA", default))


def _appends(url: str, label: str) -> None:
    facts = list(read_facts(SESSION, topic_files(_testdata() / BAKU)))
    with EventLog(parse_store_url(url)) as log:
        log.register_session(SESSION, "bench")
        started = time.perf_counter()
        log.append_facts(facts)
        appended = time.perf_counter() - started
        started = time.perf_counter()
        replay(log, SESSION)
        replayed = time.perf_counter() - started
        started = time.perf_counter()
        events = current_events(log, SESSION)
        rows = sum(export_table(kind, events).num_rows for kind in EXPORTS)
        exported = time.perf_counter() - started
    print(f"{label}")
    print(f"  appends ({APPEND_BATCH} a transaction)   {len(facts) / appended:>10,.0f} facts/s")
    print(f"  replay of the race (log -> events) {replayed:>10.2f} s")
    print(f"  every export from it ({rows} rows) {exported:>9.2f} s")


def main() -> None:
    """Print the figures; the work runs in a child process so its peak memory is its own."""
    subprocess.run([sys.executable, "-c", "import benches.bench_log as b; b.measure()"], check=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"peak RSS of the process doing all of the above: {peak_kib / 1024:.0f} MiB")


def measure() -> None:
    """Appends and replay on SQLite, and on PostgreSQL when a server is named."""
    with tempfile.TemporaryDirectory() as folder:
        _appends(f"sqlite:///{Path(folder) / 'events.db'}", "SQLite (a file)")
    server = os.environ.get("F1DAEMON_TEST_POSTGRES")
    if not server:
        print(
            "PostgreSQL: skipped ($F1DAEMON_TEST_POSTGRES not set; run under scripts/with-postgres)"
        )
        return
    name = f"f1daemon_bench_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        _appends(server.rsplit("/", 1)[0] + f"/{name}", "PostgreSQL (local server)")
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
