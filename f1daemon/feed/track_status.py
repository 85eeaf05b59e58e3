"""Track status (`TrackStatus`) and the neutralisation periods it implies.

Codes: 1 AllClear, 2 Yellow, 4 SCDeployed, 5 Red, 6 VSCDeployed, 7 VSCEnding. A
safety-car period runs from 4 until the status leaves 4; a virtual safety car from 6
until it leaves 6/7 (7 is its ending phase); a red flag from 5 until it leaves 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from f1daemon.domain.events import NeutralisationPeriod, TrackStatusChanged
from f1daemon.feed.state import JSON

NEUTRALISATION_KIND = {"4": "SC", "5": "RED", "6": "VSC", "7": "VSC"}


@dataclass(frozen=True)
class _OpenPeriod:
    kind: str
    start_ms: int
    start_utc: datetime | None
    first_lap: int | None


@dataclass
class TrackStatusTracker:
    """The track status over time, and the neutralisation periods."""

    session: str
    status: str | None = None
    history: list[tuple[int, str]] = field(default_factory=list)
    _open: _OpenPeriod | None = None

    def on_message(
        self, message: JSON, now: int, utc: datetime | None, leader_lap: int | None
    ) -> list[TrackStatusChanged | NeutralisationPeriod]:
        """Apply one TrackStatus message."""
        if not isinstance(message, dict):
            return []
        status = message.get("Status")
        if not isinstance(status, str) or not status or status == self.status:
            return []
        self.status = status
        self.history.append((now, status))
        name = message.get("Message")
        events: list[TrackStatusChanged | NeutralisationPeriod] = [
            TrackStatusChanged(
                session=self.session,
                session_time_ms=now,
                utc=utc,
                status=status,
                message=name if isinstance(name, str) else "",
            )
        ]
        kind = NEUTRALISATION_KIND.get(status)
        if self._open is not None and self._open.kind != kind:
            events.append(self._period(self._open, now, utc, leader_lap))
            self._open = None
        if kind is not None and self._open is None:
            self._open = _OpenPeriod(kind, now, utc, leader_lap)
        return events

    def statuses_between(self, start_ms: int | None, end_ms: int) -> tuple[str, ...]:
        """The statuses in force at some moment of [start, end], in order, without repeats."""
        seen: list[str] = []
        for offset, status in self.history:
            if offset > end_ms:
                break
            if start_ms is not None and offset <= start_ms:
                seen = [status]  # the status in force when the interval began
            elif status not in seen:
                seen.append(status)
        return tuple(seen)

    def finish(self) -> list[NeutralisationPeriod]:
        """The stream has ended: a period still open has no end."""
        if self._open is None:
            return []
        period = self._open
        self._open = None
        return [self._period(period, None, None, None)]

    def _period(
        self,
        period: _OpenPeriod,
        end_ms: int | None,
        end_utc: datetime | None,
        last_lap: int | None,
    ) -> NeutralisationPeriod:
        return NeutralisationPeriod(
            session=self.session,
            session_time_ms=period.start_ms,
            utc=period.start_utc,
            kind=period.kind,
            end_time_ms=end_ms,
            end_utc=end_utc,
            first_lap=period.first_lap,
            last_lap=last_lap,
        )
