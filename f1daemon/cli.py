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
from f1daemon.errors import UserError
from f1daemon.store.url import DEFAULT_STORE_URL, STORE_ENV_VAR

if TYPE_CHECKING:
    from f1daemon.store.eventlog import EventLog

EXIT_USER_ERROR = 2
# The export kinds (f1daemon.store.exports.EXPORTS), listed here so --help stays fast.
EXPORT_KINDS = (
    "laps",
    "stints",
    "pits",
    "track-status",
    "neutralisations",
    "race-control",
    "weather",
    "positions",
    "telemetry",
    "car-positions",
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
            "the event log: sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
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
            "format), told apart by content; lines that cannot be read are quarantined with "
            "the reason. Ingesting the same files again adds nothing."
        ),
    )
    ingest.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="a session folder, a .jsonStream file or a recording",
    )
    ingest.add_argument(
        "--session",
        metavar="KEY",
        help="session key (default: from the folder name or the recording's SessionInfo)",
    )
    ingest.set_defaults(handler=_ingest)

    export = commands.add_parser(
        "export",
        parents=[store],
        help="export derived data as CSV, Parquet or JSON",
        description="Export a session's derived data from the log's latest derivation.",
    )
    export.add_argument("kind", choices=EXPORT_KINDS, help="what to export")
    export.add_argument(
        "--session", metavar="KEY", help="session key (may be left out when the log holds one)"
    )
    export.add_argument(
        "--format",
        choices=["csv", "parquet", "json"],
        default="csv",
        help="output format (default: csv)",
    )
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="output file (default: standard output)"
    )
    export.set_defaults(handler=_export)

    sessions = commands.add_parser(
        "sessions",
        parents=[store],
        help="list the sessions in the log",
        description="List the sessions in the log with their facts and derived laps.",
    )
    sessions.set_defaults(handler=_sessions)

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


def _open_log(url: str | None) -> EventLog:
    from f1daemon.store.eventlog import EventLog
    from f1daemon.store.url import parse_store_url, resolve_store_url

    return EventLog(parse_store_url(resolve_store_url(url)))


def _ingest(args: argparse.Namespace) -> int:
    from f1daemon.ingest import ingest_paths

    with _open_log(args.store) as log:
        for result in ingest_paths(log, args.paths, args.session):
            derived = (
                f"derived run {result.derivation.run}: {result.derivation.derived} events"
                if result.derivation
                else "nothing new to derive"
            )
            print(
                f"{result.session}: {result.files} files, {result.appended} messages appended, "
                f"{result.already_logged} already in the log; {derived}; "
                f"{result.quarantined} quarantined lines appended"
            )
            for report in result.recordings:
                print(f"  {report.summary()}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from f1daemon.store.derivation import current_events, resolve_session
    from f1daemon.store.exports import export_table, write_table

    with _open_log(args.store) as log:
        session = resolve_session(log, args.session)
        table = export_table(args.kind, current_events(log, session))
    write_table(table, args.format, args.output)
    if args.output is not None:
        print(
            f"{table.num_rows} rows of {args.kind} of {session} written to {args.output}",
            file=sys.stderr,
        )
    return 0


def _sessions(args: argparse.Namespace) -> int:
    with _open_log(args.store) as log:
        for session in log.sessions():
            latest = log.latest_derivation(session)
            derived = (
                f"{latest.facts} messages, run {latest.run} ({latest.derived} derived events)"
                if latest
                else "not derived"
            )
            print(f"{session}\t{derived}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from f1daemon.demo import run_demo

    run_demo(args.data_dir, seed=args.seed, track=args.track, cars=args.cars, laps=args.laps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
