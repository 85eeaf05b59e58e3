"""Issue 14's live source, through the real daemon: a local SignalR Core server
(`tests.signalr_server`) replaying the 2023 Monaco FP2 capture, with the fault each
test is about — the configuration refused at load, the other clients' topics, a
shutdown in mid-stream."""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
import pytest
import trio

from f1daemon.control.client import call
from f1daemon.daemon.app import Daemon
from f1daemon.daemon.live import CHANNEL_SIZE
from f1daemon.domain.events import (
    Fact,
    FactsUnwritten,
    MessageReceived,
    RecordQuarantined,
    SourceStateChanged,
)
from f1daemon.feed.messages import TELEMETRY_TOPICS
from f1daemon.sources.recording import Recording, read_recording
from f1daemon.store.eventlog import AppendResult, EventLog
from f1daemon.store.url import parse_store_url
from tests.signalr_server import Faults, ReplayHub, serve_signalr
from tests.test_daemon import TimedNotifier
from tests.test_daemon_live import FP2, SESSION, grown_then_closed, live_config


@pytest.fixture(scope="module")
def fp2(testdata: Path) -> Recording:
    return read_recording(testdata / FP2)


# -- a bad URL: one line at load -------------------------------------------------------------


@pytest.mark.parametrize("url", ["livetiming.formula1.com/signalrcore", "ftp://hub.example/x"])
def test_run_with_a_bad_live_url_is_one_line_and_exit_2(tmp_path: Path, url: str) -> None:
    env = {
        **os.environ,
        "STATE_DIRECTORY": str(tmp_path),
        "RUNTIME_DIRECTORY": str(tmp_path),
        "F1DAEMON_METRICS_ENABLED": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "f1daemon", "run", "--source", f"live:{url}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    (line,) = stderr.splitlines()  # one line, no traceback
    assert f"url {url!r} must start with https:// or http:// or wss:// or ws://" in line
    assert not (tmp_path / "events.db").exists()  # refused before anything was opened


async def test_reload_with_a_bad_url_answers_why_and_keeps_running(
    fp2: Recording, tmp_path: Path
) -> None:
    hub = ReplayHub.from_recording(fp2)
    async with serve_signalr(hub) as url:
        config = live_config(tmp_path, url, ["SessionInfo", "TimingData"])
        path = tmp_path / "f1daemon.toml"
        daemon = Daemon(config, config_path=path, notifier=TimedNotifier())
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            path.write_text(path.read_text().replace(url, "ftp://hub.example/signalrcore"))
            reply = await trio.to_thread.run_sync(call, config.control.socket, "reload", [])
            assert daemon.supervision.running() == ["live"]  # unchanged
            assert daemon.config is config
            daemon.request_shutdown()
    assert reply["ok"] is False
    error = str(reply["error"])
    assert error.startswith("reload refused, configuration unchanged: ")
    assert "url 'ftp://hub.example/signalrcore' must start with https://" in error
    assert "internal error" not in error


# -- the other clients' topics ------------------------------------------------------------------

# No recording of ours has these topics (they are newer than the captures), so the hub's
# snapshot gets one message of each, shaped as the feed publishes them.
OTHER_CLIENTS_TOPICS = {
    "PitLaneTimeCollection": {"PitTimes": {"1": {"RacingNumber": "1", "Duration": "22.4"}}},
    "DriverRaceInfo": {"1": {"RacingNumber": "1", "Position": "1", "PitStops": 0}},
    "PitStopSeries": {"PitTimes": {"1": [{"PitStop": {"RacingNumber": "1", "Lap": "12"}}]}},
    "RcmSeries": {"Snapshots": [{"Utc": "2023-05-26T15:31:00", "Lap": 1, "Type": "Flag"}]},
    "ChampionshipPrediction": {"Drivers": {"1": {"RacingNumber": "1", "PredictedPoints": 25}}},
}


async def test_the_default_topics_include_the_other_clients_and_none_is_quarantined(
    fp2: Recording, tmp_path: Path
) -> None:
    hub = ReplayHub.from_recording(fp2)
    hub.snapshot.update(OTHER_CLIENTS_TOPICS)
    expected = sum(  # without a token, the default topics leave out the telemetry
        1
        for f in fp2.facts(SESSION)
        if isinstance(f, MessageReceived) and f.topic not in TELEMETRY_TOPICS
    )
    async with serve_signalr(hub) as url:
        config = live_config(tmp_path, url, None)  # the default topics
        daemon = Daemon(config, notifier=TimedNotifier())
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            with trio.fail_after(30):
                while daemon.sources["live"].position < expected + len(OTHER_CLIENTS_TOPICS):  # noqa: ASYNC110
                    await trio.sleep(0.05)
            daemon.request_shutdown()

    assert set(OTHER_CLIENTS_TOPICS) <= set(hub.connections[0].topics)
    with EventLog(parse_store_url(config.store_url)) as log:
        facts = [f for _, f in log.facts(SESSION)]
        derived = grown_then_closed(log, SESSION)
    logged = {
        f.topic: orjson.loads(f.payload)
        for f in facts
        if isinstance(f, MessageReceived) and f.topic in OTHER_CLIENTS_TOPICS
    }
    assert logged == OTHER_CLIENTS_TOPICS  # each logged as sent, once
    # Known to the pipeline as topics it does not derive from yet: kept, not quarantined.
    quarantined = [e for e in derived if isinstance(e, RecordQuarantined)]
    assert not [e for e in quarantined if e.topic in OTHER_CLIENTS_TOPICS]
    assert not [e for e in quarantined if e.source != "qa"]  # (QA judges laps, not topics)


# -- a refused token: reported once, retried at the breaker's pace ------------------------------

TOKEN = "tok-expired-9Zq"  # noqa: S105 - a test token, refused by the hub


async def test_a_token_refused_in_a_close_message_is_reported_once_then_tried_at_the_breakers_pace(
    fp2: Recording,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("F1_TEST_TOKEN", TOKEN)
    hub = ReplayHub.from_recording(
        fp2, Faults(require_token=TOKEN + "-renewed", auth_check="close")
    )
    extra = 'token_env = "F1_TEST_TOKEN"\n[supervision]\nbreaker_reset_s = 0.5\n'
    async with serve_signalr(hub) as url:
        config = live_config(tmp_path, url, ["SessionInfo", "TimingData"], extra=extra)
        daemon = Daemon(config, notifier=TimedNotifier())
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            await trio.sleep(2.6)
            daemon.request_shutdown()

    # Tried once, then once per breaker timeout (0.5 s) — not at the client's pace
    # (reconnect_initial_s = 0.05): about five trials in 2.6 s, none sooner.
    waits = [b - a for a, b in itertools.pairwise(hub.attempt_times)]
    assert 4 <= len(hub.attempt_times) <= 6
    assert all(wait >= 0.5 for wait in waits)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    (reported,) = errors  # said once
    message = reported.getMessage()
    assert message.startswith("source live: circuit-open: SignalRAuthError: the server refused")
    assert "HubException: Unauthorized" in message
    assert "was not accepted (expired?): renew it" in message
    assert TOKEN not in caplog.text
    with EventLog(parse_store_url(config.store_url)) as log:
        states = [
            e for e in log.stream_events("source-states") if isinstance(e, SourceStateChanged)
        ]
    opened = [e for e in states if e.state == "circuit-open"]
    assert len(opened) == len(hub.attempt_times)  # every trial recorded in the log
    assert all(e.breaker == "open" and "renew it" in (e.error or "") for e in opened)


# -- a new session on the same connection: subscribed again for its snapshot ------------------

PRACTICE_3 = "2023-05-28_Monaco_Grand_Prix/2023-05-27_Practice_3"


async def test_a_new_session_on_the_connection_is_subscribed_again_for_its_snapshot(
    fp2: Recording, tmp_path: Path
) -> None:
    # The capture's session, then the next one starts on the same connection: the
    # feed's SessionInfo changes (as it does at a session's start), then its messages.
    hub = ReplayHub.from_recording(fp2, Faults(current_snapshot=True))
    info = dict(hub.snapshot["SessionInfo"])  # type: ignore[call-overload]
    info.update(
        Key=9089,
        Number=3,
        Name="Practice 3",
        StartDate="2023-05-27T12:30:00",
        EndDate="2023-05-27T13:30:00",
        Path="2023/2023-05-28_Monaco_Grand_Prix/2023-05-27_Practice_3/",
    )
    del info["_kf"]
    stamp = "2023-05-27T12:00:00.000Z"
    new_session = [("SessionInfo", info), ("TrackStatus", {"Status": "2", "Message": "Yellow"})]
    for topic, data in new_session:
        hub.feed_topics.append(topic)
        hub.feed_data.append((topic, data))
        frame = {"type": 1, "target": "feed", "arguments": [topic, data, stamp]}
        hub.feed_frames.append(orjson.dumps(frame).decode())
    topics = sorted(hub.snapshot)
    first = [f for f in fp2.facts(SESSION) if isinstance(f, MessageReceived)]
    async with serve_signalr(hub) as url:
        config = live_config(tmp_path, url, topics)
        daemon = Daemon(config, notifier=TimedNotifier())
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            with trio.fail_after(30):
                # The capture, the new session's messages and its snapshot.
                while daemon.sources["live"].position < len(first) + 2 + len(topics):  # noqa: ASYNC110
                    await trio.sleep(0.05)
            daemon.request_shutdown()

    (connection,) = hub.connections  # on the same connection, no reconnect
    assert connection.subscriptions == ["1", "2"]
    with EventLog(parse_store_url(config.store_url)) as log:
        assert set(log.sessions()) == {SESSION, PRACTICE_3}
        old = [f for _, f in log.facts(SESSION) if isinstance(f, MessageReceived)]
        new = [f for _, f in log.facts(PRACTICE_3) if isinstance(f, MessageReceived)]
    assert len(old) == len(first)
    # The new session: its SessionInfo, the snapshot of every topic (the state with the
    # new SessionInfo), then its feed; all in the connection's one stream.
    assert (new[0].topic, new[0].keyframe) == ("SessionInfo", False)
    assert [f.topic for f in new if not f.keyframe] == ["SessionInfo", "TrackStatus"]
    assert sorted(f.topic for f in new if f.keyframe) == topics
    keyframes = {f.topic: orjson.loads(f.payload) for f in new if f.keyframe}
    assert keyframes["SessionInfo"]["Path"] == info["Path"]
    assert {f.stream for f in new} == {old[0].stream}


# -- a clean shutdown in mid-stream: every fact received is written ---------------------------


async def test_a_shutdown_in_mid_stream_writes_every_fact_the_client_received(
    fp2: Recording, tmp_path: Path
) -> None:
    expected = [f for f in fp2.facts(SESSION) if isinstance(f, MessageReceived)]
    hub = ReplayHub.from_recording(fp2, Faults(frames_per_message=20))
    status: list[int] = []

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        status.append(await daemon.run(task_status=task_status))

    async with serve_signalr(hub) as url:
        config = live_config(tmp_path, url, sorted({f.topic for f in expected}))
        daemon = Daemon(config, notifier=TimedNotifier())
        async with trio.open_nursery() as nursery:
            await nursery.start(run)
            # The operator pauses the source: what the connection receives queues up
            # (the log holds it back) until the queue is full and the client waits.
            paused = await trio.to_thread.run_sync(call, config.control.socket, "pause", ["live"])
            assert paused["ok"], paused
            runtime = daemon.sources["live"]
            with trio.fail_after(30):
                while runtime.received < CHANNEL_SIZE:  # noqa: ASYNC110 - a count
                    await trio.sleep(0.05)
            await trio.sleep(0.2)
            assert runtime.received - runtime.position >= CHANNEL_SIZE  # all queued
            assert hub.position < len(hub.feed_frames)  # mid-stream
            reply = await trio.to_thread.run_sync(call, config.control.socket, "shutdown", [])
            assert reply["ok"], reply
    assert status == [0]

    received = runtime.received  # counted as the client handed each fact on
    with EventLog(parse_store_url(config.store_url)) as log:
        logged = [f for _, f in log.facts(SESSION)]
        states = log.stream_events("source-states")
    assert len(logged) == received  # every one, none twice
    assert [(f.topic, f.payload) for f in logged if isinstance(f, MessageReceived)] == [
        (f.topic, f.payload) for f in expected[:received]
    ]
    assert not [e for e in states if isinstance(e, FactsUnwritten)]


# -- the drain's deadline passes: what was not written is counted, never silent ---------------


class StallingStore:
    """`EventLog.append_facts` that, once `stall` is set, has no answer until `release`,
    and then refuses (a store gone away: nothing of what it was given is written)."""

    def __init__(self, append: Callable[..., AppendResult]) -> None:
        self._append = append
        self.stall = threading.Event()
        self.release = threading.Event()
        self.stalled = 0  # appends that got no answer

    def append_facts(self, log: EventLog, facts: Iterable[Fact]) -> AppendResult:
        if not self.stall.is_set():
            return self._append(log, facts)
        self.stalled += 1
        self.release.wait(60)
        raise sqlite3.OperationalError("disk I/O error")


async def test_facts_left_when_the_drain_deadline_passes_are_counted_in_one_event(
    fp2: Recording,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topics = sorted({f.topic for f in fp2.facts(SESSION) if isinstance(f, MessageReceived)})
    hub = ReplayHub.from_recording(fp2, Faults(frames_per_message=20))
    store = StallingStore(EventLog.append_facts)

    def append_facts(log: EventLog, facts: Iterable[Fact]) -> AppendResult:
        return store.append_facts(log, facts)

    monkeypatch.setattr(EventLog, "append_facts", append_facts)
    expected = [f for f in fp2.facts(SESSION) if isinstance(f, MessageReceived)]
    status: list[int] = []

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        status.append(await daemon.run(task_status=task_status))

    async with serve_signalr(hub) as url:
        config = live_config(tmp_path, url, topics)
        # 2 s to drain: the sources get 1 s of it, the writer and the records the rest.
        deadline = config.daemon.model_copy(update={"shutdown_deadline_s": 2.0})
        config = config.model_copy(update={"daemon": deadline})
        daemon = Daemon(config, notifier=TimedNotifier())
        async with trio.open_nursery() as nursery:
            await nursery.start(run)
            runtime = daemon.sources["live"]
            with trio.fail_after(30):
                while runtime.position == 0:  # noqa: ASYNC110 - a count
                    await trio.sleep(0.01)
                store.stall.set()  # the next append gets no answer
                # The client goes on receiving until the queue is full and it waits.
                while not store.stalled or runtime.received - runtime.position <= CHANNEL_SIZE:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            reply = await trio.to_thread.run_sync(call, config.control.socket, "shutdown", [])
            assert reply["ok"], reply
            with trio.fail_after(10):
                while not daemon.source_states.unwritten_facts:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            store.release.set()  # (its thread must end for the daemon to exit)
    assert status == [1]  # not a clean stop: facts were not written

    received = runtime.received  # counted as the client handed each fact on
    with EventLog(parse_store_url(config.store_url)) as log:
        logged = [f for _, f in log.facts(SESSION)]
        states = log.stream_events("source-states")
    (unwritten,) = [e for e in states if isinstance(e, FactsUnwritten)]
    assert unwritten.count == received - len(logged) > CHANNEL_SIZE  # queued + the stalled batch
    assert (unwritten.source, unwritten.session) == ("live", SESSION)
    assert unwritten.reason == "the shutdown's deadline for draining it passed"
    # What the log holds is the feed's first facts, in order, none twice.
    assert [(f.topic, f.payload) for f in logged if isinstance(f, MessageReceived)] == [
        (f.topic, f.payload) for f in expected[: len(logged)]
    ]
    line = f"source live: {unwritten.count} received facts not written: {unwritten.reason}"
    assert line in [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
