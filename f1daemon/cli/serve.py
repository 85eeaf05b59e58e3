"""The HTTP API's command: `f1daemon serve`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from f1daemon.errors import UserError

if TYPE_CHECKING:  # imported by the handler: `f1daemon --help` stays fast
    from f1daemon.store.eventlog import EventLog

OpenLog = Callable[[str | None], "EventLog"]


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    store: argparse.ArgumentParser,
    open_log: OpenLog,
) -> None:
    """Add `serve` to the command line. (It opens the log read-only itself: a missing
    SQLite file is an error, not a new log.)"""
    serve = commands.add_parser(
        "serve",
        parents=[store],
        help="serve the derived data over HTTP, as OpenF1's API does",
        description=(
            "Serve every session of the log over HTTP with OpenF1's paths, query "
            "parameters and fields (GET /v1/laps?session_key=5090&lap_number>=10, "
            "csv=true, session_key=latest), plus version=TAG, qa_flags on each row, "
            "/v1/quarantine, /v1/qa_report and /v1/versions. Read-only. Bound to "
            "127.0.0.1 unless told otherwise; beyond it, a bearer token is required. "
            "SIGTERM or Ctrl-C drains and stops."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free)")
    serve.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="require `Authorization: Bearer TOKEN`, TOKEN this file's first line "
        "(default: $F1DAEMON_HTTP_TOKEN; required beyond localhost)",
    )
    serve.add_argument(
        "--max-rows",
        type=int,
        default=100_000,
        metavar="N",
        help="most rows one response holds (default: 100000; page with limit= and offset=)",
    )
    serve.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="per request (default: 30 s)"
    )
    serve.add_argument(
        "--max-concurrent",
        type=int,
        default=16,
        metavar="N",
        help="requests at once; more are answered 503 (default: 16)",
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import signal

    import trio

    from f1daemon.http.app import APISettings, create_app
    from f1daemon.http.exposure import check_exposure, read_token
    from f1daemon.http.server import close_unserved, listen, serve_http
    from f1daemon.services.reader import Reader, open_log

    token = read_token(args.token_file)
    check_exposure(args.host, token)
    if args.max_rows < 1 or args.max_concurrent < 1 or args.timeout <= 0:
        raise UserError("--max-rows, --max-concurrent and --timeout must be positive")
    settings = APISettings(
        max_rows=args.max_rows,
        request_timeout_s=args.timeout,
        max_concurrent=args.max_concurrent,
        token=token,
    )

    try:
        config = listen(args.host, args.port)
    except OSError as error:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None

    served = False

    async def main() -> None:
        nonlocal served
        with open_log(args.store) as log:
            app = create_app(Reader(log), settings)
            shutdown = trio.Event()
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with trio.open_nursery() as nursery:
                    served = True  # from here Hypercorn owns (and closes) the socket
                    binds = await nursery.start(serve_http, app, config, shutdown)
                    for bind in binds:
                        print(f"serving {log.store.redacted} on {bind}/v1/", file=sys.stderr)
                    sys.stderr.flush()
                    async for _ in signals:
                        print("draining: finishing the requests under way", file=sys.stderr)
                        shutdown.set()
                        break

    try:
        trio.run(main)
    finally:
        if not served:  # e.g. no log at --store: the port is free again
            close_unserved(config)
    return 0
