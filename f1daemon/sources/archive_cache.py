"""The archive backfill's on-disk HTTP cache.

Each body is stored with its ETag and Last-Modified (`{sha256(url)}.body` and its
`.json`); the next request for the URL is conditional (If-None-Match /
If-Modified-Since) and a 304 uses the stored body. Bodies are streamed to a temporary
file in the cache directory and only take a URL's place once complete, so a crash or
a cut download never leaves a partial body where a whole one is expected.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson


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
        write_atomically(meta, orjson.dumps(record))
        return CacheEntry(url, body, size, etag, last_modified)


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
