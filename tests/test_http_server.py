"""The HTTP API served: Hypercorn's trio worker on a real port, its token, its bounds
(concurrency, deadline), its drain, and `f1daemon serve`'s refusals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from starlette.types import Receive, Scope, Send

import f1daemon
from f1daemon.api import Store
from f1daemon.cli import main
from f1daemon.http.app import APISettings, Guard, create_app
from f1daemon.http.server import listen, serve_http

MEXICO_Q = "2021-11-07_Mexico_City_Grand_Prix__2021-11-06_Qualifying"


@pytest.fixture(scope="module")
def store_url(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('served') / 'events.db'}"
    assert main(["ingest", str(testdata / "livetiming" / MEXICO_Q), "--store", url]) == 0
    return url


@pytest.fixture
def data(store_url: str) -> Iterator[Store]:
    with f1daemon.open(store_url) as opened:
        yield opened


async def test_hypercorn_serves_the_api_with_its_token_and_drains(data: Store) -> None:
    app = create_app(data.reader, APISettings(token="s3cret"))  # noqa: S106 - the test's own
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        (bind,) = await nursery.start(serve_http, app, listen("127.0.0.1", 0), shutdown)
        assert bind.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=bind) as http:
            refused = await http.get("/v1/sessions")
            assert refused.status_code == 401
            assert refused.json() == {"detail": "a bearer token is required"}
            assert refused.headers["www-authenticate"] == "Bearer"
            wrong = await http.get("/v1/sessions", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            answered = await http.get(
                "/v1/laps?driver_number=11&lap_number=2", headers={"Authorization": "Bearer s3cret"}
            )
            assert answered.status_code == 200
            assert [(r["session_key"], r["driver_number"]) for r in answered.json()] == [(6565, 11)]
        started = trio.current_time()
        shutdown.set()
    # Nothing was under way: it stops at once, well within the graceful timeout.
    assert trio.current_time() - started < 5


async def _slow(scope: Scope, receive: Receive, send: Send) -> None:
    await trio.sleep(10)


async def test_requests_beyond_the_concurrency_limit_are_told_to_retry() -> None:
    app = Guard(_slow, APISettings(max_concurrent=2, request_timeout_s=0.5))
    transport = httpx.ASGITransport(app=app)
    statuses: list[int] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://f1") as http:

        async def one() -> None:
            statuses.append((await http.get("/v1/laps")).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(one)
            await trio.sleep(0.1)  # both under way
            busy = await http.get("/v1/laps")
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "1"
            assert busy.json() == {"detail": "busy: 2 requests at once"}
    # The two slow ones reached their deadline: a 504 that says so.
    assert statuses == [504, 504]
    assert app.active == 0


async def test_a_request_past_its_deadline_gets_a_504_with_a_message() -> None:
    app = Guard(_slow, APISettings(request_timeout_s=0.2))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://f1"
    ) as http:
        response = await http.get("/v1/laps")
    assert response.status_code == 504
    assert response.json() == {"detail": "the request took longer than 0.2 s"}


def test_serve_refuses_to_bind_beyond_localhost_without_a_token(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--store", store_url, "--host", "0.0.0.0"]) == 2  # noqa: S104
    assert "needs a bearer token" in capsys.readouterr().err
    empty = tmp_path / "token"
    empty.write_text("\n")
    assert main(["serve", "--store", store_url, "--token-file", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["serve", "--store", missing, "--port", str(port)]) == 2
    assert "no event log" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    # The port it bound first is free again (it stayed bound in the process, so a later
    # server there failed and clients hung).
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))


def test_f1daemon_serve_answers_and_stops_on_sigterm(store_url: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    argv = ["serve", "--store", store_url, "--port", "0", "--token-file", str(token)]
    process = subprocess.Popen(
        [sys.executable, "-m", "f1daemon", *argv],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith(f"serving {store_url} on http://127.0.0.1:"), line
        url = line.split(" on ")[1].strip()
        response = httpx.get(
            f"{url}sessions", headers={"Authorization": "Bearer t0ken"}, timeout=30
        )
        assert response.status_code == 200
        assert [s["session_name"] for s in response.json()] == ["Qualifying"]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
        assert "draining" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
