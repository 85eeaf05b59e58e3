"""Ingest of the 2018 Baku race: derivation and appends, each against a baseline.

* derivation: archive files → derived events in memory (and the same through facts,
  as an ingest derives), vs the floor of only reading the files and parsing every
  line's JSON (orjson);
* appends: the facts into the SQLite event log (eventsourcing recorder, batches of
  one transaction), vs raw `sqlite3.executemany` of the same payloads into a bare
  table with the same batching.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from f1daemon.domain.events import Fact
from f1daemon.feed.pipeline import derive
from f1daemon.sources.archive import read_facts, read_messages, topic_files
from f1daemon.store.eventlog import APPEND_BATCH, EventLog
from f1daemon.store.url import parse_store_url

BAKU = "livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"


def _testdata() -> Path:
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "f1data"
    return Path(os.environ.get("F1DAEMON_TESTDATA", default))


def _best(repeats: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Print the figures."""
    files = topic_files(_testdata() / BAKU)
    facts = list(read_facts("bench", files))
    count = len(facts)

    def parse_only() -> None:
        for topic_file in files:
            for line in topic_file.path.read_bytes().decode("utf-8-sig").splitlines():
                if line:
                    orjson.loads(line[12:])

    def via_facts() -> None:
        derive("bench", enumerate(read_facts("bench", files), start=1))

    def in_memory() -> None:
        derive("bench", enumerate(read_messages(files), start=1))

    floor = _best(5, parse_only)
    facts_time = _best(5, via_facts)
    memory_time = _best(5, in_memory)
    print(f"derivation, {count} messages of the 2018 Baku race (best of 5)")
    _row("read + orjson.loads only (floor)", floor, count, "msg/s")
    _row("files -> derived events", memory_time, count, "msg/s", f"{memory_time / floor:.1f}x")
    _row(
        "files -> facts -> derived events", facts_time, count, "msg/s", f"{facts_time / floor:.1f}x"
    )

    with tempfile.TemporaryDirectory() as folder:
        log_time = _append_to_log(Path(folder) / "events.db", facts)
        raw_time = _append_raw(Path(folder) / "raw.db", facts)
    print(f"appends of {count} facts to SQLite, {APPEND_BATCH} a transaction")
    _row("raw sqlite3.executemany (baseline)", raw_time, count, "facts/s")
    _row("event log (eventsourcing)", log_time, count, "facts/s", f"{log_time / raw_time:.1f}x")


def _row(label: str, seconds: float, count: int, unit: str, note: str = "") -> None:
    rate = f"{count / seconds:>10,.0f} {unit}"
    print(f"  {label:<36} {seconds * 1000:8.1f} ms  {rate}  {note}".rstrip())


def _append_to_log(path: Path, facts: list[Fact]) -> float:
    with EventLog(parse_store_url(f"sqlite:///{path}")) as log:
        start = time.perf_counter()
        log.append_facts(facts)
        return time.perf_counter() - start


def _append_raw(path: Path, facts: list[Fact]) -> float:
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE facts (stream TEXT, sequence INTEGER, state BLOB,"
        " PRIMARY KEY (stream, sequence))"
    )
    start = time.perf_counter()
    for index in range(0, len(facts), APPEND_BATCH):
        with connection:
            connection.executemany(
                "INSERT INTO facts VALUES (?, ?, ?)",
                (
                    (f.stream, f.sequence, f.payload.encode())
                    for f in facts[index : index + APPEND_BATCH]
                ),
            )
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed
