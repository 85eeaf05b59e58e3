"""SIGKILL at any moment loses nothing acknowledged and leaves no half-written batch.

A real child process ingests the 2018 Baku race in small batches; the test kills it
with SIGKILL at random points of its progress (read from the log itself), ten times
and once more after the last fact, then lets a last run finish. The log must hold
every message exactly once, and `verify` must pass. On both stores.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from f1daemon.cli import main
from f1daemon.sources.archive import read_facts, topic_files
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

BAKU = "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
SESSION = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"
KILLS = 10
# The child ingests with small batches, so that a kill lands between many transactions.
CHILD = (
    "import sys\n"
    "import f1daemon.store.eventlog as eventlog\n"
    "eventlog.APPEND_BATCH = 300\n"
    "from f1daemon.cli import main\n"
    "sys.exit(main(['ingest', sys.argv[1], '--store', sys.argv[2]]))\n"
)


def start(folder: Path, store: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_when(child: subprocess.Popen[bytes], log: EventLog, position: int) -> bool:
    """SIGKILL the child once the log reaches `position`; False if it finished first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        if log.head_position() >= position:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            return True
        time.sleep(0.005)
    raise AssertionError("the ingest made no progress for two minutes")


def kill_repeatedly_then_finish(store: str, testdata: Path) -> None:
    folder = testdata / "livetiming" / BAKU
    expected = list(read_facts(SESSION, topic_files(folder)))
    rng = random.Random(20181429)
    targets = sorted(rng.sample(range(1, len(expected)), KILLS))
    kills = 0
    with EventLog(parse_store_url(store)) as log:  # the test's own reader of the log
        for target in targets:
            child = start(folder, store)
            kills += kill_when(child, log, max(target, log.head_position() + 1))
        # Once more with every fact appended, while the session is being derived.
        child = start(folder, store)
        kills += kill_when(child, log, len(expected) + 1)
    assert kills >= KILLS, f"only {kills} kills landed mid-ingest"

    last = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), store],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert last.returncode == 0, last.stderr
    with EventLog(parse_store_url(store)) as log:
        logged = [fact for _, fact in log.facts(SESSION)]
    assert [(f.stream, f.sequence, f.payload) for f in logged] == [
        (f.stream, f.sequence, f.payload) for f in expected
    ]
    assert main(["verify", "--store", store]) == 0


def test_sigkill_during_ingest_on_sqlite(tmp_path: Path, testdata: Path) -> None:
    kill_repeatedly_then_finish(f"sqlite:///{tmp_path / 'events.db'}", testdata)


def test_sigkill_during_ingest_on_postgresql(postgres_url: str, testdata: Path) -> None:
    kill_repeatedly_then_finish(postgres_url, testdata)
