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
The package: this module (the recording, its facts, its entry points, the session
key), `lines` (what a line comes to: rules, kinds, outcomes), `framing` (a message's
`[topic, data, utc]`, shared by both formats and the live client), `signalr` and
`fastf1` (each format's lines).

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

* `framing.encoding` — the line is not UTF-8 (its exact bytes are kept, base64, in
  `payload_base64`; see `f1daemon.sources.line_bytes`); or a `.z` topic's data is not
  a (non-empty, strictly padded) base64 string.
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

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import islice
from pathlib import Path, PurePath

import orjson

from f1daemon.domain.events import Fact, MessageReceived, RecordQuarantined
from f1daemon.errors import UserError
from f1daemon.sources.archive import SUFFIX as ARCHIVE_SUFFIX
from f1daemon.sources.line_bytes import undecodable as undecodable_bytes
from f1daemon.sources.recording.fastf1 import parse_fastf1_line
from f1daemon.sources.recording.framing import frame_arguments, is_topic_name, parse_utc
from f1daemon.sources.recording.lines import (
    ACK,
    BLANK,
    CONTROL,
    EMPTY_FRAME,
    ENCODING,
    IGNORED_KINDS,
    INIT,
    KEEP_ALIVE,
    LOG_LINE,
    MISSING_FIELD,
    SERVER_ERROR,
    SHAPE,
    SYNTAX,
    TIMESTAMP,
    TYPE,
    FeedMessage,
    Ignored,
    LineOutcome,
    LineRejected,
    Messages,
    Quarantined,
    clip_text,
    describe_value,
)
from f1daemon.sources.recording.signalr import (
    SIGNALR_FIELDS,
    json_error_reason,
    parse_signalr_line,
    reply_messages,
)

__all__ = [
    "ACK", "BLANK", "CONTROL", "EMPTY_FRAME", "ENCODING", "IGNORED_KINDS", "INIT",
    "KEEP_ALIVE", "LOG_LINE", "MISSING_FIELD", "SERVER_ERROR", "SHAPE", "SOURCE", "SYNTAX",
    "TIMESTAMP", "TYPE", "FeedMessage", "Ignored", "LineOutcome", "LineRejected", "Messages",
    "NotARecordingError", "Quarantined", "Recording", "RecordingFormat", "RecordingReport",
    "clip_text", "describe_value", "detect_format", "frame_arguments", "is_topic_name",
    "json_error_reason", "parse_fastf1_line", "parse_lines", "parse_recording",
    "parse_signalr_line", "parse_utc", "read_recording", "reply_messages",
    "session_key_from_info",
]  # fmt: skip

SOURCE = "recording"

_DETECT_LINES = 1000  # lines looked at to tell the format
_BOM = "\ufeff"
_FASTF1_START = re.compile(r"\[\s*['\"]")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_KEY_PART = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}_\S+")
_ONE_MS = timedelta(milliseconds=1)


class RecordingFormat(StrEnum):
    """The formats of live recordings."""

    SIGNALR = "signalr"
    FASTF1 = "fastf1"


class NotARecordingError(ValueError):
    """The input is in neither recording format."""


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
                    payload_base64=outcome.payload_base64,
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
        bad = undecodable_bytes(raw)
        if bad is None:
            text = raw.decode("utf-8")
        else:
            text = bad.text
            undecodable[number] = Quarantined(
                number, ENCODING, bad.reason, None, text, payload_base64=bad.payload_base64
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
            if isinstance(frame, dict) and frame.keys() <= SIGNALR_FIELDS:
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
