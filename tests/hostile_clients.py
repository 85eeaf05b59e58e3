"""Hostile clients of the control socket, for `tests/test_control_hostile.py`.

Run as a script by the system python (as another user, with `runuser`), so it imports
nothing but the standard library: `python3 -c SOURCE SOCKET KIND COUNT CONCURRENCY`.
It says `ready`, waits for a line on stdin, then makes COUNT connections of one KIND,
CONCURRENCY at a time, and prints one JSON object: the kind, the connections made and
how each ended.

Kinds: `silent` (connects, says nothing), `trickle` (a byte every 0.3 s, never a
newline), `refused` (run as a user the daemon does not let in: asks for status, or
closes at once), `unread` (sends requests with large replies and never reads them),
`oversized` (a line longer than any limit), `reset` (half a request, then a TCP-style
reset: SO_LINGER 0).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
import sys
from collections import Counter

READ_LIMIT_S = 60.0  # no connection of these kinds may live longer
PACE_S = 1.0


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    data = await reader.read(4096)
    return "closed" if not data else "replied"


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    request = b'{"command": "status"' + b" " * 100_000
    for byte in request:
        writer.write(bytes([byte]))
        try:
            await writer.drain()
            data = await asyncio.wait_for(reader.read(4096), 0.3)
        except TimeoutError:
            continue
        except OSError:
            return "closed"
        return "told" if data else "closed"
    return "never closed"


_refusals = itertools.count()


async def refused(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    if next(_refusals) % 2:  # every other one is gone before its refusal is sent
        return "closed at once"
    writer.write(b'{"command": "status"}\n')
    await writer.drain()
    data = await reader.read(4096)
    return "permission denied" if b"permission denied" in data else f"other: {data[:60]!r}"


async def unread(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    line = b'{"command": "metrics"}\n'
    try:
        for _ in range(100_000):
            writer.write(line * 100)
            await writer.drain()
    except OSError:
        return "closed"
    return "never closed"


async def oversized(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    try:
        writer.write(b"x" * (1 << 20))
        await writer.drain()
    except OSError:
        return "closed"
    data = await reader.read(4096)
    return "told" if b"longer than" in data else "closed"


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    writer.write(b'{"command": "sta')
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return "reset"


KINDS = {f.__name__: f for f in (silent, trickle, refused, unread, oversized, reset)}


async def one(path: str, kind: str, outcomes: Counter[str]) -> None:
    try:
        reader, writer = await asyncio.open_unix_connection(path)
    except OSError as error:
        outcomes[f"connect failed: {error.strerror}"] += 1
        return
    try:
        outcome = await asyncio.wait_for(KINDS[kind](reader, writer), READ_LIMIT_S)
    except TimeoutError:
        outcome = "not closed by the daemon"
    except OSError:
        outcome = "closed"
    finally:
        writer.close()
    outcomes[outcome] += 1


async def main(path: str, kind: str, count: int, concurrency: int) -> None:
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(concurrency)

    async def gated() -> None:
        async with gate:
            # At most one connection a second per slot: a sustained siege rather than a
            # burst over in a moment (refused connections end at once).
            began = asyncio.get_running_loop().time()
            await one(path, kind, outcomes)
            await asyncio.sleep(max(0.0, began + PACE_S - asyncio.get_running_loop().time()))

    await asyncio.gather(*(gated() for _ in range(count)))
    print(json.dumps({"kind": kind, "connections": count, "outcomes": outcomes}), flush=True)


if __name__ == "__main__":
    # Up and waiting: the attack starts when the test says so (a line on stdin), so
    # that the interpreters' start-up is not part of what the daemon is measured under.
    print("ready", flush=True)
    sys.stdin.readline()
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
