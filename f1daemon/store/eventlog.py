"""The event log: every fact and derived event, in eventsourcing's application recorder.

Streams (eventsourcing's originators; ids are text):

* `facts:{session}:{source}:{stream}` — `MessageReceived` and `RecordQuarantined`,
  version = the message's sequence in its stream (a file's line number). The
  recorder's unique (originator, version) key makes appends idempotent: a fact
  already logged is never logged twice. An operator's `QuarantineReleased` are the
  facts of `facts:{session}:operator:quarantine-releases`.
* `sessions` — `SessionRegistered`, one per session.
* `runs:{session}` — `DerivationStarted`, version = run number (since pipeline 3.0).
* `derivations:{session}` — `DerivationCompleted`, version = run number, when a run
  is complete (a batch run at once, the daemon's live run when its session ends).
* `derived:{session}:{run}` — the events that run derived. A live run grows: each
  commit appends its new events with the run's tracking record (eventsourcing's
  process recorder: application name `derived:{session}:{run}`, notification id =
  the position of the last fact the run had read), in one transaction.
* `source-states` — the daemon's `SourceStateChanged` and `TelemetryShed` events.
* `lifecycle:{session}` — the daemon's `SessionStateChanged` events for a session.

The recorder's notification ids are the log positions: a total order over
everything appended, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import cast

import psycopg
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    InternalError,
    Notification,
    PersistenceError,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)
from eventsourcing.utils import Environment

from f1daemon.actors.backoff import Backoff
from f1daemon.domain.events import (
    DERIVED_TYPES,
    DerivationCompleted,
    DerivationStarted,
    DerivedEvent,
    Event,
    Fact,
    Input,
    MessageReceived,
    QuarantineReleased,
    RecordQuarantined,
    RolledBack,
    SessionRegistered,
    VersionTagged,
)
from f1daemon.errors import UserError
from f1daemon.store.faults import GuardedRecorder, StoreFault, describe
from f1daemon.store.persistence import (
    UnexpectedEventError,
    digest_entry,
    plain_state,
    to_domain_event,
    to_domain_event_of,
    to_stored_event,
    topic_of,
)
from f1daemon.store.url import StoreURL

SESSIONS_STREAM = "sessions"
VERSIONS_STREAM = "versions"
APPEND_BATCH = 5_000  # facts per transaction
READ_PAGE = 10_000  # notifications per query
# The topics of a derivation's inputs (see `EventLog.facts`).
INPUT_TOPICS = [topic_of(t) for t in (MessageReceived, RecordQuarantined, QuarantineReleased)]
DERIVED_TOPICS = [topic_of(t) for t in DERIVED_TYPES]
CREATE_ATTEMPTS = 5
CREATE_RETRY = Backoff(initial=0.05, cap=1.0, jitter=0)


def events_digest(stored: Sequence[StoredEvent]) -> str:
    """SHA-256 over stored events' topics and states, in order."""
    digest = hashlib.sha256()
    for event in stored:
        digest.update(digest_entry(event.topic, plain_state(event.state)))
    return digest.hexdigest()


def fact_stream_id(session: str, source: str, stream: str) -> str:
    """The originator id of a source's stream of facts in a session."""
    return f"facts:{session}:{source}:{stream}"


@dataclass(frozen=True)
class AppendResult:
    """What an append of facts did: how many were new, and how many were already logged."""

    appended: int
    already_logged: int
    quarantined: int = 0  # of the appended: inputs quarantined by their source


# SQLite's page for a new log: a fact's row (about 1 KiB deflated) fills a 4 KiB page
# only two or three times over, leaving a quarter of it empty; 16 KiB pages waste
# about 5 % (measured on a simulated two-hour race with telemetry).
SQLITE_PAGE_SIZE = 16_384


def _create_sqlite_file(path: Path) -> None:
    """A new SQLite log file, in WAL mode with the log's page size (set before the first
    table; an existing file keeps its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
        connection.execute("PRAGMA journal_mode = WAL")


class EventLog:
    """The log of one store (SQLite file or PostgreSQL database)."""

    def __init__(self, store: StoreURL) -> None:
        self.store = store
        try:
            if store.sqlite_path is not None:
                _create_sqlite_file(store.sqlite_path)
            self._factory = InfrastructureFactory.construct(
                Environment(name="f1daemon", env=store.environment)
            )
            self._recorder = GuardedRecorder(store, self._create_tables())
        except (PersistenceError, psycopg.Error, sqlite3.Error, OSError) as error:
            # One line, without the URL's secrets (a driver's message may span lines).
            line = describe(store, error)
            raise StoreFault(
                line or f"cannot open the store {store.redacted}: {store.scrub(str(error))}"
            ) from error

    def _create_tables(self) -> ProcessRecorder:
        # Processes opening a new PostgreSQL store at once race in CREATE TABLE IF NOT
        # EXISTS ("tuple concurrently updated", or a duplicate type): the loser retries.
        delays = CREATE_RETRY.start()
        for attempt in range(CREATE_ATTEMPTS):
            try:
                # The process recorder: an application recorder with tracking records.
                return self._factory.process_recorder()
            except (InternalError, IntegrityError):
                if attempt == CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(delays.next_delay(0.0))
        raise AssertionError("unreachable")

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

    def append_facts(self, facts: Iterable[Input]) -> AppendResult:
        """Append the facts not yet logged, in batches of one transaction each.

        A fact (a message, or input quarantined because it could not be framed) is
        identified by its (session, source, stream, sequence): whatever was logged
        before — in any order, by an earlier run or earlier in this one — is skipped,
        so a source that re-sends after a restart adds nothing twice.
        """
        appended = already = quarantined = 0
        iterator = iter(facts)
        while batch := list(islice(iterator, APPEND_BATCH)):
            logged = self._logged_sequences(batch)
            stored: list[StoredEvent] = []
            for fact in batch:
                originator = fact_stream_id(fact.session, fact.source, fact.stream)
                sequences = logged.setdefault(originator, set())
                if fact.sequence in sequences:
                    already += 1
                    continue
                sequences.add(fact.sequence)
                stored.append(to_stored_event(originator, fact.sequence, fact))
                quarantined += isinstance(fact, RecordQuarantined)
            self._insert(stored)
            appended += len(stored)
        return AppendResult(appended=appended, already_logged=already, quarantined=quarantined)

    def record_release(self, release: QuarantineReleased) -> QuarantineReleased:
        """Append an operator's release as the next of its stream (its `sequence` is set
        here); concurrent releases each get their own number."""
        stream = fact_stream_id(release.session, release.source, release.stream)
        while True:
            numbered = release.model_copy(update={"sequence": self.stream_head(stream) + 1})
            if self.append_facts([numbered]).appended:
                return numbered

    def register_session(self, session: str, origin: str) -> bool:
        """Record a session the first time it is seen; return whether it was new."""
        if session in self.sessions():
            return False
        version = self.stream_head(SESSIONS_STREAM) + 1
        self._insert(
            [
                to_stored_event(
                    SESSIONS_STREAM, version, SessionRegistered(session=session, origin=origin)
                )
            ]
        )
        return True

    def next_run(self, session: str) -> int:
        """The number the next derivation run of a session gets."""
        return (
            max(self.stream_head(f"runs:{session}"), self.stream_head(f"derivations:{session}")) + 1
        )

    def start_run(
        self,
        session: str,
        *,
        pipeline_version: str,
        until_position: int | None = None,
        sorted_until: int = 0,
    ) -> DerivationStarted:
        """Open a new derivation run of a session (its events come with `append_derived`)."""
        started = DerivationStarted(
            session=session,
            run=self.next_run(session),
            pipeline_version=pipeline_version,
            until_position=until_position,
            sorted_until=sorted_until,
        )
        self._insert([to_stored_event(f"runs:{session}", started.run, started)])
        return started

    def append_derived(
        self,
        session: str,
        run: int,
        events: Sequence[DerivedEvent],
        *,
        first: int,
        position: int | None,
        completed: DerivationCompleted | None = None,
        started: DerivationStarted | None = None,
    ) -> None:
        """Append a run's newly final events (numbered from `first`) and its tracking
        position (None: it did not move), with its start and completion if given, in
        one transaction.

        The tracking record only moves forward: a second writer of the same run at
        the same position fails (IntegrityError) instead of appending twice.
        """
        derived_stream = f"derived:{session}:{run}"
        stored = [] if started is None else [to_stored_event(f"runs:{session}", run, started)]
        stored.extend(
            to_stored_event(derived_stream, i, e) for i, e in enumerate(events, start=first)
        )
        if completed is not None:
            stored.append(to_stored_event(f"derivations:{session}", run, completed))
        tracking = None if position is None else Tracking(derived_stream, position)
        if stored or tracking is not None:
            self._recorder.insert_events(stored, tracking=tracking)

    def run_position(self, session: str, run: int) -> int | None:
        """The log position of the last fact a run's committed events account for."""
        return self._recorder.max_tracking_id(f"derived:{session}:{run}")

    def derived_count(self, session: str, run: int) -> int:
        """How many events a run has appended."""
        return self.stream_head(f"derived:{session}:{run}")

    def started_runs(self, session: str) -> list[DerivationStarted]:
        """The runs of a session opened with `start_run`, oldest first."""
        return [
            to_domain_event_of(r, DerivationStarted)
            for r in self._recorder.select_events(f"runs:{session}")
        ]

    def completion(self, session: str, run: int) -> DerivationCompleted | None:
        """A run's completion, if it is complete."""
        records = self._recorder.select_events(f"derivations:{session}", gt=run - 1, lte=run)
        return to_domain_event_of(records[0], DerivationCompleted) if records else None

    def events_digest(self, session: str, run: int) -> str:
        """SHA-256 over a run's stored events, as `DerivationCompleted.events_sha256`."""
        return events_digest(self._recorder.select_events(f"derived:{session}:{run}"))

    def tag(self, name: str, *, pipeline_version: str, message: str = "") -> VersionTagged:
        """Name the log's current position (a version); names are unique."""
        if any(v.name == name for v in self.versions()):
            raise UserError(f"the tag {name!r} exists already; tags are never moved")
        tagged = VersionTagged(
            session="",
            name=name,
            position=self.head_position(),
            pipeline_version=pipeline_version,
            message=message,
            tagged_at=datetime.now(UTC),
        )
        self._insert(
            [to_stored_event(VERSIONS_STREAM, self.stream_head(VERSIONS_STREAM) + 1, tagged)]
        )
        return tagged

    def record_rollback(self, session: str, tag: VersionTagged, run: int | None) -> RolledBack:
        """Make the run that was current at a tag current again (nothing is deleted)."""
        stream = f"rollbacks:{session}"
        rolled = RolledBack(session=session, tag=tag.name, position=tag.position, run=run)
        self._insert([to_stored_event(stream, self.stream_head(stream) + 1, rolled)])
        return rolled

    def record_events(self, stream: str, events: Sequence[Event]) -> None:
        """Append state events (the daemon's own: source states, session lifecycle) to a
        stream, after its last event, in one transaction."""
        head = self.stream_head(stream)
        self._insert(
            [to_stored_event(stream, head + i, event) for i, event in enumerate(events, 1)]
        )

    # -- reading ---------------------------------------------------------------------

    def sessions(self) -> list[str]:
        """The sessions in the log, in the order they were first seen."""
        records = self._recorder.select_events(SESSIONS_STREAM)
        return [to_domain_event_of(r, SessionRegistered).session for r in records]

    def facts(self, session: str, until: int | None = None) -> Iterator[tuple[int, Fact]]:
        """A session's facts as received, with their log positions, in log order (up to
        `until`)."""
        for position, fact in self.inputs(session, until):
            if not isinstance(fact, QuarantineReleased):
                yield position, fact

    def inputs(
        self, session: str, until: int | None = None, *, after: int = 0
    ) -> Iterator[tuple[int, Input]]:
        """What a derivation of a session reads: its facts and the operators' releases,
        with their log positions, in log order (after a position, up to `until`)."""
        prefix = f"facts:{session}:"
        for notification in self._notifications(INPUT_TOPICS, until, start=after + 1):
            if str(notification.originator_id).startswith(prefix):
                fact = to_domain_event_of(notification, Event)
                if not isinstance(fact, Input):
                    raise UnexpectedEventError(f"{notification.originator_id}: not a fact")
                yield notification.id, fact

    def has_facts_after(self, session: str, position: int) -> bool:
        """Whether a session has facts (or releases) logged after a position (none are
        decoded: the notifications after it are read, usually few)."""
        prefix = f"facts:{session}:"
        return any(
            str(n.originator_id).startswith(prefix)
            for n in self._notifications(INPUT_TOPICS, start=position + 1)
        )

    def quarantined(
        self, session: str, at: int | None = None
    ) -> Iterator[tuple[int, bool, RecordQuarantined]]:
        """A session's quarantined records with their log positions and whether they
        were derived: its facts' and those of its current derivation run (older runs'
        are history), as at a log position (None: now)."""
        run = self.current_run(session, at)
        derived = f"derived:{session}:{run}" if run is not None else None
        prefix = f"facts:{session}:"
        for notification in self._notifications([topic_of(RecordQuarantined)], at):
            origin = str(notification.originator_id)
            if origin.startswith(prefix) or origin == derived:
                event = to_domain_event_of(notification, RecordQuarantined)
                yield notification.id, origin == derived, event

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

    def last_derived_event(self, session: str, run: int) -> Event | None:
        """The last event a derivation run derived (its QA report, since pipeline 2.2)."""
        records = self._recorder.select_events(f"derived:{session}:{run}", desc=True, limit=1)
        return to_domain_event(records[0]) if records else None

    def derivation_runs(
        self, session: str, until: int | None = None
    ) -> list[tuple[int, DerivationCompleted]]:
        """A session's derivation runs with their log positions, oldest first (up to `until`)."""
        stream = f"derivations:{session}"
        return [
            (n.id, to_domain_event_of(n, DerivationCompleted))
            for n in self._notifications([topic_of(DerivationCompleted)], until)
            if n.originator_id == stream
        ]

    def current_run(self, session: str, at: int | None = None) -> int | None:
        """The run whose events are a session's current derived data (at a position)."""
        selected = self.current_selection(session, at)
        return None if selected is None else selected[0]

    def current_selection(
        self, session: str, at: int | None = None
    ) -> tuple[int | None, int | None] | None:
        """The current run of a session (at a position) and the position its events
        are read up to (None: all of them); None when the session has no run.

        The latest of: a run's start (a run that grows is current from its start; runs
        before pipeline 3.0 from their completion), or a rollback, which makes current
        the run as it stood at the tag's position.
        """
        started = f"runs:{session}"
        completed = f"derivations:{session}"
        rollbacks = f"rollbacks:{session}"
        topics = [topic_of(DerivationStarted), topic_of(DerivationCompleted), topic_of(RolledBack)]
        latest: tuple[int | None, int | None] | None = None
        opened: set[int] = set()
        for notification in self._notifications(topics, at):
            origin = notification.originator_id
            if origin == started:
                run = to_domain_event_of(notification, DerivationStarted).run
                opened.add(run)
                latest = (run, None)
            elif origin == completed:
                run = to_domain_event_of(notification, DerivationCompleted).run
                if run not in opened:
                    latest = (run, None)
            elif origin == rollbacks:
                rolled = to_domain_event_of(notification, RolledBack)
                latest = (rolled.run, rolled.position)
        return latest

    def derived_events_at(self, session: str, run: int, at: int | None) -> list[DerivedEvent]:
        """A run's events as they stood at a log position (all of them for None)."""
        if at is None or self._completed_by(session, run, at):
            return self.derived_events(session, run)
        stream = f"derived:{session}:{run}"
        events: list[DerivedEvent] = []
        for notification in self._notifications(DERIVED_TOPICS, at):
            if notification.originator_id == stream:
                events.append(cast("DerivedEvent", to_domain_event_of(notification, Event)))
        return events

    def _completed_by(self, session: str, run: int, at: int) -> bool:
        return any(c.run == run for _, c in self.derivation_runs(session, at))

    def stream_events(self, stream: str) -> list[Event]:
        """Every event of one stream, oldest first."""
        return [to_domain_event(r) for r in self._recorder.select_events(stream)]

    def stream_events_after(self, stream: str, after: int) -> list[tuple[int, Event]]:
        """A stream's events after a version, with their versions, oldest first (one
        page at most): what a tail of the stream reads each time it looks."""
        records = self._recorder.select_events(stream, gt=after, limit=READ_PAGE)
        return [(r.originator_version, to_domain_event(r)) for r in records]

    def versions(self) -> list[VersionTagged]:
        """The tags, oldest first."""
        records = self._recorder.select_events(VERSIONS_STREAM)
        return [to_domain_event_of(r, VersionTagged) for r in records]

    def head_position(self) -> int:
        """The position of the last event in the log (0 when empty)."""
        return self._recorder.max_notification_id() or 0

    # -- recorder access ---------------------------------------------------------------

    def _insert(self, stored: list[StoredEvent]) -> None:
        if stored:
            self._recorder.insert_events(stored)

    def _logged_sequences(self, batch: Sequence[Input]) -> dict[str, set[int]]:
        """The sequences already logged in the range each stream of a batch covers."""
        ranges: dict[str, tuple[int, int]] = {}
        for fact in batch:
            originator = fact_stream_id(fact.session, fact.source, fact.stream)
            low, high = ranges.get(originator, (fact.sequence, fact.sequence))
            ranges[originator] = (min(low, fact.sequence), max(high, fact.sequence))
        return {
            originator: {
                record.originator_version
                for record in self._recorder.select_events(originator, gt=low - 1, lte=high)
            }
            for originator, (low, high) in ranges.items()
        }

    def stream_head(self, originator: str) -> int:
        """The version of a stream's last event (0: it has none)."""
        last = self._recorder.select_events(originator, desc=True, limit=1)
        return last[0].originator_version if last else 0

    def _notifications(
        self, topics: Sequence[str], until: int | None = None, start: int = 1
    ) -> Iterator[Notification]:
        while True:
            page = self._recorder.select_notifications(start, READ_PAGE, stop=until, topics=topics)
            yield from page
            if len(page) < READ_PAGE:
                return
            start = page[-1].id + 1
