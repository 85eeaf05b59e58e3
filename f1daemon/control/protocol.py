"""The control protocol: one JSON object per line each way.

A request is ``{"command": NAME, "args": [...], "id": ANY}`` (`args` and `id`
optional); a reply is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error":
MESSAGE}``, with the request's `id` echoed when it had one.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

# Each command with the number of arguments it takes (least, most) and its usage.
COMMANDS: dict[str, tuple[int, int, str]] = {
    "status": (0, 0, "status"),
    "health": (0, 0, "health"),
    "sources": (0, 0, "sources"),
    "pause": (1, 1, "pause SOURCE"),
    "resume": (1, 1, "resume SOURCE"),
    "session": (1, 2, "session start|stop [SESSION]"),
    "tag": (1, 2, "tag NAME [MESSAGE]"),
    "metrics": (0, 0, "metrics"),
    "reload": (0, 0, "reload"),
    "shutdown": (0, 0, "shutdown"),
}


class ProtocolError(Exception):
    """A request the daemon cannot act on; the message goes back as the reply's error."""


@dataclass(frozen=True)
class Request:
    command: str
    args: tuple[str, ...]
    id: object = None


def parse_request(line: bytes) -> Request:
    """A request line (without its newline) as a Request; ProtocolError says what is wrong."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise ProtocolError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"a request is a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - {"command", "args", "id"})
    if unknown:
        raise ProtocolError(f"unknown request fields: {', '.join(map(str, unknown))}")
    command = data.get("command")
    if not isinstance(command, str):
        raise ProtocolError('a request needs "command": a string')
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ProtocolError('"args" must be a list of strings')
    if command not in COMMANDS:
        raise ProtocolError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
    least, most, usage = COMMANDS[command]
    if not least <= len(args) <= most:
        raise ProtocolError(f"usage: {usage}")
    return Request(command, tuple(args), data.get("id"))


def encode_reply(
    *, ok: bool, result: object = None, error: str | None = None, request_id: object = None
) -> bytes:
    """One reply line, newline included."""
    reply: dict[str, object] = {"ok": ok}
    if ok:
        reply["result"] = result
    else:
        reply["error"] = error
    if request_id is not None:
        reply["id"] = request_id
    return orjson.dumps(reply, default=str) + b"\n"


def encode_request(command: str, args: list[str]) -> bytes:
    """One request line, newline included (the client's side)."""
    return orjson.dumps({"command": command, "args": args}) + b"\n"
