"""Live recordings of the feed: classic SignalR captures and FastF1's live-client files.

Two formats, both one record a line, told apart by content (`detect_format`), never by
file name:

* **SignalR capture** (classic SignalR, e.g. f1dash's): the capture tool's plain-text
  log lines ("Starting Server" …), then one JSON frame a line — `{}` keep-alives,
  `{"C":…,"S":1,"M":[]}` init frames and other frames with an empty `M` list, the
  subscribe reply `{"R":{topic: snapshot, …},"I":"1"}` and feed frames
  `{"M":[{"H":"Streaming","M":"feed","A":[topic, data, utc]}, …]}`.
* **FastF1** (`fastf1.livetiming.SignalRClient`): one Python literal a line,
  `['Topic', data, 'utc']`, read with `ast.literal_eval` (never `eval`).

The parser is sans-IO: `parse_recording` takes the file's bytes, `parse_lines` its
lines, and returns a `Recording`: the outcome of every line and, from those, the facts
to log (`Recording.facts`). `read_recording` is the only function that opens a file.

Every line ends as exactly one of (`LineOutcome`):

* `Messages` — one `MessageReceived` per feed message the line holds (a SignalR frame
  may hold several; the subscribe reply holds one per topic, each with
  `keyframe=True`: a full snapshot that replaces the state);
* `Quarantined` — one `RecordQuarantined`: the line kept whole (`payload`), the rule
  it broke and why;
* `Ignored` — nothing, but counted by kind — only for lines that carry no feed message
  by protocol: `log-line` (the capture tool's plain text: a line with none of
  `{}[]`), `keep-alive` (`{}`), `init` (a frame with `S`), `empty-frame` (an empty
  `M` list), `ack` (an invocation result without data, `{"I":…}`), `control` (other
  frames of control fields only: C, G, T, L, D), and `blank` (an empty or
  whitespace-only line, in either format). A SignalR line with any of `{}[]` is
  always read as a frame, so a damaged frame is quarantined, never taken for a log
  line.

A line is framed, not decoded: the rules below are what a line must be to be a feed
message at all. What a message says (an inner `Utc` that is no timestamp, an empty
patch `{}`, a `.z` payload that does not inflate) is the decoders' business; they
quarantine content that breaks their rules.

Rules of `RecordQuarantined.rule`:

* `framing.encoding` — the line is not UTF-8; or a `.z` topic's data is not a
  (non-empty, strictly padded) base64 string.
* `framing.syntax` — not JSON (SignalR) / not a Python literal (FastF1). A reason
  starting `truncated:` means the line ends inside an open list, dict or string.
* `framing.shape` — parsed, but not a frame: not a list (FastF1) / not an object
  (SignalR), more than three arguments, a topic that is no topic name, a hub
  message that is not `Streaming`/`feed`, an `R` that is not an object of topics, a
  frame without messages and with unknown fields.
* `framing.missing_field` — fewer than the three arguments `[topic, data, utc]`, or a
  hub message without `A`. When two arguments remain and the second is a utc stamp,
  the reason says the data is what is missing.
* `framing.type` — data of the wrong type: non-`.z` topics carry an object, `.z`
  topics a base64 string; and data must be JSON (no tuples, sets, bytes, non-string
  keys, infinities — a Python literal can hold them).
* `framing.timestamp` — the utc argument is not a string `YYYY-MM-DDTHH:MM:SS[.f…][Z
  or ±HH:MM]` naming a real moment.
* `framing.server_error` — a SignalR frame with `E` (the server's error reply).

A line is quarantined whole, for the first rule it breaks (arguments are checked in
order: topic, data, utc): a SignalR frame with one bad message among good ones is
quarantined as a whole — the record keeps all of it. A `_kf`-only data object
(`{'_kf': True}`) is a valid message: the feed's marker of a complete message.

FastF1's `with_errors.txt` (2021 Bahrain, deliberately damaged; 51 lines) therefore
reads as 19 messages and 32 quarantined lines:

* framing.encoding: 1, 4 — `CarData.z` / `Position.z` base64 with characters cut out.
* framing.missing_field: 2-3, 5-6, 11-12, 17-18, 24-25, 31-32, 37-38, 44-45, 50-51
  (`['Topic', ]` / `['Topic']`: data and utc missing); 14 and 30 (`[topic, data]`:
  utc missing); 16 (`[topic, utc]`: data missing).
* framing.shape: 7 — `"whatever"`, a string, not a list.
* framing.syntax: 10 (truncated: unterminated list); 21 and 29 (a piece cut out of
  the middle); 48 (a `}` missing: `]` closes a dict).
* framing.timestamp: 27 (`'202103-28TZ'`), 34 (`'2021-0341.297Z'`), 40
  (`'208T14:57:41.297Z'`), 47 (`'2021035:00:'`).

Lines 20 and 22 (a race-control message whose own `Utc` is damaged / missing), 23,
36, 42, 43, 49 (`{}`), 28 (a driver with `{}`) and 41 are well framed: they are
messages, and whatever is wrong inside them is for the decoders to find.

Facts: `source` is `recording`, `stream` the file's name, `sequence` the running
number of the facts the file produced (1, 2, … in line order; a quarantined line takes
one, an ignored line none). `payload` is the data as compact JSON (`orjson.dumps` of
the parsed value; for `.z` topics the JSON string of the base64 text — the shape the
archive files have). `received_at` is the message's utc stamp (fractions beyond
microseconds are cut off). `offset_ms` is the stream time reached on arrival: the
largest number of milliseconds (floored) from the file's first stamp to any stamp so
far. The feed's stamps are not monotonic across topics, and this keeps the order in
which the messages arrived when the decoders sort by offset. Subscribe-reply
keyframes carry no stamp: `received_at` is null and `offset_ms` is the stream time
reached when they arrived (0 before any stamp).

Session key: the file's `SessionInfo` (the subscribe reply's, else the first
`SessionInfo` message that names the session): its `Path`
(`2023/2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2/`) gives the archive's key
`2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2`; without a usable `Path`,
`{Meeting.Name}/{date of StartDate}_{Name}` with spaces as `_` (the meeting's own date
is not in `SessionInfo`, so the meeting part has none). Without `SessionInfo`: the
file's stem.
"""

from __future__ import annotations

import ast
import binascii
import math
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from itertools import islice
from pathlib import Path, PurePath

import orjson

from f1daemon.domain.events import Fact, MessageReceived, RecordQuarantined
from f1daemon.errors import UserError
from f1daemon.sources.archive import SUFFIX as ARCHIVE_SUFFIX

SOURCE = "recording"

# Rules of RecordQuarantined.rule (see the module's docstring).
ENCODING = "framing.encoding"
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

# Fields of classic SignalR frames: messages, reply, and control fields.
_CONTROL_FIELDS = frozenset({"C", "S", "G", "T", "L", "D", "I"})
_SIGNALR_FIELDS = _CONTROL_FIELDS | {"M", "R", "E", "H", "P"}

_DETECT_LINES = 1000  # lines looked at to tell the format
_BOM = "\ufeff"
_STRUCTURE = re.compile(r"[{}\[\]]")
_FASTF1_START = re.compile(r"\[\s*['\"]")
_TOPIC = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*", re.ASCII)
_TOPIC_MAX = 64
_FASTF1_TOPIC = re.compile(r"\A\[\s*(['\"])(?P<topic>[^'\"]{1,64})\1\s*[,\]]")
_SIGNALR_TOPIC = re.compile(r'"A"\s*:\s*\[\s*"(?P<topic>[^"]{1,64})"')
_UTC = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_KEY_PART = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}_\S+")
_NEVER_CLOSED = re.compile(r"'(.)' was never closed")
_BRACKETS = {"[": "list", "{": "dict", "(": "tuple"}
_ONE_MS = timedelta(milliseconds=1)


class RecordingFormat(StrEnum):
    """The formats of live recordings."""

    SIGNALR = "signalr"
    FASTF1 = "fastf1"


class NotARecordingError(ValueError):
    """The input is in neither recording format."""


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


# -- the recording -------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingReport:
    """What a recording's lines came to: every line is counted exactly once."""

    stream: str
    format: RecordingFormat
    lines: int
    message_lines: int  # lines that hold feed messages
    messages: int  # feed messages those lines hold
    quarantined: int  # quarantined lines
    rules: Mapping[str, int]  # quarantined lines by rule
    ignored: Mapping[str, int]  # ignored lines by kind

    @property
    def ignored_lines(self) -> int:
        """Lines that carry no feed message by protocol."""
        return sum(self.ignored.values())

    def summary(self) -> str:
        """One line for an operator."""
        parts = [
            f"{self.stream} ({self.format}): {self.lines} lines",
            f"{self.messages} messages from {self.message_lines} lines",
            f"{self.quarantined} quarantined" + _counts(self.rules),
            f"{self.ignored_lines} ignored by protocol" + _counts(self.ignored),
        ]
        return ", ".join(parts)


def _counts(counts: Mapping[str, int]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{count} {name}" for name, count in counts.items()) + ")"


@dataclass(frozen=True)
class Recording:
    """A parsed recording: every line's outcome, ready to become facts."""

    stream: str
    format: RecordingFormat
    outcomes: tuple[LineOutcome, ...]
    session_hint: str | None = field(default=None)  # from SessionInfo; None if not named
    report: RecordingReport = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "report", _report(self))

    def session_key(self) -> str:
        """The session this recording is of: from its SessionInfo, else the file's stem."""
        return self.session_hint or PurePath(self.stream).stem or self.stream

    def facts(self, session: str) -> Iterator[Fact]:
        """The recording's facts, in line order, numbered 1, 2, … (deterministic)."""
        sequence = 0
        t0: datetime | None = None
        reached = 0  # stream time reached: the largest offset so far
        for outcome in self.outcomes:
            if isinstance(outcome, Ignored):
                continue
            if isinstance(outcome, Quarantined):
                sequence += 1
                yield RecordQuarantined(
                    session=session,
                    source=SOURCE,
                    stream=self.stream,
                    sequence=sequence,
                    topic=outcome.topic,
                    rule=outcome.rule,
                    reason=outcome.reason,
                    payload=outcome.text,
                )
                continue
            for message in outcome.messages:
                sequence += 1
                if message.utc is None:
                    offset_ms = reached
                else:
                    if t0 is None:
                        t0 = message.utc
                    # Stamps are not monotonic across topics; the stream's time is
                    # the furthest reached, so the decoders see arrival order.
                    reached = max(reached, (message.utc - t0) // _ONE_MS)
                    offset_ms = reached
                yield MessageReceived(
                    session=session,
                    source=SOURCE,
                    stream=self.stream,
                    topic=message.topic,
                    sequence=sequence,
                    offset_ms=offset_ms,
                    received_at=message.utc,
                    payload=message.payload,
                    keyframe=message.keyframe,
                )


def _report(recording: Recording) -> RecordingReport:
    message_lines = messages = 0
    rules: Counter[str] = Counter()
    ignored: Counter[str] = Counter()
    for outcome in recording.outcomes:
        if isinstance(outcome, Messages):
            message_lines += 1
            messages += len(outcome.messages)
        elif isinstance(outcome, Quarantined):
            rules[outcome.rule] += 1
        else:
            ignored[outcome.kind] += 1
    return RecordingReport(
        stream=recording.stream,
        format=recording.format,
        lines=len(recording.outcomes),
        message_lines=message_lines,
        messages=messages,
        quarantined=sum(rules.values()),
        rules=dict(sorted(rules.items())),
        ignored={kind: ignored[kind] for kind in IGNORED_KINDS if ignored[kind]},
    )


# -- entry points --------------------------------------------------------------------


def read_recording(path: Path) -> Recording:
    """Read and parse a recording file; a user error if it is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file or folder") from None
    except OSError as error:
        raise UserError(f"{path}: {error.strerror}") from error
    try:
        return parse_recording(data, stream=path.name)
    except NotARecordingError:
        raise UserError(
            f"{path}: not a recognised feed recording (it is not an archive file, "
            f"{{Topic}}{ARCHIVE_SUFFIX}, nor a classic SignalR capture or a FastF1 recording)"
        ) from None


def parse_recording(data: bytes, *, stream: str, fmt: RecordingFormat | None = None) -> Recording:
    """Parse a recording's bytes (UTF-8, optional BOM, LF or CRLF line ends).

    Lines are split at LF only; a line that is not UTF-8 is quarantined. Raises
    `NotARecordingError` when `fmt` is not given and the content is neither format.
    """
    texts: list[str] = []
    undecodable: dict[int, Quarantined] = {}
    for number, raw in enumerate(_split(data), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            text = raw.decode("utf-8", errors="replace")
            undecodable[number] = Quarantined(
                number, ENCODING, f"not UTF-8: {error.reason} at byte {error.start + 1}", None, text
            )
        if number == 1 and text.startswith(_BOM):
            text = text[1:]
        texts.append(text)
    return parse_lines(texts, stream=stream, fmt=fmt, outcomes=undecodable)


def parse_lines(
    lines: Sequence[str],
    *,
    stream: str,
    fmt: RecordingFormat | None = None,
    outcomes: Mapping[int, LineOutcome] | None = None,
) -> Recording:
    """Parse a recording's lines (without line ends); line numbers count from 1.

    `outcomes` presets the outcome of some lines (by number), e.g. lines already
    found undecodable. Raises `NotARecordingError` when `fmt` is not given and the
    lines are neither format.
    """
    if fmt is None:
        fmt = detect_format(lines)
        if fmt is None:
            raise NotARecordingError(f"{stream}: not a recognised feed recording")
    parse_line = parse_signalr_line if fmt is RecordingFormat.SIGNALR else parse_fastf1_line
    preset = outcomes or {}
    results = tuple(
        preset.get(number) or parse_line(text, number) for number, text in enumerate(lines, start=1)
    )
    return Recording(stream, fmt, results, session_hint=_session_hint(results))


def detect_format(lines: Iterable[str]) -> RecordingFormat | None:
    """The format of a recording, from its first lines that look like records.

    A line starting `{` that is a classic SignalR frame (an object of SignalR fields
    only, or `{}`) means SignalR; a line starting `['` or `["` means FastF1. Plain
    text, blank and unparseable lines are passed over.
    """
    for text in islice(lines, _DETECT_LINES):
        stripped = text.lstrip(_BOM).strip()
        if stripped.startswith("{"):
            try:
                frame = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                continue
            if isinstance(frame, dict) and frame.keys() <= _SIGNALR_FIELDS:
                return RecordingFormat.SIGNALR
        elif _FASTF1_START.match(stripped):
            return RecordingFormat.FASTF1
    return None


def _split(data: bytes) -> list[bytes]:
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the last line's end
    return [line.removesuffix(b"\r") for line in lines]


# -- SignalR -------------------------------------------------------------------------


def parse_signalr_line(text: str, line: int) -> LineOutcome:
    """The outcome of one line of a classic SignalR capture."""
    stripped = text.strip()
    if not stripped:
        return Ignored(line, BLANK)
    if not _STRUCTURE.search(stripped):
        return Ignored(line, LOG_LINE)
    try:
        if not _is_utf8(text):
            raise LineRejected(ENCODING, "not UTF-8: the text holds unpaired surrogates")
        try:
            frame = orjson.loads(stripped)
        except orjson.JSONDecodeError as error:
            raise LineRejected(SYNTAX, json_error_reason(error)) from None
        if not isinstance(frame, dict):
            raise LineRejected(
                SHAPE, f"expected a SignalR frame (a JSON object), got {describe_value(frame)}"
            )
        return _frame_outcome(frame, line)
    except LineRejected as reject:
        topic = reject.topic
        if topic is None and reject.rule in (SYNTAX, ENCODING):
            topic = _topic_in(_SIGNALR_TOPIC, stripped)
        return Quarantined(line, reject.rule, reject.reason, topic, _keepable(text))


def _frame_outcome(frame: dict[str, object], line: int) -> LineOutcome:
    if not frame:
        return Ignored(line, KEEP_ALIVE)
    if "E" in frame:
        raise LineRejected(
            SERVER_ERROR, f"the server replied with an error: {clip_text(frame['E'])}"
        )
    messages: list[FeedMessage] = []
    reply = frame.get("R")
    if reply is not None:
        messages.extend(reply_messages(reply))
    if "M" in frame:
        messages.extend(_feed_messages(frame["M"]))
    if messages:
        return Messages(line, tuple(messages))
    if "M" in frame:
        return Ignored(line, INIT if "S" in frame else EMPTY_FRAME)
    unknown = sorted(frame.keys() - _CONTROL_FIELDS - {"R"})
    if unknown:
        raise LineRejected(
            SHAPE, "a frame without messages (M) or reply (R) with unknown fields " + str(unknown)
        )
    if "S" in frame:
        return Ignored(line, INIT)
    return Ignored(line, ACK if "I" in frame else CONTROL)


def reply_messages(reply: object) -> list[FeedMessage]:
    if not isinstance(reply, dict):
        raise LineRejected(
            SHAPE,
            f"expected the reply R to be an object of topic snapshots, got {describe_value(reply)}",
        )
    if not reply:
        raise LineRejected(SHAPE, "the subscribe reply R holds no topics")
    messages = []
    for name, data in reply.items():
        where = f"R[{name!r}]: "
        topic = _check_topic(name, where)
        payload = _payload(topic, data, where, from_json=True)
        messages.append(FeedMessage(topic, payload, None, keyframe=True))
    return messages


def _feed_messages(batch: object) -> list[FeedMessage]:
    if not isinstance(batch, list):
        raise LineRejected(
            SHAPE, f"expected M to be a list of hub messages, got {describe_value(batch)}"
        )
    messages = []
    for index, item in enumerate(batch):
        where = f"M[{index}]"
        if not isinstance(item, dict):
            raise LineRejected(
                SHAPE, f"{where}: expected a hub message object, got {describe_value(item)}"
            )
        hub, method = item.get("H"), item.get("M")
        if not (
            isinstance(hub, str)
            and hub.lower() == "streaming"
            and isinstance(method, str)
            and method.lower() == "feed"
        ):
            raise LineRejected(
                SHAPE,
                f"{where}: not a feed message (H={clip_text(hub)}, M={clip_text(method)}; "
                "expected H='Streaming', M='feed')",
            )
        if "A" not in item:
            raise LineRejected(MISSING_FIELD, f"{where}: no arguments A [topic, data, utc]")
        arguments = item["A"]
        if not isinstance(arguments, list):
            raise LineRejected(
                SHAPE,
                f"{where}.A: expected a list [topic, data, utc], got {describe_value(arguments)}",
            )
        messages.append(frame_arguments(arguments, f"{where}.A: ", from_json=True))
    return messages


def json_error_reason(error: orjson.JSONDecodeError) -> str:
    if error.msg.startswith(("unexpected end of data", "EOF while parsing")):
        return f"truncated: {error.msg} at column {error.pos + 1}"
    return f"not JSON: {error.msg} at column {error.pos + 1}"


# -- FastF1 --------------------------------------------------------------------------


def parse_fastf1_line(text: str, line: int) -> LineOutcome:
    """The outcome of one line of a FastF1 live-client recording."""
    stripped = text.strip()
    if not stripped:
        return Ignored(line, BLANK)
    try:
        if not _is_utf8(text):
            raise LineRejected(ENCODING, "not UTF-8: the text holds unpaired surrogates")
        value = _literal(stripped)
        if not isinstance(value, list):
            raise LineRejected(
                SHAPE, f"expected a list [topic, data, utc], got {describe_value(value)}"
            )
        return Messages(line, (frame_arguments(value, "", from_json=False),))
    except LineRejected as reject:
        topic = reject.topic or _topic_in(_FASTF1_TOPIC, stripped)
        return Quarantined(line, reject.rule, reject.reason, topic, _keepable(text))


def _literal(text: str) -> object:
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise LineRejected(SYNTAX, _syntax_reason(error, text)) from None
    except (ValueError, MemoryError, RecursionError, OverflowError) as error:
        raise LineRejected(SYNTAX, f"not a Python literal: {_plain(error)}") from None
    try:
        return ast.literal_eval(tree)
    except ValueError:
        raise LineRejected(SYNTAX, f"not a Python literal: {_non_literal(tree)}") from None
    except (TypeError, MemoryError, RecursionError, OverflowError) as error:
        raise LineRejected(SYNTAX, f"not a Python literal: {_plain(error)}") from None


def _syntax_reason(error: SyntaxError, text: str) -> str:
    message = error.msg or "invalid syntax"
    if never_closed := _NEVER_CLOSED.fullmatch(message):
        return f"truncated: unterminated {_BRACKETS.get(never_closed[1], never_closed[1])}"
    if message.startswith(("unterminated string literal", "unterminated triple-quoted")):
        return "truncated: unterminated string"
    message = message.split(";")[0]  # Python's hints (octal prefixes …) do not apply here
    if error.offset and 0 < error.offset <= len(text):
        near = text[error.offset - 1 : error.offset + 15]
        return f"not a Python literal: {message} at column {error.offset}, near {near!r}"
    return f"not a Python literal: {message}"


_LITERAL_NODES = (ast.Expression, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Load)
_ARITHMETIC_NODES = (ast.UnaryOp, ast.BinOp, ast.UAdd, ast.USub, ast.Add, ast.Sub)


def _non_literal(tree: ast.Expression) -> str:
    """What in a parsed expression is not a literal (deterministic: no object ids)."""
    for node in ast.walk(tree):
        if isinstance(node, _LITERAL_NODES):
            continue
        if isinstance(node, _ARITHMETIC_NODES):
            continue  # signed numbers and complex literals; literal_eval judges them
        column = getattr(node, "col_offset", None)
        where = f" at column {column + 1}" if isinstance(column, int) else ""
        return f"a {type(node).__name__} expression{where}"
    return "arithmetic that is not a number literal"


# -- framing shared by both formats --------------------------------------------------


def frame_arguments(arguments: list[object], where: str, *, from_json: bool) -> FeedMessage:
    count = len(arguments)
    first = arguments[0] if arguments else None
    topic_seen = first if isinstance(first, str) and is_topic_name(first) else None
    if count < 3:
        raise LineRejected(MISSING_FIELD, where + _missing(arguments), topic_seen)
    if count > 3:
        raise LineRejected(
            SHAPE, f"{where}expected [topic, data, utc], got {count} elements", topic_seen
        )
    topic = _check_topic(arguments[0], where)
    data, stamp = arguments[1], arguments[2]
    payload = _payload(topic, data, where, from_json=from_json)
    return FeedMessage(topic, payload, _utc(stamp, where, topic))


def _missing(arguments: list[object]) -> str:
    expected = "expected [topic, data, utc]"
    if not arguments:
        return f"{expected}, got an empty list"
    if len(arguments) == 1:
        return f"{expected}, got 1 element: data and utc missing"
    second = arguments[1]
    if isinstance(second, str) and parse_utc(second) is not None:
        return f"{expected}, got 2 elements: data missing (the second is a utc stamp)"
    return f"{expected}, got 2 elements: utc missing"


def is_topic_name(value: str) -> bool:
    return len(value) <= _TOPIC_MAX and _TOPIC.fullmatch(value) is not None


def _check_topic(topic: object, where: str) -> str:
    if not (isinstance(topic, str) and is_topic_name(topic)):
        raise LineRejected(SHAPE, f"{where}{describe_value(topic)} is not a topic name")
    return topic


def _payload(topic: str, data: object, where: str, *, from_json: bool) -> str:
    if topic.endswith(".z"):
        if not isinstance(data, str):
            raise LineRejected(
                TYPE,
                f"{where}{topic} data must be a base64 string, got {describe_value(data)}",
                topic,
            )
        _check_base64(topic, data, where)
    elif not isinstance(data, dict):
        raise LineRejected(
            TYPE, f"{where}{topic} data must be an object, got {describe_value(data)}", topic
        )
    if not from_json and (problem := _json_problem(data)):
        raise LineRejected(TYPE, f"{where}{topic} data is not JSON: it holds {problem}", topic)
    try:
        return orjson.dumps(data).decode()
    except orjson.JSONEncodeError as error:
        raise LineRejected(TYPE, f"{where}{topic} data is not JSON: {error}", topic) from None


def _check_base64(topic: str, data: str, where: str) -> None:
    if not data:
        raise LineRejected(ENCODING, f"{where}{topic} data is an empty string, not base64", topic)
    try:
        binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError) as error:
        raise LineRejected(ENCODING, f"{where}{topic} data is not base64: {error}", topic) from None


def _json_problem(value: object) -> str | None:
    """What in a Python value JSON cannot hold, or None (iterative: any depth)."""
    pending: deque[tuple[object, str]] = deque([(value, "")])
    while pending:
        item, path = pending.popleft()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"a {type(key).__name__} key {clip_text(key)} at {path or 'the top'}"
                pending.append((child, f"{path}.{key}" if path else key))
        elif isinstance(item, list):
            pending.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{item} at {path or 'the top'}"
        elif not (item is None or isinstance(item, str | int)):
            return f"a {type(item).__name__} at {path or 'the top'}"
    return None


def _utc(stamp: object, where: str, topic: str) -> datetime:
    if not isinstance(stamp, str):
        raise LineRejected(
            TIMESTAMP, f"{where}utc stamp must be a string, got {describe_value(stamp)}", topic
        )
    parsed = parse_utc(stamp)
    if parsed is None:
        raise LineRejected(
            TIMESTAMP, f"{where}utc stamp {clip_text(stamp)} is not a timestamp", topic
        )
    return parsed


def parse_utc(text: str) -> datetime | None:
    """A feed stamp (`2021-03-28T14:52:34.2188616Z`) as an aware UTC datetime, or None.

    Digits beyond microseconds are cut off; no zone means UTC.
    """
    match = _UTC.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    micro = int((match[7] or "").ljust(6, "0")[:6])
    zone = UTC
    if match[8] and match[8] != "Z":
        sign = -1 if match[8][0] == "-" else 1
        hours, minutes = int(match[8][1:3]), int(match[8][4:6])
        if hours > 23 or minutes > 59:
            return None
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


# -- session key ---------------------------------------------------------------------


def _session_hint(outcomes: Sequence[LineOutcome]) -> str | None:
    infos = [
        message
        for outcome in outcomes
        if isinstance(outcome, Messages)
        for message in outcome.messages
        if message.topic == "SessionInfo"
    ]
    for message in sorted(infos, key=lambda m: not m.keyframe):  # stable: keyframes first
        info = orjson.loads(message.payload)
        if isinstance(info, dict) and (key := session_key_from_info(info)):
            return key
    return None


def session_key_from_info(info: Mapping[str, object]) -> str | None:
    """The session key a `SessionInfo` object names, or None if it names none."""
    path = info.get("Path")
    if isinstance(path, str):
        parts = [part for part in path.split("/") if part]
        if len(parts) >= 2 and all(_KEY_PART.fullmatch(part) for part in parts[-2:]):
            return f"{parts[-2]}/{parts[-1]}"
    meeting = info.get("Meeting")
    name = info.get("Name")
    meeting_name = meeting.get("Name") if isinstance(meeting, dict) else None
    if not (isinstance(meeting_name, str) and isinstance(name, str)):
        return None
    meeting_part, session_part = _key_part(meeting_name), _key_part(name)
    if not (meeting_part and session_part):
        return None
    start = info.get("StartDate")
    if isinstance(start, str) and _DATE.match(start):
        session_part = f"{start[:10]}_{session_part}"
    return f"{meeting_part}/{session_part}"


def _key_part(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip()).replace("/", "_")


# -- small helpers -------------------------------------------------------------------


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


def _plain(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _topic_in(pattern: re.Pattern[str], text: str) -> str | None:
    """The topic an unparseable line names, when it can still be read."""
    match = pattern.search(text)
    return match["topic"] if match and is_topic_name(match["topic"]) else None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _keepable(text: str) -> str:
    """The line as it can be stored: unpaired surrogates replaced."""
    return text if _is_utf8(text) else text.encode("utf-8", errors="replace").decode("utf-8")
