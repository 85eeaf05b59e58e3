"""The store's faults in words an operator can act on: full, damaged, unreadable, refused.

A driver's error (sqlite3's, psycopg's, wrapped by eventsourcing) is a traceback to an
operator; the faults a user can cause or fix — a full disk, a damaged SQLite file, a
store opened read-only, a server that refuses the login — become one `StoreFault`
line (exit status 2 in the CLI; the writer's health reason in the daemon). Every
transaction is atomic, so a fault mid-append leaves nothing half-written: what the
failed transaction held is not in the log, and running the command again appends it.
Faults not listed here stay the exceptions they are (bugs are not hidden as faults).
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import psycopg
from eventsourcing.persistence import (
    Notification,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)
from psycopg import errors as pg_errors

from f1daemon.errors import UserError
from f1daemon.store.url import StoreURL

T = TypeVar("T")

# SQLite's primary result codes (sqlite3.Error.sqlite_errorcode & 0xFF).
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 8, 10, 11, 13, 26
INTEGRITY_PROBLEMS_SHOWN = 5


class StoreFault(UserError):
    """The store cannot do what was asked, for a reason outside the program."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def describe(store: StoreURL, error: BaseException) -> str | None:
    """One line for a fault of `store` an operator can act on; None for anything else."""
    for cause in _chain(error):
        detail = store.scrub(str(cause)) or type(cause).__name__
        line = _fault(store.redacted, cause, detail)
        if line is not None:
            return line
    return None


_FULL = "the failed transaction wrote nothing; free some space and run the command again"
_SQLITE_FAULTS = {
    _SQLITE_FULL: "the store {where} is full ({detail}): " + _FULL,
    _SQLITE_CORRUPT: "the store {where} is damaged ({detail}); `f1daemon verify` names the damage",
    _SQLITE_NOTADB: "the store {where} is damaged ({detail}); `f1daemon verify` names the damage",
    _SQLITE_IOERR: "cannot read or write the store {where}: {detail}",
    _SQLITE_READONLY: "the store {where} cannot be written: {detail}",
}
_POSTGRES_FAULTS: tuple[tuple[type[psycopg.Error], str], ...] = (
    (
        pg_errors.DiskFull,
        "the server of the store {where} is out of disk space ({detail}): " + _FULL,
    ),
    (pg_errors.DataCorrupted, "the store {where} is damaged on the server: {detail}"),
    (pg_errors.IndexCorrupted, "the store {where} is damaged on the server: {detail}"),
    (pg_errors.InsufficientPrivilege, "the store {where} refuses this user: {detail}"),
)


def _fault(where: str, cause: BaseException, detail: str) -> str | None:
    if isinstance(cause, sqlite3.Error):
        code = (getattr(cause, "sqlite_errorcode", None) or 0) & 0xFF
        template = _SQLITE_FAULTS.get(code)
        return None if template is None else template.format(where=where, detail=detail)
    for kind, template in _POSTGRES_FAULTS:
        if isinstance(cause, kind):
            return template.format(where=where, detail=detail)
    if isinstance(cause, psycopg.OperationalError) and "connection" in detail.lower():
        return f"cannot open the store {where}: {detail}"
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
        return f"the store {where} is full ({cause.strerror}): " + _FULL
    return None


def guarded(store: StoreURL, work: Callable[[], T]) -> T:
    """`work()`, its store faults raised as StoreFault (the cause kept)."""
    try:
        return work()
    except Exception as error:
        line = describe(store, error)
        if line is None:
            raise
        raise StoreFault(line) from error


class GuardedRecorder:
    """The recorder calls the event log makes, each with its faults as StoreFault."""

    def __init__(self, store: StoreURL, recorder: ProcessRecorder) -> None:
        self._store = store
        self._recorder = recorder

    def insert_events(
        self, stored: Sequence[StoredEvent], *, tracking: Tracking | None = None
    ) -> None:
        guarded(self._store, lambda: self._recorder.insert_events(stored, tracking=tracking))

    def select_events(
        self,
        originator_id: str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        return guarded(
            self._store,
            lambda: self._recorder.select_events(
                originator_id, gt=gt, lte=lte, desc=desc, limit=limit
            ),
        )

    def select_notifications(
        self, start: int, limit: int, *, stop: int | None, topics: Sequence[str]
    ) -> Sequence[Notification]:
        return guarded(
            self._store,
            lambda: self._recorder.select_notifications(start, limit, stop=stop, topics=topics),
        )

    def max_notification_id(self) -> int | None:
        return guarded(self._store, self._recorder.max_notification_id)

    def max_tracking_id(self, application_name: str) -> int | None:
        return guarded(self._store, lambda: self._recorder.max_tracking_id(application_name))


def sqlite_damage(path: Path, limit: int = 100) -> list[str]:
    """What SQLite's integrity check finds wrong with a database file (empty: sound).

    The check stops with "malformed" when it reads far enough into a damaged page:
    then it is run again to fewer findings, so that the pages it did name are named.
    """
    error: sqlite3.DatabaseError | None = None
    while limit >= 1:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                rows = db.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()
        except sqlite3.DatabaseError as raised:
            error = error or raised
            limit //= 2
            continue
        problems = [line for (text,) in rows for line in str(text).splitlines()]
        problems = [p for p in problems if p != "*** in database main ***"]
        if problems == ["ok"]:
            return [] if error is None else [str(error)]
        return problems if error is None else [*problems, f"then: {error}"]
    return [str(error)]  # not even the header reads


def damage_line(store: StoreURL, problems: Sequence[str]) -> str:
    """The integrity check's findings as one line."""
    shown = "; ".join(problems[:INTEGRITY_PROBLEMS_SHOWN])
    more = len(problems) - INTEGRITY_PROBLEMS_SHOWN
    rest = f"; and {more} more" if more > 0 else ""
    return f"the store {store.redacted} is damaged: {shown}{rest}"
