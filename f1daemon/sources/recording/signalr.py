"""The lines of a classic SignalR capture: frames, the subscribe reply, feed messages."""

from __future__ import annotations

import re

import orjson

from f1daemon.sources.recording.framing import (
    check_topic,
    frame_arguments,
    payload_of,
    topic_in,
)
from f1daemon.sources.recording.lines import (
    ACK,
    BLANK,
    CONTROL,
    EMPTY_FRAME,
    ENCODING,
    INIT,
    KEEP_ALIVE,
    LOG_LINE,
    MISSING_FIELD,
    SERVER_ERROR,
    SHAPE,
    SYNTAX,
    FeedMessage,
    Ignored,
    LineOutcome,
    LineRejected,
    Messages,
    Quarantined,
    clip_text,
    describe_value,
    is_utf8,
    keepable,
)

# Fields of classic SignalR frames: messages, reply, and control fields.
_CONTROL_FIELDS = frozenset({"C", "S", "G", "T", "L", "D", "I"})
SIGNALR_FIELDS = _CONTROL_FIELDS | {"M", "R", "E", "H", "P"}
_STRUCTURE = re.compile(r"[{}\[\]]")
_SIGNALR_TOPIC = re.compile(r'"A"\s*:\s*\[\s*"(?P<topic>[^"]{1,64})"')


def parse_signalr_line(text: str, line: int) -> LineOutcome:
    """The outcome of one line of a classic SignalR capture."""
    stripped = text.strip()
    if not stripped:
        return Ignored(line, BLANK)
    if not _STRUCTURE.search(stripped):
        return Ignored(line, LOG_LINE)
    try:
        if not is_utf8(text):
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
            topic = topic_in(_SIGNALR_TOPIC, stripped)
        return Quarantined(line, reject.rule, reject.reason, topic, keepable(text))


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
        topic = check_topic(name, where)
        payload = payload_of(topic, data, where, from_json=True)
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
