"""A log written by an earlier schema still reads, exports and replays.

`tests/data/log-pipeline-1.0.0.db` was written by f1daemon at pipeline 1.0.0 (commit
fcb70d3, before the time base): a simulated race (Spa, seed 5, 3 cars, 3 laps)
ingested into SQLite. Its LapCompleted and StintStarted events are class version 1
and have no `utc`; the upcasters make them current.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from f1daemon.cli import main
from f1daemon.domain.events import LapCompleted, StintStarted
from f1daemon.feed.pipeline import PIPELINE_VERSION
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

OLD_LOG = Path(__file__).parent / "data" / "log-pipeline-1.0.0.db"
SESSION = "Simulated_Spa_Grand_Prix/seed5_Race"


@pytest.fixture
def old_store(tmp_path: Path) -> str:
    copy = tmp_path / "events.db"
    shutil.copyfile(OLD_LOG, copy)
    return f"sqlite:///{copy}"


def test_old_events_upcast_and_export(old_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    with EventLog(parse_store_url(old_store)) as log:
        assert log.sessions() == [SESSION]
        ((_, run),) = log.derivation_runs(SESSION)
        assert (run.pipeline_version, run.facts_sha256) == ("1.0.0", "")
        events = log.derived_events(SESSION, run.run)
        assert len(list(log.facts(SESSION))) == 515
    laps = [e for e in events if isinstance(e, LapCompleted)]
    stints = [e for e in events if isinstance(e, StintStarted)]
    assert (len(laps), len(stints)) == (9, 6)
    assert all(e.utc is None for e in [*laps, *stints])
    assert main(["export", "laps", "--format", "json", "--store", old_store]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert [(lap["driver"], lap["lap"]) for lap in exported] == sorted(
        (lap.driver, lap.lap) for lap in laps
    )
    assert {lap["lap"] for lap in exported} == {1, 2, 3}


def test_old_log_replays_with_the_current_pipeline(
    old_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "--store", old_store]) == 0
    with EventLog(parse_store_url(old_store)) as log:
        (_, (_, new)) = log.derivation_runs(SESSION)
        laps = [e for e in log.derived_events(SESSION, new.run) if isinstance(e, LapCompleted)]
    assert new.pipeline_version == PIPELINE_VERSION
    assert len(laps) == 9
    # Pipeline 2 tells what pipeline 1 did not: the track status during each lap.
    assert all(lap.track_statuses for lap in laps)
    capsys.readouterr()
    assert main(["verify", "--store", old_store]) == 0
    out = capsys.readouterr().out
    assert "run 1: ok (recorded before digests" in out
    assert "run 2: ok" in out
