"""The sessions the daemon has seen, and their lifecycles (see `lifecycle`).

A session is seen when a source first logs a fact of it (or an operator names it); it
is registered in the log, and its lifecycle follows the feed's `SessionStatus` (and
SessionData's `StatusSeries`) and the operators' commands. Every change of state is a
`SessionStateChanged` event, a metric, a log line, and news for the `SessionDeriver`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from f1daemon.daemon.derivations import SessionDeriver
from f1daemon.daemon.lifecycle import SessionLifecycle, SessionState
from f1daemon.daemon.state_lane import StateLane
from f1daemon.domain.events import Fact, MessageReceived, SessionStateChanged
from f1daemon.metrics import Metrics

# Where the feed reports a session's status: its own topic, and SessionData's series
# (what a capture that did not subscribe to SessionStatus still has).
STATUS_TOPICS = frozenset({"SessionStatus", "SessionData"})

log = logging.getLogger("f1daemon.daemon")

Spawn = Callable[[Callable[[], Awaitable[None]]], None]
"""spawn(task): run `task` in the background, in the daemon's nursery."""


@dataclass
class TrackedSession:
    lifecycle: SessionLifecycle


class SessionTracker:
    """Follows the sessions in the facts the daemon logs; `sessions` holds them by key."""

    def __init__(
        self, metrics: Metrics, lane: StateLane, deriver: SessionDeriver, spawn: Spawn
    ) -> None:
        self._metrics = metrics
        self._lane = lane
        self._deriver = deriver
        self._spawn = spawn
        self.sessions: dict[str, TrackedSession] = {}

    def seen(self, session: str, origin: str) -> None:
        """`session` came from `origin` (a source, or control): track and register it."""
        if session in self.sessions:
            return
        self.sessions[session] = TrackedSession(SessionLifecycle(session))
        self._metrics.session_state.labels(session, SessionState.PRE_SESSION).set(1)

        async def register() -> None:
            await self._lane.call(lambda event_log: event_log.register_session(session, origin))

        self._spawn(register)

    def logged(self, source: str, facts: Sequence[Fact]) -> None:
        """`source`'s facts were logged: their sessions changed, and may change state."""
        for fact in facts:
            track = self.sessions.get(fact.session)
            if track is None:
                self.seen(fact.session, f"source {source}")
                track = self.sessions[fact.session]
            self._deriver.session_changed(fact.session)
            if isinstance(fact, MessageReceived) and fact.topic in STATUS_TOPICS:
                for status in feed_statuses(fact.topic, fact.payload):
                    changed = track.lifecycle.on_feed_status(status)
                    if changed is not None:
                        self.lifecycle_changed(track, status, fact)

    def finished(self, session: str, verified: bool) -> None:
        """The session's final derivation is done: it is COMPLETED."""
        track = self.sessions[session]
        if track.lifecycle.complete() is not None:
            self.lifecycle_changed(track, "verified" if verified else "verify-failed")

    def lifecycle_changed(
        self, track: TrackedSession, cause: str, fact: MessageReceived | None = None
    ) -> None:
        """`track`'s lifecycle moved because of `cause` (a feed status, an operator)."""
        state = track.lifecycle.state
        session = track.lifecycle.session
        for each in SessionState:
            self._metrics.session_state.labels(session, each).set(1 if each is state else 0)
        log.info(
            "session %s: %s (%s)",
            session,
            state,
            cause,
            extra={"fields": {"session": session, "state": state.value, "cause": cause}},
        )
        event = SessionStateChanged(
            session=session,
            session_time_ms=(fact.offset_ms or 0) if fact is not None else 0,
            utc=fact.received_at if fact is not None else datetime.now(UTC),
            state=state.value,
            feed_status=cause,
        )
        self._lane.queue(f"lifecycle:{session}", event)
        self._deriver.lifecycle_changed(session, state)


def feed_statuses(topic: str, payload: str) -> list[str]:
    """The session statuses a message reports, in order: SessionStatus's `Status`, or
    the `SessionStatus` entries of SessionData's `StatusSeries` (a list in a snapshot,
    entries by index in a patch)."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(data, dict):
        return []
    if topic == "SessionStatus":
        status = data.get("Status")
        return [status] if isinstance(status, str) else []
    series = data.get("StatusSeries")
    if isinstance(series, dict):
        keyed = [(int(k), v) for k, v in series.items() if str(k).isdigit()]
        series = [v for _, v in sorted(keyed, key=lambda item: item[0])]
    if not isinstance(series, list):
        return []
    return [
        entry["SessionStatus"]
        for entry in series
        if isinstance(entry, dict) and isinstance(entry.get("SessionStatus"), str)
    ]
