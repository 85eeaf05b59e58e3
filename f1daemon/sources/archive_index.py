"""The F1 static archive's season index, and the sessions `f1daemon ingest --archive
YEAR [EVENT] [SESSION]` selects from it.

`{year}/Index.json` lists the meetings of a season and their sessions, each with a
`Path` (`2023/2023-03-05_Bahrain_Grand_Prix/2023-03-05_Race/`); `resolve_sessions`
matches EVENT and SESSION against them as a user names them ("bahrain", "fp2",
"sprint qualifying") and gives `ArchiveSession`s, keyed as the same session ingested
from a folder.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from f1daemon.errors import UserError


@dataclass(frozen=True)
class ArchiveSession:
    """A session of the archive, as the season's index lists it."""

    year: int
    meeting: str  # the meeting's Name, e.g. "Bahrain Grand Prix"
    name: str  # the session's Name, e.g. "Race" ("" when the index gives none)
    type: str  # the session's Type, e.g. "Race", "Qualifying", "Practice"
    path: str  # e.g. "2023/2023-03-05_Bahrain_Grand_Prix/2023-03-05_Race/"

    @property
    def key(self) -> str:
        """`{meeting folder}/{session folder}`: the key of the same session ingested from disk."""
        _, meeting, session = self.path.strip("/").split("/")
        return f"{meeting}/{session}"


_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}_")
_SESSION_ALIASES = {
    "fp1": "practice 1",
    "fp2": "practice 2",
    "fp3": "practice 3",
    "q": "qualifying",
    "r": "race",
    "s": "sprint",
    "ss": "sprint shootout",
    "sq": "sprint qualifying",
}


def resolve_sessions(
    index: Mapping[str, Any], year: int, event: str | None = None, session: str | None = None
) -> list[ArchiveSession]:
    """The sessions of a season's index that `EVENT` and `SESSION` select, in index order.

    `event` is matched, case- and accent-insensitively (`_` and `-` count as spaces),
    against each meeting's Name, folder name, Location and Country: an exact match of
    the Name or folder first, then the Name containing it as words ("bahrain" is the
    Bahrain Grand Prix, not the pre-season test held in Bahrain), then an exact
    Location, then an exact Country, then any of them containing it as words. The
    first of these that matches anything decides; several meetings there is an error
    listing them. `session` is matched likewise against each session's Name (or
    FP1…FP3, Q, R, S, SS, SQ) and folder, then Type ("practice" is every practice),
    then words of the Name. Without `event`, every meeting; without `session`, every
    session. Only sessions that the index gives a Path (that the archive has) count.
    """
    meetings = [m for m in _as_list(index.get("Meetings")) if isinstance(m, Mapping)]
    if event is not None:
        meetings = _select_meeting(meetings, year, event)
    candidates = [
        (meeting, entry)
        for meeting in meetings
        for entry in _as_list(meeting.get("Sessions"))
        if isinstance(entry, Mapping)
    ]
    archived = [(m, s) for m, s in candidates if _session_folder(s) is not None]
    where = f"{_text(meetings[0], 'Name')} {year}" if event is not None else str(year)
    if not archived:
        raise UserError(f"the archive has no sessions of {where}")
    if session is not None:
        archived = _select_sessions(archived, where, session)
    return [
        ArchiveSession(
            year=year,
            meeting=_text(meeting, "Name"),
            name=_text(entry, "Name"),
            type=_text(entry, "Type"),
            path=_text(entry, "Path"),
        )
        for meeting, entry in archived
    ]


def _select_meeting(
    meetings: list[Mapping[str, Any]], year: int, event: str
) -> list[Mapping[str, Any]]:
    wanted = _norm(event)

    def names(m: Mapping[str, Any]) -> set[str]:
        folder = _meeting_folder(m)
        folders = {_norm(folder), _norm(_DATED.sub("", folder))} if folder else set()
        return {_norm(_text(m, "Name"))} | folders

    def places(m: Mapping[str, Any]) -> set[str]:
        return {_norm(_text(m, "Location")), _norm(_text(m.get("Circuit") or {}, "ShortName"))}

    def countries(m: Mapping[str, Any]) -> set[str]:
        country = m.get("Country") or {}
        return {_norm(_text(country, "Name")), _norm(_text(country, "Code"))}

    def everything(m: Mapping[str, Any]) -> set[str]:
        return names(m) | places(m) | countries(m) | {_norm(_text(m, "OfficialName"))}

    tiers: list[Callable[[Mapping[str, Any]], bool]] = [
        lambda m: wanted in names(m),
        lambda m: any(_has_words(name, wanted) for name in names(m)),
        lambda m: wanted in places(m),
        lambda m: wanted in countries(m),
        lambda m: any(_has_words(text, wanted) for text in everything(m)),
    ]
    for tier in tiers:
        found = [m for m in meetings if tier(m)]
        if len(found) == 1:
            return found
        if found:
            listed = "; ".join(_describe_meeting(m) for m in found)
            raise UserError(
                f"{event!r} matches several meetings of {year}: {listed} (name one of them)"
            )
    listed = "; ".join(_describe_meeting(m) for m in meetings)
    raise UserError(f"no meeting of {year} matches {event!r}; the meetings are: {listed}")


def _select_sessions(
    archived: list[tuple[Mapping[str, Any], Mapping[str, Any]]], where: str, session: str
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    wanted = _norm(session)
    wanted = _SESSION_ALIASES.get(wanted, wanted)

    def names(s: Mapping[str, Any]) -> set[str]:
        folder = _session_folder(s) or ""
        return {_norm(_text(s, "Name")), _norm(folder), _norm(_DATED.sub("", folder))}

    tiers: list[Callable[[Mapping[str, Any]], bool]] = [
        lambda s: wanted in names(s),
        lambda s: wanted == _norm(_text(s, "Type")),
        lambda s: any(_has_words(name, wanted) for name in names(s)),
    ]
    for tier in tiers:
        found = [(m, s) for m, s in archived if tier(s)]
        if found:
            return found
    listed = ", ".join(dict.fromkeys(_text(s, "Name") or _text(s, "Type") for _, s in archived))
    raise UserError(f"no session of {where} matches {session!r}; the sessions are: {listed}")


def _describe_meeting(meeting: Mapping[str, Any]) -> str:
    country = _text(meeting.get("Country") or {}, "Name")
    place = ", ".join(p for p in (_text(meeting, "Location"), country) if p)
    folder = _meeting_folder(meeting)
    return f"{_text(meeting, 'Name')} ({place})" + (f" [{folder}]" if folder else "")


def _meeting_folder(meeting: Mapping[str, Any]) -> str | None:
    for entry in _as_list(meeting.get("Sessions")):
        parts = _path_parts(entry)
        if parts is not None:
            return parts[1]
    return None


def _session_folder(entry: Mapping[str, Any]) -> str | None:
    parts = _path_parts(entry)
    return parts[2] if parts is not None else None


def _path_parts(entry: object) -> list[str] | None:
    if not isinstance(entry, Mapping):
        return None
    path = entry.get("Path")
    if not isinstance(path, str):
        return None
    parts = path.strip("/").split("/")
    if len(parts) != 3 or not all(parts) or any(p in {".", ".."} for p in parts):
        return None
    return parts


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    return str(value) if isinstance(value, str | int) else ""


def _norm(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.split(r"[\s_\-]+", plain)).strip()


def _has_words(text: str, words: str) -> bool:
    return bool(words) and f" {words} " in f" {text} "
