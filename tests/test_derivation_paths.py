"""The derivation gives the same events whichever way the messages reach it.

An ingest derives from the facts in the log, each TimingData message digested as it
comes; a derivation in memory reads the files, digesting TimingData a whole file
ahead. Both must give identical events, in the same order, on every real session
and on simulated races.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from f1daemon.feed.pipeline import derive
from f1daemon.projections.fold import SessionFold
from f1daemon.services.derivation import derive_session
from f1daemon.sources.archive import read_facts, read_messages, topic_files
from f1daemon.sources.simulator import write_race
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.conftest import TESTDATA, record_check


def sessions() -> list[Path]:
    if not (TESTDATA / "livetiming").is_dir():
        return []
    return sorted(p for p in (TESTDATA / "livetiming").iterdir() if not p.name.startswith("_"))


@pytest.mark.parametrize("folder", sessions(), ids=lambda p: p.name)
def test_files_and_facts_derive_the_same_events(folder: Path, testdata: Path) -> None:
    files = topic_files(folder)
    from_facts = derive("s", enumerate(read_facts("s", files), start=1))
    from_files = derive("s", enumerate(read_messages(files), start=1))
    assert from_files.events == from_facts.events
    assert from_files.undecodable == from_facts.undecodable
    record_check(folder.name, f"{len(from_facts.events)} events alike from files and facts")


def test_a_simulated_race_derives_the_same_from_the_log_and_from_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "race"
    write_race(folder, track="baku", seed=7, cars=10, laps=8)
    files = topic_files(folder)
    with EventLog(parse_store_url(f"sqlite:///{tmp_path / 'events.db'}")) as log:
        log.register_session("sim", "test")
        log.append_facts(read_facts("sim", files))
        run = derive_session(log, "sim")
        from_log = log.derived_events("sim", run.run)
    # The same fold over the files' messages, in memory.
    fold = SessionFold("sim")
    from_files = [e for p, m in enumerate(read_messages(files), 1) for e in fold.feed(p, m)]
    from_files += fold.finish()
    report = fold.report()
    assert from_log == from_files
    assert run.undecodable == 0
    # The simulator's race passes QA: nothing quarantined.
    assert report.quarantined == 0
    assert report.records_checked > 0
