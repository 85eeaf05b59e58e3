"""Who is who: `DriverList` into `DriverListed`, `SessionInfo` into `SessionDescribed`.

Both topics are merged state (a keyframe, then patches). Most `DriverList` patches
move a driver's line on the timing screen; an event is emitted only when what names
a driver changes (a first listing, a late team colour), and when what describes the
session changes. Fields are OpenF1's, so a join with its `drivers` and `sessions`
needs no mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from f1daemon.domain.events import DriverListed, SessionDescribed
from f1daemon.feed.state import JSON, merge
from f1daemon.feed.timing import driver_number

# DriverList's fields for each of ours.
_DRIVER_FIELDS = {
    "name_acronym": "Tla",
    "first_name": "FirstName",
    "last_name": "LastName",
    "full_name": "FullName",
    "broadcast_name": "BroadcastName",
    "team_name": "TeamName",
    "team_colour": "TeamColour",
    "country_code": "CountryCode",
    "headshot_url": "HeadshotUrl",
}
_OFFSET = re.compile(r"^(-)?(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _text(value: JSON) -> str | None:
    return value if isinstance(value, str) and value else None


def _key(value: JSON) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class DriverRoster:
    """The merged DriverList and what was last said of each driver."""

    session: str
    state: JSON = None
    said: dict[int, tuple[str | None, ...]] = field(default_factory=dict)

    def on_message(
        self, message: JSON, now: int, utc: datetime | None, *, keyframe: bool
    ) -> list[DriverListed]:
        self.state = merge(None if keyframe else self.state, message)
        if not isinstance(self.state, dict):
            return []
        listed: list[DriverListed] = []
        for number, entry in self.state.items():
            driver = driver_number(number)
            if driver is None or not isinstance(entry, dict):
                continue
            names = {ours: _text(entry.get(theirs)) for ours, theirs in _DRIVER_FIELDS.items()}
            values = tuple(names.values())
            if self.said.get(driver) == values or not any(values):
                continue
            self.said[driver] = values
            listed.append(
                DriverListed(
                    session=self.session, session_time_ms=now, utc=utc, driver=driver, **names
                )
            )
        return listed


@dataclass
class SessionDescription:
    """The merged SessionInfo and the last description emitted."""

    session: str
    state: JSON = None
    said: SessionDescribed | None = None

    def on_message(
        self, message: JSON, now: int, utc: datetime | None, *, keyframe: bool
    ) -> list[SessionDescribed]:
        self.state = merge(None if keyframe else self.state, message)
        info = _object(self.state)
        meeting = _object(info.get("Meeting"))
        country, circuit = _object(meeting.get("Country")), _object(meeting.get("Circuit"))
        offset = _offset(info.get("GmtOffset"))
        start = _utc(info.get("StartDate"), offset)
        described = SessionDescribed(
            session=self.session,
            session_time_ms=now,
            utc=utc,
            session_key=_key(info.get("Key")),
            meeting_key=_key(meeting.get("Key")),
            meeting_name=_text(meeting.get("Name")),
            session_name=_text(info.get("Name")),
            session_type=_text(info.get("Type")),
            circuit_key=_key(circuit.get("Key")),
            circuit_short_name=_text(circuit.get("ShortName")),
            country_key=_key(country.get("Key")),
            country_code=_text(country.get("Code")),
            country_name=_text(country.get("Name")),
            location=_text(meeting.get("Location")),
            date_start=start,
            date_end=_utc(info.get("EndDate"), offset),
            gmt_offset=_text(info.get("GmtOffset")),
            year=start.year if start is not None else None,
        )
        said = self.said
        when = {"session_time_ms", "utc"}
        if said is not None and said.model_dump(exclude=when) == described.model_dump(exclude=when):
            return []
        if described.session_key is None and described.session_name is None:
            return []  # nothing that describes a session
        self.said = described
        return [described]


def _object(value: JSON) -> dict[str, JSON]:
    return value if isinstance(value, dict) else {}


def _offset(text: JSON) -> timedelta | None:
    match = _OFFSET.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    sign, hours, minutes, seconds = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0))
    return -delta if sign else delta


def _utc(text: JSON, offset: timedelta | None) -> datetime | None:
    """A local `YYYY-MM-DDTHH:MM:SS` and the offset from UTC as a UTC time."""
    if not isinstance(text, str) or offset is None:
        return None
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        return None
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    return (local - offset).replace(tzinfo=UTC)
