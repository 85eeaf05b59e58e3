"""A private PostgreSQL cluster for tests that stop and start their server.

The shared test server (`scripts/with-postgres`, $F1DAEMON_TEST_POSTGRES) serves
every test at once, so a test that takes its server down needs one of its own: a
data directory owned by the test, a free port, the same binaries the script uses.
As root the cluster belongs to the `postgres` user, because initdb refuses root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "f1daemon"
DATABASE = "f1daemon_test"


def find_pg_bin() -> Path | None:
    """The newest installed server's binaries (Debian's /usr/lib/postgresql/N/bin)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if (folder / "pg_ctl").is_file() and os.access(folder / "pg_ctl", os.X_OK):
            return folder
    return None


def free_port() -> int:
    """A TCP port nobody listens on now (the server takes it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PgCluster:
    """One initialised cluster: start, stop (as an outage would), connect."""

    bin: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    run_as: list[str] = field(default_factory=list)
    # A password for the superuser: TCP logins must give it (SCRAM); without one, trust.
    password: str | None = None
    # Serve TCP over SSL only (a self-signed certificate, `certificate`), refusing the rest.
    ssl_only: bool = False

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def certificate(self) -> Path:
        """The server's self-signed certificate (CN 127.0.0.1), when `ssl_only`."""
        return self.workdir / "server.crt"

    def url(self, database: str = DATABASE, *, password: str | None = None) -> str:
        """The postgresql:// URL of a database on this cluster (with a password, if given)."""
        login = SUPERUSER if password is None else f"{SUPERUSER}:{password}"
        return f"postgresql://{login}@127.0.0.1:{self.port}/{database}"

    def initdb(self) -> None:
        auth = ["--auth=trust"]
        if self.password is not None:
            pwfile = self.workdir / "pwfile"
            pwfile.write_text(self.password, encoding="utf-8")
            self._own(pwfile)
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, *auth, "-E", "UTF8")
        if self.ssl_only:
            method = "trust" if self.password is None else "scram-sha-256"
            hba = self.data / "pg_hba.conf"
            hba.write_text(
                "local all all trust\n"
                f"hostssl all all 127.0.0.1/32 {method}\n"
                "hostnossl all all 127.0.0.1/32 reject\n",
                encoding="utf-8",
            )
            self._own(hba)
            key = self.workdir / "server.key"
            subprocess.run(
                ["openssl", "req", "-new", "-x509", "-days", "2", "-nodes", "-subj",
                 "/CN=127.0.0.1", "-keyout", str(key), "-out", str(self.certificate)],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            key.chmod(0o600)
            self._own(key)
            self._own(self.certificate)

    def _own(self, path: Path) -> None:
        if self.run_as:  # the server's user must read what it is given
            shutil.chown(path, user="postgres")

    def start(self) -> None:
        """Start the server and wait until it accepts connections (pg_ctl -w)."""
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 "
            "-c fsync=on -c max_connections=50"
        )
        if self.ssl_only:
            options += (
                f" -c ssl=on -c ssl_cert_file={self.certificate}"
                f" -c ssl_key_file={self.workdir / 'server.key'}"
            )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.workdir / "server.log"), "-w",
            "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends every session at once, as an operator's stop does."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def createdb(self, database: str = DATABASE) -> None:
        # Over the Unix socket (trusted): TCP may want a password or SSL.
        self._run(
            "createdb", "-h", str(self.workdir), "-p", str(self.port), "-U", SUPERUSER, database
        )

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin / program), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )


@contextmanager
def private_cluster(
    pg_bin: Path, *, password: str | None = None, ssl_only: bool = False
) -> Iterator[PgCluster]:
    """A started cluster with an empty database `DATABASE`; stopped and removed afterwards."""
    run_as: list[str] = []
    # Not pytest's tmp_path: it is private to root, and the server runs as postgres.
    workdir = Path(tempfile.mkdtemp(prefix="f1daemon-pgcluster."))
    workdir.chmod(0o755)
    if os.geteuid() == 0:
        if subprocess.run(["id", "postgres"], capture_output=True, check=False).returncode:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        shutil.chown(workdir, user="postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    cluster = PgCluster(
        bin=pg_bin, workdir=workdir, run_as=run_as, password=password, ssl_only=ssl_only
    )
    try:
        cluster.initdb()
        cluster.start()
        cluster.createdb()
        yield cluster
    finally:
        subprocess.run(
            [*run_as, str(pg_bin / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(workdir, ignore_errors=True)
