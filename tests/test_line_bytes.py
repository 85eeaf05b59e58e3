"""Lines that are not UTF-8 keep their exact bytes, with a reason that says so: in an
archive file (after a good `HH:MM:SS.mmm` offset) and in a live recording, through
`ingest`, `quarantine list|show` and `verify`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from f1daemon.domain.events import RecordQuarantined
from f1daemon.feed.pipeline import derive
from f1daemon.sources.archive import read_facts, read_messages, topic_files
from f1daemon.sources.recording import parse_recording

F1DAEMON = str(Path(sys.executable).with_name("f1daemon"))
SMALL = "2020-07-19_Hungarian_Grand_Prix__2020-07-17_Practice_2"


def f1daemon(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "F1DAEMON_STORE"}
    return subprocess.run(
        [F1DAEMON, *args], capture_output=True, text=True, env=env, timeout=120, check=True
    )


def damage(path: Path, line_number: int) -> bytes:
    """Put bytes that are not UTF-8 into a line's JSON, after its offset; return the line."""
    lines = path.read_bytes().split(b"\n")
    line = lines[line_number - 1].removesuffix(b"\r")
    damaged = line[:20] + b"\xff\xfe\xc3" + line[20:]
    lines[line_number - 1] = damaged + (b"\r" if lines[line_number - 1].endswith(b"\r") else b"")
    path.write_bytes(b"\n".join(lines))
    return damaged


def test_an_archive_line_that_is_not_utf8_keeps_its_bytes(testdata: Path, tmp_path: Path) -> None:
    folder = tmp_path / SMALL
    shutil.copytree(testdata / "livetiming" / SMALL, folder)
    original = damage(folder / "RaceControlMessages.jsonStream", 3)
    assert original[:12].decode() == original[:12].decode("ascii")  # a good offset
    store = f"sqlite:///{tmp_path / 'events.db'}"
    ingested = f1daemon("ingest", str(folder), "--store", store)
    assert "3360 messages appended" in ingested.stdout
    assert "1 quarantined line appended" in ingested.stdout
    listed = json.loads(f1daemon("quarantine", "list", "--format", "json", "--store", store).stdout)
    (entry,) = [e for e in listed if e["stream"] == "RaceControlMessages"]
    assert entry["stage"] == "source"
    assert entry["rule"] == "framing.encoding"
    assert entry["reason"] == (
        "not UTF-8: invalid start byte at byte 21; the line's exact bytes are kept in "
        "payload_base64"
    )
    assert base64.b64decode(entry["payload_base64"]) == original
    assert entry["payload"] == original.decode("utf-8", errors="replace")
    shown = f1daemon("quarantine", "show", str(entry["id"]), "--store", store).stdout
    assert entry["payload_base64"] in shown
    assert "no HH:MM:SS.mmm offset" not in ingested.stdout + json.dumps(listed) + shown
    # The derivation in memory passes over the line as the one from the facts does.
    verified = f1daemon("verify", "--store", store)
    assert verified.stdout.strip().endswith("0 with problems")
    files = topic_files(folder)
    facts = list(read_facts("s", files))
    quarantined = [f for f in facts if isinstance(f, RecordQuarantined)]
    assert [(q.stream, q.sequence) for q in quarantined] == [("RaceControlMessages", 3)]
    from_facts = derive("s", enumerate(facts, start=1)).events
    in_memory = derive("s", enumerate(read_messages(files), start=1)).events
    assert in_memory == from_facts
    assert not [e for e in in_memory if isinstance(e, RecordQuarantined)]


def test_a_recording_line_that_is_not_utf8_keeps_its_bytes() -> None:
    bad = b"['Heartbeat', {'_kf': True}, '2021-03-28T14:52:33.1Z\xff']"
    data = b"['Heartbeat', {'_kf': True}, '2021-03-28T14:52:32.1Z']\n" + bad + b"\n"
    (_, fact) = parse_recording(data, stream="x.txt").facts("s")
    assert isinstance(fact, RecordQuarantined)
    assert fact.rule == "framing.encoding"
    assert fact.reason.startswith("not UTF-8: invalid start byte at byte 53;")
    assert fact.payload_base64 is not None
    assert base64.b64decode(fact.payload_base64) == bad
