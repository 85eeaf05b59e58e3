"""The command line as a user meets it: help, ingest, export, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from f1daemon.cli import EXIT_USER_ERROR, main
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

SUBCOMMANDS = ["ingest", "export", "sessions", "demo"]
BAKU = "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("command", [[], *([c] for c in SUBCOMMANDS)])
def test_every_command_says_what_it_does(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: f1daemon")
    if command:
        assert "--store" in out or command == ["demo"]


def test_ingest_twice_adds_nothing_and_exports_agree(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'log' / 'events.db'}"
    session_folder = testdata / "livetiming" / BAKU
    status, out, _ = run(["ingest", str(session_folder), "--store", store], capsys)
    assert status == 0
    assert "24237 messages appended, 0 already in the log; derived run 1" in out
    status, out, _ = run(["ingest", str(session_folder), "--store", store], capsys)
    assert status == 0
    assert "0 messages appended, 24237 already in the log; nothing new to derive" in out

    status, csv_text, _ = run(["export", "laps", "--store", store], capsys)
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert list(rows[0])[:10] == [
        "driver", "lap", "lap_time_ms", "sector1_ms", "sector2_ms", "sector3_ms",
        "pit_in", "pit_out", "compound", "stint",
    ]  # fmt: skip
    status, _, err = run(
        ["export", "laps", "--store", store, "--format", "json", "-o", str(tmp_path / "laps.json")],
        capsys,
    )
    assert status == 0
    assert f"{len(rows)} rows of laps" in err
    status, _, _ = run(
        [
            "export",
            "laps",
            "--store",
            store,
            "--format",
            "parquet",
            "-o",
            str(tmp_path / "laps.parquet"),
        ],
        capsys,
    )
    assert status == 0

    as_json = json.loads((tmp_path / "laps.json").read_text())
    parquet_rows = pq.read_table(tmp_path / "laps.parquet").to_pylist()
    as_parquet = json.loads(orjson.dumps(parquet_rows, option=orjson.OPT_UTC_Z))
    assert as_json == as_parquet
    assert len(as_json) == len(rows)
    # Empty CSV fields are the nulls of the other formats.
    for row, record in zip(rows, as_json, strict=True):
        assert row["lap_time_ms"] == (
            "" if record["lap_time_ms"] is None else str(record["lap_time_ms"])
        )
        assert row["compound"] == (record["compound"] or "")


def test_single_files_with_and_without_bom_and_crlf_ingest_alike(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file as served (BOM, CRLF) and the same file re-saved (no BOM, LF) give the same laps."""
    served = testdata / "livetiming" / BAKU
    resaved = tmp_path / "resaved" / BAKU
    resaved.mkdir(parents=True)
    for topic in ("TimingData", "TimingAppData"):
        raw = (served / f"{topic}.jsonStream").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        assert b"\r\n" in raw
        (resaved / f"{topic}.jsonStream").write_bytes(
            raw.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
        )
    exports = []
    for folder, name in ((served, "served"), (resaved, "resaved")):
        store = f"sqlite:///{tmp_path / name / 'events.db'}"
        files = [str(folder / "TimingData.jsonStream"), str(folder / "TimingAppData.jsonStream")]
        assert run(["ingest", *files, "--store", store], capsys)[0] == 0
        exports.append(run(["export", "laps", "--store", store], capsys)[1])
    assert exports[0] == exports[1]
    assert exports[0].count("\n") > 800


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "/no/such/folder"], "/no/such/folder: no such file or folder"),
        (["ingest", "{tmp}"], "no .jsonStream files in this folder"),
        (["ingest", "{tmp}/notes.txt"], "not an archive file"),
        (["export", "laps", "--store", "mysql://x/y"], "unsupported store URL"),
        (["export", "laps"], "holds no sessions"),
        (["export", "laps", "--session", "1999/Nowhere"], "unknown session '1999/Nowhere'"),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "notes.txt").write_text("not a feed")
    store = f"sqlite:///{tmp_path / 'events.db'}"
    EventLog(parse_store_url(store)).close()  # an empty log
    monkeypatch.setenv("F1DAEMON_STORE", store)
    status, out, err = run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert status == EXIT_USER_ERROR
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("f1daemon: error: ")
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["sessions"],
        ["export", "laps"],
        ["replay"],
        ["versions"],
        ["quarantine", "list"],
        ["qa-report"],
        ["diff", "a", "b"],
    ],
)
def test_a_read_on_a_store_that_does_not_exist_says_so_and_creates_nothing(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("F1DAEMON_STORE", raising=False)
    status, out, err = run(argv, capsys)
    assert (status, out) == (EXIT_USER_ERROR, "")
    assert err == (
        "f1daemon: error: no event log at sqlite:///f1daemon-data/events.db; "
        "ingest or run the daemon first\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_installed_command_runs(tmp_path: Path) -> None:
    """The console script itself (not only main()) exits 2 with one line on a bad URL."""
    result = subprocess.run(
        [sys.executable, "-m", "f1daemon", "export", "laps", "--store", "bogus://"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == EXIT_USER_ERROR
    assert result.stderr.strip().startswith("f1daemon: error: unsupported store URL")
