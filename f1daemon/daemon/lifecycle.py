"""A session's lifecycle in the daemon: PRE_SESSION → ACTIVE → POST_SESSION → COMPLETED.

Driven by the feed's `SessionStatus` (Started, Aborted, Finished, Finalised, Ends) and
by operators (`ctl session start|stop`). It only moves forward, except that an
operator may start a session again after stopping it. The daemon acts on it: it
derives an ACTIVE session often and an idle one rarely, and on POST_SESSION it
derives and verifies the session one last time, then marks it COMPLETED.
"""

from __future__ import annotations

import enum

from f1daemon.feed.session_status import STATE_OF_FEED_STATUS


class SessionState(enum.StrEnum):
    PRE_SESSION = "PRE_SESSION"
    ACTIVE = "ACTIVE"
    POST_SESSION = "POST_SESSION"
    COMPLETED = "COMPLETED"


ORDER = list(SessionState)


def state_of_feed_status(status: str) -> SessionState | None:
    """The state the feed's SessionStatus moves a session to (None: a status we don't know).

    The feed's mapping is the decoders' (`STATE_OF_FEED_STATUS`), except that the feed
    never completes a session for the daemon: its `Ends` means POST_SESSION, and the
    daemon completes the session once it has derived and verified it.
    """
    state = STATE_OF_FEED_STATUS.get(status)
    if state is None:
        return None
    return min(SessionState(state), SessionState.POST_SESSION, key=ORDER.index)


class SessionLifecycle:
    """One session's state; each method returns the new state when it changed, else None."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.state = SessionState.PRE_SESSION

    def on_feed_status(self, status: str) -> SessionState | None:
        """The feed reported a SessionStatus; unknown statuses change nothing."""
        target = state_of_feed_status(status)
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
