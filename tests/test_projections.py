"""PostgreSQL projection tables: loaded with COPY, resumed after a restart, retried on a
lost connection — nothing lost, nothing doubled. Against a real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from f1daemon.cli import main
from f1daemon.projections.postgres import PostgresProjection
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

BAKU = "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
SESSION = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # noqa: S608  (a constant)
    assert row is not None
    return int(row[0])


def loaded_run(url: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT run FROM f1daemon_projection WHERE session = %s", (SESSION,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def store(tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]) -> str:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    assert main(["ingest", str(testdata / "livetiming" / BAKU), "--store", url]) == 0
    capsys.readouterr()
    return url


def test_tables_follow_the_current_run_and_resume(
    store: str, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["project", "--into", postgres_url, "--store", store]) == 0
    assert "run 1 loaded (timing_data 841" in capsys.readouterr().out
    assert count(postgres_url, "timing_data") == 841
    assert count(postgres_url, "neutralisations") == 2
    assert count(postgres_url, "race_control") == 109

    # A restart loads nothing again: the tracking row says run 1 is in.
    assert main(["project", "--into", postgres_url, "--store", store]) == 0
    assert capsys.readouterr().out == ""

    # A replay makes run 2 current: reloaded in place, not doubled.
    assert main(["replay", "--store", store]) == 0
    assert main(["project", "--into", postgres_url, "--store", store]) == 0
    assert "run 2 loaded" in capsys.readouterr().out
    assert (count(postgres_url, "timing_data"), loaded_run(postgres_url)) == (841, 2)

    # A rollback is followed too.
    assert main(["tag", "v1", "--store", store]) == 0
    assert main(["replay", "--store", store]) == 0
    assert main(["rollback", "v1", "--store", store]) == 0
    assert main(["project", "--into", postgres_url, "--store", store]) == 0
    assert loaded_run(postgres_url) == 2
    with psycopg.connect(postgres_url) as db:
        fastest = db.execute(
            "SELECT driver, lap, lap_time_ms FROM timing_data WHERE lap_time_ms IS NOT NULL "
            "ORDER BY lap_time_ms LIMIT 1"
        ).fetchone()
    assert fastest == (77, 37, 105_149)  # Bottas, lap 37, 1:45.149: the official fastest lap


class _LosesItsConnectionOnce(PostgresProjection):
    """Kills its own server connection in the middle of its first load."""

    def __init__(self, url: str, admin: str) -> None:
        super().__init__(url)
        self.admin = admin
        self.copies = 0

    def _copy(self, db: psycopg.Connection[Any], name: str, session: str, table: pa.Table) -> None:
        self.copies += 1
        if self.copies == 4:  # three tables loaded, the transaction still open
            with psycopg.connect(self.admin, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (db.info.backend_pid,))
        super()._copy(db, name, session, table)


def test_a_connection_lost_mid_load_is_retried_without_loss_or_doubling(
    store: str, postgres_url: str
) -> None:
    projection = _LosesItsConnectionOnce(postgres_url, postgres_url)
    with EventLog(parse_store_url(store)) as log:
        (loaded,) = projection.catch_up(log)
    projection.close()
    assert projection.copies > len(loaded.rows)  # some tables were copied twice
    assert loaded.rows["timing_data"] == count(postgres_url, "timing_data") == 841
    assert count(postgres_url, "pit_stops") == loaded.rows["pit_stops"] == 36
    assert loaded_run(postgres_url) == 1
