"""FastF1 3.x's HTTP cache (`fastf1_http_cache.sqlite`) as archive files.

FastF1 fetches the static archive through requests-cache (`requests_cache.CachedSession`
with the SQLite backend), so its cache folder holds every archive response it got: a
table `responses (key TEXT PRIMARY KEY, value BLOB, expires INTEGER)`, where `key` is a
hash of the request and `value` the response, serialized by requests-cache's default
pipeline: cattrs unstructures the `CachedResponse` into plain data (a dict with `url`,
`status_code`, `created_at`, `headers`, `request`, and the body as bytes in `_content`),
pickled.

What is read, and how:

* **Only data is unpickled.** Pickle can run code named in the data; the loader here
  refuses every global (`find_class`), so a value can only become dicts, lists,
  strings, numbers and bytes. requests-cache's default values are exactly that; a
  value that needs a class (requests-cache before 1.0 pickled its objects whole, and
  other serializers are not pickle) is counted as unreadable and passed over.
* **The archive's stream files only**: 200 responses for
  `…/static/{year}/{meeting}/{session}/{Topic}.jsonStream`, whatever the host (FastF1
  falls back to a mirror with the same paths). Other responses (`Index.json`, Ergast,
  circuits, errors) are counted and passed over.
* **The session is the URL's** `{meeting}/{session}`: the key the archive folder
  `{meeting}__{session}` and `ingest --archive` file the same session under. A cache
  holding several sessions gives one per session. A URL fetched more than once (a
  mirror, a refresh) counts once, with the newest response.
* **Bodies are read when the facts are**, one topic at a time (`TopicFile.body`): the
  scan keeps no body, so a cache of a season costs memory for one file, not for all.

The facts are `archive.read_facts` over the bodies, in the order a folder of the same
files gives: a cache of a session logs the facts its archive folder logs, and the log
dedupes them.
"""

from __future__ import annotations

import io
import pickle
import re
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from f1daemon.errors import UserError
from f1daemon.sources.archive import SUFFIX, TopicFile
from f1daemon.sources.recording import is_topic_name

SQLITE_MAGIC = b"SQLite format 3\x00"
_ARCHIVE_PATH = re.compile(
    r"/static/(?P<year>[0-9]{4})/(?P<meeting>[^/]+)/(?P<session>[^/]+)/(?P<topic>[^/]+)"
    + re.escape(SUFFIX)
)

# Why a response of the cache was passed over.
OTHER = "not an archive stream"
NOT_OK = "not a 200 response"
UNREADABLE = "unreadable"


class _DataOnly(pickle.Unpickler):
    """An unpickler that builds plain data only: every class or function is refused."""

    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: data only")


def _unpickle(value: bytes) -> object:
    # Safe: `_DataOnly` resolves no global, so nothing but builtin data can be built.
    return _DataOnly(io.BytesIO(value)).load()


@dataclass(frozen=True)
class _Entry:
    key: str
    url: str
    created_at: str


@dataclass(frozen=True)
class HttpCache:
    """The archive streams a FastF1 HTTP cache holds, by session key."""

    path: Path
    sessions: dict[str, tuple[TopicFile, ...]]  # files in archive folder order
    passed_over: dict[str, int]  # responses not read, by reason

    def notes(self) -> tuple[str, ...]:
        """What an operator is told besides the facts: the responses passed over."""
        if not self.passed_over:
            return ()
        counts = ", ".join(f"{n} {reason}" for reason, n in self.passed_over.items())
        return (f"{self.path.name}: responses passed over: {counts}",)

    def select(self, session: str | None) -> dict[str, tuple[TopicFile, ...]]:
        """The sessions to ingest under their keys; `session` (`--session`) picks or names.

        A key the cache holds picks that session; any other key names the cache's one
        session. A cache of several sessions cannot be filed under one key.
        """
        if session is None or session in self.sessions:
            return self.sessions if session is None else {session: self.sessions[session]}
        if len(self.sessions) == 1:
            return {session: next(iter(self.sessions.values()))}
        raise UserError(
            f"{self.path}: holds {len(self.sessions)} sessions "
            f"({', '.join(sorted(self.sessions))}); --session must name one of them"
        )


def is_sqlite(path: Path) -> bool:
    """Whether a file is an SQLite database (by its header, not its name)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def read_http_cache(path: Path) -> HttpCache:
    """Scan a requests-cache SQLite store for the archive's stream files.

    A user error when it is no requests-cache store or holds no archive stream.
    """
    passed_over: Counter[str] = Counter()
    newest: dict[tuple[str, str], _Entry] = {}
    with closing(_connect(path)) as connection:
        for key, value in connection.execute("SELECT key, value FROM responses"):
            response = _response(value)
            if response is None:
                passed_over[UNREADABLE] += 1
                continue
            url, status, created_at = response
            match = _ARCHIVE_PATH.search(unquote(urlsplit(url).path))
            if match is None or not is_topic_name(match["topic"]):
                passed_over[OTHER] += 1
            elif status != 200:
                passed_over[NOT_OK] += 1
            else:
                where = (f"{match['meeting']}/{match['session']}", match["topic"])
                entry = _Entry(str(key), url, created_at)
                if where not in newest or created_at >= newest[where].created_at:
                    newest[where] = entry
    if not newest:
        counts = ", ".join(f"{n} {reason}" for reason, n in sorted(passed_over.items()))
        raise UserError(
            f"{path}: a requests-cache store without 200 responses for the archive's "
            f"static/{{year}}/{{meeting}}/{{session}}/{{Topic}}{SUFFIX} URLs "
            f"({counts or 'no responses at all'})"
        )
    sessions: dict[str, list[TopicFile]] = {}
    for (session, topic), entry in sorted(newest.items()):
        body = partial(_body, path, entry.key, entry.url)
        sessions.setdefault(session, []).append(TopicFile(path, topic, body=body))
    return HttpCache(
        path,
        {
            key: tuple(sorted(files, key=lambda f: f.topic + SUFFIX))
            for key, files in sessions.items()
        },
        dict(sorted(passed_over.items())),
    )


def _connect(path: Path) -> sqlite3.Connection:
    # Read-only: the cache is FastF1's, and FastF1 may be using it at the same time.
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True)
        columns = {row[1] for row in connection.execute("PRAGMA table_info(responses)")}
    except sqlite3.Error as error:
        raise UserError(f"{path}: cannot read the SQLite database: {error}") from error
    if not {"key", "value"} <= columns:
        connection.close()
        raise UserError(
            f"{path}: an SQLite database, but not a requests-cache store "
            "(FastF1's fastf1_http_cache.sqlite has a table responses(key, value))"
        )
    return connection


def _response(value: object) -> tuple[str, int, str] | None:
    """(url, status, created_at) of a stored response, or None if it cannot be read."""
    data = _plain(value)
    if data is None:
        return None
    url = data.get("url")
    request = data.get("request")
    if not isinstance(url, str) and isinstance(request, dict):
        url = request.get("url")
    status = data.get("status_code")
    created_at = data.get("created_at")
    if not (isinstance(url, str) and isinstance(status, int)):
        return None
    return url, status, created_at if isinstance(created_at, str) else ""


def _plain(value: object) -> dict[str, object] | None:
    if not isinstance(value, bytes):
        return None
    try:
        data = _unpickle(value)
    except Exception:  # whatever damaged or refused data raises: not readable as data
        return None
    return data if isinstance(data, dict) else None


def _body(path: Path, key: str, url: str) -> bytes:
    with closing(_connect(path)) as connection:
        row = connection.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
    data = _plain(row[0]) if row else None
    content = data.get("_content") if data else None
    if content is None and data is not None:
        # A store written with `decode_content`: the body kept as text instead.
        decoded = data.get("_decoded_content")
        content = decoded.encode() if isinstance(decoded, str) else None
    if not isinstance(content, bytes):
        raise UserError(f"{path}: the cached response for {url} is gone or has no body")
    return content
