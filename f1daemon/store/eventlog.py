"""The event log: every fact and derived event, in eventsourcing's application recorder.

Streams (eventsourcing's originators; ids are text):

* `facts:{session}:{source}:{stream}` — `MessageReceived`, version = the message's
  sequence in its stream (a file's line number). The recorder's unique
  (originator, version) key makes appends idempotent: a fact already logged is
  never logged twice.
* `sessions` — `SessionRegistered`, one per session.
* `derivations:{session}` — `DerivationCompleted`, version = run number.
* `derived:{session}:{run}` — the events that run derived.

The recorder's notification ids are the log positions: a total order over
everything appended, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from types import TracebackType
from typing import cast

import psycopg
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    Notification,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.utils import Environment

from f1daemon.domain.events import (
    DERIVED_TYPES,
    DerivationCompleted,
    DerivedEvent,
    Event,
    Fact,
    MessageReceived,
    RecordQuarantined,
    SessionRegistered,
)
from f1daemon.errors import UserError
from f1daemon.store.persistence import (
    UnexpectedEventError,
    to_domain_event_of,
    to_stored_event,
    topic_of,
)
from f1daemon.store.url import StoreURL

SESSIONS_STREAM = "sessions"
APPEND_BATCH = 5_000  # facts per transaction
READ_PAGE = 10_000  # notifications per query


def fact_stream_id(session: str, source: str, stream: str) -> str:
    """The originator id of a source's stream of facts in a session."""
    return f"facts:{session}:{source}:{stream}"


@dataclass(frozen=True)
class AppendResult:
    """What an append of facts did: how many were new, and how many were already logged."""

    appended: int
    already_logged: int


class EventLog:
    """The log of one store (SQLite file or PostgreSQL database)."""

    def __init__(self, store: StoreURL) -> None:
        self.store = store
        if store.sqlite_path is not None:
            store.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._factory = InfrastructureFactory.construct(
                Environment(name="f1daemon", env=store.environment)
            )
            self._recorder: ApplicationRecorder = self._factory.application_recorder()
        except (PersistenceError, psycopg.Error, sqlite3.Error, OSError) as error:
            raise UserError(f"cannot open the store {store.redacted}: {error}") from error

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the store's connections."""
        self._factory.close()

    # -- writing ---------------------------------------------------------------------

    def append_facts(self, facts: Iterable[Fact]) -> AppendResult:
        """Append the facts not yet logged, in batches of one transaction each.

        A fact (a message, or input quarantined because it could not be framed) is
        identified by its (session, source, stream, sequence); facts must come in
        increasing sequence per stream, as a source produces them.
        """
        heads: dict[str, int] = {}
        appended = already = 0
        iterator = iter(facts)
        while batch := list(islice(iterator, APPEND_BATCH)):
            stored: list[StoredEvent] = []
            for fact in batch:
                originator = fact_stream_id(fact.session, fact.source, fact.stream)
                if originator not in heads:
                    heads[originator] = self._stream_head(originator)
                if fact.sequence <= heads[originator]:
                    already += 1
                    continue
                heads[originator] = fact.sequence
                stored.append(to_stored_event(originator, fact.sequence, fact))
            self._insert(stored)
            appended += len(stored)
        return AppendResult(appended=appended, already_logged=already)

    def register_session(self, session: str, origin: str) -> bool:
        """Record a session the first time it is seen; return whether it was new."""
        if session in self.sessions():
            return False
        version = self._stream_head(SESSIONS_STREAM) + 1
        self._insert(
            [
                to_stored_event(
                    SESSIONS_STREAM, version, SessionRegistered(session=session, origin=origin)
                )
            ]
        )
        return True

    def record_derivation(
        self,
        session: str,
        events: Sequence[DerivedEvent],
        *,
        pipeline_version: str,
        facts: int,
        last_fact_position: int,
        undecodable: int,
    ) -> DerivationCompleted:
        """Append one derivation run: its events and its completion, in one transaction."""
        stream = f"derivations:{session}"
        run = self._stream_head(stream) + 1
        derived_stream = f"derived:{session}:{run}"
        completed = DerivationCompleted(
            session=session,
            run=run,
            pipeline_version=pipeline_version,
            facts=facts,
            last_fact_position=last_fact_position,
            derived=len(events),
            undecodable=undecodable,
        )
        stored = [to_stored_event(derived_stream, i, e) for i, e in enumerate(events, start=1)]
        stored.append(to_stored_event(stream, run, completed))
        self._insert(stored)
        return completed

    # -- reading ---------------------------------------------------------------------

    def sessions(self) -> list[str]:
        """The sessions in the log, in the order they were first seen."""
        records = self._recorder.select_events(SESSIONS_STREAM)
        return [to_domain_event_of(r, SessionRegistered).session for r in records]

    def facts(self, session: str) -> Iterator[tuple[int, Fact]]:
        """A session's facts with their log positions, in log order."""
        prefix = f"facts:{session}:"
        topics = [topic_of(MessageReceived), topic_of(RecordQuarantined)]
        for notification in self._notifications(topics):
            if str(notification.originator_id).startswith(prefix):
                fact = to_domain_event_of(notification, Event)
                if not isinstance(fact, MessageReceived | RecordQuarantined):
                    raise UnexpectedEventError(f"{notification.originator_id}: not a fact")
                yield notification.id, fact

    def latest_derivation(self, session: str) -> DerivationCompleted | None:
        """The most recent derivation run of a session."""
        records = self._recorder.select_events(f"derivations:{session}", desc=True, limit=1)
        if not records:
            return None
        return to_domain_event_of(records[0], DerivationCompleted)

    def derived_events(self, session: str, run: int) -> list[DerivedEvent]:
        """The events one derivation run of a session derived."""
        records = self._recorder.select_events(f"derived:{session}:{run}")
        events: list[DerivedEvent] = []
        for record in records:
            event = to_domain_event_of(record, Event)
            if not isinstance(event, DERIVED_TYPES):
                raise UnexpectedEventError(f"{record.originator_id}: {type(event).__name__}")
            events.append(cast("DerivedEvent", event))
        return events

    def head_position(self) -> int:
        """The position of the last event in the log (0 when empty)."""
        return self._recorder.max_notification_id() or 0

    # -- recorder access ---------------------------------------------------------------

    def _insert(self, stored: list[StoredEvent]) -> None:
        if stored:
            self._recorder.insert_events(stored)

    def _stream_head(self, originator: str) -> int:
        last = self._recorder.select_events(originator, desc=True, limit=1)
        return last[0].originator_version if last else 0

    def _notifications(self, topics: Sequence[str]) -> Iterator[Notification]:
        start = 1
        while True:
            page = self._recorder.select_notifications(start, READ_PAGE, topics=topics)
            yield from page
            if len(page) < READ_PAGE:
                return
            start = page[-1].id + 1
