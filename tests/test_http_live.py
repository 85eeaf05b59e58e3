"""Live tables over server-sent events (`/v1/live/…`), served by Hypercorn's trio
worker on a real socket: every row once, in order, resumed after a reconnect with
`Last-Event-ID`, ending as `/v1/{endpoint}` has the table; bad requests get a 4xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from f1daemon.http.app import APISettings, create_app
from f1daemon.http.server import listen, serve_http
from f1daemon.services.ingest import ingest_paths
from f1daemon.services.reader import Reader
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.sse_client import read_stream

BAKU = "livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
SETTINGS = APISettings(poll_s=0.02, heartbeat_s=0.3)


@pytest.fixture(scope="module")
def baku_url(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'events.db'}"
    with EventLog(parse_store_url(url)) as log:
        ingest_paths(log, [testdata / BAKU])
    return url


@asynccontextmanager
async def served(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API over a store on a local port, and a client of it."""
    with EventLog(parse_store_url(url)) as log:
        app = create_app(Reader(log), SETTINGS)
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            config = listen("127.0.0.1", 0)
            (address,) = await nursery.start(serve_http, app, config, shutdown)
            async with httpx.AsyncClient(base_url=address, timeout=10) as client:
                yield client
            shutdown.set()


async def messages(
    client: httpx.AsyncClient, path: str, *, last_id: str | None = None, stop: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """A stream's messages (id, event, data) and heartbeats: the first `stop` of them,
    or (without `stop`) all until its first heartbeat (the stream has gone quiet)."""
    got: list[dict[str, Any]] = []
    heartbeats = 0

    def keep_reading(message: dict[str, Any]) -> bool:
        nonlocal heartbeats
        if message["event"] == "heartbeat":
            heartbeats += 1
            return stop is not None
        if message["event"] != "retry":
            got.append(message)
        return len(got) != stop

    await read_stream(str(client.base_url), path, keep_reading, last_id)
    return got, heartbeats


async def test_a_subscriber_gets_each_lap_once_and_resumes_after_its_last_id(
    baku_url: str,
) -> None:
    path = "/v1/live/laps?session_key=latest&driver_number=44"
    async with served(baku_url) as client:
        table = (await client.get("/v1/laps?session_key=latest&driver_number=44")).json()
        first, _ = await messages(client, path, stop=20)
        rest, _ = await messages(client, path, last_id=first[-1]["id"])
    everything = first + rest
    ids = [m["id"] for m in everything]
    assert len(set(ids)) == len(ids)
    held: dict[int, dict[str, Any]] = {}
    for m in everything:
        assert m["event"] in ("row", "update", "remove")
        lap = m["data"]["lap_number"]
        assert (lap in held) == (m["event"] != "row")
        held[lap] = m["data"]
    assert sorted(held) == [row["lap_number"] for row in table]
    assert [held[lap] for lap in sorted(held)] == table  # as /v1/laps has them


async def test_a_quiet_stream_sends_heartbeats_and_a_filter_holds_for_every_row(
    baku_url: str,
) -> None:
    async with served(baku_url) as client:
        path = "/v1/live/pit?session_key=5090&lap_number>=20"
        pits = (await client.get("/v1/pit?session_key=5090&lap_number>=20")).json()
        got, heartbeats = await messages(client, path)
    assert heartbeats == 1
    assert [m["data"] for m in got] == pits
    assert all(m["data"]["lap_number"] >= 20 for m in got)


@pytest.mark.parametrize(
    ("path", "headers", "status", "says"),
    [
        ("/v1/live/car_data?session_key=5090", {}, 404, "cannot be followed"),
        ("/v1/live/laps", {}, 400, "one session"),
        ("/v1/live/laps?session_key=1", {}, 404, "no session with session_key 1"),
        ("/v1/live/laps?session_key=5090&version=full", {}, 400, "no version"),
        ("/v1/live/laps?session_key=5090&speed>3", {}, 400, "no field 'speed'"),
        ("/v1/live/laps?session_key=5090", {"Last-Event-ID": "x"}, 400, "RUN:VERSION"),
    ],
)
async def test_a_stream_that_cannot_be_is_refused_with_a_reason(
    baku_url: str, path: str, headers: dict[str, str], status: int, says: str
) -> None:
    async with served(baku_url) as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == status
    assert says in response.json()["detail"]
