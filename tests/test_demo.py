"""The demo, and the simulator's races through the real ingest path."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import f1daemon
from f1daemon.cli import main
from f1daemon.demo import lap_values
from f1daemon.domain.events import LapCompleted
from f1daemon.feed.pipeline import derive
from f1daemon.http.service import Service
from f1daemon.sources.archive import read_facts, topic_files
from f1daemon.sources.simulator import TRACKS, write_race


def test_demo_simulates_ingests_and_reports_a_whole_race(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["demo", "--data-dir", str(data), "--cars", "12", "--laps", "10"]) == 0
    out = capsys.readouterr().out
    assert "Check: 120 of 120 derived laps equal the simulator's own record of them." in out
    assert re.search(r"P1 +#\d+ +10 laps", out)
    assert "Telemetry (CarData.z, decoded natively)" in out
    # Decoded from the facts on read: every car's samples, and a real top speed.
    samples = re.search(
        r"Telemetry .*: ([\d,]+) car samples in (\d+) messages; top speed (\d+)", out
    )
    assert samples is not None
    assert int(samples[1].replace(",", "")) > 1000
    assert 250 < int(samples[3]) < 400
    assert (data / "events.db").is_file()
    (parquet,) = data.glob("exports/*/laps.parquet")
    laps = pq.read_table(parquet).to_pylist()
    assert len(laps) == 120
    assert {lap["driver"] for lap in laps if lap["pit_in"]} == {lap["driver"] for lap in laps}
    # It ends with how to serve its data over HTTP, and a request that answers.
    serve = re.search(
        r"f1daemon serve --store (\S+)\n  curl 'http://127.0.0.1:8000/v1/(\w+)\?(\S+)'", out
    )
    assert serve is not None
    with f1daemon.open(serve[1]) as served:
        rows = orjson.loads(Service(served.reader).answer(serve[2], serve[3]).body)
    assert [r["lap_number"] for r in rows] == list(range(5, 11))

    # A second run simulates the same race and finds every message already logged.
    assert main(["demo", "--data-dir", str(data), "--cars", "12", "--laps", "10"]) == 0
    again = capsys.readouterr().out
    assert "0 messages appended" in again
    assert "Check: 120 of 120" in again


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    track=st.sampled_from(sorted(TRACKS)),
    cars=st.integers(min_value=2, max_value=20),
    laps=st.integers(min_value=3, max_value=12),
)
def test_derived_laps_equal_the_simulators_ground_truth(
    tmp_path_factory: pytest.TempPathFactory, seed: int, track: str, cars: int, laps: int
) -> None:
    folder = tmp_path_factory.mktemp("race")
    race = write_race(folder, track=track, seed=seed, cars=cars, laps=laps)
    derivation = derive("sim", enumerate(read_facts("sim", topic_files(folder)), start=1))
    derived = sorted(lap_values(e) for e in derivation.events if isinstance(e, LapCompleted))
    truth = sorted(lap_values(t) for t in race.laps)
    assert derived == truth
    assert derivation.undecodable == 0
