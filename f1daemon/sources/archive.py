"""The static archive's files: `{Topic}.jsonStream`, one message a line.

A line is `HH:MM:SS.mmm` (offset from the stream's start) immediately followed by the
message's JSON. Files carry a byte-order mark and CRLF line ends as served; copies
saved by other tools may have neither. Splitting is done natively.

A session folder's topics are merged into one stream in offset order, so that the
decoders see the messages in the order the feed sent them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from f1daemon._native import split_json_stream
from f1daemon.domain.events import MessageReceived
from f1daemon.errors import UserError

SOURCE = "archive"
SUFFIX = ".jsonStream"


@dataclass(frozen=True)
class TopicFile:
    """One archive file and the topic it holds."""

    path: Path
    topic: str


def topic_files(path: Path) -> list[TopicFile]:
    """The archive files at a path: a session folder's `*.jsonStream` files, or one file."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(SUFFIX) and p.is_file())
        if not files:
            raise UserError(f"{path}: no {SUFFIX} files in this folder")
        return [TopicFile(p, p.name[: -len(SUFFIX)]) for p in files]
    if path.is_file():
        if not path.name.endswith(SUFFIX):
            raise UserError(f"{path}: not an archive file (expected a name ending in {SUFFIX})")
        return [TopicFile(path, path.name[: -len(SUFFIX)])]
    raise UserError(f"{path}: no such file or folder")


def session_key_for(path: Path) -> str:
    """The session key an archive path stands for.

    Archive folders are named `{meeting}__{session}` here (the archive's own path is
    `{year}/{meeting}/{session}/`); the key is `{meeting}/{session}`.
    """
    folder = path if path.is_dir() else path.parent
    return folder.resolve().name.replace("__", "/")


def read_facts(session: str, files: Sequence[TopicFile]) -> Iterator[MessageReceived]:
    """Every line of the files as a `MessageReceived`, merged in offset order."""
    streams = [_file_facts(session, f) for f in files]
    # An undated line is let out as soon as it heads its file, so it keeps its place
    # after the line before it.
    yield from heapq.merge(*streams, key=lambda fact: fact.offset_ms or 0)


def _file_facts(session: str, topic_file: TopicFile) -> Iterator[MessageReceived]:
    try:
        data = topic_file.path.read_bytes()
    except OSError as error:
        raise UserError(f"{topic_file.path}: {error.strerror}") from error
    for line_number, offset_ms, text in split_json_stream(data):
        # Built without validation: every value comes typed from the native splitter,
        # and this is the hot path of an ingest.
        yield MessageReceived.model_construct(
            session=session,
            source=SOURCE,
            stream=topic_file.topic,
            topic=topic_file.topic,
            sequence=line_number,
            offset_ms=offset_ms,
            payload=text,
            received_at=None,
            keyframe=False,
        )
