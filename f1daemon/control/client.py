"""`f1daemon ctl`: send one command to a running daemon and read its reply."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import orjson

from f1daemon.control.protocol import encode_request
from f1daemon.errors import UserError

REPLY_LIMIT = 64 * 1024 * 1024


def call(path: Path, command: str, args: list[str], *, timeout: float = 30.0) -> dict[str, Any]:
    """One request, one reply (a dict with `ok`); UserError when the daemon can't be reached."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(encode_request(command, args))
            reply = _read_line(sock)
    except FileNotFoundError:
        raise UserError(f"no daemon listening at {path} (is f1daemon running?)") from None
    except ConnectionRefusedError:
        raise UserError(f"{path}: connection refused (a stale socket?)") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied (join the daemon's group)") from None
    except TimeoutError:
        raise UserError(f"{path}: no reply within {timeout:g} s") from None
    except OSError as error:
        raise UserError(f"{path}: {error.strerror or error}") from None
    try:
        decoded = orjson.loads(reply)
    except orjson.JSONDecodeError as error:
        raise UserError(f"{path}: the daemon's reply is not JSON: {error}") from None
    if not isinstance(decoded, dict) or "ok" not in decoded:
        raise UserError(f"{path}: unexpected reply {reply[:200]!r}")
    return decoded


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise UserError("the daemon closed the connection without a reply")
        newline = chunk.find(b"\n")
        if newline >= 0:
            chunks.append(chunk[:newline])
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > REPLY_LIMIT:
            raise UserError("the daemon's reply is too long")
