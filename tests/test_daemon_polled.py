"""The polled sources through the real daemon, against local servers that speak each API.

Jolpica serves the recorded `../shared/f1data/jolpica-ergast`; Open-Meteo and
OpenWeatherMap answer in their real JSON shapes. Faults are injected: a fetch that
fails after its retries fails the source (a `SourceStateChanged`, then a restart);
faults a retry gets past change nothing. The log must hold each response once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
import trio

from f1daemon.config import Config, load_config
from f1daemon.daemon.app import Daemon
from f1daemon.domain.events import (
    Event,
    MessageReceived,
    RecordQuarantined,
    SourceStateChanged,
    WeatherForecast,
)
from f1daemon.services.derivation import current_events
from f1daemon.sources.jolpica import Jolpica
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.http_servers import Fault, JolpicaData, open_meteo, openweathermap, serve
from tests.test_daemon import TimedNotifier

OWM_KEY = "owm-test-key-0123456789"


def polled_config(tmp_path: Path, source: str) -> Config:
    text = f"""
[daemon]
state_dir = "{tmp_path}"
store = "sqlite:///{tmp_path / "events.db"}"
[control]
socket = "{tmp_path / "ctl.sock"}"
[metrics]
enabled = false
[supervision]
backoff_initial_s = 0.05
backoff_cap_s = 0.1
breaker_failures = 10
[[sources]]
{source}
"""
    path = tmp_path / "f1daemon.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={})


async def run_until(daemon: Daemon, name: str, facts: int) -> None:
    """Run the daemon until source `name` has logged `facts` facts, then stop it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        with trio.fail_after(30):
            while daemon.sources[name].position < facts:  # noqa: ASYNC110 - a count
                await trio.sleep(0.02)
        daemon.request_shutdown()


def states_of(log: EventLog, name: str) -> list[SourceStateChanged]:
    return [
        e
        for e in log.stream_events("source-states")
        if isinstance(e, SourceStateChanged) and e.source == name
    ]


def received(events: Sequence[Event]) -> list[MessageReceived]:
    return [e for e in events if isinstance(e, MessageReceived)]


async def test_results_are_logged_once_through_faults(tmp_path: Path, testdata: Path) -> None:
    data = JolpicaData(testdata / "jolpica-ergast")
    async with serve(data) as server, httpx.AsyncClient() as http:
        # What the API holds: 2021 results and qualifying, fetched directly.
        direct = Jolpica(http, base_url=f"{server.url}/ergast/f1/", page_size=30)
        expected = [
            *(await direct.results(2021)).facts,
            *(await direct.qualifying(2021)).facts,
        ]
        server.requests.clear()
        # The first run fails (three 503s use up its attempts); the second gets past a
        # 429, a cut JSON body and a truncated response with its retries.
        server.inject(
            Fault.server_error(503),
            Fault.server_error(503),
            Fault.server_error(503),
            Fault.too_many("0"),
            None,
            Fault.cut_json(),
            Fault.truncated(),
        )
        source = """name = "jolpica"
kind = "results"
url = "URL"
season = 2021
resources = ["results", "qualifying"]
attempts = 3
interval_s = 3600""".replace("URL", f"{server.url}/ergast/f1/")
        config = polled_config(tmp_path, source)
        daemon = Daemon(config, notifier=TimedNotifier())
        await run_until(daemon, "jolpica", len(expected))
        faults = [r.fault.kind if r.fault else r.status for r in server.requests]

    with EventLog(parse_store_url(config.store_url)) as log:
        logged = received([f for _, f in log.facts("Results/2021")])
        states = states_of(log, "jolpica")
    # Every page once, exactly as served (the page size is Jolpica's 100 here).
    assert sorted(f.payload for f in logged) == sorted(
        f.payload for f in await _pages(testdata, ("results", "qualifying"))
    )
    assert len({(f.stream, f.sequence) for f in logged}) == len(logged)
    assert {f.topic for f in logged} == {"jolpica.results", "jolpica.qualifying"}
    # Every fault reached the daemon and was retried; then each page was served once.
    assert faults == ["status"] * 4 + [200, "cut_json", "truncate", 200]
    # The exhausted retries failed the source, visibly, and it came back.
    kinds = [s.state for s in states]
    assert "backing-off" in kinds
    failed = next(s for s in states if s.state == "backing-off")
    assert failed.error is not None
    assert "503" in failed.error
    assert kinds[kinds.index("backing-off") + 1 :].count("running") >= 1


async def _pages(testdata: Path, kinds: Sequence[str]) -> list[MessageReceived]:
    """The pages the daemon's client (page size 100) gets without faults."""
    data = JolpicaData(testdata / "jolpica-ergast")
    async with serve(data) as server, httpx.AsyncClient() as http:
        api = Jolpica(http, base_url=f"{server.url}/ergast/f1/")
        pages: list[MessageReceived] = []
        for kind in kinds:
            pages.extend((await getattr(api, kind)(2021)).facts)
    return pages


async def test_forecasts_of_both_providers_are_logged_and_derived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("F1DAEMON_TEST_OWM_KEY", OWM_KEY)
    async with serve(open_meteo) as meteo, serve(openweathermap(OWM_KEY)) as owm:
        meteo.inject(Fault.server_error(502), Fault.server_error(502), Fault.garbage())
        source = f"""name = "weather"
kind = "forecast"
circuit = "monza"
url = "{meteo.url}/v1/forecast"
openweathermap_url = "{owm.url}/data/2.5/forecast"
openweathermap_key_env = "F1DAEMON_TEST_OWM_KEY"
attempts = 1
interval_s = 3600"""
        config = polled_config(tmp_path, source)
        daemon = Daemon(config, notifier=TimedNotifier())
        # Three runs fail (a 502 each, then a garbage body: each answer quarantined);
        # the fourth logs one forecast of each provider.
        await run_until(daemon, "weather", 5)

    with EventLog(parse_store_url(config.store_url)) as log:
        facts = [f for _, f in log.facts("Forecast/monza")]
        derived = current_events(log, "Forecast/monza")
        states = states_of(log, "weather")
    logged = received(facts)
    # One forecast of each provider.
    assert sorted(f.source for f in logged) == ["open-meteo", "openweathermap"]
    # The failed answers are kept, quarantined with the reason: nothing received is lost.
    quarantined = [f for f in facts if isinstance(f, RecordQuarantined)]
    assert [q.payload.startswith("<html>") for q in quarantined] == [False, False, True]
    assert all("HTTP 502" in q.reason for q in quarantined[:2])
    assert "not JSON" in quarantined[2].reason
    assert all(q.source == "open-meteo" and q.rule == "http.response" for q in quarantined)
    assert all(f.stream == f"{f.source}/monza" for f in logged)
    assert OWM_KEY not in json.dumps([f.model_dump(mode="json") for f in facts])
    # Decoded: a row per hour (Open-Meteo, 7 days) and per 3 h (OpenWeatherMap, 5 days).
    rows = [e for e in derived if isinstance(e, WeatherForecast)]
    assert sum(r.provider == "open-meteo" for r in rows) == 7 * 24
    assert sum(r.provider == "openweathermap" for r in rows) == 40
    assert all(r.circuit == "monza" for r in rows)
    assert [s.state for s in states].count("backing-off") == 3
    assert OWM_KEY not in "".join(s.error or "" for s in states)
