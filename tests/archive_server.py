"""A local HTTP server in the static archive's URL layout, with faults to inject.

It serves the recordings folder (`../shared/f1data/livetiming`) in place, under
`/static/` as the real archive does:

* `{year}/Index.json` is `_index/{year}/Index.json`, as stored;
* `{year}/{meeting}/{session}/Index.json` is made up from the `.jsonStream` files of
  the local folder `{meeting}__{session}`, in the real index's shape
  (`{"Feeds": {"TimingData": {"KeyFramePath": "TimingData.json", "StreamPath":
  "TimingData.jsonStream"}, …}}`, UTF-8 with a byte-order mark); 404 when there is no
  such folder;
* `{year}/{meeting}/{session}/{Topic}.jsonStream` is that folder's file.

Every response carries an ETag (a hash of the body) and a Last-Modified (the file's
mtime) and honours If-None-Match / If-Modified-Since with a 304. Faults are injected
per path (relative to the base URL) and used up in order, one per request: an error
status (optionally with Retry-After), a slow response, a truncated body (a
Content-Length larger than what is sent, then the connection is closed) and a
connection reset. Every request is recorded, so tests can count what reached the
server and what it answered.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import unquote, urlsplit

PREFIX = "/static/"
SUFFIX = ".jsonStream"

FaultKind = Literal["status", "slow", "truncate", "reset"]


@dataclass
class Fault:
    """What to do instead of (or before) answering a request normally.

    `status`: answer `status` (with `Retry-After: retry_after` when given) and an
    empty body. `slow`: wait `delay` seconds before answering normally. `truncate`:
    promise the whole body in Content-Length, send half of it and close. `reset`:
    read the request and reset the connection (RST) without answering. Each fault
    applies to the next `times` requests of its path.
    """

    kind: FaultKind
    times: int = 1
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it, and what it did."""

    path: str  # relative to the base URL, unquoted
    status: int  # the status sent; 0 when the connection was reset without an answer
    conditional: bool  # whether If-None-Match or If-Modified-Since was sent
    fault: FaultKind | None


@dataclass
class _Body:
    data: bytes
    mtime: float


@dataclass
class ArchiveServer:
    """The archive over real HTTP on 127.0.0.1 (a free port), in a background thread.

    Use it as a context manager; `url` is the base URL to give the client.
    `missing_topics` maps a session path (`{year}/{meeting}/{session}/`) to topics that
    its index lists but that answer 404, as some of the real archive's do.
    """

    root: Path
    etags: bool = True
    last_modified: bool = True
    missing_topics: dict[str, list[str]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    _faults: dict[str, list[Fault]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: _Server | None = None
    _thread: threading.Thread | None = None

    # -- lifecycle

    def __enter__(self) -> Self:
        owner: ArchiveServer = self

        class Handler(_Handler):
            archive = owner

        httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="archive-server"
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._httpd is not None
        assert self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{PREFIX}"

    # -- faults and counts

    def inject(self, path: str, *faults: Fault) -> None:
        """Queue faults for the next requests of `path` (relative to `url`)."""
        with self._lock:
            self._faults.setdefault(path, []).extend(faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(path)
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault

    def record(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def requests(self, path: str | None = None) -> int:
        """How many requests reached the server (for `path`, or in all)."""
        with self._lock:
            return sum(1 for hit in self.hits if path is None or hit.path == path)

    def statuses(self, path: str | None = None) -> Counter[int]:
        """The statuses answered (0 for a reset), for `path` or in all."""
        with self._lock:
            return Counter(hit.status for hit in self.hits if path is None or hit.path == path)

    def reset_counts(self) -> None:
        with self._lock:
            self.hits.clear()

    # -- content

    def body(self, path: str) -> _Body | None:
        """The body served at `path` (relative to `url`), or None for a 404."""
        parts = path.split("/")
        if any(part in {"", ".", ".."} for part in parts):
            return None
        if len(parts) == 2 and parts[1] == "Index.json":
            return _file(self.root / "_index" / parts[0] / "Index.json")
        folder = self.root / f"{parts[1]}__{parts[2]}" if len(parts) == 4 else None
        if folder is None or not folder.is_dir():
            return None
        if parts[3] == "Index.json":
            return self._session_index(folder, "/".join(parts[:3]) + "/")
        return _file(folder / parts[3]) if parts[3].endswith(SUFFIX) else None

    def _session_index(self, folder: Path, session_path: str) -> _Body:
        files = sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIX) and p.is_file())
        topics = [p.name[: -len(SUFFIX)] for p in files]
        topics += self.missing_topics.get(session_path, [])
        feeds = {
            topic: {"KeyFramePath": f"{topic}.json", "StreamPath": f"{topic}{SUFFIX}"}
            for topic in sorted(topics)
        }
        data = b"\xef\xbb\xbf" + json.dumps({"Feeds": feeds}).encode()
        mtime = max((p.stat().st_mtime for p in files), default=folder.stat().st_mtime)
        return _Body(data, mtime)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        # A client that timed out or was given a fault goes away: not worth a traceback.
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


def _file(path: Path) -> _Body | None:
    try:
        return _Body(path.read_bytes(), path.stat().st_mtime)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


class _Handler(BaseHTTPRequestHandler):
    archive: ArchiveServer
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server: faults must close it

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: tests count requests through `hits`

    def do_GET(self) -> None:
        raw_path = urlsplit(self.path).path
        if not raw_path.startswith(PREFIX):
            self._answer(raw_path, HTTPStatus.NOT_FOUND, False)
            return
        path = unquote(raw_path[len(PREFIX) :])
        conditional = bool(
            self.headers.get("If-None-Match") or self.headers.get("If-Modified-Since")
        )
        fault = self.archive.take_fault(path)
        if fault is not None and fault.kind == "reset":
            self.archive.record(Hit(path, 0, conditional, "reset"))
            self._reset()
            return
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._answer(path, fault.status, conditional, headers=headers, fault="status")
            return
        body = self.archive.body(path)
        kind = _kind(fault)
        delay = fault.delay if fault is not None and fault.kind == "slow" else 0.0
        if body is None:
            self._answer(path, HTTPStatus.NOT_FOUND, conditional, fault=kind, delay=delay)
            return
        validators = self._validators(body)
        if self._not_modified(body, validators):
            self._answer(
                path,
                HTTPStatus.NOT_MODIFIED,
                conditional,
                headers=validators,
                fault=kind,
                delay=delay,
            )
            return
        # Recorded before answering: a slow answer may come after the client gave up.
        self.archive.record(Hit(path, 200, conditional, kind))
        time.sleep(delay)
        self.send_response(HTTPStatus.OK)
        content_type = "application/json" if path.endswith(".json") else "application/octet-stream"
        self._headers(
            validators | {"Content-Length": str(len(body.data)), "Content-Type": content_type}
        )
        if kind == "truncate":
            self.wfile.write(body.data[: len(body.data) // 2])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
            return
        self.wfile.write(body.data)

    def _validators(self, body: _Body) -> dict[str, str]:
        validators = {}
        if self.archive.etags:
            validators["ETag"] = f'"{hashlib.sha256(body.data).hexdigest()[:32]}"'
        if self.archive.last_modified:
            validators["Last-Modified"] = formatdate(body.mtime, usegmt=True)
        return validators

    def _not_modified(self, body: _Body, validators: dict[str, str]) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            etag = validators.get("ETag")
            return etag is not None and etag in {tag.strip() for tag in if_none_match.split(",")}
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since is not None and self.archive.last_modified:
            try:
                since = parsedate_to_datetime(if_modified_since).timestamp()
            except (TypeError, ValueError):
                return False
            return int(body.mtime) <= since
        return False

    def _answer(
        self,
        path: str,
        status: int,
        conditional: bool,
        *,
        headers: dict[str, str] | None = None,
        fault: FaultKind | None = None,
        delay: float = 0.0,
    ) -> None:
        self.archive.record(Hit(path, int(status), conditional, fault))
        time.sleep(delay)
        self.send_response(status)
        self._headers((headers or {}) | {"Content-Length": "0"})

    def _headers(self, headers: dict[str, str]) -> None:
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


def _kind(fault: Fault | None) -> FaultKind | None:
    return fault.kind if fault is not None else None
