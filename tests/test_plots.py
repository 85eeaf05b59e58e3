"""Charts and the report, drawn from real sessions; the report seen in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import f1daemon
from f1daemon.cli import main

BAKU = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"
MEXICO_Q = "2021-11-07_Mexico_City_Grand_Prix/2021-11-06_Qualifying"
MONACO_FP2 = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"
CHARTS = ("laps", "stints", "gaps")


@pytest.fixture(scope="module")
def store(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('plots') / 'events.db'}"
    recordings = [
        testdata / "livetiming" / BAKU.replace("/", "__"),
        testdata / "livetiming" / MEXICO_Q.replace("/", "__"),
        testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt",
    ]
    assert main(["ingest", *map(str, recordings), "--store", url]) == 0
    return url


def _codes(store: str, session: str) -> set[str]:
    """The codes of the drivers who have laps in the session."""
    with f1daemon.open(store) as data:
        laps = data.session(session).laps()
    return {c for c in laps["driver_code"].to_pylist() if c}


@pytest.mark.parametrize("session", [BAKU, MEXICO_Q, MONACO_FP2])
@pytest.mark.parametrize("kind", CHARTS)
def test_each_chart_is_drawn_with_every_driver_labelled(
    store: str, session: str, kind: str, tmp_path: Path
) -> None:
    svg, png = tmp_path / f"{kind}.svg", tmp_path / f"{kind}.png"
    for out in (svg, png):
        argv = ["plot", kind, "--session", session, "-o", str(out), "--store", store]
        assert main(argv) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    labels = set(re.findall(r">([A-Z]{3})<", text))  # the driver codes, as SVG text
    codes = _codes(store, session)
    assert len(codes) >= 18
    if kind == "stints":
        assert labels == codes  # a row per driver who drove a lap
    elif kind == "gaps" and session != BAKU:
        assert "gap to the leader" in text  # only a race has gaps at the line
    else:
        assert len(labels & codes) >= 10
    # Compound colours (FastF1's) where the session has the compound.
    if kind != "gaps":
        assert "#ffd12e" in text.lower() or "#da291c" in text.lower() or "#b24ba7" in text.lower()


def test_a_speed_trace_is_one_lap_of_up_to_three_drivers(store: str, tmp_path: Path) -> None:
    with f1daemon.open(store) as data:
        laps = data.session(MONACO_FP2).laps().to_pylist()
    timed = {(r["driver"], r["lap"]) for r in laps if r["lap_time_ms"] is not None}
    lap = next(n for n in range(1, 60) if {(1, n), (14, n), (16, n)} <= timed)
    out = tmp_path / "speed.svg"
    argv = ["plot", "speed", "--session", "monaco fp2", "--lap", str(lap), "-o", str(out)]
    assert main([*argv, "--driver", "1", "--driver", "14", "--driver", "16", "--store", store]) == 0
    text = out.read_text()
    assert {"VER", "ALO", "LEC"} <= set(re.findall(r">([A-Z]{3})<", text))
    assert f"Speed, lap {lap}" in text
    drivers = ["--driver", "1", "--driver", "14", "--driver", "16", "--driver", "44"]
    assert main([*argv, *drivers, "--store", store]) == 2  # four is too many


def test_the_report_renders_in_headless_chromium(store: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    assert main(["report", "--session", "2018 baku race", "-o", str(report), "--store", store]) == 0
    page = report.read_text()
    # Self-contained: nothing for the browser to fetch.
    assert not re.search(r"""(src|href)=["']?(https?:|//)|url\((?!#)|<link|<script|@import""", page)
    chromium = shutil.which("chromium")
    assert chromium is not None, "scripts/ensure-chromium installs Debian's chromium"
    browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [*browser, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for chart in CHARTS:
        assert re.search(rf'<figure id="chart-{chart}"><svg', dom), chart
    for heading in ("Classification", "Pit stops", "Neutralisations", "Quality"):
        assert f"<h2>{heading}</h2>" in dom
    assert dom.count("<tr>") > 20 + 1  # 20 drivers classified, and the other tables
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*browser, f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = matplotlib.image.imread(shot)[..., :3]
    # Not blank: a good part of the page is drawn, in many colours (compounds, teams).
    assert (pixels.min(axis=2) < 0.9).mean() > 0.05
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 100
