"""GETs from the F1 static archive: through the HTTP cache, with retries.

`ArchiveClient` fetches the season's index, a session's index (its feeds, each with a
`StreamPath`) and the topics' files (`fetch_session`: a `SessionBackfill`). Connection
errors, timeouts, truncated bodies (fewer bytes than the Content-Length), 5xx and 429
are retried with the project's jittered exponential backoff (`f1daemon.actors.backoff`);
a Retry-After (seconds or an HTTP date) is honoured, up to a cap. When the attempts run
out, `ArchiveHTTPError` names the URL and the last failure. 404, 403 and 410 are the
archive's gaps (`ArchiveMissing`): not retried, and a topic missing is skipped and
reported.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
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
from f1daemon.sources.archive_cache import CacheEntry, HttpCache
from f1daemon.sources.archive_index import ArchiveSession
from f1daemon.sources.http_fetch import RetryPolicy, retry_after_seconds

DEFAULT_BASE_URL = "https://livetiming.formula1.com/static/"
USER_AGENT = "f1daemon (archive backfill)"
MISSING_STATUSES = frozenset({403, 404, 410})  # the archive answers 403 for some missing files
_CHUNK = 1 << 16

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


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
