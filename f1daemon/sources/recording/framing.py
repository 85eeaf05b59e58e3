"""Framing shared by both recording formats (and the live client): a message's
`[topic, data, utc]` arguments, topic names, payloads, utc stamps."""

from __future__ import annotations

import binascii
import math
import re
from collections import deque
from datetime import UTC, datetime, timedelta, timezone

import orjson

from f1daemon.sources.recording.lines import (
    ENCODING,
    MISSING_FIELD,
    SHAPE,
    TIMESTAMP,
    TYPE,
    FeedMessage,
    LineRejected,
    clip_text,
    describe_value,
)

_TOPIC = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*", re.ASCII)
_TOPIC_MAX = 64
_UTC = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})?"
)


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
    topic = check_topic(arguments[0], where)
    data, stamp = arguments[1], arguments[2]
    payload = payload_of(topic, data, where, from_json=from_json)
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


def check_topic(topic: object, where: str) -> str:
    if not (isinstance(topic, str) and is_topic_name(topic)):
        raise LineRejected(SHAPE, f"{where}{describe_value(topic)} is not a topic name")
    return topic


def payload_of(topic: str, data: object, where: str, *, from_json: bool) -> str:
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


def plain(error: BaseException) -> str:
    return str(error) or type(error).__name__


def topic_in(pattern: re.Pattern[str], text: str) -> str | None:
    """The topic an unparseable line names, when it can still be read."""
    match = pattern.search(text)
    return match["topic"] if match and is_topic_name(match["topic"]) else None
