"""`f1daemon run` with a recording at speed and a live subscriber: every lap the daemon
derives reaches the subscriber once, in order, within a second of its commit to the
log (measured here), across a reconnect with `Last-Event-ID`."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import trio

from f1daemon.config import load_config
from f1daemon.daemon.app import Daemon
from f1daemon.domain.events import LapCompleted
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.sse_client import Message, read_stream

MONACO_FP2 = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"
SPEED = 20  # x real time: the capture's 6 minutes in about 20 s
POLL_S = 0.05  # how often the test looks at the log for newly committed laps


async def test_every_lap_reaches_a_subscriber_once_within_a_second_of_its_commit(
    testdata: Path, tmp_path: Path
) -> None:
    recording = testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt"
    store = f"sqlite:///{tmp_path / 'events.db'}"
    config_file = tmp_path / "f1daemon.toml"
    config_file.write_text(
        "\n".join(
            [
                "[daemon]",
                f'state_dir = "{tmp_path}"',
                f'store = "{store}"',
                "[control]",
                f'socket = "{tmp_path / "ctl.sock"}"',
                "[metrics]",
                "enabled = false",
                "[http]",
                "enabled = true",
                "port = 0",
            ]
        )
        + "\n"
    )
    config = load_config(config_file, environ={}, sources=(f"recording:{recording}@{SPEED}",))
    daemon = Daemon(config)
    committed: dict[tuple[int, int], float] = {}  # a lap's key → when the log first had it
    messages: list[Message] = []
    connections = 0
    subscribed: list[float] = []
    session_logged = trio.Event()

    def new_laps(log: EventLog, after: int) -> tuple[int, list[tuple[int, int]]]:
        run = log.current_run(MONACO_FP2)
        if run is None:
            return after, []
        events = log.stream_events_after(f"derived:{MONACO_FP2}:{run}", after)
        laps = [(e.driver, e.lap) for _, e in events if isinstance(e, LapCompleted)]
        return (events[-1][0] if events else after), laps

    async def watch_the_log() -> None:
        after = 0
        with EventLog(parse_store_url(store)) as log:
            while True:
                after, laps = await trio.to_thread.run_sync(new_laps, log, after)
                now = trio.current_time()
                for key in laps:
                    committed.setdefault(key, now)
                if committed:
                    session_logged.set()
                await trio.sleep(POLL_S)

    async def subscribe(address: str) -> None:
        nonlocal connections
        path = "/v1/live/laps?session_key=9088"
        await session_logged.wait()  # the session is followed once the log has it
        subscribed.append(trio.current_time())

        def first(message: Message) -> bool:  # the first connection: 15 rows
            if message["event"] in ("row", "update", "remove"):
                messages.append(message)
            return len(messages) < 15

        def rest(message: Message) -> bool:
            if message["event"] in ("row", "update", "remove"):
                messages.append(message)
            return True

        connections += 1
        await read_stream(address, path, first)
        connections += 1
        await read_stream(address, path, rest, messages[-1]["id"])

    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        (address,) = daemon.http.binds
        nursery.start_soon(watch_the_log)
        nursery.start_soon(subscribe, address)
        # Done when the recording has been read, nothing new has come for 3 s, and
        # the subscriber holds every lap the log has.
        with trio.fail_after(150):
            while True:
                await trio.sleep(3)
                seen = {(m["data"]["driver_number"], m["data"]["lap_number"]) for m in messages}
                quiet = messages and trio.current_time() - messages[-1]["received"] > 3
                if quiet and len(committed) > 50 and seen == set(committed):
                    break
        daemon.request_shutdown()
        nursery.cancel_scope.cancel()

    assert connections == 2
    ids = [m["id"] for m in messages]
    assert len(set(ids)) == len(ids), "a message twice"
    held: dict[tuple[int, int], dict[str, Any]] = {}
    latencies = []
    for m in messages:
        key = (m["data"]["driver_number"], m["data"]["lap_number"])
        assert (key in held) == (m["event"] != "row"), f"{m['event']} of {key} out of order"
        if m["event"] == "row" and committed[key] > subscribed[0]:
            latencies.append(m["received"] - committed[key])
        held[key] = m["data"]
    assert set(held) == set(committed)  # every lap once
    assert len(latencies) > 30  # laps committed while the subscriber was connected
    # Within a second of the commit (the log is looked at every POLL_S: a lap is seen
    # committed up to that much after it was).
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    print(
        f"{len(latencies)} laps; latency from commit p50 {statistics.median(latencies):.3f} s, "
        f"max {max(latencies):.3f} s"
    )
