"""Deriving sessions in the daemon: one follower per session, woken by the writer.

When the writer has committed a session's facts (`session_changed`), the session's
`DerivationFollower` reads the facts after its position and commits what became
final with its new tracking position (`f1daemon.projections.follower`): no polling
cadence, no re-derivation. Commits that arrive while a catch-up runs are taken by the
next one. On POST_SESSION the run is verified as it stands (derived again in one
batch, byte for byte) and the outcome reported, upon which the session is COMPLETED.
The run stays open and keeps growing with the facts that trail the session's end.

A restarted daemon resumes each session's open run (its fold rebuilt in memory from
the facts up to its tracking position); a session whose latest run is complete and
has no newer facts is left alone, so a restart never undoes a rollback.

Metrics: `f1daemon_derive_lag_seconds` (a commit of facts to the commit of what they
made final), `f1daemon_derive_facts_behind{session}` and
`f1daemon_derived_events{session}`, `f1daemon_session_laps{session, driver}` (kept by
the follower as it appends, so a commit costs what it adds), and the QA report's
gauges after each catch-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from f1daemon.daemon.lifecycle import SessionState
from f1daemon.daemon.state_lane import StateLane
from f1daemon.metrics import Metrics
from f1daemon.projections.follower import Commit, DerivationFollower
from f1daemon.qa import QAReport
from f1daemon.services.derivation import open_follower, run_states, verify_run
from f1daemon.store.eventlog import EventLog

log = logging.getLogger("f1daemon.daemon")

# A follower's QA report is logged at most this often (its gauges follow every commit).
QA_LOG_INTERVAL_S = 30.0
# Facts one catch-up reads on the worker thread: a long backlog is read in steps, the
# trio loop (and a shutdown's deadline) free between them.
CATCH_UP_FACTS = 2_000


@dataclass
class _Following:
    """One session's follower and what the deriver knows of it."""

    state: SessionState = SessionState.PRE_SESSION
    follower: DerivationFollower | None = None
    pending_since: float | None = None  # the first commit not yet read (perf_counter)
    notified: int = 0  # facts committed, as told by the writer
    read: int = 0  # of those, read by the follower
    anomalies: dict[str, int] = field(default_factory=dict)
    last_report: QAReport | None = None
    last_logged: float = 0.0
    lap_drivers: set[int] = field(default_factory=set)  # those with a laps gauge


class SessionDeriver:
    """Follows the daemon's sessions; `run` is its loop.

    It reads and writes the log through the daemon's state `lane`; `on_finished(session,
    ok)` is told whether a session's closed run verified.
    """

    def __init__(
        self,
        lane: StateLane,
        metrics: Metrics,
        on_finished: Callable[[str, bool], None],
    ) -> None:
        self._lane = lane
        self._metrics = metrics
        self._on_finished = on_finished
        self._sessions: dict[str, _Following] = {}
        self._wake = trio.Event()

    def session_changed(self, session: str, facts: int = 1) -> None:
        """The writer committed `facts` new facts of `session`: wake its follower."""
        following = self._following(session)
        following.notified += facts
        if following.pending_since is None:
            following.pending_since = time.perf_counter()
        self._wake.set()

    def lifecycle_changed(self, session: str, state: SessionState) -> None:
        """`session` moved to `state` (POST_SESSION: its run is to be closed)."""
        self._following(session).state = state
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            for session, following in list(self._sessions.items()):
                if following.state is SessionState.POST_SESSION:
                    await self.finish(session)
                elif following.pending_since is not None:
                    await self._catch_up(session, following)

    async def finish(self, session: str) -> None:
        """POST_SESSION: catch up and verify the run as it stands; report whether it did.

        The run stays open: the feed goes on after the chequered flag (the cars still on
        their last lap, the classification, the session's end), and those laps belong
        to it. It grows for as long as the session's facts come.
        """
        following = self._following(session)
        following.state = SessionState.COMPLETED  # reported once
        ok = True
        while following.pending_since is not None and ok:
            ok = await self._catch_up(session, following)
        try:
            ok = ok and await self._lane.call(
                lambda event_log: self._verify(event_log, session, following)
            )
        except Exception as error:
            self._metrics.errors.labels("deriver", type(error).__name__).inc()
            log.exception("verifying the run of %s failed", session)
            ok = False
        if not ok:
            log.error("session %s: final derivation does not verify", session)
        self._on_finished(session, ok)

    async def drain(self) -> None:
        """Commit what every follower can (the daemon is stopping; runs stay open), in
        steps, so that the shutdown's deadline can stop it between them."""
        for session, following in list(self._sessions.items()):
            while following.pending_since is not None:
                if not await self._catch_up(session, following):
                    break  # the next start resumes from the log

    def _following(self, session: str) -> _Following:
        return self._sessions.setdefault(session, _Following())

    async def _catch_up(self, session: str, following: _Following) -> bool:
        """One catch-up of a session's follower; False when it failed."""
        began = time.perf_counter()
        since = following.pending_since
        following.pending_since = None
        try:
            commit = await self._lane.call(
                lambda event_log: self._follow(event_log, session, following)
            )
        except Exception as error:
            following.pending_since = since
            following.follower = None  # rebuilt from the log at the next commit
            self._metrics.errors.labels("deriver", type(error).__name__).inc()
            log.exception("deriving %s failed", session)
            return False
        if commit is None:
            return True
        if commit.more:
            following.pending_since = since  # the rest at the next turn of the loop
            self._wake.set()
        following.read += commit.facts
        m = self._metrics
        m.derive_facts_behind.labels(session).set(max(following.notified - following.read, 0))
        if commit.events and since is not None:
            m.derive_lag.observe(time.perf_counter() - since)
        m.validation_duration.observe(time.perf_counter() - began)
        if following.follower is not None and commit.events:
            # Only what appended something can have changed the QA report.
            m.derived_events.labels(session).set(following.follower.derived)
            self._report_laps(session, following, following.follower.laps.by_driver)
            self._report_quality(session, following, following.follower.fold.report())
        return True

    def _follow(self, event_log: EventLog, session: str, following: _Following) -> Commit | None:
        """One catch-up, in the lane's thread: open or resume the run as needed."""
        if following.follower is None:
            following.follower = open_follower(event_log, session)
            if following.follower is None:
                return None  # nothing new since the latest complete run
        commit = following.follower.catch_up(CATCH_UP_FACTS)
        if commit.reordered:
            # Facts earlier in stream time than the run has read (the rest of a session
            # ingested later): a new run reads them in their place.
            log.info("session %s: facts out of stream order, a new run starts", session)
            following.follower = DerivationFollower.start(event_log, session)
            again = following.follower.catch_up(CATCH_UP_FACTS)
            commit = Commit(
                facts=commit.facts + again.facts,
                events=commit.events + again.events,
                position=again.position,
                more=again.more,
            )
        return commit

    def _verify(self, event_log: EventLog, session: str, following: _Following) -> bool:
        run = following.follower.run if following.follower is not None else None
        states = [s for s in run_states(event_log, session) if run is None or s.run == run]
        return not states or not verify_run(event_log, session, states[-1]).problems

    def _report_laps(self, session: str, following: _Following, laps: dict[int, int]) -> None:
        """The laps of the follower's run by driver; a new run's start again."""
        gauge = self._metrics.session_laps
        for driver in following.lap_drivers - laps.keys():
            gauge.remove(session, str(driver))  # of an earlier run
        for driver, count in laps.items():
            gauge.labels(session, str(driver)).set(count)
        following.lap_drivers = set(laps)

    def _report_quality(self, session: str, following: _Following, report: QAReport) -> None:
        """The running QA report: as metrics, and now and then as a log line."""
        m = self._metrics
        m.quality_score.labels(session).set(report.quality_score)
        for outcome in ("passed", "flagged", "quarantined"):
            m.qa_records.labels(session, outcome).set(getattr(report, outcome))
        for rule in report.rules:
            m.qa_findings.labels(session, rule.rule, rule.severity).set(rule.findings)
            if rule.rule.startswith("anomaly."):
                new = rule.findings - following.anomalies.get(rule.rule, 0)
                if new > 0:
                    m.anomalies.labels(rule.rule).inc(new)
                following.anomalies[rule.rule] = rule.findings
        now = time.monotonic()
        if now - following.last_logged < QA_LOG_INTERVAL_S:
            return
        batch = report.batch_since(following.last_report)
        log.info(
            "QA of %s: %s",
            session,
            batch.summary(),
            extra={"fields": {"session": session, "qa_batch": batch.model_dump()}},
        )
        following.last_report = report
        following.last_logged = now
