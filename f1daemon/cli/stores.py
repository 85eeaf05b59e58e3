"""The event log a command opens: an existing one to read, or one `ingest` makes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from f1daemon.store.eventlog import EventLog


def open_log(url: str | None) -> EventLog:
    """The log a command reads or adds to: one that does not exist is an error (one
    line, exit 2), never a new empty log left behind by a read."""
    from f1daemon.services import reader

    return reader.open_log(url)


def create_log(url: str | None) -> EventLog:
    """The log `ingest` writes to, made when it does not exist yet."""
    from f1daemon.store.eventlog import EventLog
    from f1daemon.store.url import parse_store_url, resolve_store_url

    return EventLog(parse_store_url(resolve_store_url(url)))
