"""What a path given to `ingest` holds, told by content, never by name alone.

A path is read as exactly one of:

* **archive files** (`archive`): a session folder of `{Topic}.jsonStream` files, one
  such file, or a path that does not exist (reported from there);
* **FastF1 `.raw` pages** (`fastf1_raw`): a folder of them without archive files of
  its own, or one page file — checked to hold jsonStream text;
* **a FastF1 HTTP cache** (`fastf1_http_cache`): a file with SQLite's header, read as
  a requests-cache store of the archive's responses; it may hold several sessions;
* **a saved subscribe reply** (`subscribe_reply`): one JSON document of keyframes;
* **a saved Jolpica page** (`jolpica_saved`): one results API response;
* **a live recording** (`recording`): a classic SignalR capture or a FastF1 file.

The first three come out as archive files (`ArchiveInput`: the facts of the archive,
whoever kept its files), a Jolpica page as its fact (`PageInput`), the others as a `Recording`
(`RecordingInput`). Anything
else is one user error that says what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from f1daemon.domain.events import MessageReceived
from f1daemon.errors import UserError
from f1daemon.sources.archive import SUFFIX, TopicFile, session_key_for, topic_files
from f1daemon.sources.fastf1_http_cache import is_sqlite, read_http_cache
from f1daemon.sources.fastf1_raw import RAW_SUFFIX, is_raw_folder, is_raw_page, read_raw
from f1daemon.sources.jolpica_saved import read_saved_page
from f1daemon.sources.recording import NotARecordingError, Recording, parse_recording
from f1daemon.sources.subscribe_reply import ReplyError, parse_subscribe_reply


@dataclass(frozen=True)
class ArchiveInput:
    """Archive files of one session, from a folder, FastF1's pages or its HTTP cache."""

    session: str
    origin: str
    files: tuple[TopicFile, ...]
    notes: tuple[str, ...] = ()  # for the operator: what was passed over


@dataclass(frozen=True)
class RecordingInput:
    """A live recording or a saved subscribe reply."""

    session: str
    origin: str
    recording: Recording


@dataclass(frozen=True)
class PageInput:
    """A saved Jolpica page: the fact the results source would have logged."""

    session: str
    origin: str
    fact: MessageReceived


RecordedInput = ArchiveInput | RecordingInput | PageInput


def read_input(path: Path, session: str | None = None) -> list[RecordedInput]:
    """What `path` holds, under `session` or the key it names (one entry per session)."""
    if path.is_dir():
        if is_raw_folder(path):
            return [_raw(path, session)]
        if not any(p.name.endswith(SUFFIX) for p in path.iterdir()):
            raise UserError(
                f"{path}: no {SUFFIX} files in this folder (nor FastF1 {RAW_SUFFIX} pages)"
            )
        return [_archive(path, session)]
    if path.name.endswith(SUFFIX) or not path.exists():
        return [_archive(path, session)]
    if is_sqlite(path):
        cache = read_http_cache(path)
        return [
            ArchiveInput(key, f"{path} ({key})", files, cache.notes())
            for key, files in cache.select(session).items()
        ]
    if is_raw_page(path):
        return [_raw(path, session)]
    return [_recording(path, session)]


def _archive(path: Path, session: str | None) -> ArchiveInput:
    files = topic_files(path)  # a missing path is reported from here
    return ArchiveInput(session or session_key_for(path), str(path), tuple(files))


def _raw(path: Path, session: str | None) -> ArchiveInput:
    raw = read_raw(path)
    return ArchiveInput(session or raw.session_key(), str(path), raw.files, raw.notes())


def _recording(path: Path, session: str | None) -> RecordingInput | PageInput:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"{path}: {error.strerror}") from error
    page = read_saved_page(data, path.name)
    if page is not None:
        key = session or page.default_session()
        return PageInput(key, str(path), page.fact(key))
    try:
        recording = parse_subscribe_reply(data, stream=path.name)
    except ReplyError as error:
        raise UserError(f"{path}: {error}") from None
    if recording is None:
        try:
            recording = parse_recording(data, stream=path.name)
        except NotARecordingError:
            raise UserError(
                f"{path}: not a recognised feed recording (it is not an archive file, "
                f"{{Topic}}{SUFFIX}, a FastF1 cache ({RAW_SUFFIX} pages or "
                "fastf1_http_cache.sqlite), a saved subscribe reply, a Jolpica page, a "
                "classic SignalR capture or a FastF1 recording)"
            ) from None
    return RecordingInput(session or recording.session_key(), str(path), recording)
