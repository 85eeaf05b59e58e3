"""Backfill from the F1 static archive over HTTP (`f1daemon ingest --archive YEAR …`).

The archive (`https://livetiming.formula1.com/static/` by default) is three levels of
files: `{year}/Index.json` lists the meetings of a season and their sessions, each
with a `Path` (`2023/2023-03-05_Bahrain_Grand_Prix/2023-03-05_Race/`);
`{Path}Index.json` lists a session's feeds, each with a `StreamPath`
(`TimingData.jsonStream`); `{Path}{StreamPath}` is the topic's file, exactly the file
`f1daemon.sources.archive` reads from a local folder.

Which sessions a selection names is `archive_index`'s (`resolve_sessions`). How they
are fetched:

* **One session at a time**, its topics one after the other. A session is done once
  every topic its index lists has been fetched (or answered 404/403/410: the archive
  has gaps; such a topic is skipped and reported). Then `on_session` is called with
  it, and only when that returns is the session recorded as done in the progress file,
  so a rerun after a crash or an exhausted retry skips finished sessions and redoes
  the rest.
* **An on-disk HTTP cache** (`archive_cache`): each body with its validators; the
  next request for a URL is conditional, and a 304 uses the stored body.
* **Retries** (`archive_client`, whose `ArchiveClient` does the GETs): connection
  errors, timeouts, truncated bodies, 5xx and 429, with the project's jittered
  exponential backoff and the server's Retry-After; the error names the URL and
  the last failure.
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

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from f1daemon.sources.archive_cache import write_atomically
from f1daemon.sources.archive_client import (
    DEFAULT_BASE_URL,
    ArchiveClient,
    ArchiveMissing,
    SessionBackfill,
    Sleep,
)
from f1daemon.sources.archive_index import ArchiveSession, resolve_sessions
from f1daemon.sources.http_fetch import RetryPolicy

PROGRESS_FILE = "progress.json"

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


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
        write_atomically(self.path, orjson.dumps({"done": self._done}, option=orjson.OPT_INDENT_2))


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


# The backfill's interface: `backfill`, its report, its default URL and what its
# `on_session` is given (callers name them from here).
__all__ = ["DEFAULT_BASE_URL", "BackfillReport", "ProgressFile", "SessionBackfill", "backfill"]
