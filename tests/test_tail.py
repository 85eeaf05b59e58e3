"""Following a table as it is committed (`f1daemon.services.tail`): each row once, in
order, resumable by id, restarted on another run, on the real Baku 2018 race."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from f1daemon.errors import UserError
from f1daemon.projections.exports import export_table
from f1daemon.services.derivation import current_events, derive_session
from f1daemon.services.ingest import ingest_paths
from f1daemon.services.tail import RowId, TableTail, TailRow
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

T = TypeVar("T")
BAKU = "livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"


@pytest.fixture(scope="module")
def baku_log(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tail") / "events.db"
    with EventLog(parse_store_url(f"sqlite:///{path}")) as log:
        ingest_paths(log, [testdata / BAKU])
    return path


def _reader(log: EventLog) -> Callable[[Callable[[EventLog], T]], Any]:
    async def read(call: Callable[[EventLog], T]) -> T:
        return await trio.to_thread.run_sync(call, log)

    return read


async def _take(
    tail: TableTail, log: EventLog, count: int | None = None, since: RowId | None = None
) -> list[TailRow]:
    """The tail's changes: the first `count`, or all until it has had nothing for a
    second (its heartbeat)."""
    taken: list[TailRow] = []
    async with aclosing(tail.changes(_reader(log), since, heartbeat_s=1.0)) as pages:
        async for page in pages:
            if page[0].change == "heartbeat":
                break
            taken.extend(page)
            if count is not None and len(taken) >= count:
                break
    return taken if count is None else taken[:count]


def _key(row: dict[str, Any]) -> tuple[int, int]:
    return row["driver"], row["lap"]


async def test_a_tail_sends_every_lap_once_in_order_as_the_export_has_it(baku_log: Path) -> None:
    with EventLog(parse_store_url(f"sqlite:///{baku_log}")) as log:
        session = log.sessions()[0]
        exported = export_table("laps", current_events(log, session)).to_pylist()
        taken = await _take(TableTail(session, "laps"), log)
    ids = [item.id for item in taken]
    assert ids == sorted(ids)  # in log order
    assert len(set(ids)) == len(ids)  # each once
    # A client keeping the last row per (driver, lap) holds the export's laps.
    held: dict[tuple[int, int], dict[str, Any]] = {}
    for item in taken:
        assert item.row is not None
        assert item.change in ("row", "update", "remove")
        if item.change == "remove":
            held.pop(_key(item.row))
        else:
            assert (_key(item.row) in held) == (item.change == "update")
            held[_key(item.row)] = item.row
    assert held == {_key(row): row for row in exported}
    # Updates: the tyres the feed named after the lap (lap 1 before TimingAppData's
    # first stint; Räikkönen's third set, first SOFT, then ULTRASOFT).
    updated = {_key(i.row) for i in taken if i.change == "update" and i.row is not None}
    assert {(7, 1), (7, 3), (44, 1)} <= updated


async def test_a_tail_resumes_after_the_last_id_without_a_gap_or_a_duplicate(
    baku_log: Path,
) -> None:
    with EventLog(parse_store_url(f"sqlite:///{baku_log}")) as log:
        session = log.sessions()[0]
        whole = await _take(TableTail(session, "laps"), log)
        first = whole[:300]
        rest = await _take(TableTail(session, "laps"), log, since=first[-1].id)
    assert [i.id for i in first + rest] == [i.id for i in whole]
    assert [i.row for i in first + rest] == [i.row for i in whole]


async def test_another_run_becoming_current_resets_the_tail(baku_log: Path, tmp_path: Path) -> None:
    copy = tmp_path / "events.db"
    shutil.copyfile(baku_log, copy)
    with EventLog(parse_store_url(f"sqlite:///{copy}")) as log:
        session = log.sessions()[0]
        before = await _take(TableTail(session, "laps"), log, 10)
        derive_session(log, session)  # a new run: the session's data again
        after = await _take(TableTail(session, "laps"), log, 3, since=before[-1].id)
        whole = await _take(TableTail(session, "laps"), log)
        tail = TableTail(session, "laps", poll_s=0.01)
        items: list[TailRow] = []
        read = _reader(log)

        async def follow() -> None:
            async with aclosing(tail.changes(read)) as pages:
                async for page in pages:
                    items.extend(page)
                    if len(items) >= len(whole) + 3:
                        return

        with trio.move_on_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                await trio.sleep(0.5)
                await trio.to_thread.run_sync(derive_session, log, session)
    run = before[-1].id.run
    changes = [(i.change, i.id.run) for i in after]
    assert changes == [("reset", run + 1), ("row", run + 1), ("row", run + 1)]
    # Every change of that run, then a reset, then the next run's first rows, the same.
    assert items[: len(whole)] == whole
    reset = items[len(whole)]
    assert (reset.change, reset.id.run) == ("reset", run + 2)
    assert [i.row for i in items[len(whole) + 1 : len(whole) + 3]] == [i.row for i in whole[:2]]


def test_a_bad_id_and_a_table_that_cannot_be_tailed_are_refused() -> None:
    with pytest.raises(UserError, match="expected RUN:VERSION"):
        RowId.parse("12")
    assert RowId.parse(" 3:1042 ") == RowId(3, 1042)
    assert RowId.parse(str(RowId(3, 1042, 2))) == RowId(3, 1042, 2) > RowId(3, 1042)
    with pytest.raises(UserError):
        RowId.parse("3:10.x")
    with pytest.raises(UserError, match="no live table"):
        TableTail("s", "telemetry")
