"""What a line of a recording comes to: the rules and kinds, the outcomes, and the few
helpers every parser of lines uses to say why (`describe_value`, `clip_text`).

See `f1daemon.sources.recording` for the formats and what each rule means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from f1daemon.sources import line_bytes

# Rules of RecordQuarantined.rule (see the package's docstring).
ENCODING = line_bytes.ENCODING  # shared with the archive files' reader
SYNTAX = "framing.syntax"
SHAPE = "framing.shape"
MISSING_FIELD = "framing.missing_field"
TYPE = "framing.type"
TIMESTAMP = "framing.timestamp"
SERVER_ERROR = "framing.server_error"

# Kinds of lines that carry no feed message by protocol.
BLANK = "blank"
LOG_LINE = "log-line"
KEEP_ALIVE = "keep-alive"
INIT = "init"
EMPTY_FRAME = "empty-frame"
ACK = "ack"
CONTROL = "control"
IGNORED_KINDS = (LOG_LINE, BLANK, KEEP_ALIVE, INIT, EMPTY_FRAME, ACK, CONTROL)


# -- line outcomes -------------------------------------------------------------------


@dataclass(frozen=True)
class FeedMessage:
    """One feed message as framed from a line (not yet a fact: no session, no sequence)."""

    topic: str
    payload: str
    utc: datetime | None
    keyframe: bool = False


@dataclass(frozen=True)
class Messages:
    """A line that holds feed messages (one or more)."""

    line: int
    messages: tuple[FeedMessage, ...]


@dataclass(frozen=True)
class Quarantined:
    """A line that cannot be framed as feed messages: kept whole with rule and reason."""

    line: int
    rule: str
    reason: str
    topic: str | None
    text: str
    payload_base64: str | None = None  # the line's bytes, when they are not UTF-8


@dataclass(frozen=True)
class Ignored:
    """A line that carries no feed message by protocol, and its kind."""

    line: int
    kind: str


LineOutcome = Messages | Quarantined | Ignored


class LineRejected(Exception):
    """A line that cannot be framed (internal: always turned into `Quarantined`)."""

    def __init__(self, rule: str, reason: str, topic: str | None = None) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason
        self.topic = topic


def describe_value(value: object) -> str:
    description = f"a {type(value).__name__}"
    if value is None:
        description = "null"
    elif isinstance(value, bool):
        description = f"a boolean ({value})"
    elif isinstance(value, str):
        description = f"a string ({clip_text(value)})"
    elif isinstance(value, dict):
        description = "an object"
    elif isinstance(value, list):
        description = f"a list of {len(value)} element" + ("" if len(value) == 1 else "s")
    elif isinstance(value, int | float):
        description = f"a number ({clip_text(value)})"
    return description


def clip_text(value: object, limit: int = 60) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long to write out
        return f"<a {type(value).__name__} too long to show>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def keepable(text: str) -> str:
    """The line as it can be stored: unpaired surrogates replaced."""
    return text if is_utf8(text) else text.encode("utf-8", errors="replace").decode("utf-8")
