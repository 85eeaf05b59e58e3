"""The Grafana dashboard (contrib/grafana/f1daemon-dashboard.json) and the metrics agree.

Every metric a panel queries exists in `f1daemon.metrics.Metrics().registry` under the
name Prometheus sees (a counter family `f1daemon_records` is scraped as
`f1daemon_records_total`; a histogram as `_bucket`, `_sum` and `_count`), and every
metric of the registry is shown on some panel — so neither can go stale. The alert
rules (contrib/prometheus/f1daemon-alerts.yml) query only existing metrics too.
A fresh daemon exports every counter at 0, so no panel starts with a hole. The Session
row's laps per driver are those of the laps export, after a daemon's run over a real
recording.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import f1daemon
from f1daemon.config import SourceSettings
from f1daemon.daemon.app import EXIT_OK, Daemon
from f1daemon.domain.events import DerivedEvent, LapCompleted, RecordQuarantined
from f1daemon.metrics import Metrics
from f1daemon.projections.current import LapCount, current_data
from f1daemon.projections.follower import DerivationFollower
from f1daemon.qa.car_checks import record_ref
from f1daemon.qa.verdicts import QA_SOURCE, QA_STREAM
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.conftest import REPO
from tests.test_daemon import daemon_config, play_to_the_end
from tests.test_quarantine import DAMAGED_FROM, DAMAGED_LINE, DAMAGED_TO, MEXICO
from tests.test_store import lap

DASHBOARD = REPO / "contrib" / "grafana" / "f1daemon-dashboard.json"
ALERTS = REPO / "contrib" / "prometheus" / "f1daemon-alerts.yml"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
METRIC_NAME = re.compile(r"\bf1daemon_[a-z0-9_]+\b")
# The sample names Prometheus scrapes for each kind of metric family.
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
}


def _dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every templating variable."""
    dashboard = _dashboard()
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        yield f"variable ${variable['name']}", query["query"] if isinstance(query, dict) else query


def _scraped() -> set[str]:
    return set().union(*_families().values())


def _families() -> dict[str, set[str]]:
    """Each metric family of the daemon's registry → the sample names it is scraped as."""
    families: dict[str, set[str]] = {}
    for family in Metrics().registry.collect():
        suffixes = SUFFIXES[family.type]
        families[family.name] = {family.name + suffix for suffix in suffixes}
    return families


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    dashboard = _dashboard()
    assert 38 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] == "f1daemon"
    assert dashboard["id"] is None, "an exported dashboard carries no instance id"
    (datasource_input,) = dashboard["__inputs"]
    assert datasource_input["name"] == "DS_PROMETHEUS"
    assert datasource_input["type"] == "datasource"
    assert datasource_input["pluginId"] == "prometheus"
    panels = list(_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} queries nothing"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == DATASOURCE, variable["name"]


@pytest.mark.parametrize(
    ("where", "query"), [pytest.param(where, query, id=where) for where, query in _queries()]
)
def test_query_is_balanced(where: str, query: str) -> None:
    # A cheap syntax check: brackets, braces and parentheses pair up, quotes close.
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    in_string = False
    for char in query:
        if char == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif char in "([{":
            stack.append(char)
        elif char in pairs:
            opened = stack.pop() if stack else None
            assert opened == pairs[char], f"{where}: unbalanced {char!r}"
    assert not stack, f"{where}: unclosed {stack}"
    assert not in_string, f"{where}: unclosed string"


def test_every_queried_metric_exists() -> None:
    scraped = _scraped()
    unknown = {
        f"{where}: {name}"
        for where, query in _queries()
        for name in METRIC_NAME.findall(query)
        if name not in scraped
    }
    assert not unknown, f"metrics the daemon does not export: {sorted(unknown)}"


def test_every_metric_is_on_a_panel() -> None:
    shown: set[str] = set()
    for panel in _panels(_dashboard()["panels"]):
        for target in panel.get("targets", []):
            shown.update(METRIC_NAME.findall(target["expr"]))
    missing = sorted(family for family, names in _families().items() if not names & shown)
    assert not missing, f"metrics on no panel of {DASHBOARD.name}: {missing}"


def test_histograms_are_shown_as_quantiles() -> None:
    histograms = {
        family.name for family in Metrics().registry.collect() if family.type == "histogram"
    }
    queries = [query for _, query in _queries()]
    for histogram in histograms:
        pattern = rf"histogram_quantile\(0\.99, .*{histogram}_bucket"
        assert any(re.search(pattern, query, re.DOTALL) for query in queries), histogram


def test_panels_do_not_overlap() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in _panels(_dashboard()["panels"]):
        grid = panel["gridPos"]
        for y in range(grid["y"], grid["y"] + grid["h"]):
            for x in range(grid["x"], grid["x"] + grid["w"]):
                other = taken.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']!r} overlaps {other!r}"


def test_the_session_row_shows_laps_derive_lag_and_quality() -> None:
    panels = _dashboard()["panels"]
    rows = [panel["title"] for panel in panels if panel["type"] == "row"]
    assert rows[:3] == ["Health", "Session", "Ingestion"]
    start = next(i for i, panel in enumerate(panels) if panel["title"] == "Session")
    end = next(i for i, panel in enumerate(panels) if panel["title"] == "Ingestion")
    shown = {panel["title"]: panel for panel in panels[start + 1 : end]}
    assert list(shown) == ["Laps per driver", "Derive lag p99", "Quality score"]
    assert {panel["type"] for panel in shown.values()} <= {"bargauge", "timeseries", "stat"}
    assert shown["Derive lag p99"]["type"] == shown["Quality score"]["type"] == "stat"
    (laps,) = (target["expr"] for target in shown["Laps per driver"]["targets"])
    selected = '{instance=~"$instance", session=~"$session"}'
    assert laps.startswith(f"max by (driver) (f1daemon_session_laps{selected}) or on() ")
    assert "vector(0)" in laps, "before the first lap the panel shows 0, not No data"
    (lag,) = (target["expr"] for target in shown["Derive lag p99"]["targets"])
    assert re.fullmatch(r"histogram_quantile\(0\.99, .*f1daemon_derive_lag_seconds_bucket.*", lag)
    (quality,) = (target["expr"] for target in shown["Quality score"]["targets"])
    assert quality == f"min(f1daemon_quality_score{selected})"
    for panel in shown.values():
        assert panel["description"], panel["title"]
    row = panels[start]
    below = [panel["gridPos"]["y"] for panel in panels[start + 1 :]]
    assert min(below) == row["gridPos"]["y"] + 1


def _quarantined(lap: LapCompleted, sequence: int) -> RecordQuarantined:
    return RecordQuarantined(
        session=lap.session,
        source=QA_SOURCE,
        stream=QA_STREAM,
        sequence=sequence,
        topic="LapCompleted",
        rule="lap.order",
        reason="out of order",
        payload="{}",
        record=record_ref(lap).describe(),
    )


def test_lap_count_leaves_out_the_laps_qa_quarantines_after_they_were_appended() -> None:
    first, second = lap(1), lap(2)
    other = lap(1).model_copy(update={"driver": 16})
    events: list[DerivedEvent] = [
        first,
        other,
        second,
        _quarantined(second, 1),  # found wrong once a later lap came
        lap(3),
        _quarantined(other, 2),
        second,  # emitted again (released): it counts again
        _quarantined(lap(7), 3),  # no such lap: nothing to take away
    ]
    count = LapCount()
    for at, event in enumerate(events, start=1):
        count.add([event])
        current = Counter(
            e.driver for e in current_data(events[:at]) if isinstance(e, LapCompleted)
        )
        assert {d: n for d, n in count.by_driver.items() if n} == dict(current), at
    assert count.by_driver == {44: 3, 16: 0}


def _damaged_mexico(testdata: Path, tmp_path: Path) -> Path:
    """2021 Mexico qualifying with a lap QA quarantines (as tests/test_quarantine.py)."""
    folder = tmp_path / MEXICO.name
    shutil.copytree(testdata / MEXICO, folder)
    timing = folder / "TimingData.jsonStream"
    lines = timing.read_text(encoding="utf-8").split("\n")
    assert DAMAGED_FROM in lines[DAMAGED_LINE - 1]
    lines[DAMAGED_LINE - 1] = lines[DAMAGED_LINE - 1].replace(DAMAGED_FROM, DAMAGED_TO)
    timing.write_text("\n".join(lines), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("recording", "quarantined"),
    [
        pytest.param("f1dash-signalr-2023_Monaco/fp2.txt", set(), id="monaco-fp2"),
        pytest.param("damaged-mexico", {(31, 6)}, id="mexico-q-one-lap-quarantined"),
    ],
)
async def test_session_laps_are_the_laps_export_per_driver(
    testdata: Path, tmp_path: Path, recording: str, quarantined: set[tuple[int, int]]
) -> None:
    path = (
        _damaged_mexico(testdata, tmp_path / "data")
        if recording == "damaged-mexico"
        else testdata / recording
    )
    config = daemon_config(tmp_path, sources=(f"recording:{path}@max",))
    daemon = Daemon(config)
    status, source = await play_to_the_end(daemon)
    assert status == EXIT_OK
    session = source.session
    assert session is not None

    registry = daemon.metrics.registry
    gauges = {
        int(sample.labels["driver"]): sample.value
        for family in registry.collect()
        if family.name == "f1daemon_session_laps"
        for sample in family.samples
        if sample.labels["session"] == session
    }
    with f1daemon.open(config.store_url) as data:
        laps = data.session(session).laps().select(["driver", "lap"]).to_pylist()
    exported = [(row["driver"], row["lap"]) for row in laps]
    per_driver = dict(Counter(driver for driver, _ in exported))
    assert len(per_driver) >= 18
    assert len(exported) > 50
    # A lap QA quarantined is in neither the export nor the gauge.
    held = {"session": session, "outcome": "quarantined"}
    assert registry.get_sample_value("f1daemon_qa_records", held) == len(quarantined)
    assert not quarantined & set(exported)
    assert {d: n for d, n in gauges.items() if n} == per_driver
    # A restarted daemon's follower counts the same laps, rebuilt from the facts.
    event_log = EventLog(parse_store_url(config.store_url))
    try:
        resumed = DerivationFollower.resume(event_log, session)
        assert resumed is not None
        assert {d: n for d, n in resumed.laps.by_driver.items() if n} == per_driver
    finally:
        event_log.close()


def test_alert_rules_query_existing_metrics() -> None:
    text = ALERTS.read_text(encoding="utf-8")
    queried = set(METRIC_NAME.findall(text))
    assert queried, f"no f1daemon metric in {ALERTS.name}"
    unknown = sorted(queried - _scraped())
    assert not unknown, f"{ALERTS.name} queries metrics the daemon does not export: {unknown}"


# One source of each kind, as a configuration names it.
SOURCES: dict[str, dict[str, Any]] = {
    "recording": {"kind": "recording", "name": "rec"},  # its path: a file in tmp_path
    "simulator": {"kind": "simulator", "name": "sim"},
    "live": {"kind": "live", "name": "live"},
    "forecast": {"kind": "forecast", "name": "weather", "circuit": "monza"},
    "results": {"kind": "results", "name": "jolpica", "season": 2024},
}


@pytest.mark.parametrize("kinds", [*([kind] for kind in SOURCES), list(SOURCES)])
def test_every_counter_is_exported_at_zero_from_the_start(tmp_path: Path, kinds: list[str]) -> None:
    config = daemon_config(tmp_path)
    recording = tmp_path / "race.txt"
    recording.write_text("", encoding="utf-8")
    sources = tuple(
        SourceSettings.model_validate(
            {**SOURCES[kind], **({"path": recording} if kind == "recording" else {})}
        )
        for kind in kinds
    )
    config = config.model_copy(update={"sources": sources})
    daemon = Daemon(config)  # built, not run: no event has arrived
    counters = [f for f in daemon.metrics.registry.collect() if f.type == "counter"]
    assert counters
    for family in counters:
        totals = [s for s in family.samples if s.name == family.name + "_total"]
        assert totals, f"{family.name}_total has no sample before the first event"
        assert all(sample.value == 0 for sample in totals), family.name
    exposition = daemon.metrics.exposition().decode()
    for family in counters:
        assert re.search(rf"^{family.name}_total\{{.*\}} 0\.0$", exposition, re.MULTILINE)
    # Every configured source has samples of its own in each counter by source.
    by_source = [f for f in counters if any("source" in s.labels for s in f.samples)]
    assert len(by_source) == 6
    for family in by_source:
        named = {s.labels["source"] for s in family.samples if s.name.endswith("_total")}
        assert named == {source.name for source in sources}, family.name
