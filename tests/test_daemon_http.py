"""The HTTP API inside `f1daemon run` ([http]): served from the daemon's nursery while it
derives, the same rows as `f1daemon serve` and the exports, shut first at a drain."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import f1daemon
from f1daemon.cli import main
from f1daemon.config import Config, load_config
from f1daemon.control.protocol import Request
from f1daemon.daemon.app import EXIT_OK, Daemon
from f1daemon.errors import UserError


def http_config(tmp_path: Path, recording: Path, *http: str) -> Config:
    lines = [
        "[daemon]",
        f'state_dir = "{tmp_path}"',
        f'store = "sqlite:///{tmp_path / "events.db"}"',
        "[control]",
        f'socket = "{tmp_path / "ctl.sock"}"',
        "[metrics]",
        "enabled = false",
        "[http]",
        "enabled = true",
        *http,
    ]
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "f1daemon.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path, environ={}, sources=(f"recording:{recording}@max",))


def _lap_keys(laps: list[dict[str, Any]]) -> list[tuple[int, int, float | None]]:
    return [(lap["driver_number"], lap["lap_number"], lap["lap_duration"]) for lap in laps]


async def test_the_daemon_serves_what_it_derives(testdata: Path, tmp_path: Path) -> None:
    recording = testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt"
    # The capture ingested in one batch elsewhere: the laps the live run makes final.
    batch = f"sqlite:///{tmp_path / 'batch.db'}"
    assert main(["ingest", str(recording), "--store", batch]) == 0
    with f1daemon.open(batch) as data:
        expected = {
            (lap["driver"], lap["lap"]): lap["lap_time_ms"]
            for lap in data.session(9088).laps().to_pylist()
        }
    config = http_config(tmp_path / "daemon", recording, "port = 0")
    daemon = Daemon(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        (bind,) = daemon.http.binds
        async with httpx.AsyncClient(base_url=f"{bind}/v1/") as http:
            # Served while the daemon derives; settled once it has read the capture
            # (the laps in progress at its end wait for the session to end).
            previous: list[dict[str, Any]] = []
            with trio.fail_after(120):
                while True:
                    laps = (await http.get("laps?session_key=9088")).json()
                    if laps and laps == previous:
                        break
                    previous = laps
                    await trio.sleep(1)
        reply = await daemon.handle(Request(command="status", args=()))
        assert isinstance(reply, dict)
        assert reply["http"] == [bind]
        daemon.request_shutdown()
    assert len(laps) > 50
    for driver, number, duration in _lap_keys(laps):
        ms = expected[(driver, number)]
        assert duration == (None if ms is None else ms / 1000)
    # The same rows as the daemon's log exports.
    with f1daemon.open(config.store_url) as data:
        exported = data.session(9088).laps().to_pylist()
    assert [(lap["driver"], lap["lap"]) for lap in exported] == [
        (driver, number) for driver, number, _ in _lap_keys(laps)
    ]


async def test_the_daemon_stops_before_the_store_when_the_api_cannot_listen(
    testdata: Path, tmp_path: Path
) -> None:
    recording = testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = Daemon(http_config(tmp_path, recording, f"port = {port}"))
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}"):
            await daemon.run()
    assert not (tmp_path / "events.db").exists()  # the store was never opened
    exposed = Daemon(http_config(tmp_path, recording, 'host = "0.0.0.0"', "port = 0"))
    with pytest.raises(UserError, match="needs a bearer token"):
        await exposed.run()


async def test_a_drain_lets_the_daemon_exit_zero_with_the_api_on(
    testdata: Path, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("abc\n")
    recording = testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt"
    config = http_config(tmp_path, recording, "port = 0", f'token_file = "{token}"')
    daemon = Daemon(config)
    exit_status: list[int] = []

    async def run() -> None:
        exit_status.append(await daemon.run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        with trio.fail_after(60):
            while not daemon.http.binds:  # noqa: ASYNC110 - the daemon has no event for it
                await trio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"{daemon.http.binds[0]}/v1/") as http:
            assert (await http.get("sessions")).status_code == 401
            ok = await http.get("sessions", headers={"Authorization": "Bearer abc"})
            assert ok.status_code == 200
        daemon.request_shutdown()
    assert exit_status == [EXIT_OK]
