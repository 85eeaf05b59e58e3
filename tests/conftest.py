"""Shared fixtures.

Test policy: the real recordings are read in place from `../shared/f1data` (or
$F1DAEMON_TESTDATA); PostgreSQL is a real server whose URL `make test` exports as
$F1DAEMON_TEST_POSTGRES. Under CI=true a missing recording or server fails the
run instead of skipping, so a green CI always means everything ran.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
TESTDATA = Path(os.environ.get("F1DAEMON_TESTDATA", REPO.parent / "shared" / "f1data"))

# Checks made on real sessions, reported at the end of the run.
_CHECKS: dict[str, list[str]] = {}


def record_check(session: str, what: str) -> None:
    """Note a check made on a real session, for the summary at the end of the run."""
    _CHECKS.setdefault(session, []).append(what)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _CHECKS:
        return
    terminalreporter.section("checks on real sessions")
    for session, checks in sorted(_CHECKS.items()):
        terminalreporter.write_line(f"{session}: {'; '.join(checks)}")
    total = sum(len(c) for c in _CHECKS.values())
    terminalreporter.write_line(f"{len(_CHECKS)} sessions, {total} checks")


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The folder of real F1 recordings."""
    if not (TESTDATA / "livetiming").is_dir():
        _missing(f"the recordings folder {TESTDATA}")
    return TESTDATA


_databases = itertools.count()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test server; dropped afterwards."""
    server = os.environ.get("F1DAEMON_TEST_POSTGRES")
    if not server:
        _missing("a PostgreSQL server ($F1DAEMON_TEST_POSTGRES, set by `make test`)")
        raise AssertionError  # unreachable: _missing fails or skips
    name = f"f1daemon_t{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on both backends: an embedded SQLite file and real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
