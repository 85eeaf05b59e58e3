"""Serving the HTTP API: Hypercorn's trio worker, in the caller's nursery.

`listen` binds the address (port 0: one the system chooses); `serve_http` serves
there until `shutdown` is set, then drains and returns.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import Framework
from starlette.types import ASGIApp

from f1daemon.errors import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TOKEN_ENV_VAR = "F1DAEMON_HTTP_TOKEN"  # noqa: S105 - the variable's name, not a token


def is_loopback(host: str) -> bool:
    """Whether a host to bind to is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def check_exposure(host: str, token: str | None) -> None:
    """Bound beyond localhost, the API asks every request for a token."""
    if token is None and not is_loopback(host):
        raise UserError(
            f"serving on {host} (beyond this machine) needs a bearer token: "
            f"--token-file FILE or ${TOKEN_ENV_VAR}"
        )


def listen(host: str, port: int, graceful_timeout_s: float = 5.0) -> Config:
    """Hypercorn's settings for the API, its address bound already: a port in use is a
    plain OSError here, before anything runs (not one deep in the server's task
    groups). Hypercorn serves the bound socket as it serves systemd's (`fd://`)."""
    config = Config()
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    config.bind = [f"{bracketed}:{port}"]
    config.graceful_timeout = graceful_timeout_s
    config.accesslog = None
    config.errorlog = logging.getLogger("f1daemon.http")
    config.keep_alive_timeout = 30
    sockets = config.create_sockets().insecure_sockets
    # Hypercorn's sockets own the descriptors from here on (it closes them).
    config.bind = [f"fd://{sock.detach()}" for sock in sockets]
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
