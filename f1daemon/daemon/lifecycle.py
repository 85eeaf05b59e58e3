"""A session's lifecycle in the daemon: PRE_SESSION → ACTIVE → POST_SESSION → COMPLETED.

Driven by the feed's `SessionStatus` (Started, Aborted, Finished, Finalised, Ends) and
by operators (`ctl session start|stop`). It only moves forward, except that an
operator may start a session again after stopping it. The daemon acts on it: it
derives an ACTIVE session often and an idle one rarely, and on POST_SESSION it
derives and verifies the session one last time, then marks it COMPLETED.
"""

from __future__ import annotations

import enum


class SessionState(enum.StrEnum):
    PRE_SESSION = "PRE_SESSION"
    ACTIVE = "ACTIVE"
    POST_SESSION = "POST_SESSION"
    COMPLETED = "COMPLETED"


ORDER = list(SessionState)

# What the feed's SessionStatus means for the lifecycle. Aborted is a red flag: the
# session is suspended, not over, so it stays ACTIVE.
FEED_STATUS = {
    "Inactive": SessionState.PRE_SESSION,
    "Started": SessionState.ACTIVE,
    "Aborted": SessionState.ACTIVE,
    "Finished": SessionState.POST_SESSION,
    "Finalised": SessionState.POST_SESSION,
    "Ends": SessionState.POST_SESSION,
}


class SessionLifecycle:
    """One session's state; each method returns the new state when it changed, else None."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.state = SessionState.PRE_SESSION

    def on_feed_status(self, status: str) -> SessionState | None:
        """The feed reported a SessionStatus; unknown statuses change nothing."""
        target = FEED_STATUS.get(status)
        if target is None or ORDER.index(target) <= ORDER.index(self.state):
            return None
        # A late Finished after COMPLETED must not reopen anything: forward only.
        return self._move(target)

    def start(self) -> SessionState | None:
        """An operator started the session (also after a stop: a restarted session)."""
        return self._move(SessionState.ACTIVE) if self.state is not SessionState.ACTIVE else None

    def stop(self) -> SessionState | None:
        """An operator stopped the session."""
        if self.state in (SessionState.POST_SESSION, SessionState.COMPLETED):
            return None
        return self._move(SessionState.POST_SESSION)

    def complete(self) -> SessionState | None:
        """The final derivation after the session is done."""
        if self.state is not SessionState.POST_SESSION:
            return None
        return self._move(SessionState.COMPLETED)

    def _move(self, state: SessionState) -> SessionState:
        self.state = state
        return state
