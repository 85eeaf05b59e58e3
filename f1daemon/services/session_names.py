"""Sessions by the names people use.

A session is asked for by its log key (`2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race`),
the archive folder it was ingested from (`…Grand_Prix__2018-04-29_Race`), F1's numeric
session key (`5090`) or a few words that name it alone (`2018 baku race`, `Baku R`,
`monza q`, `2023 monaco fp2`). Words are matched whole and case-insensitively against the
key's words and, where the session has been derived, what SessionInfo says of it
(year, location, circuit, country, meeting and session names), with the usual short
names of the session types (`R`, `Q`, `S`, `SQ`, `FP1`…).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from f1daemon.errors import UserError

# What people call each session type, beyond its own words.
_SHORT_NAMES: Mapping[str, tuple[str, ...]] = {
    "race": ("r",),
    "qualifying": ("q",),
    "sprint": ("s",),
    "sprint qualifying": ("sq",),
    "sprint shootout": ("ss", "sq"),
    "practice 1": ("fp1", "p1"),
    "practice 2": ("fp2", "p2"),
    "practice 3": ("fp3", "p3"),
}
_WORD = re.compile(r"[a-z0-9]+")


class AmbiguousSessionError(UserError):
    """A name that fits several sessions (the message lists them)."""


# What SessionInfo says of a session: the values named in it, e.g. "Baku".
Describe = Callable[[str], Iterable[str]]

# The SessionDescribed fields a session is named by.
NAMED_BY = (
    "session_key",
    "year",
    "location",
    "circuit_short_name",
    "country_name",
    "country_code",
    "meeting_name",
    "session_name",
)


def described_names(described: Mapping[str, object] | None) -> list[str]:
    """The names a SessionDescribed (as a mapping of its fields) gives its session."""
    if described is None:
        return []
    return [str(described[n]) for n in NAMED_BY if described.get(n) is not None]


def words(text: str) -> set[str]:
    """The lower-case words of a text (`Azerbaijan_Grand_Prix` → azerbaijan, grand, prix)."""
    return set(_WORD.findall(text.lower()))


def session_words(key: str, described: Iterable[str] = ()) -> set[str]:
    """Every word a session answers to: its key's and its description's, and the short
    names of its type (`Race` → r)."""
    found = words(key)
    names = [key.rsplit("/", 1)[-1], *described]
    for name in names:
        found |= words(name)
        # The key's last part is dated (`2018-04-29_Race`): the type is what follows.
        spaced = " ".join(w for w in _WORD.findall(name.lower()) if not w.isdigit() or len(w) < 2)
        found.update(_SHORT_NAMES.get(spaced, ()))
    return found


def resolve(requested: str, sessions: list[str], describe: Describe | None = None) -> str:
    """The one session `requested` names, or a UserError that lists the candidates
    (all the log's sessions when it names none)."""
    text = requested.strip()
    if text in sessions:
        return text
    folder = text.rstrip("/").rsplit("/", 1)[-1].replace("__", "/")
    if folder in sessions:
        return folder
    wanted = words(text)
    # Each session described once: a description may read the session's derived data.
    names = {s: list(describe(s)) if describe is not None else [] for s in sessions}
    if text.isdigit():
        keyed = [s for s in sessions if text in names[s]]
        if len(keyed) == 1:
            return keyed[0]
    matches = [s for s in sessions if wanted and wanted <= session_words(s, names[s])]
    if not matches:
        # A part of the key (`Azerbaijan_Grand_Prix/2018-04-29_Race`), case-insensitive.
        matches = [s for s in sessions if text.lower() in s.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise AmbiguousSessionError(f"{text!r} names several sessions: {', '.join(matches)}")
    known = ", ".join(sessions) or "none"
    raise UserError(f"unknown session {text!r}; the log holds: {known}")
