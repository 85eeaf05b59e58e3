"""The static archive's files: `{Topic}.jsonStream`, one message a line.

A line is `HH:MM:SS.mmm` (offset from the stream's start) immediately followed by the
message's JSON. Files carry a byte-order mark and CRLF line ends as served; copies
saved by other tools may have neither. Splitting is done natively.

A session folder's topics are merged into one stream in offset order, so that the
decoders see the messages in the order the feed sent them.

A line that is not UTF-8 is no message: it is a `RecordQuarantined` fact
(`framing.encoding`) with its exact bytes in `payload_base64` (see
`f1daemon.sources.line_bytes`); a derivation in memory passes over it as the
derivation from the facts does.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from f1daemon._native import digest_timing_stream, split_json_stream
from f1daemon.domain.events import Fact, MessageReceived, RecordQuarantined
from f1daemon.errors import UserError
from f1daemon.feed.messages import DigestedTiming, FeedMessage, RawMessage
from f1daemon.sources.line_bytes import ENCODING, UndecodableLine, undecodable

SOURCE = "archive"
SUFFIX = ".jsonStream"


@dataclass(frozen=True)
class TopicFile:
    """One archive file and the topic it holds."""

    path: Path
    topic: str
    # The file's bytes when they are not the file at `path` alone: a response kept in
    # a FastF1 HTTP cache, whose store `path` then is. Called only when the file is read.
    body: Callable[[], bytes] | None = field(default=None, compare=False, repr=False)


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


def read_facts(session: str, files: Sequence[TopicFile]) -> Iterator[Fact]:
    """Every line of the files as a fact (a `MessageReceived`, or a `RecordQuarantined`
    for a line that is not UTF-8), merged in offset order."""
    streams = [_file_facts(session, f) for f in files]
    # An undated line is let out as soon as it heads its file, so it keeps its place
    # after the line before it.
    yield from heapq.merge(*streams, key=_offset_or_0)


def _offset_or_0(fact: Fact) -> int:
    return (fact.offset_ms if isinstance(fact, MessageReceived) else None) or 0


def read_messages(files: Sequence[TopicFile]) -> Iterator[FeedMessage]:
    """The files' messages for a derivation in memory, in the order `read_facts` gives.

    The same messages as the facts an ingest appends, without building the facts:
    TimingData is digested natively a whole file at a time, and its lines that carry
    nothing the decoders read are left out (the pipeline would pass over them).
    """
    streams: list[Iterator[FeedMessage]] = [
        _digested_timing(f) if f.topic == "TimingData" else _file_messages(f) for f in files
    ]
    yield from heapq.merge(*streams, key=lambda message: message.offset_ms or 0)


def _file_messages(topic_file: TopicFile) -> Iterator[RawMessage]:
    data = _read(topic_file)
    lines = _Lines(data)
    for line_number, offset_ms, text in split_json_stream(data):
        if offset_ms is None and lines.undecodable(line_number) is not None:
            continue  # a quarantined fact, not a message (see the module's docstring)
        yield RawMessage(SOURCE, topic_file.topic, topic_file.topic, line_number, offset_ms, text)


def _digested_timing(topic_file: TopicFile) -> Iterator[DigestedTiming]:
    data = _read(topic_file)
    lines = _Lines(data)
    for line_number, offset_ms, digest, error in digest_timing_stream(data):
        text = ""
        if error is not None or offset_ms is None:
            # Rare: the text of a line the pipeline will quarantine.
            if offset_ms is None and lines.undecodable(line_number) is not None:
                continue  # a quarantined fact, not a message
            text = split_json_stream(lines.raw(line_number))[0][2]
        yield DigestedTiming(SOURCE, topic_file.topic, line_number, offset_ms, digest, error, text)


class _Lines:
    """A file's lines by number, split only when one is asked for (rarely)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._lines: list[bytes] | None = None

    def raw(self, number: int) -> bytes:
        """The line's bytes (1-based, as the splitter numbers them), without its end."""
        if self._lines is None:
            self._lines = self._data.split(b"\n")
        return self._lines[number - 1].removesuffix(b"\r")

    def undecodable(self, number: int) -> UndecodableLine | None:
        """What to quarantine the line with, when it is not UTF-8."""
        return undecodable(self.raw(number))


def _read(topic_file: TopicFile) -> bytes:
    if topic_file.body is not None:
        return topic_file.body()
    try:
        return topic_file.path.read_bytes()
    except OSError as error:
        raise UserError(f"{topic_file.path}: {error.strerror}") from error


def _file_facts(session: str, topic_file: TopicFile) -> Iterator[Fact]:
    # The facts straight from the splitter: going through `_file_messages` would cost
    # a tuple per line on the ingest path (measured 17 % slower on Baku 2018).
    data = _read(topic_file)
    lines = _Lines(data)
    for line_number, offset_ms, text in split_json_stream(data):
        # The splitter gives no offset for a line that is not UTF-8 (nor for one without).
        if offset_ms is None and (bad := lines.undecodable(line_number)) is not None:
            yield RecordQuarantined(
                session=session,
                source=SOURCE,
                stream=topic_file.topic,
                sequence=line_number,
                topic=topic_file.topic,
                rule=ENCODING,
                reason=bad.reason,
                payload=bad.text,
                payload_base64=bad.payload_base64,
            )
            continue
        yield MessageReceived(
            session=session,
            source=SOURCE,
            stream=topic_file.topic,
            topic=topic_file.topic,
            sequence=line_number,
            offset_ms=offset_ms,
            payload=text,
        )
