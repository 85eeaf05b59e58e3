"""Parsing the feed's values: times and racing numbers."""

from __future__ import annotations

import re

# ASCII digits only, at most six a field: the same grammar as the native TimingData
# digest (native/src/timing.rs), so both read every value alike.
_TIME = re.compile(r"^(?:([0-9]{1,6}):)?([0-9]{1,6})(?:\.([0-9]{1,3}))?$", re.ASCII)
_ASCII_SPACE = " \t\n\r\x0b\x0c"


def parse_time_ms(text: object) -> int | None:
    """Milliseconds from a feed time such as `1:45.412`, `42.025` or `59`.

    Returns None for empty or malformed values: the feed blanks values it has not
    timed, and a time is never guessed.
    """
    if not isinstance(text, str):
        return None
    match = _TIME.match(text.strip(_ASCII_SPACE))
    if match is None:
        return None
    minutes, seconds, fraction = match.groups()
    millis = int((fraction or "0").ljust(3, "0"))
    return (int(minutes or 0) * 60 + int(seconds)) * 1000 + millis


_GAP_SECONDS = re.compile(r"^\+?([0-9]{1,6})(?:\.([0-9]{1,3}))?$", re.ASCII)
_GAP_LAPS = re.compile(r"^\+?([0-9]{1,3}) ?L(?:APS?)?$", re.ASCII | re.IGNORECASE)
_LEADER = re.compile(r"^LAP [0-9]{1,3}$", re.ASCII)


def parse_gap(text: object) -> tuple[float | None, int | None]:
    """Seconds and laps behind from a feed gap (`GapToLeader`, `IntervalToPositionAhead`).

    `+13.078` is 13.078 s on the same lap (0 laps); `1 L` (or `+1 LAP`, `2 LAPS`) is
    laps behind, without seconds; the leader's `LAP 5` (its lap) is 0 s and 0 laps.
    Anything else (empty, malformed) is unknown: (None, None).
    """
    if not isinstance(text, str):
        return None, None
    value = text.strip(_ASCII_SPACE)
    if _LEADER.match(value):
        return 0.0, 0
    seconds = _GAP_SECONDS.match(value)
    if seconds is not None:
        return float(value.removeprefix("+")), 0
    laps = _GAP_LAPS.match(value)
    if laps is not None:
        return None, int(laps.group(1))
    return None, None


def format_time_ms(millis: int) -> str:
    """The feed's lap-time notation: `M:SS.mmm` (or `SS.mmm` under a minute)."""
    minutes, rest = divmod(millis, 60_000)
    seconds, ms = divmod(rest, 1000)
    if minutes:
        return f"{minutes}:{seconds:02d}.{ms:03d}"
    return f"{seconds}.{ms:03d}"


def driver_number(key: object) -> int | None:
    """The racing number from a `Lines` key such as `"44"`; None for anything else."""
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None
