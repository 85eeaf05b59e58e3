"""The session's lifecycle from the feed's `SessionStatus`.

Inactive → Started → (Aborted → Started …) → Finished → Finalised → Ends map to the
daemon's PRE_SESSION → ACTIVE → POST_SESSION → COMPLETED. Aborted (a red flag that
suspends the session) keeps it ACTIVE: it has not ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from f1daemon.domain.events import SessionStateChanged
from f1daemon.feed.state import JSON

STATE_OF_FEED_STATUS = {
    "Inactive": "PRE_SESSION",
    "Started": "ACTIVE",
    "Aborted": "ACTIVE",
    "Finished": "POST_SESSION",
    "Finalised": "POST_SESSION",
    "Ends": "COMPLETED",
}


@dataclass
class SessionStatusTracker:
    """Emits a `SessionStateChanged` each time the feed's status changes."""

    session: str
    feed_status: str | None = None

    def on_message(
        self, message: JSON, now: int, utc: datetime | None
    ) -> list[SessionStateChanged]:
        """Apply one SessionStatus message."""
        status = message.get("Status") if isinstance(message, dict) else None
        if not isinstance(status, str) or status == self.feed_status:
            return []
        state = STATE_OF_FEED_STATUS.get(status)
        if state is None:
            return []  # a status this version does not know keeps the state it had
        self.feed_status = status
        return [
            SessionStateChanged(
                session=self.session, session_time_ms=now, utc=utc, state=state, feed_status=status
            )
        ]
