"""The `f1daemon` command.

A user error (missing file, bad URL, unknown session) is one line on stderr and exit
status 2; nothing a user can cause prints a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from f1daemon import __version__
from f1daemon.cli.options import add_session_option
from f1daemon.cli.pictures import add_picture_commands
from f1daemon.cli.qa import add_commands as add_qa_commands
from f1daemon.cli.serve import add_commands as add_serve_commands
from f1daemon.cli.stores import create_log, open_log
from f1daemon.cli.versions import add_commands as add_version_commands
from f1daemon.errors import UserError
from f1daemon.store.url import DEFAULT_STORE_URL, STORE_ENV_VAR

ARCHIVE_URL_ENV_VAR = "F1DAEMON_ARCHIVE_URL"

if TYPE_CHECKING:
    from f1daemon.services.ingest import SessionIngest

EXIT_USER_ERROR = 2
# The export kinds (f1daemon.projections.exports.EXPORTS), listed here so --help stays fast.
EXPORT_KINDS = (
    "laps",
    "stints",
    "pits",
    "drivers",
    "sessions",
    "track-status",
    "neutralisations",
    "race-control",
    "weather",
    "positions",
    "intervals",
    "telemetry",
    "car-positions",
    "results",
    "sprint-results",
    "qualifying",
    "reference-laps",
    "reference-pits",
    "forecasts",
)

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UserError as error:
        print(f"f1daemon: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("f1daemon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): not an error of ours.
        sys.stderr.close()
        return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="f1daemon",
        description=(
            "The data service of an F1 race-strategy team: ingests feeds into an event "
            "log, derives lap tables and more from it, and exports them."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store",
        metavar="URL",
        help=(
            "the event log: sqlite:///RELATIVE/PATH, sqlite:////ABSOLUTE/PATH or "
            "postgresql://USER@HOST:PORT/DB "
            f"(default: ${STORE_ENV_VAR}, else {DEFAULT_STORE_URL})"
        ),
    )

    ingest = commands.add_parser(
        "ingest",
        parents=[store],
        help="ingest recorded feed files into the log",
        description=(
            "Append every message of recorded feed files to the log as it was recorded, "
            "then derive laps, stints, pit stops, track status, race control, weather and "
            "telemetry from them. A PATH is an archive session folder or {Topic}.jsonStream "
            "file, or a live recording (a classic SignalR capture, or FastF1's live-client "
            "format), or a saved Jolpica results page (with --session: the feed session it is "
            "about), told apart by content; lines that cannot be read are quarantined with "
            "the reason. Ingesting the same files again adds nothing."
        ),
    )
    ingest.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="a session folder, a .jsonStream file or a recording",
    )
    ingest.add_argument(
        "--session",
        metavar="NAME",
        help="the session: a new key MEETING/SESSION, or the name of one in the log "
        "(default: from the folder name or the recording's SessionInfo)",
    )
    ingest.add_argument(
        "--archive",
        nargs="+",
        metavar="YEAR [EVENT] [SESSION]",
        help=(
            "instead of PATHs, backfill from the static archive over HTTP: every session "
            "of YEAR, of an EVENT (name, place or country), or one SESSION (name or "
            "FP1-3, Q, SQ, S, R); one session at a time, resumable"
        ),
    )
    ingest.add_argument(
        "--archive-url",
        metavar="URL",
        help=f"the archive's base URL (default: ${ARCHIVE_URL_ENV_VAR}, else F1's own)",
    )
    ingest.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="the HTTP cache of archive files (default: $XDG_CACHE_HOME/f1daemon/archive)",
    )
    ingest.add_argument(
        "--refresh",
        action="store_true",
        help="fetch (revalidate) sessions an earlier backfill finished, too",
    )
    ingest.set_defaults(handler=_ingest)

    export = commands.add_parser(
        "export",
        parents=[store],
        help="export derived data as CSV, Parquet or JSON",
        description="Export a session's derived data from the log's latest derivation.",
    )
    export.add_argument("kind", choices=EXPORT_KINDS, help="what to export")
    add_session_option(export)
    export.add_argument(
        "--format",
        choices=["csv", "parquet", "json", "ndjson"],
        default="csv",
        help="output format (default: csv)",
    )
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="output file (default: standard output)"
    )
    export.add_argument(
        "--version", metavar="TAG", help="the data as at this tag (default: the current data)"
    )
    export.set_defaults(handler=_export)

    sessions = commands.add_parser(
        "sessions",
        parents=[store],
        help="list the sessions in the log",
        description=(
            "List the sessions in the log: per session, the messages its current data was "
            "derived from, the run it is and its derived events (for the daemon's run, which "
            "grows as facts arrive: its events so far and how far it has read)."
        ),
    )
    sessions.set_defaults(handler=_sessions)

    add_version_commands(commands, store)
    add_qa_commands(commands, store, open_log)
    add_serve_commands(commands, store, open_log)
    add_picture_commands(commands, store)
    _add_daemon_commands(commands)

    demo = commands.add_parser(
        "demo",
        help="run a simulated race through the daemon and summarise it",
        description=(
            "Simulate a short race (seeded) in the live feed's formats, ingest it into "
            "the embedded store under --data-dir through the same path as real "
            "recordings, export its laps and print a summary."
        ),
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path("f1daemon-data"),
        help="where the log and exports go (default: ./f1daemon-data)",
    )
    demo.add_argument("--seed", type=int, default=2026, help="simulator seed (default: 2026)")
    demo.add_argument("--track", default="monza", help="simulated track (default: monza)")
    demo.add_argument("--cars", type=int, default=20, help="number of cars (default: 20)")
    demo.add_argument("--laps", type=int, default=15, help="race distance in laps (default: 15)")
    demo.set_defaults(handler=_demo)
    return parser


def _add_daemon_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run the daemon (foreground; systemd runs it)",
        description=(
            "Run the daemon: every configured source as a supervised actor, the event log's "
            "writer, the control socket, Prometheus metrics and systemd notifications. "
            "SIGTERM drains and stops, SIGHUP reloads the configuration."
        ),
    )
    run.add_argument("--config", type=Path, metavar="FILE", help="the TOML configuration")
    run.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="SPEC",
        help=(
            "a source besides the configured ones: recording:PATH, simulator:TRACK[:SEED] "
            "or live[:URL], "
            "optionally @SPEED (x real time, or @max); may be repeated"
        ),
    )
    run.set_defaults(handler=_run)

    ctl = commands.add_parser(
        "ctl",
        help="send a command to the running daemon",
        description=(
            "Send one command over the daemon's control socket and print the reply. "
            "Commands: status, health, sources, pause SOURCE, resume SOURCE, "
            "session start|stop [SESSION], tag NAME [MESSAGE], metrics, reload, shutdown."
        ),
    )
    ctl.add_argument("command", metavar="COMMAND", help="the command")
    ctl.add_argument("args", nargs="*", metavar="ARG", help="its arguments")
    ctl.add_argument("--config", type=Path, metavar="FILE", help="where to find the socket")
    ctl.add_argument("--socket", type=Path, metavar="PATH", help="the control socket")
    ctl.add_argument("--json", action="store_true", help="print the raw JSON reply")
    ctl.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the reply (default: 30)"
    )
    ctl.set_defaults(handler=_ctl)


def _ingest(args: argparse.Namespace) -> int:
    from f1daemon.services.ingest import ingest_paths

    if args.archive is not None:
        if args.paths or args.session:
            raise UserError("--archive takes no PATH and no --session (the archive names them)")
        return _backfill(args)
    if not args.paths:
        raise UserError("nothing to ingest: give a PATH, or --archive YEAR [EVENT] [SESSION]")
    with create_log(args.store) as log:
        for result in ingest_paths(log, args.paths, args.session):
            _print_ingest(result)
    return 0


def _print_ingest(result: SessionIngest) -> None:
    derived = (
        f"derived run {result.derivation.run}: {result.derivation.derived} events"
        if result.derivation
        else "nothing new to derive"
    )
    print(
        f"{result.session}: {_count(result.files, 'file')}, "
        f"{_count(result.appended, 'message')} appended, "
        f"{result.already_logged} already in the log; {derived}; "
        f"{_count(result.quarantined, 'quarantined line')} appended"
    )
    for report in result.recordings:
        print(f"  {report.summary()}")
    for note in result.notes:
        print(f"  {note}")


def _backfill(args: argparse.Namespace) -> int:
    import hashlib
    import os
    from functools import partial

    import trio

    from f1daemon.services.ingest import ingest_session
    from f1daemon.sources.archive_http import DEFAULT_BASE_URL, SessionBackfill, backfill

    year_text, *rest = args.archive
    if not year_text.isdigit() or len(rest) > 2:
        raise UserError(f"--archive takes YEAR [EVENT] [SESSION], not {' '.join(args.archive)}")
    event, session = [*rest, None, None][:2]
    base_url = args.archive_url or os.environ.get(ARCHIVE_URL_ENV_VAR) or DEFAULT_BASE_URL
    cache_dir = args.cache_dir or _cache_home() / "f1daemon" / "archive"
    with create_log(args.store) as log:
        # Which sessions are done is a property of the log they went into.
        store_id = hashlib.sha256(log.store.redacted.encode()).hexdigest()[:16]

        def ingest(fetched: SessionBackfill) -> None:
            origin = base_url + fetched.session.path
            _print_ingest(ingest_session(log, fetched.key, fetched.files, origin))

        report = trio.run(
            partial(
                backfill,
                int(year_text),
                event,
                session,
                cache_dir=cache_dir,
                base_url=base_url,
                on_session=ingest,
                progress=lambda line: print(line, file=sys.stderr),
                progress_file=cache_dir / f"progress-{store_id}.json",
                refresh=args.refresh,
            )
        )
    print(
        f"archive {' '.join(args.archive)}: {len(report.fetched)} sessions ingested, "
        f"{len(report.already_done)} done before, {len(report.unavailable)} not in the archive"
    )
    return 0 if report.fetched or report.already_done else 1


def _cache_home() -> Path:
    import os

    # The XDG base directory convention, as other tools on the host use it.
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _export(args: argparse.Namespace) -> int:
    from f1daemon.projections.exports import write_table
    from f1daemon.services.derivation import resolve_session
    from f1daemon.services.reader import Reader

    with open_log(args.store) as log:
        # The same reader as the Python and HTTP APIs: one reader, three faces.
        reader = Reader(log)
        session = resolve_session(log, args.session)
        table = reader.table(args.kind, session, reader.version(args.version))
    write_table(table, args.format, args.output)
    if args.output is not None:
        print(
            f"{table.num_rows} rows of {args.kind} of {session} written to {args.output}",
            file=sys.stderr,
        )
    return 0


def _sessions(args: argparse.Namespace) -> int:
    with open_log(args.store) as log:
        for session in log.sessions():
            # The current data's run: after a rollback, the tagged one, not the latest.
            run = log.current_run(session)
            completed = None if run is None else log.completion(session, run)
            if completed is not None:
                derived = (
                    f"{completed.facts} messages, run {run} ({completed.derived} derived events)"
                )
            elif run is not None:
                # The daemon's run grows as facts arrive: no completion, a tracking position.
                derived = (
                    f"run {run}, growing ({log.derived_count(session, run)} derived events, "
                    f"facts read up to log position {log.run_position(session, run) or 0})"
                )
            else:
                derived = "not derived"
            print(f"{session}\t{derived}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from f1daemon.config import load_config
    from f1daemon.daemon.app import run_daemon
    from f1daemon.logs import configure_logging

    config = load_config(args.config, sources=tuple(args.source))
    configure_logging(config.daemon.log_level)
    return run_daemon(config, config_path=args.config, cli_sources=tuple(args.source))


def _ctl(args: argparse.Namespace) -> int:
    import json

    from f1daemon.config import load_config
    from f1daemon.control.client import call

    path = args.socket or load_config(args.config).control.socket
    reply = call(path, args.command, list(args.args), timeout=args.timeout)
    if args.json:
        print(json.dumps(reply))
    elif not reply["ok"]:
        print(f"f1daemon: {args.command}: {reply.get('error')}", file=sys.stderr)
    else:
        result = reply.get("result")
        print(result if isinstance(result, str) else json.dumps(result, indent=2))
    return 0 if reply["ok"] else 1


def _demo(args: argparse.Namespace) -> int:
    from f1daemon.demo import run_demo

    run_demo(args.data_dir, seed=args.seed, track=args.track, cars=args.cars, laps=args.laps)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
