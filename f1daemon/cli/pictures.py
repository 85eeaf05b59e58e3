"""`f1daemon plot` and `f1daemon report`: a session's charts and its HTML report.

matplotlib is the `plot` extra (`pip install 'f1daemon[plot]'`): without it these
commands say how to get it, and the rest of the command line works as before.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from f1daemon.cli.options import add_session_option
from f1daemon.errors import UserError

FORMATS = (".png", ".svg")


def add_picture_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], store: argparse.ArgumentParser
) -> None:
    """Add `plot` and `report` to the command line."""
    plot = commands.add_parser(
        "plot",
        parents=[store],
        help="draw a chart of a session (PNG or SVG)",
        description=(
            "Draw one chart of a session: laps (lap times per driver, coloured by compound, "
            "neutralisations shaded), stints (tyre per lap per driver), gaps (gap to the "
            "leader per lap), speed (one lap's speed trace of one to three drivers)."
        ),
    )
    plot.add_argument("kind", choices=("laps", "stints", "gaps", "speed"))
    add_session_option(plot)
    plot.add_argument("-o", "--output", type=Path, required=True, help="FILE.png or FILE.svg")
    plot.add_argument(
        "--driver", type=int, action="append", default=[], help="a racing number (speed)"
    )
    plot.add_argument("--lap", type=int, help="the lap of a speed trace")
    plot.set_defaults(handler=_plot)
    report = commands.add_parser(
        "report",
        parents=[store],
        help="write a session's report as one self-contained HTML file",
        description=(
            "Write the classification, the lap-time, stint and gap charts (inline SVG), "
            "the pit stops, neutralisations and QA summary of a session to one HTML file "
            "that needs no network."
        ),
    )
    add_session_option(report)
    report.add_argument("-o", "--output", type=Path, required=True, help="the HTML file")
    report.set_defaults(handler=_report)


def _matplotlib() -> None:
    try:
        import matplotlib
    except ImportError:
        raise UserError(
            "charts need matplotlib: pip install 'f1daemon[plot]' (or matplotlib)"
        ) from None
    matplotlib.use("Agg")  # files, never a window


def _session_name(store: str | None, requested: str | None) -> str:
    """The session asked for by any name, or the log's only one."""
    from f1daemon.services.derivation import resolve_session
    from f1daemon.services.reader import open_log

    with open_log(store) as log:
        return resolve_session(log, requested)


def _plot(args: argparse.Namespace) -> int:
    _matplotlib()
    import f1daemon
    from f1daemon.plots.report import chart, figure_bytes

    suffix = args.output.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{args.output}: a chart is written as .png or .svg")
    key = _session_name(args.store, args.session)
    with f1daemon.open(args.store) as data:
        figure = chart(data.session(key), args.kind, args.driver, args.lap)
    args.output.write_bytes(figure_bytes(figure, suffix[1:]))
    print(f"{args.kind} chart of {key} written to {args.output}")
    return 0


def _report(args: argparse.Namespace) -> int:
    _matplotlib()
    import f1daemon
    from f1daemon.plots.report import report_html

    key = _session_name(args.store, args.session)
    with f1daemon.open(args.store) as data:
        page = report_html(data.session(key))
    args.output.write_text(page, encoding="utf-8")
    print(f"report of {key} written to {args.output}")
    return 0
