"""SIGKILL of the daemon at random moments of a live run: nothing lost, nothing twice.

A real `f1daemon run` follows the 2018 Baku race from a recording source (as fast as
it can, so that kills land among the writer's and the follower's commits); the test
kills it with SIGKILL at ten random log positions, restarting it after each, then
lets the last one run until the session's run has read every fact. On both stores:

* the log holds every fact exactly once, in order;
* the session has exactly one run — each restart resumed it from its tracking
  record, none started over — and it has read every fact;
* `verify` passes: the run, grown over eleven processes, equals one batch
  derivation of its facts, byte for byte;
* its laps export equals a clean `f1daemon ingest` of the folder.
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
F1DAEMON = str(Path(sys.executable).with_name("f1daemon"))


def write_config(path: Path, tmp_path: Path, store: str, folder: Path) -> None:
    path.write_text(
        f"""
[daemon]
store = "{store}"
state_dir = "{tmp_path / "state"}"
[control]
socket = "{tmp_path / "ctl.sock"}"
[metrics]
port = 0
[[sources]]
name = "baku"
kind = "recording"
path = "{folder}"
speed = 0
""",
        encoding="utf-8",
    )


def start(config: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("F1DAEMON_STORE", "NOTIFY_SOCKET")}
    with (tmp_path / "daemon.log").open("ab") as stderr:
        return subprocess.Popen(
            [F1DAEMON, "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def kill_at(child: subprocess.Popen[bytes], log: EventLog, position: int) -> bool:
    """SIGKILL the daemon once the log reaches `position`; False if it got no further."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log.head_position() >= position:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            return True
        time.sleep(0.002)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return False


def caught_up(log: EventLog, expected: int) -> bool:
    """Every fact logged and read by the session's run (its tracking record)."""
    runs = log.started_runs(SESSION) if SESSION in log.sessions() else []
    position = log.run_position(SESSION, runs[-1].run) if runs else None
    if position is None or log.has_facts_after(SESSION, position):
        return False
    return sum(1 for _ in log.facts(SESSION)) == expected


def kill_repeatedly_then_finish(store: str, tmp_path: Path, testdata: Path) -> None:
    folder = testdata / "livetiming" / BAKU
    expected = list(read_facts(SESSION, topic_files(folder)))
    config = tmp_path / "f1daemon.toml"
    write_config(config, tmp_path, store, folder)
    rng = random.Random(20181429)
    # Facts, then the derived events and states: the log ends well past the facts.
    targets = sorted(rng.sample(range(1, len(expected) + 2_000), KILLS))
    kills = 0
    with EventLog(parse_store_url(store)) as log:  # the test's own reader of the log
        for target in targets:
            kills += kill_at(start(config, tmp_path), log, max(target, log.head_position() + 1))
        assert kills >= KILLS, f"only {kills} kills landed"
        last = start(config, tmp_path)
        try:
            deadline = time.monotonic() + 240
            while not caught_up(log, len(expected)):
                assert time.monotonic() < deadline, "the run did not catch up"
                assert last.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                time.sleep(0.2)
        finally:
            last.send_signal(signal.SIGTERM)
            assert last.wait(timeout=60) == 0
        logged = [fact for _, fact in log.facts(SESSION)]
        assert [(f.stream, f.sequence, f.payload) for f in logged] == [
            (f.stream, f.sequence, f.payload) for f in expected
        ]
        assert [s.run for s in log.started_runs(SESSION)] == [1]
    assert main(["verify", "--store", store]) == 0
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    assert main(["ingest", str(folder), "--store", clean]) == 0
    for url, name in ((store, "live.csv"), (clean, "clean.csv")):
        out = tmp_path / name
        assert main(["export", "laps", "--store", url, "--format", "csv", "-o", str(out)]) == 0
    assert (tmp_path / "live.csv").read_bytes() == (tmp_path / "clean.csv").read_bytes()


def test_sigkill_during_a_live_run_on_sqlite(tmp_path: Path, testdata: Path) -> None:
    kill_repeatedly_then_finish(f"sqlite:///{tmp_path / 'events.db'}", tmp_path, testdata)


def test_sigkill_during_a_live_run_on_postgresql(
    postgres_url: str, tmp_path: Path, testdata: Path
) -> None:
    kill_repeatedly_then_finish(postgres_url, tmp_path, testdata)
