"""Backfill from the F1 static archive over HTTP (`f1daemon ingest --archive YEAR …`).

The archive (`https://livetiming.formula1.com/static/` by default) is three levels of
files: `{year}/Index.json` lists the meetings of a season and their sessions, each
with a `Path` (`2023/2023-03-05_Bahrain_Grand_Prix/2023-03-05_Race/`);
`{Path}Index.json` lists a session's feeds, each with a `StreamPath`
(`TimingData.jsonStream`); `{Path}{StreamPath}` is the topic's file, exactly the file
`f1daemon.sources.archive` reads from a local folder.

How it is fetched:

* **One session at a time**, its topics one after the other. A session is done once
  every topic its index lists has been fetched (or answered 404/403/410: the archive
  has gaps; such a topic is skipped and reported). Then `on_session` is called with
  it, and only when that returns is the session recorded as done in the progress file,
  so a rerun after a crash or an exhausted retry skips finished sessions and redoes
  the rest.
* **An on-disk HTTP cache**: each body is stored with its ETag and Last-Modified; the
  next request for the URL is conditional (If-None-Match / If-Modified-Since) and a
  304 uses the stored body. Bodies are streamed to a temporary file and only take a
  URL's place once complete.
* **Retries**: connection errors, timeouts, truncated bodies (fewer bytes than the
  Content-Length), 5xx and 429 are retried with the project's jittered exponential
  backoff (`f1daemon.actors.backoff`); a Retry-After (seconds or an HTTP date) is
  honoured, up to a cap. When the attempts run out the error names the URL and the
  last failure.
* **The facts** of a fetched session are those `archive.read_facts` gives for the same
  files read from disk, because they are read by it: the stored bodies are the files
  (`SessionBackfill.files` are `TopicFile`s pointing into the cache), in the order
  `archive.topic_files` gives for a folder, under the key `archive.session_key_for`
  gives for the folder `{meeting}__{session}`. HTTP and folder ingests of a session
  therefore append the same facts, and the log dedupes them.

The client is `httpx.AsyncClient` under trio (httpx runs on trio through anyio): the
downloads are cancellable like any other trio I/O, timeouts are trio's, and the
backoff sleeps are `trio.sleep` (injectable, so tests need not wait).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import tempfile
import unicodedata
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import orjson
import trio

from f1daemon.actors.backoff import Backoff
from f1daemon.domain.events import Fact
from f1daemon.errors import UserError
from f1daemon.sources.archive import SUFFIX, TopicFile, read_facts
from f1daemon.sources.http_fetch import RetryPolicy, retry_after_seconds

DEFAULT_BASE_URL = "https://livetiming.formula1.com/static/"
USER_AGENT = "f1daemon (archive backfill)"
PROGRESS_FILE = "progress.json"
MISSING_STATUSES = frozenset({403, 404, 410})  # the archive answers 403 for some missing files
_CHUNK = 1 << 16

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Progress = Callable[[str], None]


class ArchiveHTTPError(UserError):
    """A URL could not be fetched: retries ran out, or an answer that retrying cannot fix."""

    def __init__(self, url: str, reason: str, attempts: int, status: int | None = None) -> None:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"GET {url} failed{tries}: {reason}")
        self.url = url
        self.reason = reason
        self.attempts = attempts
        self.status = status


class ArchiveMissing(Exception):
    """The archive has no file at a URL (404, 403 or 410): not retried, reported by callers."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"{url}: HTTP {status}")
        self.url = url
        self.status = status


# The archive's retries: patient (a backfill is not in a hurry), as the shared policy.
ARCHIVE_RETRIES = RetryPolicy(
    attempts=6,
    backoff=Backoff(initial=1.0, factor=2.0, cap=30.0, jitter=0.5),
    timeout=30.0,
)


# -- the season's index and what to fetch from it


@dataclass(frozen=True)
class ArchiveSession:
    """A session of the archive, as the season's index lists it."""

    year: int
    meeting: str  # the meeting's Name, e.g. "Bahrain Grand Prix"
    name: str  # the session's Name, e.g. "Race" ("" when the index gives none)
    type: str  # the session's Type, e.g. "Race", "Qualifying", "Practice"
    path: str  # e.g. "2023/2023-03-05_Bahrain_Grand_Prix/2023-03-05_Race/"

    @property
    def key(self) -> str:
        """`{meeting folder}/{session folder}`: the key of the same session ingested from disk."""
        _, meeting, session = self.path.strip("/").split("/")
        return f"{meeting}/{session}"


_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}_")
_SESSION_ALIASES = {
    "fp1": "practice 1",
    "fp2": "practice 2",
    "fp3": "practice 3",
    "q": "qualifying",
    "r": "race",
    "s": "sprint",
    "ss": "sprint shootout",
    "sq": "sprint qualifying",
}


def resolve_sessions(
    index: Mapping[str, Any], year: int, event: str | None = None, session: str | None = None
) -> list[ArchiveSession]:
    """The sessions of a season's index that `EVENT` and `SESSION` select, in index order.

    `event` is matched, case- and accent-insensitively (`_` and `-` count as spaces),
    against each meeting's Name, folder name, Location and Country: an exact match of
    the Name or folder first, then the Name containing it as words ("bahrain" is the
    Bahrain Grand Prix, not the pre-season test held in Bahrain), then an exact
    Location, then an exact Country, then any of them containing it as words. The
    first of these that matches anything decides; several meetings there is an error
    listing them. `session` is matched likewise against each session's Name (or
    FP1…FP3, Q, R, S, SS, SQ) and folder, then Type ("practice" is every practice),
    then words of the Name. Without `event`, every meeting; without `session`, every
    session. Only sessions that the index gives a Path (that the archive has) count.
    """
    meetings = [m for m in _as_list(index.get("Meetings")) if isinstance(m, Mapping)]
    if event is not None:
        meetings = _select_meeting(meetings, year, event)
    candidates = [
        (meeting, entry)
        for meeting in meetings
        for entry in _as_list(meeting.get("Sessions"))
        if isinstance(entry, Mapping)
    ]
    archived = [(m, s) for m, s in candidates if _session_folder(s) is not None]
    where = f"{_text(meetings[0], 'Name')} {year}" if event is not None else str(year)
    if not archived:
        raise UserError(f"the archive has no sessions of {where}")
    if session is not None:
        archived = _select_sessions(archived, where, session)
    return [
        ArchiveSession(
            year=year,
            meeting=_text(meeting, "Name"),
            name=_text(entry, "Name"),
            type=_text(entry, "Type"),
            path=_text(entry, "Path"),
        )
        for meeting, entry in archived
    ]


def _select_meeting(
    meetings: list[Mapping[str, Any]], year: int, event: str
) -> list[Mapping[str, Any]]:
    wanted = _norm(event)

    def names(m: Mapping[str, Any]) -> set[str]:
        folder = _meeting_folder(m)
        folders = {_norm(folder), _norm(_DATED.sub("", folder))} if folder else set()
        return {_norm(_text(m, "Name"))} | folders

    def places(m: Mapping[str, Any]) -> set[str]:
        return {_norm(_text(m, "Location")), _norm(_text(m.get("Circuit") or {}, "ShortName"))}

    def countries(m: Mapping[str, Any]) -> set[str]:
        country = m.get("Country") or {}
        return {_norm(_text(country, "Name")), _norm(_text(country, "Code"))}

    def everything(m: Mapping[str, Any]) -> set[str]:
        return names(m) | places(m) | countries(m) | {_norm(_text(m, "OfficialName"))}

    tiers: list[Callable[[Mapping[str, Any]], bool]] = [
        lambda m: wanted in names(m),
        lambda m: any(_has_words(name, wanted) for name in names(m)),
        lambda m: wanted in places(m),
        lambda m: wanted in countries(m),
        lambda m: any(_has_words(text, wanted) for text in everything(m)),
    ]
    for tier in tiers:
        found = [m for m in meetings if tier(m)]
        if len(found) == 1:
            return found
        if found:
            listed = "; ".join(_describe_meeting(m) for m in found)
            raise UserError(
                f"{event!r} matches several meetings of {year}: {listed} (name one of them)"
            )
    listed = "; ".join(_describe_meeting(m) for m in meetings)
    raise UserError(f"no meeting of {year} matches {event!r}; the meetings are: {listed}")


def _select_sessions(
    archived: list[tuple[Mapping[str, Any], Mapping[str, Any]]], where: str, session: str
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    wanted = _norm(session)
    wanted = _SESSION_ALIASES.get(wanted, wanted)

    def names(s: Mapping[str, Any]) -> set[str]:
        folder = _session_folder(s) or ""
        return {_norm(_text(s, "Name")), _norm(folder), _norm(_DATED.sub("", folder))}

    tiers: list[Callable[[Mapping[str, Any]], bool]] = [
        lambda s: wanted in names(s),
        lambda s: wanted == _norm(_text(s, "Type")),
        lambda s: any(_has_words(name, wanted) for name in names(s)),
    ]
    for tier in tiers:
        found = [(m, s) for m, s in archived if tier(s)]
        if found:
            return found
    listed = ", ".join(dict.fromkeys(_text(s, "Name") or _text(s, "Type") for _, s in archived))
    raise UserError(f"no session of {where} matches {session!r}; the sessions are: {listed}")


def _describe_meeting(meeting: Mapping[str, Any]) -> str:
    country = _text(meeting.get("Country") or {}, "Name")
    place = ", ".join(p for p in (_text(meeting, "Location"), country) if p)
    folder = _meeting_folder(meeting)
    return f"{_text(meeting, 'Name')} ({place})" + (f" [{folder}]" if folder else "")


def _meeting_folder(meeting: Mapping[str, Any]) -> str | None:
    for entry in _as_list(meeting.get("Sessions")):
        parts = _path_parts(entry)
        if parts is not None:
            return parts[1]
    return None


def _session_folder(entry: Mapping[str, Any]) -> str | None:
    parts = _path_parts(entry)
    return parts[2] if parts is not None else None


def _path_parts(entry: object) -> list[str] | None:
    if not isinstance(entry, Mapping):
        return None
    path = entry.get("Path")
    if not isinstance(path, str):
        return None
    parts = path.strip("/").split("/")
    if len(parts) != 3 or not all(parts) or any(p in {".", ".."} for p in parts):
        return None
    return parts


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    return str(value) if isinstance(value, str | int) else ""


def _norm(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.split(r"[\s_\-]+", plain)).strip()


def _has_words(text: str, words: str) -> bool:
    return bool(words) and f" {words} " in f" {text} "


# -- the HTTP cache


@dataclass(frozen=True)
class CacheEntry:
    """A stored body and the validators it was served with."""

    url: str
    body: Path
    size: int
    etag: str | None
    last_modified: str | None


class HttpCache:
    """Bodies by URL in a directory: `{sha256(url)}.body` and its `.json` (validators, size)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _paths(self, url: str) -> tuple[Path, Path]:
        name = hashlib.sha256(url.encode()).hexdigest()
        return self.directory / f"{name}.body", self.directory / f"{name}.json"

    def lookup(self, url: str) -> CacheEntry | None:
        """The stored entry for `url`, if it is whole (its body has the size recorded)."""
        body, meta = self._paths(url)
        try:
            record = orjson.loads(meta.read_bytes())
            size = body.stat().st_size
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(record, dict) or record.get("url") != url or record.get("size") != size:
            return None
        etag, modified = record.get("etag"), record.get("last_modified")
        return CacheEntry(
            url,
            body,
            size,
            etag if isinstance(etag, str) else None,
            modified if isinstance(modified, str) else None,
        )

    def new_part(self) -> Path:
        """A fresh temporary file in the cache directory for a body being downloaded."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.directory, suffix=".part")
        os.close(fd)
        return Path(name)

    def store(
        self, url: str, part: Path, etag: str | None, last_modified: str | None
    ) -> CacheEntry:
        """Make a complete download in `part` the body stored for `url`."""
        body, meta = self._paths(url)
        size = part.stat().st_size
        os.replace(part, body)
        record = {
            "url": url,
            "size": size,
            "etag": etag,
            "last_modified": last_modified,
            "stored_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_atomically(meta, orjson.dumps(record))
        return CacheEntry(url, body, size, etag, last_modified)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


# -- the client


@dataclass(frozen=True)
class Fetched:
    """A URL's body, stored in the cache."""

    url: str
    body: Path
    size: int
    revalidated: bool  # True when the server answered 304 and the stored body was used


class _Retry(Exception):
    def __init__(
        self, reason: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class ArchiveClient:
    """GETs from the archive through the cache, with retries. Use as an async context manager."""

    def __init__(
        self,
        cache_dir: Path,
        base_url: str = DEFAULT_BASE_URL,
        *,
        policy: RetryPolicy | None = None,
        sleep: Sleep = trio.sleep,
        rng: random.Random | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"archive URL must be http:// or https://, got {base_url!r}")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.policy = policy or ARCHIVE_RETRIES
        self.cache = HttpCache(cache_dir / "http")
        self._sleep = sleep
        self._rng = rng
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(self.policy.timeout),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,
        )
        self.retries = 0
        """Attempts that failed and were retried, over the client's life."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._own_client:
            await self._client.aclose()

    def url(self, path: str) -> str:
        """The URL of an archive path (`2023/…/Index.json`), percent-encoded."""
        return self.base_url + quote(path, safe="/")

    async def get(self, path: str) -> Fetched:
        """Fetch an archive path, from the cache when the server says it has not changed.

        Raises `ArchiveMissing` for 404/403/410 and `ArchiveHTTPError` when the attempts
        run out or the answer is one retrying cannot fix.
        """
        url = self.url(path)
        backoff = self.policy.backoff.start(self._rng)
        attempts = self.policy.attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(url)
            except _Retry as failure:
                if attempt == attempts:
                    raise ArchiveHTTPError(url, failure.reason, attempts, failure.status) from None
                delay = backoff.next_delay(0.0)
                if failure.retry_after is not None:
                    if failure.retry_after > self.policy.max_retry_after:
                        reason = f"{failure.reason}; asked to wait {failure.retry_after:g} s"
                        raise ArchiveHTTPError(url, reason, attempt, failure.status) from None
                    delay = max(delay, failure.retry_after)
                self.retries += 1
                logger.warning(
                    "GET %s: %s; retrying in %.3g s (attempt %d of %d)",
                    url,
                    failure.reason,
                    delay,
                    attempt + 1,
                    attempts,
                    extra={"fields": {"url": url, "attempt": attempt, "delay_s": delay}},
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, url: str) -> Fetched:
        cached = await trio.to_thread.run_sync(self.cache.lookup, url)
        headers = {}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached is not None and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        try:
            async with self._client.stream("GET", url, headers=headers) as response:
                return await self._receive(url, response, cached)
        except httpx.UnsupportedProtocol as error:
            raise ArchiveHTTPError(url, str(error), 1) from error
        except httpx.TimeoutException as error:
            what = type(error).__name__
            raise _Retry(f"{what}: no answer within {self.policy.timeout:g} s") from error
        except httpx.TransportError as error:
            raise _Retry(f"{type(error).__name__}: {error}") from error

    async def _receive(
        self, url: str, response: httpx.Response, cached: CacheEntry | None
    ) -> Fetched:
        status = response.status_code
        if status == 304 and cached is not None:
            return Fetched(url, cached.body, cached.size, revalidated=True)
        if status in MISSING_STATUSES:
            raise ArchiveMissing(url, status)
        described = f"HTTP {status} {response.reason_phrase}".strip()
        if status == 429 or status >= 500:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            raise _Retry(described, status, retry_after)
        if status != 200:
            raise ArchiveHTTPError(url, described, 1, status)
        part = await trio.to_thread.run_sync(self.cache.new_part)
        try:
            async with await trio.open_file(part, "wb") as out:
                async for chunk in response.aiter_bytes(_CHUNK):
                    await out.write(chunk)
            expected = response.headers.get("Content-Length")
            received = response.num_bytes_downloaded
            if expected is not None and expected.isdigit() and int(expected) != received:
                raise _Retry(f"truncated body: {received} of {expected} bytes")
            entry = await trio.to_thread.run_sync(
                self.cache.store,
                url,
                part,
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
            )
        finally:
            part.unlink(missing_ok=True)
        return Fetched(url, entry.body, entry.size, revalidated=False)

    async def get_json(self, path: str) -> object:
        """Fetch and parse a JSON file of the archive (they carry a byte-order mark)."""
        fetched = await self.get(path)
        data = await trio.Path(fetched.body).read_bytes()
        try:
            return orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError as error:
            raise UserError(f"{fetched.url}: not JSON ({error})") from error

    async def year_index(self, year: int) -> Mapping[str, Any]:
        """The season's `Index.json`."""
        try:
            index = await self.get_json(f"{year}/Index.json")
        except ArchiveMissing as missing:
            raise UserError(
                f"the archive has no index for {year} ({missing.url}: HTTP {missing.status})"
            ) from None
        if not isinstance(index, Mapping):
            raise UserError(f"{self.url(f'{year}/Index.json')}: not a season index")
        return index

    async def session_topics(self, session: ArchiveSession) -> list[str]:
        """The topics a session's `Index.json` lists streams for, in file-name order.

        Raises `ArchiveMissing` when the archive has no index for the session.
        """
        index = await self.get_json(f"{session.path}Index.json")
        feeds = index.get("Feeds") if isinstance(index, Mapping) else None
        if not isinstance(feeds, Mapping):
            raise UserError(f"{self.url(session.path + 'Index.json')}: no Feeds in the index")
        names = {
            feed["StreamPath"]
            for feed in feeds.values()
            if isinstance(feed, Mapping)
            and isinstance(feed.get("StreamPath"), str)
            and feed["StreamPath"].endswith(SUFFIX)
            and "/" not in feed["StreamPath"]
        }
        # The order `archive.topic_files` gives a folder's files: by file name.
        return [name[: -len(SUFFIX)] for name in sorted(names)]

    async def fetch_session(self, session: ArchiveSession) -> SessionBackfill:
        """Every topic of a session (raises `ArchiveMissing` when the session has no index)."""
        topics = await self.session_topics(session)
        files: list[TopicFile] = []
        skipped: list[SkippedTopic] = []
        size = revalidated = 0
        for topic in topics:
            try:
                fetched = await self.get(f"{session.path}{topic}{SUFFIX}")
            except ArchiveMissing as missing:
                skipped.append(
                    SkippedTopic(topic, missing.url, f"not in the archive (HTTP {missing.status})")
                )
                continue
            files.append(TopicFile(fetched.body, topic))
            size += fetched.size
            revalidated += fetched.revalidated
        return SessionBackfill(session, tuple(files), tuple(skipped), size, revalidated)


# -- sessions fetched, and the backfill


@dataclass(frozen=True)
class SkippedTopic:
    """A topic the session's index lists but the archive does not serve."""

    topic: str
    url: str
    reason: str


@dataclass(frozen=True)
class SessionBackfill:
    """One session fetched whole: its files (in the cache) and what was skipped."""

    session: ArchiveSession
    files: tuple[TopicFile, ...]  # in `archive.topic_files` order, bodies in the cache
    skipped: tuple[SkippedTopic, ...]
    size: int  # bytes of the files
    revalidated: int  # files the server said had not changed (served from the cache)

    @property
    def key(self) -> str:
        return self.session.key

    def facts(self) -> Iterator[Fact]:
        """The session's facts: what `archive.read_facts` gives for the same files on disk."""
        return read_facts(self.key, self.files)


@dataclass
class BackfillReport:
    """What a backfill did."""

    selected: list[ArchiveSession] = field(default_factory=list)
    fetched: list[SessionBackfill] = field(default_factory=list)
    already_done: list[ArchiveSession] = field(default_factory=list)  # by an earlier run
    unavailable: list[tuple[ArchiveSession, str]] = field(default_factory=list)  # no index
    retries: int = 0


class ProgressFile:
    """Which sessions earlier runs finished, by session index URL (a JSON file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._done: dict[str, Any] = {}
        try:
            record = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as error:
            logger.warning("ignoring unreadable progress file %s: %s", path, error)
            return
        done = record.get("done") if isinstance(record, dict) else None
        if isinstance(done, dict):
            self._done = done

    def is_done(self, url: str) -> bool:
        return url in self._done

    def mark_done(self, url: str, result: SessionBackfill) -> None:
        self._done[url] = {
            "key": result.key,
            "topics": len(result.files),
            "skipped": [s.topic for s in result.skipped],
            "bytes": result.size,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_atomically(self.path, orjson.dumps({"done": self._done}, option=orjson.OPT_INDENT_2))


async def backfill(
    year: int,
    event: str | None = None,
    session: str | None = None,
    *,
    cache_dir: Path,
    base_url: str = DEFAULT_BASE_URL,
    on_session: Callable[[SessionBackfill], None] | None = None,
    progress: Progress | None = None,
    policy: RetryPolicy | None = None,
    progress_file: Path | None = None,
    refresh: bool = False,
    sleep: Sleep = trio.sleep,
    rng: random.Random | None = None,
    client: httpx.AsyncClient | None = None,
) -> BackfillReport:
    """Fetch the sessions `YEAR [EVENT] [SESSION]` selects, one at a time.

    `on_session` gets each session once all its topics are in the cache (it runs in
    the trio thread: an ingest into the log goes there); then the session is recorded
    in `progress_file` (default `cache_dir/progress.json`), and a later run skips it
    unless `refresh`. `progress` gets one line per session (default: the log).
    A session the archive has no index for is reported and left for a later run.
    Raises `ArchiveHTTPError` when a URL cannot be fetched (the sessions finished
    before it stay done), `UserError` for a selection that matches nothing.
    """
    say = progress or logger.info
    report = BackfillReport()
    done = await trio.to_thread.run_sync(ProgressFile, progress_file or cache_dir / PROGRESS_FILE)
    archive = ArchiveClient(cache_dir, base_url, policy=policy, sleep=sleep, rng=rng, client=client)
    async with archive:
        index = await archive.year_index(year)
        report.selected = resolve_sessions(index, year, event, session)
        total = len(report.selected)
        for number, selected in enumerate(report.selected, 1):
            head = f"session {number}/{total}: {selected.key}"
            index_url = archive.url(f"{selected.path}Index.json")
            if not refresh and done.is_done(index_url):
                report.already_done.append(selected)
                say(f"{head}: done by an earlier run, skipped")
                continue
            try:
                result = await archive.fetch_session(selected)
            except ArchiveMissing as missing:
                reason = f"not in the archive (HTTP {missing.status} for {missing.url})"
                report.unavailable.append((selected, reason))
                say(f"{head}: {reason}, skipped")
                continue
            for skipped in result.skipped:
                say(f"{head}: {skipped.topic} skipped: {skipped.reason} ({skipped.url})")
            if on_session is not None and result.files:
                on_session(result)
            await trio.to_thread.run_sync(done.mark_done, index_url, result)
            report.fetched.append(result)
            say(f"{head}: {_summary(result)}")
        report.retries = archive.retries
    return report


def _summary(result: SessionBackfill) -> str:
    text = f"{len(result.files)} topics, {result.size / 1e6:.1f} MB"
    if result.revalidated:
        text += f" ({result.revalidated} unchanged, from the cache)"
    if result.skipped:
        text += f", {len(result.skipped)} missing"
    return text


__all__ = [
    "DEFAULT_BASE_URL",
    "ArchiveClient",
    "ArchiveHTTPError",
    "ArchiveMissing",
    "ArchiveSession",
    "BackfillReport",
    "CacheEntry",
    "Fetched",
    "HttpCache",
    "ProgressFile",
    "RetryPolicy",
    "SessionBackfill",
    "SkippedTopic",
    "backfill",
    "resolve_sessions",
]
