"""A client of the API's live streams (server-sent events), for the tests.

It reads with h11 over a trio socket: httpx leaves its nested stream generators to
the garbage collector when a client stops reading a stream that never ends, which
pytest reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import h11
import orjson
import trio

# A message: its `id`, `event` and `data` (decoded JSON), and `received`, when it
# arrived (trio's clock); a heartbeat comes as {"event": "heartbeat"}.
Message = dict[str, Any]


async def read_stream(
    base_url: str, path: str, keep_reading: Callable[[Message], bool], last_id: str | None = None
) -> None:
    """Read a stream, handing each message to `keep_reading` until it returns False."""
    url = urlsplit(base_url)
    host, port = str(url.hostname), int(url.port or 80)
    connection = h11.Connection(h11.CLIENT)
    headers = [("Host", f"{host}:{port}"), ("Accept", "text/event-stream")]
    if last_id:
        headers.append(("Last-Event-ID", last_id))
    async with await trio.open_tcp_stream(host, port) as stream:
        request = h11.Request(method="GET", target=path, headers=headers)
        await stream.send_all(connection.send(request) + connection.send(h11.EndOfMessage()))
        text = ""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                assert event.status_code == 200
                assert dict(event.headers)[b"content-type"].startswith(b"text/event-stream")
            elif isinstance(event, h11.Data):
                text += bytes(event.data).decode()
                *blocks, text = text.split("\n\n")
                for block in blocks:
                    if not keep_reading(_message(block)):
                        return
            else:
                raise AssertionError(f"the stream ended: {event!r}")


def _message(block: str) -> Message:
    if block.startswith(":"):
        return {"event": "heartbeat", "received": trio.current_time()}
    fields = dict(line.split(": ", 1) for line in block.split("\n"))
    if "data" in fields:
        fields["data"] = orjson.loads(fields["data"])
    return {"event": "retry", **fields, "received": trio.current_time()}
