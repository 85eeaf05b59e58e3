"""The daemon in-process on trio's virtual clock: faults, supervision, shutdown, watchdog."""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from f1daemon.config import Config, SourceSettings, load_config
from f1daemon.control.protocol import Request
from f1daemon.daemon.app import EXIT_FAILED, EXIT_OK, Daemon
from f1daemon.daemon.lifecycle import SessionState
from f1daemon.daemon.sessions import feed_statuses
from f1daemon.daemon.sources import Emit, SourceRuntime
from f1daemon.domain.events import (
    Fact,
    MessageReceived,
    RecordQuarantined,
    SessionStateChanged,
    SourceStateChanged,
    TelemetryShed,
)
from f1daemon.sdnotify import Notifier
from f1daemon.store.eventlog import AppendResult, EventLog
from f1daemon.store.url import parse_store_url

FAULTY_SESSION = "2026/Faulty_Source"


def daemon_config(tmp_path: Path, *, sources: tuple[str, ...] = (), **overrides: str) -> Config:
    lines = [
        "[daemon]",
        f'state_dir = "{tmp_path}"',
        f'store = "sqlite:///{tmp_path / "events.db"}"',
        # Virtual seconds: under the autojump clock they run by while the derivation
        # works on its thread, so the default deadline is far away.
        f"shutdown_deadline_s = {overrides.get('deadline', '10000000')}",
        "[control]",
        f'socket = "{tmp_path / "ctl.sock"}"',
        "[metrics]",
        "enabled = false",
        "[supervision]",
        "backoff_jitter = 0",
        "stall_timeout_s = 10",
    ]
    path = tmp_path / "f1daemon.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path, environ={}, sources=sources)


class TimedNotifier(Notifier):
    """Keeps what was sent with the (virtual) time it was sent."""

    def __init__(self, watchdog_usec: int | None = None) -> None:
        env = {} if watchdog_usec is None else {"WATCHDOG_USEC": str(watchdog_usec)}
        super().__init__(env)
        self.timeline: list[tuple[float, str]] = []

    def notify(self, *fields: str) -> None:
        super().notify(*fields)
        self.timeline.append((trio.current_time(), "\n".join(fields)))


def fact(sequence: int, payload: str = '{"Status": "1", "Message": "AllClear"}') -> MessageReceived:
    return MessageReceived(
        session=FAULTY_SESSION,
        source="faulty",
        stream="TrackStatus",
        topic="TrackStatus",
        sequence=sequence,
        offset_ms=sequence * 1000,
        payload=payload,
    )


class FaultyFeed:
    """A source failing on a schedule: a crash, two connection errors, a hang, then garbage."""

    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self, runtime: SourceRuntime, emit: Emit) -> None:
        self.runs += 1
        runtime.session = FAULTY_SESSION
        runtime.expect_progress(0, 10)
        if self.runs == 1:
            await emit(runtime, [fact(n) for n in range(1, 6)], trio.current_time())
            raise RuntimeError("decoder crashed")
        if self.runs in (2, 3):
            raise ConnectionError("connection reset by peer")
        if self.runs == 4:
            await trio.sleep_forever()  # hangs: only the no-data watchdog ends this run
        garbage: list[Fact] = [
            fact(6, payload='{"Status": garbage'),
            RecordQuarantined(
                session=FAULTY_SESSION,
                source="faulty",
                stream="TrackStatus",
                sequence=7,
                topic=None,
                rule="framing.syntax",
                reason="not a feed frame",
                payload="\x00\x01",
            ),
        ]
        await emit(runtime, garbage, trio.current_time())


async def test_a_faulty_source_beside_a_healthy_one(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = daemon_config(tmp_path, sources=("simulator:monza:5@1",))
    config = config.model_copy(
        update={
            "sources": (
                config.sources[0].model_copy(update={"laps": 3, "cars": 6, "name": "healthy"}),
            )
        }
    )
    faulty = FaultyFeed()
    settings = SourceSettings.model_construct(name="faulty", kind="recording", speed=1.0)
    daemon = Daemon(config, extra_sources=[(settings, faulty)], notifier=TimedNotifier())
    states: list[tuple[float, str, str]] = []
    record = daemon._source_state

    def timed_state(name: str, state: str, detail: object) -> None:
        states.append((trio.current_time(), name, state))
        record(name, state, detail)  # type: ignore[arg-type]

    daemon._source_state = timed_state  # type: ignore[method-assign]

    async def tick() -> None:
        # While the daemon waits on a worker thread, the autojump clock jumps to the
        # next deadline; a second's tick keeps it from jumping to the drain's.
        while True:  # noqa: ASYNC110 - a clock, not a wait
            await trio.sleep(1)

    async with trio.open_nursery() as ticking:
        ticking.start_soon(tick)
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            healthy = daemon.sources["healthy"]

            def done() -> bool:
                track = daemon.sessions.get(healthy.session or "")
                return (
                    track is not None
                    and track.lifecycle.state is SessionState.COMPLETED
                    and daemon.sources["faulty"].state == "stopped"
                )

            while not done():  # noqa: ASYNC110 (polls the daemon's state; no event to wait on)
                await trio.sleep(1)
            daemon.request_shutdown()
        ticking.cancel_scope.cancel()

    # The faulty source's schedule, in exact virtual time: backoff 1 s then 2 s; the
    # third failure opens the breaker for 60 s; the trial hangs until the 10 s no-data
    # watchdog fails it, which reopens the breaker for 60 s; the next trial succeeds.
    # (Appends run on a worker thread, during which the virtual clock may jump, so the
    # delays are measured from each report, not from the start.)
    faulty_states = [(t, s) for t, n, s in states if n == "faulty"]
    assert [s for _, s in faulty_states] == [
        "running",
        "backing-off",
        "running",
        "backing-off",
        "running",
        "circuit-open",
        "running",
        "circuit-open",
        "running",
        "stopped",
    ]
    waits = [round(b[0] - a[0], 6) for a, b in itertools.pairwise(faulty_states)]
    assert waits[1::2] == [1.0, 2.0, 60.0, 60.0]  # failure reported -> next run
    assert waits[6] == 10.0  # the hung trial: started -> failed by the watchdog
    assert faulty.runs == 5

    log = EventLog(parse_store_url(config.store_url))
    # Every record of the healthy source is in the log, once.
    healthy_session = daemon.sources["healthy"].session
    assert healthy_session is not None
    logged = [f for _, f in log.facts(healthy_session)]
    assert len(logged) == daemon.sources["healthy"].total == daemon.sources["healthy"].position
    assert len({(f.stream, f.sequence) for f in logged}) == len(logged)
    assert daemon.sources["healthy"].restarts == 0
    # The faulty one's good and bad records are all there too; garbage is not lost.
    assert [f.sequence for _, f in log.facts(FAULTY_SESSION)] == [1, 2, 3, 4, 5, 6, 7]

    # Its troubles are in the log as SourceStateChanged events ...
    events = [e for e in log.stream_events("source-states") if isinstance(e, SourceStateChanged)]
    faulty_events = [e for e in events if e.source == "faulty"]
    assert [e.state for e in faulty_events] == [s for _, s in faulty_states]
    assert [e.error for e in faulty_events if e.error] == [
        "RuntimeError: decoder crashed",
        "ConnectionError: connection reset by peer",
        "ConnectionError: connection reset by peer",
        "SourceStalledError: no data for 10 s",
    ]
    assert {e.breaker for e in faulty_events if e.state == "circuit-open"} == {"open"}
    assert {e.state for e in events if e.source == "healthy"} == {"running", "stopped"}
    # ... and in the metrics.
    m = daemon.metrics.registry
    assert m.get_sample_value("f1daemon_source_restarts_total", {"source": "faulty"}) == 4
    assert m.get_sample_value("f1daemon_source_restarts_total", {"source": "healthy"}) == 0
    assert (
        m.get_sample_value(
            "f1daemon_errors_total", {"component": "faulty", "kind": "ConnectionError"}
        )
        == 2
    )
    assert (
        m.get_sample_value(
            "f1daemon_validation_failures_total", {"source": "faulty", "rule": "framing.syntax"}
        )
        == 1
    )
    # The simulated session passes the QA rules run after each derivation.
    assert m.get_sample_value("f1daemon_quality_score", {"session": healthy_session}) == 1.0
    # The simulated session went through its whole lifecycle, driven by the feed.
    lifecycle = [
        e.state
        for e in log.stream_events(f"lifecycle:{healthy_session}")
        if isinstance(e, SessionStateChanged)
    ]
    assert lifecycle == ["ACTIVE", "POST_SESSION", "COMPLETED"], lifecycle
    log.close()


class FullDisk(EventLog):
    """A real log on a disk that refuses every append."""

    def append_facts(self, facts: Sequence[Fact]) -> AppendResult:  # type: ignore[override]
        raise OSError(errno.ENOSPC, "No space left on device")


async def test_shutdown_gives_up_at_its_deadline_when_the_store_is_stuck(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    config = daemon_config(tmp_path, deadline="7.5")
    settings = SourceSettings.model_construct(name="one", kind="recording", speed=1.0)

    async def one_batch(runtime: SourceRuntime, emit: Emit) -> None:
        await emit(runtime, [fact(1)], trio.current_time())

    notifier = TimedNotifier()
    daemon = Daemon(
        config, extra_sources=[(settings, one_batch)], notifier=notifier, open_log=FullDisk
    )
    outcome: list[int] = []

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        outcome.append(await daemon.run(task_status=task_status))

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        await trio.sleep(5)
        health = await daemon.handle(Request("health", ()))
        assert isinstance(health, dict)
        assert health["healthy"] is False
        assert health["problems"][0].startswith("store refuses appends: ")
        stop_at = trio.current_time()
        daemon.request_shutdown()
    assert outcome == [EXIT_FAILED]
    stopping = [t for t, m in notifier.timeline if m.startswith("STOPPING=1")]
    assert stopping == [stop_at]
    assert trio.current_time() - stop_at == pytest.approx(7.5)


async def test_shutdown_drains_and_exits_zero(tmp_path: Path) -> None:
    # Real time: the appends run on a worker thread, and a virtual clock would jump
    # past the whole test while one of them is in flight.
    config = daemon_config(tmp_path)
    settings = SourceSettings.model_construct(name="steady", kind="recording", speed=1.0)
    acknowledged: list[int] = []

    async def steady(runtime: SourceRuntime, emit: Emit) -> None:
        for n in range(1, 100_000):
            runtime.expect_progress(1, 10)
            await emit(runtime, [fact(n)], trio.current_time())
            acknowledged.append(n)
            await trio.sleep(0.002)

    daemon = Daemon(config, extra_sources=[(settings, steady)], notifier=TimedNotifier())
    outcome: list[int] = []

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        outcome.append(await daemon.run(task_status=task_status))

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        while len(acknowledged) < 200:  # noqa: ASYNC110 (a count, not an event)
            await trio.sleep(0.05)
        daemon.request_shutdown()  # mid-stream: an append may be in flight
    assert outcome == [EXIT_OK]
    with EventLog(parse_store_url(config.store_url)) as log:
        logged = [f.sequence for _, f in log.facts(FAULTY_SESSION)]
    # Every acknowledged record is in the log; one handed over but not yet
    # acknowledged when the source was stopped may be there too.
    assert logged[: len(acknowledged)] == acknowledged
    assert len(logged) - len(acknowledged) in (0, 1)


async def test_watchdog_pings_at_half_the_interval(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    notifier = TimedNotifier(watchdog_usec=10_000_000)
    assert notifier.watchdog_interval == 10.0
    daemon = Daemon(daemon_config(tmp_path), notifier=notifier)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(21)
        daemon.request_shutdown()
    pings = [t for t, m in notifier.timeline if m == "WATCHDOG=1"]
    # Startup runs on worker threads, during which the virtual clock may jump: the
    # schedule is checked from the first ping on.
    assert len(pings) >= 5
    assert [round(b - a, 6) for a, b in itertools.pairwise(pings)] == [5.0] * (len(pings) - 1)
    ready = [m for _, m in notifier.timeline if m.startswith("READY=1")]
    assert len(ready) == 1


def test_watchdog_is_only_for_our_process() -> None:
    env = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(env).watchdog_interval is None
    env["WATCHDOG_PID"] = str(os.getpid())
    assert Notifier(env).watchdog_interval == 4.0
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_interval is None


class SlowStartDisk(EventLog):
    """A real log whose disk refuses the first appends (full), then recovers."""

    refusals = 2

    def append_facts(self, facts: Sequence[Fact]) -> AppendResult:  # type: ignore[override]
        if SlowStartDisk.refusals > 0:
            SlowStartDisk.refusals -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().append_facts(facts)


async def test_telemetry_is_shed_counted_and_recorded_never_silently(tmp_path: Path) -> None:
    # Real time: the writer's retries run on a worker thread (see the drain test).
    path = tmp_path / "f1daemon.toml"
    daemon_config(tmp_path)  # writes the base file
    path.write_text(
        path.read_text(encoding="utf-8") + "[writer]\nmailbox_size = 1\n", encoding="utf-8"
    )
    config = load_config(path, environ={})
    settings = SourceSettings.model_construct(
        name="live", kind="recording", speed=1.0, shed_telemetry=True
    )
    sent = {"timing": 0, "telemetry": 0}
    done = trio.Event()

    def message(n: int, topic: str) -> MessageReceived:
        sent["telemetry" if topic == "CarData.z" else "timing"] += 1
        return MessageReceived(
            session=FAULTY_SESSION,
            source="live",
            stream="conn-1",
            topic=topic,
            sequence=n,
            offset_ms=n,
            payload="{}",
        )

    async def live(runtime: SourceRuntime, emit: Emit) -> None:
        runtime.expect_progress(60, 10)
        async with trio.open_nursery() as frames:
            # Timing waits for the log (the store refuses it for a while) ...
            frames.start_soon(emit, runtime, [message(1, "TimingData")], trio.current_time())
            await trio.sleep(0.3)  # ... which has failed by now
            # ... while telemetry keeps arriving and is shed instead of waiting.
            for n in range(2, 22):
                await emit(runtime, [message(n, "CarData.z")], trio.current_time())
        # The store is back: everything is logged again, and the gap is recorded.
        await emit(runtime, [message(22, "CarData.z")], trio.current_time())
        done.set()

    SlowStartDisk.refusals = 2
    daemon = Daemon(
        config, extra_sources=[(settings, live)], notifier=TimedNotifier(), open_log=SlowStartDisk
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        with trio.fail_after(30):
            await done.wait()
        daemon.request_shutdown()

    with EventLog(parse_store_url(config.store_url)) as log:
        logged = [f for _, f in log.facts(FAULTY_SESSION)]
        shed_events = [
            e for e in log.stream_events("source-states") if isinstance(e, TelemetryShed)
        ]
    shed = daemon.metrics.registry.get_sample_value(
        "f1daemon_telemetry_shed_total", {"source": "live"}
    )
    assert shed is not None
    assert shed >= 1
    # Timing is never shed; every telemetry message is either logged or counted as shed.
    assert sum(1 for f in logged if f.topic == "TimingData") == sent["timing"]
    telemetry_logged = sum(1 for f in logged if f.topic == "CarData.z")
    assert telemetry_logged + shed == sent["telemetry"]
    assert sum(e.count for e in shed_events) == shed
    assert {e.topic for e in shed_events} == {"CarData.z"}


def test_a_notify_socket_that_is_never_read_does_not_block_the_daemon(tmp_path: Path) -> None:
    # A real datagram socket whose receiver never reads (a stalled manager, a test):
    # its queue fills after a few notifications; further ones are dropped at once.
    import socket
    import threading

    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})

        # On a thread, so that a blocking send fails the test instead of hanging it.
        def send() -> None:
            for _ in range(500):
                notifier.status("x" * 512)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        sender.join(timeout=10)
        assert not sender.is_alive(), "a notification blocked"
        receiver.setblocking(False)
        received = 0
        while True:
            try:
                receiver.recv(4096)
            except BlockingIOError:
                break
            received += 1
        assert 0 < received < 500  # the queue held some, the rest were dropped


async def play_to_the_end(daemon: Daemon, deadline_s: float = 300) -> tuple[int, SourceRuntime]:
    """Run a daemon of one source until that source has stopped (a recording played to
    its end), then shut it down: its exit status, and the source."""
    status: list[int] = []

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        status.append(await daemon.run(task_status=task_status))

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        (source,) = daemon.sources.values()
        with trio.fail_after(deadline_s):
            while source.state != "stopped":  # noqa: ASYNC110 - polls the daemon's state
                await trio.sleep(0.1)
        daemon.request_shutdown()  # the drain derives what the follower has not read
    return status[0], source


def test_sessiondatas_status_series_reports_the_session_status_in_order() -> None:
    snapshot = (
        '{"Series": [], "StatusSeries": [{"Utc": "2023-05-26T14:53:29.509Z", '
        '"TrackStatus": "AllClear"}, {"Utc": "2023-05-26T15:00:00.068Z", '
        '"SessionStatus": "Started"}]}'
    )
    assert feed_statuses("SessionData", snapshot) == ["Started"]
    patch = (
        '{"StatusSeries": {"11": {"SessionStatus": "Finalised"}, '
        '"10": {"SessionStatus": "Finished"}, "12": {"TrackStatus": "AllClear"}}}'
    )
    assert feed_statuses("SessionData", patch) == ["Finished", "Finalised"]
    assert feed_statuses("SessionStatus", '{"Status": "Ends"}') == ["Ends"]
    assert feed_statuses("SessionData", "not json") == []


async def test_a_capture_without_sessionstatus_is_active_by_its_sessiondata(
    testdata: Path, tmp_path: Path
) -> None:
    # The 2023 Monaco FP2 capture did not subscribe to SessionStatus: the session was
    # PRE_SESSION throughout. Its snapshot's SessionData says the session Started.
    capture = testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt"
    config = daemon_config(tmp_path, sources=(f"recording:{capture}@max",))
    daemon = Daemon(config)
    _, source = await play_to_the_end(daemon)
    log = EventLog(parse_store_url(config.store_url))
    with log:
        changes = [
            (e.state, e.feed_status)
            for e in log.stream_events(f"lifecycle:{source.session}")
            if isinstance(e, SessionStateChanged)
        ]
    assert changes == [("ACTIVE", "Started")]
