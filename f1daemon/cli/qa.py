"""The QA commands: `f1daemon qa-report` and `f1daemon quarantine list|show|release`."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from f1daemon.cli.options import add_session_option
from f1daemon.errors import UserError

if TYPE_CHECKING:  # the handlers import the store lazily: `f1daemon --help` stays fast
    from f1daemon.qa.report import QAReport
    from f1daemon.services.quarantine import Quarantined
    from f1daemon.store.eventlog import EventLog

# Longest reason shown in a `quarantine list` row (`show` prints it whole).
REASON_WIDTH = 70

OpenLog = Callable[[str | None], "EventLog"]


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    store: argparse.ArgumentParser,
    open_log: OpenLog,
) -> None:
    """Add the QA commands to the command line (`open_log(url)` opens a store)."""
    session = argparse.ArgumentParser(add_help=False)
    add_session_option(session)

    report = commands.add_parser(
        "qa-report",
        parents=[store, session],
        help="the QA report of a session's current data",
        description=(
            "Records checked, passed, flagged and quarantined, per rule, and the quality "
            "score, as the current derivation run recorded them. --runs: one line per "
            "run (each a batch of facts), with what it changed."
        ),
    )
    report.add_argument("--format", choices=("table", "json"), default="table")
    report.add_argument("--runs", action="store_true", help="every run's report, oldest first")
    report.set_defaults(handler=lambda args: _qa_report(args, open_log))

    quarantine = commands.add_parser(
        "quarantine",
        help="inspect and release quarantined records",
        description=(
            "What a session's current data holds back: lines no source could frame, "
            "messages no decoder could read, and records that broke a blocking QA rule. "
            "Each has an id (its log position)."
        ),
    )
    actions = quarantine.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", parents=[store, session], help="the quarantined records, oldest first"
    )
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.add_argument("--stage", choices=("source", "decoder", "qa"), help="only this stage")
    listing.set_defaults(handler=lambda args: _list(args, open_log))
    show = actions.add_parser(
        "show", parents=[store, session], help="one quarantined record, whole"
    )
    show.add_argument("id", type=int, help="its id, from `quarantine list`")
    show.set_defaults(handler=lambda args: _show(args, open_log))
    released = actions.add_parser(
        "release",
        parents=[store, session],
        help="keep a record QA quarantined, and derive the session again",
        description=(
            "Record a QuarantineReleased (rule, record, reason, who) and derive the "
            "session again: the record is kept, flagged as released. Only QA "
            "quarantines can be released."
        ),
    )
    released.add_argument("id", type=int, help="its id, from `quarantine list`")
    released.add_argument("--reason", required=True, help="why it is released (kept in the log)")
    released.add_argument(
        "--by", default=None, help="who releases it (default: the user running the command)"
    )
    released.set_defaults(handler=lambda args: _release(args, open_log))


def _qa_report(args: argparse.Namespace, open_log: OpenLog) -> int:
    from f1daemon.services.derivation import resolve_session, run_report

    with open_log(args.store) as log:
        session = resolve_session(log, args.session)
        runs = [completed.run for _, completed in log.derivation_runs(session)]
        current = log.current_run(session)
        if current is None:
            raise UserError(f"session {session!r} has no current derived data; run replay")
        chosen = runs if args.runs else [current]
        reports = [(run, run_report(log, session, run)) for run in chosen]
        held = _held_by_stage(log, session)
    if args.runs:
        return _print_runs(reports, args.format)
    report = reports[0][1]
    if report is None:
        raise UserError(
            f"run {current} of {session} was derived before runs recorded their QA; "
            "derive it again with `f1daemon replay`"
        )
    if args.format == "json":
        print(json.dumps({**json.loads(report.to_json()), "quarantined_by_stage": held}))
        return 0
    print(report.to_table())
    # QA's report counts the derived records; the source and the decoders hold back
    # inputs before there is a record. Every quarantined one, by where it was held.
    total = sum(sum(rules.values()) for rules in held.values())
    print(f"\nquarantined in the session: {total}")
    for stage, rules in held.items():
        for rule, count in sorted(rules.items()):
            print(f"  {stage:<8} {rule:<40} {count:>6}")
    return 0


def _held_by_stage(log: EventLog, session: str) -> dict[str, dict[str, int]]:
    """Quarantined inputs and records not released, by stage (source, decoder, qa) and
    rule."""
    from f1daemon.services.quarantine import quarantined

    held: dict[str, dict[str, int]] = {}
    for entry in quarantined(log, session):
        rules = held.setdefault(entry.stage, {})
        rules[entry.event.rule] = rules.get(entry.event.rule, 0) + 1
    return held


def _print_runs(reports: list[tuple[int, QAReport | None]], fmt: str) -> int:
    previous: QAReport | None = None
    rows: list[dict[str, object]] = []
    for run, report in reports:
        if report is None:
            rows.append({"run": run, "report": None})
            continue
        batch = report.batch_since(previous)
        rows.append({"run": run, "report": report.model_dump(), "batch": batch.model_dump()})
        if fmt == "table":
            print(f"run {run}: {batch.summary()}")
        previous = report
    if fmt == "json":
        print(json.dumps(rows))
    else:
        for row in rows:
            if row["report"] is None:
                print(f"run {row['run']}: derived before runs recorded their QA")
    return 0


def _list(args: argparse.Namespace, open_log: OpenLog) -> int:
    from f1daemon.services.derivation import resolve_session
    from f1daemon.services.quarantine import quarantined

    with open_log(args.store) as log:
        session = resolve_session(log, args.session)
        entries = [e for e in quarantined(log, session) if args.stage in (None, e.stage)]
    if args.format == "json":
        print(json.dumps([entry.as_json() for entry in entries]))
        return 0
    if not entries:
        print(f"{session}: nothing quarantined")
        return 0
    what_width = max(len(e.what) for e in entries)
    rule_width = max(len(e.event.rule) for e in entries)
    print(f"{'id':>8}  {'stage':<7}  {'rule':<{rule_width}}  {'record':<{what_width}}  reason")
    for entry in entries:
        reason = entry.event.reason
        if len(reason) > REASON_WIDTH:
            reason = reason[: REASON_WIDTH - 1] + "…"
        print(
            f"{entry.position:>8}  {entry.stage:<7}  {entry.event.rule:<{rule_width}}  "
            f"{entry.what:<{what_width}}  {reason}"
        )
    print(f"{len(entries)} quarantined in {session}")
    return 0


def _show(args: argparse.Namespace, open_log: OpenLog) -> int:
    from f1daemon.services.derivation import resolve_session
    from f1daemon.services.quarantine import find, session_of

    with open_log(args.store) as log:
        named = None if args.session is None else resolve_session(log, args.session)
        entry = find(log, session_of(log, args.id, named), args.id)
    print(_describe(entry))
    return 0


def _describe(entry: Quarantined) -> str:
    import orjson

    event = entry.event
    lines = [
        f"id        {entry.position}",
        f"stage     {entry.stage}",
        f"record    {entry.what}",
        f"source    {event.source} / {event.stream} #{event.sequence}",
        f"topic     {event.topic or '(unreadable)'}",
        f"rule      {event.rule}",
        f"reason    {event.reason}",
        "payload",
    ]
    try:  # a derived record is JSON: indent it; a line is shown exactly as received
        payload = orjson.dumps(orjson.loads(event.payload), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        payload = event.payload
    lines.append(payload)
    if event.payload_base64 is not None:
        # The line was not UTF-8: the text above has U+FFFD where bytes were; these
        # are the bytes as received (`base64 -d` gives them back).
        lines += [
            "payload bytes (base64; the text above shows them as UTF-8 could)",
            event.payload_base64,
        ]
    if entry.stage == "qa":
        lines.append(f"\nrelease with: f1daemon quarantine release {entry.position} --reason …")
    return "\n".join(lines)


def _release(args: argparse.Namespace, open_log: OpenLog) -> int:
    from f1daemon.services.derivation import resolve_session, run_report
    from f1daemon.services.quarantine import release, session_of

    with open_log(args.store) as log:
        named = None if args.session is None else resolve_session(log, args.session)
        session = session_of(log, args.id, named)
        released, completed = release(
            log,
            session,
            args.id,
            reason=args.reason,
            released_by=args.by or getpass.getuser(),
        )
        report = run_report(log, session, completed.run)
    print(
        f"released {released.record} ({released.rule}) of {session}, by "
        f"{released.released_by}: derived again as run {completed.run}"
    )
    if report is not None:
        print(f"now {report.quarantined} quarantined, quality score {report.quality_score:.4f}")
    return 0
