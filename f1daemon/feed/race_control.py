"""Race-control messages (`RaceControlMessages`), and the lap deletions they announce.

Messages arrive as a list, later patched by index; each new index is a message.
Deletions read `CAR 23 (ALB) TIME 1:20.456 DELETED - TRACK LIMITS AT TURN 11`
(newer feeds add `LAP 12 14:23:45`); `… REINSTATED` undoes one. The lap is the one
race control names, else the driver's latest lap with the quoted time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from f1daemon.domain.events import LapDeleted, RaceControlMessage
from f1daemon.feed.state import JSON
from f1daemon.feed.timebase import parse_utc
from f1daemon.feed.timing import driver_number, parse_time_ms

_DELETION = re.compile(
    r"CAR (?P<driver>\d+)\b.*?\bTIME (?P<time>\d+:\d+\.\d+)\b.*?\b(?P<verb>DELETED|REINSTATED)\b"
    r"(?:.*?\bLAP (?P<lap>\d+)\b)?"
)

# (driver, lap time ms) -> the lap that had that time, most recent first
LapLookup = Callable[[int, int], int | None]


@dataclass
class RaceControl:
    """Turns race-control messages into events, each message once."""

    session: str
    lap_lookup: LapLookup
    seen: int = 0

    def on_message(
        self, message: JSON, now: int, utc: datetime | None
    ) -> list[RaceControlMessage | LapDeleted]:
        """Apply one RaceControlMessages message."""
        items = message.get("Messages") if isinstance(message, dict) else None
        if isinstance(items, list):
            indexed = list(enumerate(items))
        elif isinstance(items, dict):
            indexed = [(int(k), v) for k, v in items.items() if k.isdigit()]
        else:
            return []
        events: list[RaceControlMessage | LapDeleted] = []
        for index, item in sorted(indexed, key=lambda pair: pair[0]):
            if index < self.seen or not isinstance(item, dict):
                continue  # an update of a message already told, or a snapshot repeating it
            self.seen = max(self.seen, index + 1)
            text = item.get("Message")
            if not isinstance(text, str):
                continue
            stamp = parse_utc(item.get("Utc")) or utc
            events.append(self._message(item, text, now, stamp))
            deletion = self._deletion(text, now, stamp)
            if deletion is not None:
                events.append(deletion)
        return events

    def _message(
        self, item: dict[str, JSON], text: str, now: int, utc: datetime | None
    ) -> RaceControlMessage:
        return RaceControlMessage(
            session=self.session,
            session_time_ms=now,
            utc=utc,
            category=_text(item.get("Category")) or "Other",
            message=text,
            flag=_text(item.get("Flag")),
            scope=_text(item.get("Scope")),
            sector=_int(item.get("Sector")),
            driver=driver_number(item.get("RacingNumber")),
            lap=_int(item.get("Lap")),
            status=_text(item.get("Status")),
        )

    def _deletion(self, text: str, now: int, utc: datetime | None) -> LapDeleted | None:
        match = _DELETION.search(text)
        if match is None:
            return None
        driver = int(match["driver"])
        lap_time = parse_time_ms(match["time"])
        lap = int(match["lap"]) if match["lap"] else None
        if lap is None and lap_time is not None:
            lap = self.lap_lookup(driver, lap_time)
        return LapDeleted(
            session=self.session,
            session_time_ms=now,
            utc=utc,
            driver=driver,
            lap=lap,
            lap_time_ms=lap_time,
            reinstated=match["verb"] == "REINSTATED",
            reason=text,
        )


def _text(value: JSON) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: JSON) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
