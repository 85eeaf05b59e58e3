"""A session's report: one self-contained HTML file, readable with no network.

The classification (by the last running position the feed gave; laps, best lap, pit
stops), the lap-time, stint and gap charts inline as SVG, the pit stops, the
neutralisations and the QA summary. Everything comes from the session's tables as the
Python API reads them, so the report shows exactly what the exports hold.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib
import pyarrow as pa
from matplotlib.figure import Figure

from f1daemon.api import Session
from f1daemon.errors import UserError
from f1daemon.plots import charts

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; background: #fff; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
"""


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    """A figure as PNG or SVG bytes (SVG with its text as text, so it stays small)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format=fmt, dpi=110)
    return buffer.getvalue()


def chart(
    session: Session, kind: str, drivers: Sequence[int] = (), lap: int | None = None
) -> Figure:
    """One chart of a session by its kind (`charts.KINDS`)."""
    title = session.key
    if kind == "laps":
        return charts.lap_times(session.laps(), session.drivers(), session.neutralisations(), title)
    if kind == "stints":
        return charts.stint_chart(session.laps(), session.drivers(), title)
    if kind == "gaps":
        return charts.gap_chart(session.laps(), session.drivers(), session.neutralisations(), title)
    if kind == "speed":
        if not drivers or lap is None or len(drivers) > 3:
            raise UserError("a speed trace is of one lap (--lap N) of one to three --driver")
        traces = {d: session.telemetry(driver=d, lap=lap) for d in drivers}
        return charts.speed_trace(traces, session.drivers(), lap, title)
    raise UserError(f"unknown chart {kind!r}; the kinds are {', '.join(charts.KINDS)}")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], text: int = 0) -> str:
    """An HTML table; the first `text` columns are left-aligned."""
    head = "".join(
        f'<th class="text">{html.escape(h)}</th>' if i < text else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="text">{html.escape(_cell(v))}</td>'
            if i < text
            else f"<td>{html.escape(_cell(v))}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _lap_time(ms: int | None) -> str | None:
    if ms is None:
        return None
    minutes, rest = divmod(ms, 60_000)
    return f"{minutes}:{rest / 1000:06.3f}"


def classification(laps: pa.Table, drivers: pa.Table, pits: pa.Table) -> str:
    """Drivers by their last running position: laps done, best lap, pit stops."""
    rows = laps.to_pylist()
    shown = charts.drivers_of(drivers)
    stops: dict[int, int] = {}
    for pit in pits.to_pylist():
        stops[pit["driver"]] = stops.get(pit["driver"], 0) + 1
    lines = []
    for place, number in enumerate(charts.running_order(rows), start=1):
        mine = [r for r in rows if r["driver"] == number]
        timed = [r["lap_time_ms"] for r in mine if r["lap_time_ms"] is not None]
        team = next((r.get("team") for r in mine if r.get("team")), None)
        driver = shown.get(number)
        lines.append(
            (
                place,
                number,
                driver.code if driver else None,
                team,
                max(r["lap"] for r in mine),
                _lap_time(min(timed)) if timed else None,
                stops.get(number, 0),
            )
        )
    headers = ("pos", "no.", "driver", "team", "laps", "best lap", "pit stops")
    return _table(headers, lines)


def _svg(figure: Figure, name: str) -> str:
    svg = figure_bytes(figure, "svg").decode()
    start = svg.index("<svg")  # drop the XML prolog and doctype: inline in HTML
    # And matplotlib's RDF block (its creation time would make every report differ).
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg[start:], flags=re.S)
    return f'<figure id="chart-{name}">{svg}</figure>'


def report_html(session: Session) -> str:
    """The whole report of a session."""
    laps, drivers, pits = session.laps(), session.drivers(), session.pits()
    neutralisations = session.neutralisations()
    try:
        qa = session.qa_report().to_pylist()
    except UserError:  # derived before QA reports: the report says so
        qa = []
    title = html.escape(session.key)
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
        "<h2>Classification</h2>",
        classification(laps, drivers, pits),
        "<h2>Lap times</h2>",
        _svg(charts.lap_times(laps, drivers, neutralisations, session.key), "laps"),
        "<h2>Stints</h2>",
        _svg(charts.stint_chart(laps, drivers, session.key), "stints"),
        "<h2>Gap to the leader</h2>",
        _svg(charts.gap_chart(laps, drivers, neutralisations, session.key), "gaps"),
        "<h2>Pit stops</h2>",
        _table(
            ("driver", "in lap", "pit lane (s)"),
            [
                (
                    p["driver"],
                    p["in_lap"],
                    None if p["pit_lane_ms"] is None else p["pit_lane_ms"] / 1000,
                )
                for p in pits.to_pylist()
            ],
        ),
        "<h2>Neutralisations</h2>",
        _table(
            ("kind", "first lap", "last lap", "start (UTC)", "end (UTC)"),
            [
                (n["kind"], n["first_lap"], n["last_lap"], n["start_utc"], n["end_utc"])
                for n in neutralisations.to_pylist()
            ],
            text=1,
        ),
        "<h2>Quality</h2>",
    ]
    if qa:
        first = qa[0]
        parts.append(
            f"<p>{first['records_checked']} records checked: {first['passed']} passed, "
            f"{first['flagged']} flagged, {first['quarantined']} quarantined; quality score "
            f"{first['quality_score']:.4f}.</p>"
        )
        parts.append(
            _table(
                ("rule", "severity", "findings"),
                [(r["rule"], r["severity"], r["findings"]) for r in qa],
                text=2,
            )
        )
    else:
        parts.append("<p>No QA report for this session's current data.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
