"""The writer gets over a store that goes away: PostgreSQL stopped mid-ingest, a full disk.

Real infrastructure only: a PostgreSQL cluster of the test's own (so that stopping
it disturbs no other test) and a small tmpfs that really fills up. Sources send the
2018 Baku race's messages through one `StoreWriter`; while the store is away the
writer must say so within seconds, stop acknowledging, and hold the sources back
with a full mailbox; when the store is back, ingestion must finish with every
message in the log exactly once.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from f1daemon.domain.events import LapCompleted, MessageReceived
from f1daemon.services.derivation import derive_session, verify_run
from f1daemon.sources.archive import read_facts, session_key_for, topic_files
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from f1daemon.store.writer import StoreWriter
from tests.conftest import IN_CI
from tests.pgcluster import PgCluster, find_pg_bin, private_cluster

BAKU = "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
SOURCES = 12  # more senders than the mailbox holds, so that some must wait to send
MAILBOX = 4
CHUNK = 100  # facts a request
MAX_BATCH = 300  # at most 3 requests a batch: the other 9 fill the mailbox and wait
NOTICE_WITHIN_S = 6.0  # the writer's stall watch fires after 3 s
# Long enough for the connection pool to have backed off: left to itself, it retried
# after 1, 2, 4, 8 s… and found a server back after 10 s only some 5 s later.
OUTAGE_S = 10.0


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of this test's own, which it may stop and start."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        reason = "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)"
        if IN_CI:
            pytest.fail(f"{reason} are required under CI=true")
        pytest.skip(f"{reason} are not installed")
    with private_cluster(pg_bin) as cluster:
        yield cluster


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs: the 2018 Baku race takes some 15 MiB in SQLite."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mountpoint)],
            capture_output=True,
            text=True,
            check=False,
        )
        error = mounted.stderr.strip() if mounted.returncode else None
    except FileNotFoundError:
        error = "no mount command"
    if error is not None:
        reason = f"cannot mount a tmpfs ({error}); this test needs root"
        if IN_CI and os.geteuid() == 0:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def baku_facts(testdata: Path) -> list[MessageReceived]:
    folder = testdata / "livetiming" / BAKU
    facts = read_facts(session_key_for(folder), topic_files(folder))
    return [f for f in facts if isinstance(f, MessageReceived)]  # every line is UTF-8


@dataclass
class Progress:
    offered: int = 0  # facts handed to the writer
    acknowledged: int = 0  # facts the writer said were committed


async def ingest(writer: StoreWriter, facts: Sequence[MessageReceived], progress: Progress) -> None:
    """SOURCES senders, each handing over its share of the facts a chunk at a time."""
    chunks = [facts[i : i + CHUNK] for i in range(0, len(facts), CHUNK)]

    async def source(mine: list[Sequence[MessageReceived]]) -> None:
        for chunk in mine:
            progress.offered += len(chunk)
            await writer.append(chunk)
            progress.acknowledged += len(chunk)

    async with trio.open_nursery() as nursery:
        for index in range(SOURCES):
            nursery.start_soon(source, chunks[index::SOURCES])


async def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110  (state changed by other tasks and threads)
            await trio.sleep(0.02)


async def take_away_and_give_back_the_store(
    writer: StoreWriter,
    facts: Sequence[MessageReceived],
    take_away: Callable[[], Awaitable[None]],
    give_back: Callable[[], Awaitable[None]],
    *,
    after: int,
    error: str,
) -> dict[str, float]:
    """Ingest the facts, taking the store away once `after` are acknowledged; time it."""
    progress = Progress()
    times: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        done = trio.Event()

        async def ingest_all() -> None:
            await ingest(writer, facts, progress)
            done.set()

        nursery.start_soon(ingest_all)
        await wait_until(lambda: progress.acknowledged >= after, 30)
        await take_away()
        gone = trio.current_time()

        # The writer says so within seconds, with the store's reason.
        await wait_until(lambda: not writer.health.healthy, NOTICE_WITHIN_S)
        times["noticed_s"] = trio.current_time() - gone
        assert error in (writer.health.last_error or "")
        # Back-pressure: the mailbox fills, nothing more is acknowledged, and every
        # source has a request outstanding (in the batch, in the mailbox, or waiting
        # to get into it).
        await wait_until(lambda: writer.mailbox_depth() == MAILBOX, 5)
        acknowledged = progress.acknowledged
        await trio.sleep(1.0)
        assert progress.acknowledged == acknowledged < len(facts)
        assert progress.offered - progress.acknowledged == SOURCES * CHUNK
        assert writer.mailbox_depth() == MAILBOX
        assert not writer.health.healthy

        await give_back()
        back = trio.current_time()
        await wait_until(lambda: progress.acknowledged > acknowledged, 15)
        times["resumed_s"] = trio.current_time() - back
        with trio.fail_after(30):
            await done.wait()
        await writer.close()
    assert writer.health.healthy
    assert writer.health.facts == progress.acknowledged == len(facts)
    return times


def assert_logged_exactly_once(log: EventLog, facts: Sequence[MessageReceived]) -> None:
    (session,) = {f.session for f in facts}
    logged = [(f.stream, f.sequence) for _, f in log.facts(session)]
    assert len(logged) == len(set(logged)) == len(facts)  # nothing doubled
    assert set(logged) == {(f.stream, f.sequence) for f in facts}  # nothing lost


async def test_postgresql_stopped_and_started_mid_ingest_loses_and_doubles_nothing(
    pg_cluster: PgCluster, testdata: Path
) -> None:
    facts = baku_facts(testdata)
    url = pg_cluster.url()
    log = EventLog(parse_store_url(url))
    writer = StoreWriter(log, mailbox_size=MAILBOX, max_batch=MAX_BATCH, retry_cap=2.0)

    stopped_at = 0.0

    async def stop() -> None:
        nonlocal stopped_at
        await trio.to_thread.run_sync(pg_cluster.stop)
        stopped_at = trio.current_time()

    async def start() -> None:
        await trio.sleep_until(stopped_at + OUTAGE_S)
        await trio.to_thread.run_sync(pg_cluster.start)

    try:
        with trio.fail_after(60):
            times = await take_away_and_give_back_the_store(
                writer, facts, stop, start, after=len(facts) // 4, error="StoreNotAnswering"
            )
    finally:
        log.close()
    assert times["noticed_s"] < NOTICE_WITHIN_S
    assert times["resumed_s"] < 3  # the pool tries again within its reconnect window
    assert writer.health.stalls >= 1
    with EventLog(parse_store_url(url)) as reader:
        assert_logged_exactly_once(reader, facts)


async def test_a_full_disk_holds_the_sources_until_there_is_room_again(
    small_disk: Path, testdata: Path
) -> None:
    facts = baku_facts(testdata)
    database = small_disk / "events.db"
    log = EventLog(parse_store_url(f"sqlite:///{database}"))
    writer = StoreWriter(
        log, mailbox_size=MAILBOX, max_batch=MAX_BATCH, retry_initial=0.25, retry_cap=1.0
    )

    async def fills_up() -> None:
        await wait_until(lambda: not writer.health.healthy, 30)

    async def make_room() -> None:
        # The operator frees space: here the tmpfs grows, as a volume would be resized.
        assert writer.health.failures >= 2  # refused, and refused again on retrying
        await trio.run_process(["mount", "-o", "remount,size=64m", str(small_disk)])

    try:
        with trio.fail_after(60):
            times = await take_away_and_give_back_the_store(
                writer, facts, fills_up, make_room, after=0, error="database or disk is full"
            )
        assert times["resumed_s"] < 3  # the next retry, a second at most
        assert_logged_exactly_once(log, facts)
        # The file the full disk interrupted is sound, and derives the race: all 841 laps.
        with closing(sqlite3.connect(database)) as check:
            assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        (session,) = {f.session for f in facts}
        log.register_session(session, origin=BAKU)
        completed = derive_session(log, session)
        events = log.derived_events(session, completed.run)
        assert sum(isinstance(e, LapCompleted) for e in events) == 841
        assert verify_run(log, session, completed).problems == ()
    finally:
        log.close()
