"""QA throughput: records checked per second, laps and telemetry, against the derivation.

The inputs are real sessions derived in memory: the 2018 Baku race (laps, pit stops,
weather; no telemetry in the archive) and the Monaco 2023 FP2 SignalR capture (24,040
telemetry samples besides its laps). Measured: `check_run` (every rule, then the
verdicts applied: quarantine, flags, AnomalyDetected, the report) on the session's
laps-side events alone and on its telemetry alone; the baseline is the time the
decoders take to derive the same session, in the same run. Best of several repeats.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from benches.bench_native import best_of
from f1daemon.domain.events import DerivedEvent, TelemetryBatch
from f1daemon.feed.pipeline import derive
from f1daemon.qa.verdicts import check_run
from f1daemon.sources.archive import read_messages, topic_files
from f1daemon.sources.recording import read_recording

REPO = Path(__file__).resolve().parent.parent
BAKU = "livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
MONACO = "f1dash-signalr-2023_Monaco/fp2.txt"
REPEATS = 5


def _row(name: str, records: int, seconds: float, baseline: float) -> str:
    return (
        f"  {name:<34} {records:>8,} {seconds * 1e3:>9.1f} {records / seconds:>12,.0f}"
        f" {100 * seconds / baseline:>10.1f} %"
    )


def main() -> None:
    """Print records/s of QA on laps and on telemetry, and its share of a derivation."""
    testdata = Path(os.environ.get("F1DAEMON_TESTDATA", REPO.parent / "shared" / "f1data"))
    if not (testdata / MONACO).is_file():
        print(f"recordings not found under {testdata}; set F1DAEMON_TESTDATA")
        return
    files = topic_files(testdata / BAKU)
    baku_derive = best_of(lambda: derive("baku", enumerate(read_messages(files), 1)), REPEATS)
    baku = derive("baku", enumerate(read_messages(files), 1)).events
    facts = list(read_recording(testdata / MONACO).facts("monaco"))
    monaco_derive = best_of(lambda: derive("monaco", enumerate(facts, 1)), REPEATS)
    monaco = derive("monaco", enumerate(facts, 1)).events
    telemetry: list[DerivedEvent] = [e for e in monaco if isinstance(e, TelemetryBatch)]
    monaco_laps = [e for e in monaco if not isinstance(e, TelemetryBatch)]

    print(f"QA (check_run: {REPEATS} repeats, best) against deriving the same session")
    header = ("input", "records", "best ms", "records/s", "of derive")
    print("  {:<34} {:>8} {:>9} {:>12} {:>12}".format(*header))
    for name, events, baseline in (
        ("Baku 2018 race, laps side", baku, baku_derive),
        ("Monaco 2023 FP2, laps side", monaco_laps, monaco_derive),
        ("Monaco 2023 FP2, telemetry", telemetry, monaco_derive),
        ("Monaco 2023 FP2, everything", monaco, monaco_derive),
    ):
        _, report = check_run("bench", events)
        seconds = best_of(partial(check_run, "bench", events), REPEATS)
        print(_row(name, report.records_checked, seconds, baseline))
    print(
        f"  deriving: Baku {baku_derive * 1e3:.1f} ms, Monaco capture "
        f"{monaco_derive * 1e3:.1f} ms (the 'of derive' baselines)"
    )
