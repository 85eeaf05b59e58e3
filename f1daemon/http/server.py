"""Serving the HTTP API: Hypercorn's trio worker, in the caller's nursery.

`listen` binds the address (port 0: one the system chooses); `serve_http` serves
there until `shutdown` is set, then drains and returns.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import Framework
from starlette.types import ASGIApp

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def listen(host: str, port: int, graceful_timeout_s: float = 5.0) -> Config:
    """Hypercorn's settings for the API, its address bound already: a port in use is a
    plain OSError here, before anything runs (not one deep in the server's task
    groups). Hypercorn serves the bound socket as it serves systemd's (`fd://`)."""
    config = Config()
    config.graceful_timeout = graceful_timeout_s
    config.accesslog = None
    config.errorlog = logging.getLogger("f1daemon.http")
    config.keep_alive_timeout = 30
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # The standard library's server socket: closed again if it cannot be bound.
    listener = socket.create_server((address, port), family=family, backlog=config.backlog)
    # Hypercorn's socket owns the descriptor from here on (it closes it).
    config.bind = [f"fd://{listener.detach()}"]
    return config


async def serve_http(
    app: ASGIApp,
    config: Config,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the app where `config` (from `listen`) is bound until `shutdown` is set,
    then drain: stop accepting, let the requests under way finish (up to the graceful
    timeout). Started with `nursery.start`, it reports its addresses."""
    # One ASGI protocol, typed twice: Starlette's mappings, Hypercorn's TypedDicts.
    framework = cast("Framework", app)
    await serve(framework, config, shutdown_trigger=shutdown.wait, task_status=task_status)


def close_unserved(config: Config) -> None:
    """Close the sockets `listen` bound, when `serve_http` never took them (the start
    failed after the bind: a missing store). Hypercorn closes them once it serves, and
    their numbers may be reused after: only for a config that was never served."""
    for bind in config.bind:
        if bind.startswith("fd://"):
            os.close(int(bind.removeprefix("fd://")))
