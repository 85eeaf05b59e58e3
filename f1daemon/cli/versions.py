"""The commands of versions: replay, verify, tag, versions, rollback, diff, project, lake."""

from __future__ import annotations

import argparse
from pathlib import Path

from f1daemon.cli.options import add_session_option
from f1daemon.cli.stores import create_log, open_log
from f1daemon.errors import UserError


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], store: argparse.ArgumentParser
) -> None:
    """The commands of versions: replay, verify, tag, versions, rollback, diff, lake."""
    replay = commands.add_parser(
        "replay",
        parents=[store],
        help="derive a session again from its facts (a new run)",
        description=(
            "Re-derive every derived event of a session from its MessageReceived facts "
            "with the current pipeline, as a new derivation run that becomes current. "
            "--until limits the facts to a tag or log position; --speed replays at X "
            "times real time (by the facts' stream offsets)."
        ),
    )
    add_session_option(replay)
    replay.add_argument(
        "--until", metavar="TAG|POSITION", help="replay the facts up to a tag or log position"
    )
    replay.add_argument(
        "--speed", metavar="X|max", default="max", help="times real time, or max (default)"
    )
    replay.add_argument(
        "--into", metavar="URL", help="replay into another store (facts copied there, then derived)"
    )
    replay.set_defaults(handler=_replay)

    verify = commands.add_parser(
        "verify",
        parents=[store],
        help="check the log's integrity and that replay is deterministic",
        description=(
            "For every derivation run of every session (or --session): check that the "
            "facts it read are unchanged (SHA-256), that its stored events are what it "
            "recorded, and that deriving the same facts again gives byte-identical "
            "events. Exits 1 on any mismatch."
        ),
    )
    verify.add_argument("--session", metavar="KEY", help="only this session")
    verify.set_defaults(handler=_verify)

    tag = commands.add_parser(
        "tag",
        parents=[store],
        help="name the log's current position (a version)",
        description="Record a VersionTagged event: log position, pipeline version, time.",
    )
    tag.add_argument("name", help="the tag, e.g. v1.3.0 (semantic versions suggested)")
    tag.add_argument("--message", default="", help="why this version is tagged")
    tag.set_defaults(handler=_tag)

    versions = commands.add_parser(
        "versions",
        parents=[store],
        help="list the tags",
        description="List the tags, oldest first.",
    )
    versions.set_defaults(handler=_versions)

    rollback = commands.add_parser(
        "rollback",
        parents=[store],
        help="make the derived data what it was at a tag",
        description=(
            "For every session, make the derivation run that was current at the tag "
            "current again, recorded as a RolledBack event. Nothing is deleted."
        ),
    )
    rollback.add_argument("tag", help="the tag to go back to")
    rollback.set_defaults(handler=_rollback)

    diff = commands.add_parser(
        "diff",
        parents=[store],
        help="summarise what changed in the laps between two tags",
        description="Per session: laps added, removed, changed and unchanged from TAG1 to TAG2.",
    )
    diff.add_argument("tag1")
    diff.add_argument("tag2")
    diff.set_defaults(handler=_diff)

    project = commands.add_parser(
        "project",
        parents=[store],
        help="load the current derived data into PostgreSQL tables",
        description=(
            "Keep PostgreSQL tables (timing_data, weather_data, telemetry, stints, "
            "pit_stops, track_status, neutralisations, race_control, positions, "
            "car_positions) equal to each session's current derived data, loaded with "
            "COPY, one transaction per session; resumes after a restart, retries a lost "
            "connection. --follow keeps following the log."
        ),
    )
    project.add_argument(
        "--into", metavar="URL", required=True, help="postgresql://… database for the tables"
    )
    project.add_argument(
        "--follow", type=float, metavar="SECONDS", help="poll the log every SECONDS"
    )
    project.set_defaults(handler=_project)

    lake = commands.add_parser(
        "lake",
        parents=[store],
        help="write a version of every session's data to the Parquet lake",
        description=(
            "Write {DIR}/{raw|processed}/{source}/{date}/{version}.parquet (zstd), with CSV "
            "and JSON beside it and a JSON manifest (rows, schema, SHA-256, log positions, "
            "pipeline version, created-at): the facts per source, every export kind, and "
            "features/{name}/… (strategy aggregates of the processed tables). "
            "--keep / --older-than prune old versions of the lake's files (never the log)."
        ),
    )
    lake.add_argument(
        "--dir",
        type=Path,
        default=Path("f1daemon-data/lake"),
        help="the lake's root (default: ./f1daemon-data/lake)",
    )
    lake.add_argument(
        "--version",
        metavar="TAG",
        help="write the data as at this tag (default: the head, named p{POSITION})",
    )
    lake.add_argument(
        "--keep", type=int, metavar="N", help="then keep only the N newest versions of each table"
    )
    lake.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        help="then delete versions written more than DAYS ago",
    )
    lake.set_defaults(handler=_lake)


def _replay(args: argparse.Namespace) -> int:
    from f1daemon.services.derivation import resolve_session
    from f1daemon.services.versions import replay, replay_into

    speed = None if args.speed == "max" else _speed(args.speed)
    with open_log(args.store) as log:
        session = resolve_session(log, args.session)
        if args.into is not None:
            with create_log(args.into) as target:
                run = replay_into(log, target, session, args.until)
        else:
            run = replay(log, session, args.until, speed)
    limit = f" up to position {run.until_position}" if run.until_position is not None else ""
    print(
        f"{session}: run {run.run} derived {run.derived} events from {run.facts} messages{limit} "
        f"(pipeline {run.pipeline_version}); events sha256 {run.events_sha256[:16]}"
    )
    return 0


def _speed(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--speed must be a number or 'max', not {text!r}") from None


def _verify(args: argparse.Namespace) -> int:
    from f1daemon.services.derivation import resolve_session, run_states, verify_run
    from f1daemon.store.faults import StoreFault, damage_line, sqlite_damage
    from f1daemon.store.url import parse_store_url, resolve_store_url

    # The file first: a damaged page is named here (SQLite's integrity check), where
    # reading the log would only say that some page is malformed.
    store = parse_store_url(resolve_store_url(args.store))
    if store.sqlite_path is not None and store.sqlite_path.is_file():
        problems = sqlite_damage(store.sqlite_path)
        if problems:
            raise StoreFault(damage_line(store, problems))
    failures = checked = 0
    with open_log(args.store) as log:
        sessions = [resolve_session(log, args.session)] if args.session else log.sessions()
        for session in sessions:
            # Complete runs and growing ones (the daemon's live run, to its position).
            for state in run_states(log, session):
                result = verify_run(log, session, state)
                checked += 1
                status = "; ".join(result.problems) if result.problems else "ok"
                if result.notes:
                    status += f" ({'; '.join(result.notes)})"
                failures += bool(result.problems)
                print(f"{session} run {state.run}: {status}")
    print(f"{checked} runs checked, {failures} with problems")
    return 1 if failures else 0


def _tag(args: argparse.Namespace) -> int:
    from f1daemon.feed.pipeline import PIPELINE_VERSION

    with open_log(args.store) as log:
        tagged = log.tag(args.name, pipeline_version=PIPELINE_VERSION, message=args.message)
    print(f"{tagged.name}: log position {tagged.position}, pipeline {tagged.pipeline_version}")
    return 0


def _versions(args: argparse.Namespace) -> int:
    with open_log(args.store) as log:
        for version in log.versions():
            print(
                f"{version.name}\tposition {version.position}\tpipeline {version.pipeline_version}"
                f"\t{version.tagged_at:%Y-%m-%d %H:%M:%S}Z\t{version.message}".rstrip()
            )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from f1daemon.services.versions import rollback

    with open_log(args.store) as log:
        for rolled in rollback(log, args.tag):
            run = f"run {rolled.run}" if rolled.run is not None else "nothing (not derived then)"
            print(f"{rolled.session}: current data is now {run}, as at {rolled.tag}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from f1daemon.services.versions import diff

    with open_log(args.store) as log:
        for change in diff(log, args.tag1, args.tag2):
            print(
                f"{change.session}: laps {change.added} added, {change.removed} removed, "
                f"{change.changed} changed, {change.unchanged} unchanged"
            )
    return 0


def _project(args: argparse.Namespace) -> int:
    import time

    from f1daemon.projections.postgres import PostgresProjection

    projection = PostgresProjection(args.into)
    try:
        while True:
            with open_log(args.store) as log:
                for loaded in projection.catch_up(log):
                    rows = ", ".join(
                        f"{table} {count}" for table, count in loaded.rows.items() if count
                    )
                    print(f"{loaded.session}: run {loaded.run} loaded ({rows})", flush=True)
            if args.follow is None:
                return 0
            time.sleep(args.follow)
    finally:
        projection.close()


def _lake(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from f1daemon.projections.lake import prune, write_lake
    from f1daemon.services.versions import find_tag

    with open_log(args.store) as log:
        if args.version is not None:
            tag = find_tag(log, args.version)
            written = write_lake(log, args.dir, tag.name, at=tag.position)
        else:
            written = write_lake(log, args.dir, f"p{log.head_position()}")
    for item in written:
        print(f"{item.manifest.parent}/{item.version}.parquet: {item.rows} rows")
    older = None if args.older_than is None else timedelta(days=args.older_than)
    if args.keep is not None or older is not None:
        for manifest in prune(args.dir, keep=args.keep, older_than=older):
            print(f"pruned {manifest.parent}/{manifest.name.removesuffix('.manifest.json')}")
    return 0
