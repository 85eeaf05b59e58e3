"""The control socket under attack, through the real daemon: 200 hostile connections of
each kind (silent, trickling, a refused uid, unread replies, oversized, resets) while a
source ingests. The operator's `ctl status` must answer within 1 s throughout, the
daemon stay up, and the log keep growing.

The hostile clients (`tests/hostile_clients.py`) run as user nobody, whom the daemon
lets in (`allowed_uids`: a member of the operators' group gone bad), and as user
daemon, whom it does not; the operator is root, the daemon's own user, with its slot.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from f1daemon.control.client import call
from f1daemon.errors import UserError

F1DAEMON = str(Path(sys.executable).with_name("f1daemon"))
SYSTEM_PYTHON = "/usr/bin/python3"  # one that other users may run (the venv's may not be)
HOSTILE = (Path(__file__).parent / "hostile_clients.py").read_text(encoding="utf-8")
KINDS = ("silent", "trickle", "refused", "unread", "oversized", "reset")
CONNECTIONS = 200  # of each kind
CONCURRENCY = 20  # of each kind at once
STATUS_LIMIT_S = 1.0

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None or not Path(SYSTEM_PYTHON).exists(),
    reason="needs root, runuser and a system python3 to connect as other users",
)


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder other users can reach (pytest's temporary folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="f1daemon-hostile-"))
    os.chmod(path, 0o755)  # noqa: S103 (users nobody and daemon must reach the socket)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_hostile_clients_never_lock_out_the_operator(folder: Path, tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    socket_path = folder / "ctl.sock"
    config = tmp_path / "f1daemon.toml"
    config.write_text(
        f"""
[daemon]
state_dir = "{tmp_path / "state"}"
[control]
socket = "{socket_path}"
mode = 0o666
client_timeout_s = 2
request_timeout_s = 3
allowed_uids = [{nobody}]
[metrics]
port = 0
[[sources]]
name = "simulated"
kind = "simulator"
track = "monaco"
seed = 5
laps = 60
cars = 10
speed = 20
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "F1DAEMON_STORE")}
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as stderr:
        daemon = subprocess.Popen(
            [F1DAEMON, "run", "--config", str(config)], env=env, stderr=stderr
        )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        facts = [wait_for_facts(socket_path)]
        quiet = []  # the latency without hostile clients, for comparison
        for _ in range(20):
            start = time.monotonic()
            assert call(socket_path, "status", [], timeout=5)["ok"] is True
            quiet.append(time.monotonic() - start)
            time.sleep(0.1)
        for kind in KINDS:
            user = "daemon" if kind == "refused" else "nobody"
            command = [SYSTEM_PYTHON, "-c", HOSTILE, str(socket_path), kind]
            command += [str(CONNECTIONS), str(CONCURRENCY)]
            workers.append(
                subprocess.Popen(
                    ["runuser", "-u", user, "--", *command],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        for worker in workers:  # every attacker up (their start-up is not the attack) ...
            assert worker.stdout is not None
            assert worker.stdout.readline() == b"ready\n"
        latencies: list[float] = []
        slow: list[tuple[float, float]] = []
        began = time.monotonic()
        for worker in workers:  # ... then all at once
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            worker.stdin.close()
        last_growth = time.monotonic()
        while any(w.poll() is None for w in workers):
            assert time.monotonic() - began < 90, "the hostile clients did not finish"
            start = time.monotonic()
            reply = call(socket_path, "status", [], timeout=5)
            latencies.append(time.monotonic() - start)
            if latencies[-1] > 0.2:
                slow.append((round(start - began, 2), round(latencies[-1], 3)))
            assert reply["ok"] is True, reply
            if reply["result"]["facts_logged"] > facts[-1]:
                facts.append(reply["result"]["facts_logged"])
                last_growth = time.monotonic()
            # The source ingests throughout: the log never stands still for long.
            assert time.monotonic() - last_growth < 5, "no facts logged for 5 s"
            time.sleep(0.1)
        duration = time.monotonic() - began
        reports = [orjson.loads(_output(w)) for w in workers]
        assert daemon.poll() is None
        assert call(socket_path, "status", [], timeout=5)["ok"] is True
    finally:
        for worker in workers:  # only when the test failed midway
            if worker.poll() is None:
                worker.terminate()  # runuser passes it on to its child
                worker.wait(timeout=30)
            for pipe in (worker.stdin, worker.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()
        daemon.send_signal(signal.SIGTERM)
        exit_status = daemon.wait(timeout=60)
    latencies.sort()
    print(
        f"\n{len(KINDS)} kinds x {CONNECTIONS} hostile connections in {duration:.1f} s: "
        f"{len(latencies)} status calls, p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms; facts {facts[0]} -> {facts[-1]}"
    )
    for report in reports:
        print(f"  {report['kind']}: {report['outcomes']}")
    print(
        f"  without them: max {max(quiet) * 1000:.1f} ms; calls over 200 ms (at s, took s): {slow}"
    )
    assert exit_status == 0
    assert latencies[-1] < STATUS_LIMIT_S
    assert facts[-1] > facts[0]
    for report in reports:
        assert sum(report["outcomes"].values()) == CONNECTIONS, report
        # The daemon ended every one of them: none outlived the clients' patience.
        assert "not closed by the daemon" not in report["outcomes"], report
        assert "never closed" not in report["outcomes"], report
    refusals = reports[KINDS.index("refused")]["outcomes"]
    # Told why, or (in a flood of refusals, or gone before) closed: never let in.
    assert set(refusals) <= {"permission denied", "closed at once", "closed"}, refusals
    log_text = log_path.read_text(encoding="utf-8")
    assert "Traceback" not in log_text


def wait_for_facts(path: Path) -> int:
    """The facts logged once the daemon answers and its source has begun."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            reply = call(path, "status", [], timeout=5)
        except UserError:  # not up yet
            time.sleep(0.1)
            continue
        logged = reply["result"]["facts_logged"]
        if isinstance(logged, int) and logged > 0:
            return logged
        time.sleep(0.1)
    raise AssertionError("the daemon did not start logging facts")


def _output(worker: subprocess.Popen[bytes]) -> bytes:
    """What a worker printed, once it has ended."""
    assert worker.stdout is not None
    with worker.stdout:
        output = worker.stdout.read()
    worker.wait(timeout=30)
    return output
