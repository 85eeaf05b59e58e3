"""The store's faults through the real command: each is one line and exit status 2,
with no secret in it and nothing half-written.

Secrets in store URLs (every message that shows one), libpq's parameters (passed to
the server, or refused by name), and the real faults: a PostgreSQL server with SSL off
asked for `sslmode=require`, one that requires SSL and a password (a private cluster of
this module's own), a disk that fills up during an ingest (a small tmpfs), a SQLite file
with damaged pages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from f1daemon.errors import UserError
from f1daemon.store.eventlog import EventLog
from f1daemon.store.faults import StoreFault
from f1daemon.store.url import parse_store_url
from tests.conftest import IN_CI
from tests.pgcluster import PgCluster, find_pg_bin, private_cluster

F1DAEMON = str(Path(sys.executable).with_name("f1daemon"))
SECRET = "Sup3rS3cretPW"  # noqa: S105 (the password the tests look for)
WRONG = "WrongPassw0rd"
BAKU = "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
SMALL = "2020-07-19_Hungarian_Grand_Prix__2020-07-17_Practice_2"


def f1daemon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "F1DAEMON_STORE"}
    return subprocess.run(
        [F1DAEMON, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a command that failed as a user error."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("f1daemon: error: ")
    return lines[0]


# -- URLs and their secrets -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"postgresql://f1daemon:{SECRET}@[::1:5432/f1", "Invalid IPv6 URL"),
        (f"postgresql://f1daemon:{SECRET}@db.example:54x2/f1", "the port is not a number"),
        (f"postgresql://f1daemon:{SECRET}@db.example/", "expected postgresql://"),
        (f"postgresql://f1daemon:{SECRET}@db.example/f1?sslmod=require", "'sslmod'"),
        (f"postgresql://f1daemon@db.example/f1?password={SECRET}&sslmod=x", "did you mean"),
        (f"postgresql://f1daemon:{SECRET}@db.example/f1?replication=1", "'replication'"),
        (f"postgresql://u:{SECRET}@db.example/f1?connect_timeout=0", "connect_timeout"),
        (f"mysql://f1daemon:{SECRET}@db.example/f1", "unsupported store URL"),
    ],
)
def test_a_bad_store_url_is_one_line_without_its_password(url: str, reason: str) -> None:
    with pytest.raises(UserError) as raised:
        parse_store_url(url)
    assert reason in str(raised.value)
    assert SECRET not in str(raised.value)
    line = one_line_error(f1daemon("sessions", "--store", url))
    assert reason in line
    assert SECRET not in line
    assert "***" in line


def test_libpq_parameters_are_passed_to_every_connection() -> None:
    store = parse_store_url(
        "postgresql://u:p%40ss@db.example/f1?sslmode=verify-full&sslrootcert=/etc/ca.pem"
        "&application_name=pit-wall&target_session_attrs=read-write&keepalives_idle=30"
    )
    assert store.environment["PG_CONNECT_OPTIONS"] == (
        '{"sslmode":"verify-full","sslrootcert":"/etc/ca.pem","application_name":"pit-wall",'
        '"target_session_attrs":"read-write","keepalives_idle":"30"}'
    )
    assert store.environment["POSTGRES_PASSWORD"] == "p@ss"  # noqa: S105
    assert store.scrub("auth failed: p@ss and p%40ss\n  again") == "auth failed: *** and *** again"
    # The query's host, as libpq reads it: a Unix socket's folder.
    socket_url = parse_store_url("postgresql://u@/f1?host=/run/postgresql")
    assert socket_url.environment["POSTGRES_HOST"] == "/run/postgresql"


# -- a real PostgreSQL -------------------------------------------------------------------


def test_sslmode_require_against_a_server_without_ssl_is_refused(postgres_url: str) -> None:
    """The test server runs with SSL off: `sslmode=require` must not connect in clear."""
    url = f"{postgres_url}?sslmode=require"
    with pytest.raises(StoreFault, match="server does not support SSL, but SSL was required"):
        EventLog(parse_store_url(url))
    line = one_line_error(f1daemon("sessions", "--store", url))
    assert "SSL was required" in line


def test_application_name_reaches_the_server(postgres_url: str) -> None:
    name = f"f1daemon-test-{uuid.uuid4().hex[:8]}"
    with EventLog(parse_store_url(f"{postgres_url}?application_name={name}")) as log:
        log.head_position()
        with psycopg.connect(postgres_url) as admin:
            seen = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
        assert seen is not None
        assert seen[0] >= 1


@pytest.fixture(scope="module")
def ssl_cluster() -> Iterator[PgCluster]:
    """A server of this module's own that takes TCP logins over SSL, with a password, only."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        reason = "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)"
        if IN_CI:
            pytest.fail(f"{reason} are required under CI=true")
        pytest.skip(f"{reason} are not installed")
    with private_cluster(pg_bin, password=SECRET, ssl_only=True) as cluster:
        yield cluster


def test_a_wrong_password_is_one_line_at_once(ssl_cluster: PgCluster) -> None:
    url = ssl_cluster.url(password=WRONG) + "?sslmode=require"
    began = time.monotonic()
    line = one_line_error(f1daemon("sessions", "--store", url))
    assert time.monotonic() - began < 8  # not after the pool's 10 s wait
    assert 'password authentication failed for user "f1daemon"' in line
    assert "pool initialization" not in line
    assert WRONG not in line


def test_a_server_that_requires_ssl(ssl_cluster: PgCluster, testdata: Path) -> None:
    cleartext = ssl_cluster.url(password=SECRET) + "?sslmode=disable"
    line = one_line_error(f1daemon("sessions", "--store", cleartext))
    assert 'pg_hba.conf rejects connection for host "127.0.0.1"' in line
    assert line.endswith("no encryption")
    assert SECRET not in line
    # Verified against its certificate (sslrootcert passed through), it is a log.
    verified = (
        ssl_cluster.url(password=SECRET)
        + f"?sslmode=verify-ca&sslrootcert={ssl_cluster.certificate}&application_name=t"
    )
    result = f1daemon("ingest", str(testdata / "livetiming" / SMALL), "--store", verified)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    with psycopg.connect(verified) as db:
        row = db.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (True,)


# -- a full disk, a damaged file -----------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs: the 2018 Baku race takes some 15 MiB in SQLite."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        reason = f"cannot mount a tmpfs ({mounted.stderr.strip()}); this test needs root"
        if IN_CI and os.geteuid() == 0:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def test_a_disk_that_fills_up_during_an_ingest(
    small_disk: Path, tmp_path: Path, testdata: Path
) -> None:
    folder = str(testdata / "livetiming" / BAKU)
    store = f"sqlite:///{small_disk / 'events.db'}"
    line = one_line_error(f1daemon("ingest", folder, "--store", store))
    assert line == (
        f"f1daemon: error: the store {store} is full (database or disk is full): the failed "
        "transaction wrote nothing; free some space and run the command again"
    )
    # The operator frees space (the volume grows) and runs the command again: what the
    # first run committed is there once, the rest is appended, and the log is sound.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = f1daemon("ingest", folder, "--store", store)
    assert again.returncode == 0, again.stderr
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    clean = f1daemon("ingest", folder, "--store", reference)
    assert clean.returncode == 0, clean.stderr
    appended, already = _ingest_counts(again.stdout)
    assert appended > 0
    assert already > 0  # the first run did commit some batches
    assert (appended + already, "0") == (_ingest_counts(clean.stdout)[0], "0")
    verified = f1daemon("verify", "--store", store)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    exports = [f1daemon("export", "laps", "--store", s).stdout for s in (store, reference)]
    assert exports[0] == exports[1]


def _ingest_counts(stdout: str) -> tuple[int, int]:
    """(appended, already logged) of an ingest's summary line."""
    # "…: 7 files, 3361 messages appended, 0 already in the log; …"
    appended = int(stdout.split(" messages appended", maxsplit=1)[0].rsplit(" ", 1)[1])
    already = int(stdout.split(" already in the log", maxsplit=1)[0].rsplit(" ", 1)[1])
    return appended, already


def test_a_damaged_sqlite_file_is_one_line_and_verify_names_the_pages(
    tmp_path: Path, testdata: Path
) -> None:
    path = tmp_path / "events.db"
    store = f"sqlite:///{path}"
    ingested = f1daemon("ingest", str(testdata / "livetiming" / SMALL), "--store", store)
    assert ingested.returncode == 0, ingested.stderr
    # Twenty pages in the middle of the file overwritten, as a failing disk would.
    data = bytearray(path.read_bytes())
    page = 4096
    middle = len(data) // page // 2
    for number in range(middle, middle + 20):
        data[number * page : number * page + 64] = b"\xde\xad" * 32
    path.write_bytes(data)
    line = one_line_error(f1daemon("export", "laps", "--store", store))
    assert line == (
        f"f1daemon: error: the store {store} is damaged (database disk image is malformed); "
        "`f1daemon verify` names the damage"
    )
    named = one_line_error(f1daemon("verify", "--store", store))
    assert named.startswith(f"f1daemon: error: the store {store} is damaged: Page ")
    assert "btreeInitPage() returns error code 11" in named
    one_line_error(f1daemon("ingest", str(testdata / "livetiming" / SMALL), "--store", store))
