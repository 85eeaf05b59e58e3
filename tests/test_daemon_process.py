"""`f1daemon run` as a real process: systemd notifications, every control command,
malformed control traffic, /metrics, SIGHUP reload, SIGTERM drain."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from f1daemon.domain.events import SourceStateChanged
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

F1DAEMON = str(Path(sys.executable).with_name("f1daemon"))


@dataclass
class RunningDaemon:
    process: subprocess.Popen[bytes]
    notify: socket.socket
    socket_path: Path
    config_path: Path
    store_url: str
    stderr_path: Path
    notifications: list[str]

    def receive_notifications(self) -> None:
        """Read the notify socket all the time, as systemd does (on a thread): a queue
        left full would make the daemon drop notifications."""
        self.notify.settimeout(0.2)
        while self.notify.fileno() != -1:
            try:
                self.notifications.append(self.notify.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_notification(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.notifications):
                if message.startswith(prefix) or f"\n{prefix}" in message:
                    return message
            time.sleep(0.01)
        raise AssertionError(f"no {prefix!r} notification; got {self.notifications}")

    def call(self, command: str, *args: str) -> dict[str, object]:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(str(self.socket_path))
            sock.sendall(orjson.dumps({"command": command, "args": list(args)}) + b"\n")
            reply = orjson.loads(read_line(sock))
        assert isinstance(reply, dict)
        return reply

    def result(self, command: str, *args: str) -> Any:  # replies are JSON
        reply = self.call(command, *args)
        assert reply["ok"] is True, reply
        return reply["result"]


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.partition(b"\n")[0]


def write_config(path: Path, tmp_path: Path, testdata: Path, *, extra: str = "") -> None:
    path.write_text(
        f"""
[daemon]
state_dir = "{tmp_path / "state"}"
shutdown_deadline_s = 30
[control]
socket = "{tmp_path / "ctl.sock"}"
max_line_bytes = 4096
client_timeout_s = 2
[metrics]
port = 0
[[sources]]
name = "monaco-fp2"
kind = "recording"
path = "{testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt"}"
speed = 0
[[sources]]
name = "damaged"
kind = "recording"
path = "{testdata / "fastf1-signalr-recordings" / "with_errors.txt"}"
speed = 0
[[sources]]
name = "simulated"
kind = "simulator"
track = "monaco"
seed = 11
laps = 60
cars = 10
speed = 40
{extra}
""",
        encoding="utf-8",
    )


@pytest.fixture
def daemon(tmp_path: Path, testdata: Path) -> Iterator[RunningDaemon]:
    config = tmp_path / "f1daemon.toml"
    write_config(config, tmp_path, testdata)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    stderr_path = tmp_path / "daemon.log"
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": "1000000",
    }
    env.pop("F1DAEMON_STORE", None)
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [F1DAEMON, "run", "--config", str(config)], env=env, stderr=stderr
        )
    running = RunningDaemon(
        process,
        notify,
        tmp_path / "ctl.sock",
        config,
        f"sqlite:///{tmp_path / 'state' / 'events.db'}",
        stderr_path,
        [],
    )
    receiver = threading.Thread(target=running.receive_notifications, daemon=True)
    receiver.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        notify.close()
        receiver.join(timeout=5)


def test_the_daemon_under_systemd_and_its_operators(
    daemon: RunningDaemon, tmp_path: Path, testdata: Path
) -> None:
    ready = daemon.wait_notification("READY=1")
    assert "STATUS=running: 3/3 sources running" in ready
    daemon.wait_notification("WATCHDOG=1")

    # Every command answers, with ok and a result.
    status = daemon.result("status")
    assert isinstance(status, dict)
    assert status["state"] == "running"
    assert status["pid"] == daemon.process.pid
    health = daemon.result("health")
    assert isinstance(health, dict)
    assert health["watchdog_s"] == 1.0
    sources = daemon.result("sources")
    assert isinstance(sources, list)
    assert {s["name"] for s in sources} == {"monaco-fp2", "damaged", "simulated"}
    assert daemon.result("pause", "simulated") == {
        "source": "simulated",
        "paused": True,
        "changed": True,
    }
    paused_at = source(daemon, "simulated")["position"]
    time.sleep(1.5)
    assert source(daemon, "simulated")["position"] == paused_at  # it really holds
    assert daemon.result("resume", "simulated") == {
        "source": "simulated",
        "paused": False,
        "changed": True,
    }
    wait_for(lambda: source(daemon, "simulated")["position"] > paused_at)
    wait_for(lambda: source(daemon, "simulated")["session"] is not None)
    simulated = str(source(daemon, "simulated")["session"])
    assert daemon.result("session", "stop", simulated) == {
        "session": simulated,
        "state": "POST_SESSION",
        "changed": True,
    }
    started = daemon.result("session", "start", simulated)
    assert isinstance(started, dict)
    assert started["state"] == "ACTIVE"
    tag = daemon.result("tag", "v-test", "from the process test")
    assert isinstance(tag, dict)
    assert tag["name"] == "v-test"
    assert tag["position"] > 0
    text = daemon.result("metrics")
    assert isinstance(text, str)
    assert "f1daemon_records_total" in text
    assert daemon.result("reload") == {"started": [], "stopped": [], "needs_restart": []}
    errors = [
        daemon.call("pause", "nope"),
        daemon.call("tag", "v-test"),
        daemon.call("session", "pause"),
    ]
    assert [e["ok"] for e in errors] == [False, False, False]
    assert "no source named 'nope'" in str(errors[0]["error"])
    assert "exists already" in str(errors[1]["error"])

    # /metrics in Prometheus' text format.
    port = status["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        exposition = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    records = sum(
        s.value for s in families["f1daemon_records"].samples if s.name.endswith("_total")
    )
    assert records > 0
    assert "f1daemon_append_latency_seconds" in families
    failures = families["f1daemon_validation_failures"].samples
    assert any(s.labels["source"] == "damaged" and s.value > 0 for s in failures)

    # SIGHUP: the configuration is read again; a new source starts.
    extra = f"""
[[sources]]
name = "baku"
kind = "recording"
path = "{testdata / "livetiming" / "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"}"
speed = 0
"""
    write_config(daemon.config_path, tmp_path, testdata, extra=extra)
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "baku" in {s["name"] for s in daemon.result("sources")})

    # SIGTERM mid-ingest: drain, STOPPING=1, exit 0, everything acknowledged is logged.
    wait_for(lambda: source(daemon, "baku")["position"] > 0)
    acknowledged = {str(s["name"]): int(s["position"]) for s in daemon.result("sources")}
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=60) == 0
    daemon.wait_notification("STOPPING=1")
    log_lines = [orjson.loads(line) for line in daemon.stderr_path.read_bytes().splitlines()]
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in log_lines)
    stopped = [line for line in log_lines if line["msg"] == "stopped"]
    assert len(stopped) == 1
    with EventLog(parse_store_url(daemon.store_url)) as log:
        total = sum(sum(1 for _ in log.facts(session)) for session in log.sessions())
        per_source = {
            e.source: e
            for e in log.stream_events("source-states")
            if isinstance(e, SourceStateChanged)
        }
        sessions = log.sessions()
    assert total == stopped[0]["facts"]  # each fact handed to the writer, logged once
    assert total >= sum(acknowledged.values())
    assert {"monaco-fp2", "damaged", "simulated", "baku"} <= set(per_source)
    assert len(sessions) == 4


def test_malformed_control_traffic_leaves_the_daemon_serving(daemon: RunningDaemon) -> None:
    daemon.wait_notification("READY=1")

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(
            st.one_of(
                st.binary(max_size=300),
                st.text(max_size=200).map(str.encode),
                st.sampled_from(
                    [b"{}", b"[]", b"null", b'{"command": null}', b'{"command": "pause"}']
                ),
            ),
            min_size=1,
            max_size=5,
        )
    )
    def garbage_then_status(lines: list[bytes]) -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(daemon.socket_path))
            sent = [line.replace(b"\n", b" ") for line in lines]
            payload = b"\n".join(sent) + b"\n"
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            replies = []
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            replies = [orjson.loads(line) for line in data.splitlines()]
        # One reply per request line (blank lines are skipped, as a shell user expects).
        assert len(replies) == sum(1 for line in sent if line.strip())
        assert all(isinstance(r, dict) and "ok" in r for r in replies)
        assert all("error" in r for r in replies if not r["ok"])
        assert daemon.call("status")["ok"] is True

    garbage_then_status()

    # An oversized line (the limit is 4096 here) is refused and the connection closed.
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(daemon.socket_path))
        sock.sendall(b"x" * 20_000)
        reply = orjson.loads(read_line(sock))
        assert reply == {"ok": False, "error": "request line longer than 4096 bytes; closing"}
    # A client that connects and says nothing is dropped after client_timeout_s.
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(daemon.socket_path))
        began = time.monotonic()
        assert sock.recv(10) == b""
        assert 1.5 < time.monotonic() - began < 8
    counted = daemon.result("metrics")
    assert isinstance(counted, str)
    assert re.search(
        r'f1daemon_control_requests_total\{command="-",outcome="invalid"\} [1-9]', counted
    )
    assert daemon.process.poll() is None
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=60) == 0


def test_a_second_daemon_on_the_same_socket_leaves_the_first_serving(
    daemon: RunningDaemon,
) -> None:
    """The operator starts `f1daemon run` twice with one configuration: the second
    exits with one line naming the first, and neither on its way in nor on its way out
    removes the first's socket."""
    daemon.wait_notification("READY=1")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "F1DAEMON_STORE")}
    second = subprocess.run(
        [F1DAEMON, "run", "--config", str(daemon.config_path)],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 2
    assert second.stderr.decode() == (
        f"f1daemon: error: {daemon.socket_path}: f1daemon (pid {daemon.process.pid}) is "
        "already serving this control socket; stop it first, or give this one another "
        "[control] socket\n"
    )
    assert daemon.socket_path.is_socket()
    assert daemon.result("status")["pid"] == daemon.process.pid
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=60) == 0
    assert not daemon.socket_path.exists()  # the first removes its own


def source(daemon: RunningDaemon, name: str) -> dict[str, Any]:
    sources = daemon.result("sources")
    assert isinstance(sources, list)
    (found,) = [s for s in sources if s["name"] == name]
    assert isinstance(found, dict)
    return found


def wait_for(condition: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)
