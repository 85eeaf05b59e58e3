"""A saved subscribe reply: the feed's full snapshot, kept alone as one JSON document.

Live clients save their initial state as the answer to their subscription, one JSON
document (often pretty-printed, so spread over many lines). Three shapes are read:

* the classic SignalR reply `{"R": {topic: state, …}, "I": "1"}` (fields of a classic
  frame only, and no feed messages `M`: a frame that carries them is a capture line,
  read by `f1daemon.sources.recording`);
* a SignalR Core completion `{"type": 3, "invocationId": …, "result": {topic: state}}`,
  with or without the record separator `\\x1e` the protocol ends every frame with;
* the snapshot alone, `{topic: state, …}`, as clients that keep only the completion's
  `result` save it — only when every key is a topic of the feed (`FEED_TOPICS`), so a
  JSON file of anything else is not taken for one.

The snapshot is framed by the same code as a capture's reply and the live client's
completion (`recording.reply_messages`): one keyframe message per topic, the payload
the compact JSON of the topic's state. The document becomes a `Recording` of one
record, so its facts are the ones a capture holding the same reply logs for it
(`source` `recording`, `stream` the file's name, sequence 1, 2, … in the reply's topic
order, no `received_at`, `offset_ms` 0) and its session key comes from the reply's
`SessionInfo` the same way (`recording.session_key_from_info`). Its format is
`RecordingFormat.SIGNALR`: both replies are SignalR's, and the formats of
`RecordingFormat` are the ones a line parser exists for, which a document has none of.

`parse_subscribe_reply` is sans-IO: it returns None for bytes that are not one reply
document (the caller tries the other formats) and raises `ReplyError` for one that
is, but cannot be used: truncated, not JSON past its opening, a topic that does not
frame, the server's error, or no topic at all. Such a file is one record: there is no
good part to keep beside a quarantined one, so it is refused whole, with the reason.
"""

from __future__ import annotations

import re

import orjson

from f1daemon.feed.messages import FEED_TOPICS
from f1daemon.sources.recording import (
    FeedMessage,
    LineRejected,
    Messages,
    Recording,
    RecordingFormat,
    clip_text,
    json_error_reason,
    reply_messages,
    session_key_from_info,
)

_BOM = b"\xef\xbb\xbf"
_RECORD_SEPARATOR = b"\x1e"
_CLASSIC_FIELDS = frozenset({"R", "I", "C", "S", "G", "T", "L", "D", "H", "P", "M"})
_COMPLETION = 3
_FEED_TOPICS = frozenset(FEED_TOPICS)
# The first key of a reply document as clients write it (in protocol order or sorted):
# what makes a file that does not parse a damaged reply rather than some other file.
_REPLY_OPENING = re.compile(
    rb'\A\{\s*"(?:R|I|type|invocationId|result|'
    + b"|".join(re.escape(topic.encode()) for topic in FEED_TOPICS)
    + rb')"\s*:'
)


class ReplyError(ValueError):
    """The bytes are a subscribe reply that cannot be used (the reason says why)."""


def parse_subscribe_reply(data: bytes, *, stream: str) -> Recording | None:
    """The reply's keyframes as a one-record `Recording`, or None if `data` is no reply.

    Raises `ReplyError` for a reply document that is truncated or does not frame.
    """
    text = data.removeprefix(_BOM).strip().removesuffix(_RECORD_SEPARATOR).strip()
    if not text.startswith(b"{"):
        return None
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        if error.msg.startswith("unexpected content after document"):
            return None  # one frame a line: a capture, not a document
        if not _REPLY_OPENING.match(text):
            return None
        raise ReplyError(f"a subscribe reply that {_broken(error, text)}") from None
    if not isinstance(document, dict):
        return None
    snapshot = _snapshot(document)
    if snapshot is None:
        return None
    try:
        messages = reply_messages(snapshot)
    except LineRejected as reject:
        raise ReplyError(f"a subscribe reply that does not frame: {reject.reason}") from None
    return Recording(
        stream,
        RecordingFormat.SIGNALR,
        (Messages(1, tuple(messages)),),
        session_hint=_session_hint(messages),
    )


def _snapshot(document: dict[str, object]) -> object | None:
    """The topic snapshot a reply document holds, or None if it is no reply."""
    if "R" in document and document.keys() <= _CLASSIC_FIELDS:
        if document.get("M"):
            return None  # feed messages beside the reply: a capture's line
        return document["R"]
    if document.get("type") == _COMPLETION and "invocationId" in document:
        if "error" in document:
            raise ReplyError(f"the server refused the subscription: {clip_text(document['error'])}")
        result = document.get("result")
        if result is None or result == {}:
            raise ReplyError("a subscribe completion without a snapshot: no topic had data")
        return result
    if document and document.keys() <= _FEED_TOPICS:
        return document
    return None


def _broken(error: orjson.JSONDecodeError, text: bytes) -> str:
    # A pretty-printed document: where it broke as a line and column, not a byte offset.
    line = text.count(b"\n", 0, error.pos) + 1
    column = error.pos - (text.rfind(b"\n", 0, error.pos) + 1) + 1
    if json_error_reason(error).startswith("truncated:"):
        return f"is truncated: it ends inside an open object, list or string (line {line})"
    return f"is not JSON: {error.msg} at line {line}, column {column}"


def _session_hint(messages: list[FeedMessage]) -> str | None:
    for message in messages:
        if message.topic == "SessionInfo":
            info = orjson.loads(message.payload)
            if isinstance(info, dict):
                return session_key_from_info(info)
    return None
