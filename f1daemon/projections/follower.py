"""The derivation that follows the log: one session's run, grown as its facts arrive.

A follower holds a `SessionFold` between commits, reads only the facts after the
position it has read to, and appends what became final together with its new
tracking position in one transaction (eventsourcing's process recorder), so a crash
between the two cannot happen: after a restart the run resumes from its tracking
record, and nothing is appended twice.

A run reads the facts logged before it started in stream-time order, those after
in log order (see `f1daemon.projections.fold`); a fact that arrives out of stream
order ends the run's growth (`Commit.reordered`) and its session gets a new run.

On resume the fold's state is rebuilt in memory from the facts up to the tracking
position (a batch derivation's cost, once at start-up; the derived events are not
read back), and the rebuilt run must have derived exactly what the log holds —
else the run is left as it is and a new one starts.

A batch run (ingest, replay) is the same fold fed every fact at once and written
in one transaction with its start and completion.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from f1daemon.domain.events import DerivationCompleted, DerivationStarted, DerivedEvent, Input
from f1daemon.feed.pipeline import PIPELINE_VERSION, Pace
from f1daemon.projections.current import LapCount
from f1daemon.projections.fold import SessionFold, stream_ordered
from f1daemon.store.eventlog import EventLog
from f1daemon.store.persistence import digest_entry, envelope_of, topic_of

log = logging.getLogger(__name__)

# Facts a catch-up reads before it commits what they made final: a restart after a
# long outage (or a live run's first look at a long session) commits in steps.
COMMIT_FACTS = 5_000


@dataclass(frozen=True)
class Commit:
    """What one catch-up appended: facts read, events appended, the position reached,
    whether it stopped at a fact out of stream order (the run grows no more), and
    whether it left facts for the next call (its limit)."""

    facts: int
    events: int
    position: int
    reordered: bool = False
    more: bool = False


class DerivationFollower:
    """One derivation run of one session, and the fold that grows it."""

    def __init__(
        self,
        event_log: EventLog,
        started: DerivationStarted,
        fold: SessionFold,
        *,
        derived: int = 0,
        committed: int | None = None,
    ) -> None:
        self.log = event_log
        self.session = started.session
        self.run = started.run
        self.started = started  # how the run reads its facts
        self.until = started.until_position
        self.sorted_until = started.sorted_until
        self.fold = fold
        self.derived = derived  # events appended so far
        self.committed = committed  # the tracking position (None: nothing committed)
        self.laps = LapCount()  # the laps of its current data, per driver
        self._events_digest = hashlib.sha256()
        # A resumed run has read its prefix (or committed past it) already.
        self._prefix_read = committed is not None

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def start(cls, event_log: EventLog, session: str) -> DerivationFollower:
        """A new live run of a session: the facts logged so far in stream-time order,
        then the rest as they arrive."""
        started = event_log.start_run(
            session, pipeline_version=PIPELINE_VERSION, sorted_until=event_log.head_position()
        )
        return cls(event_log, started, SessionFold(session))

    @classmethod
    def resume(cls, event_log: EventLog, session: str) -> DerivationFollower | None:
        """The session's open run of this pipeline, rebuilt to its tracking position;
        None when there is none (or it cannot be resumed: the reason is logged)."""
        runs = event_log.started_runs(session)
        if not runs:
            return None
        started = runs[-1]
        if (
            started.pipeline_version != PIPELINE_VERSION
            or started.until_position is not None
            or event_log.completion(session, started.run) is not None
        ):
            return None
        position = event_log.run_position(session, started.run)
        follower = cls(event_log, started, SessionFold(session), committed=position)
        rebuilt = 0
        if position is not None:
            for fact_position, fact in read_order(event_log, started, position):
                events = follower.fold.feed(fact_position, fact)
                follower._account(events)
                rebuilt += len(events)
        stored = event_log.derived_count(session, started.run)
        if rebuilt != stored:
            log.warning(
                "run %d of %s holds %d events, its facts derive %d now: a new run starts",
                started.run,
                session,
                stored,
                rebuilt,
            )
            return None
        follower.derived = stored
        return follower

    # -- following ----------------------------------------------------------------------

    def catch_up(self, limit: int | None = None) -> Commit:
        """Read the facts logged since the last look (at most `limit` of them: the rest
        at the next call, `Commit.more`); commit what became final."""
        prefix = Commit(facts=0, events=0, position=0)
        if not self._prefix_read:
            self._prefix_read = True
            if self.sorted_until:
                prefix = self._read_sorted_prefix()
        after = max(self.committed or 0, self.fold.last_position, self.sorted_until)
        pending: list[DerivedEvent] = []
        read, appended = prefix.facts, prefix.events
        last = after
        reordered = more = False
        for position, fact in self.log.inputs(self.session, until=self.until, after=after):
            if self.fold.would_reorder(fact):
                reordered = True
                break
            pending.extend(self.fold.feed(position, fact))
            read += 1
            last = position
            if (read - prefix.facts) % COMMIT_FACTS == 0 and pending:
                appended += self._commit(pending, last)
                pending = []
            if limit is not None and read - prefix.facts >= limit:
                more = True
                break
        if pending or (read and (self.committed is None or last > self.committed)):
            # Facts that made nothing final move the tracking record too: the run has
            # read them (a restart, `verify` and "facts behind" start after them).
            appended += self._commit(pending, last)
        return Commit(
            facts=read,
            events=appended,
            position=max(last, prefix.position),
            reordered=reordered,
            more=more,
        )

    def _read_sorted_prefix(self) -> Commit:
        # What was logged before the run began, in stream-time order: final only once
        # all of it is read, so one commit.
        events: list[DerivedEvent] = []
        for position, fact in read_order(self.log, self.started, self.sorted_until):
            events.extend(self.fold.feed(position, fact))
        position = max(self.sorted_until, self.fold.last_position)
        appended = self._commit(events, position) if events else 0
        return Commit(facts=self.fold.inputs, events=appended, position=position)

    def close(self) -> DerivationCompleted:
        """The run is complete: catch up, then append what waited for the stream's end
        and the completion, with the digests `verify` checks."""
        self.catch_up()
        final = self.fold.finish()
        completed = self.completion_of(final)
        self._commit(final, self.fold.last_position, completed)
        return completed

    def completion_of(self, final: Sequence[DerivedEvent]) -> DerivationCompleted:
        """The run's completion, once `final` (its last events) are appended."""
        self._account(final)
        return DerivationCompleted(
            session=self.session,
            run=self.run,
            pipeline_version=PIPELINE_VERSION,
            facts=self.fold.facts,
            last_fact_position=self.fold.last_position,
            derived=self.derived + len(final),
            undecodable=self.fold.undecodable,
            until_position=self.until,
            facts_sha256=self.fold.facts_sha256(),
            events_sha256=self._events_digest.hexdigest(),
        )

    def _commit(
        self,
        events: Sequence[DerivedEvent],
        position: int,
        completed: DerivationCompleted | None = None,
    ) -> int:
        if completed is None:
            self._account(events)
        # The tracking record only moves forward; a completion without new facts is
        # appended without one.
        tracked = position if self.committed is None or position > self.committed else None
        self.log.append_derived(
            self.session,
            self.run,
            events,
            first=self.derived + 1,
            position=tracked,
            completed=completed,
        )
        self.derived += len(events)
        if tracked is not None:
            self.committed = tracked
        return len(events)

    def _account(self, events: Sequence[DerivedEvent]) -> None:
        # The run holds `events` after those before: its digest as `events_digest` over
        # the stored events (the same bytes) and its laps, without reading them back.
        self.laps.add(events)
        for event in events:
            self._events_digest.update(digest_entry(topic_of(type(event)), envelope_of(event)))


def read_order(
    event_log: EventLog, started: DerivationStarted, until: int | None
) -> Iterator[tuple[int, Input]]:
    """A run's inputs up to `until` in the order it reads them: stream-time order up to
    its `sorted_until`, log order after."""
    limit = started.sorted_until if until is None else min(started.sorted_until, until)
    yield from stream_ordered(event_log.inputs(started.session, until=limit))
    if until is None or until > started.sorted_until:
        yield from event_log.inputs(started.session, until=until, after=started.sorted_until)


def derive_batch(
    event_log: EventLog, session: str, until: int | None = None, pace: Pace | None = None
) -> DerivationCompleted:
    """A complete run over a session's facts (up to `until`) in stream-time order,
    appended in one transaction: its start, its events, its completion and its
    tracking record."""
    run = event_log.next_run(session)
    head = event_log.head_position()
    started = DerivationStarted(
        session=session,
        run=run,
        pipeline_version=PIPELINE_VERSION,
        until_position=until,
        sorted_until=head if until is None else min(until, head),
    )
    follower = DerivationFollower(event_log, started, SessionFold(session, pace))
    events: list[DerivedEvent] = []
    for position, fact in read_order(event_log, started, started.sorted_until):
        events.extend(follower.fold.feed(position, fact))
    events.extend(follower.fold.finish())
    completed = follower.completion_of(events)
    event_log.append_derived(
        session,
        run,
        events,
        first=1,
        position=follower.fold.last_position if follower.fold.inputs else None,
        completed=completed,
        started=started,
    )
    return completed
