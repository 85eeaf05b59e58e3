"""`f1daemon demo`: a simulated race through the real ingest path, then a summary.

The simulator writes the race in the archive's file formats; the daemon ingests
those files exactly as it ingests a real recording, into the embedded store, and the
summary is read back from the log. The simulator's own record of the race is the
ground truth the derived laps are checked against.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path

import orjson

from f1daemon._native import decode_z_many
from f1daemon.domain.events import DerivedEvent, LapCompleted
from f1daemon.feed.timing import format_time_ms
from f1daemon.ingest import ingest_paths
from f1daemon.sources.simulator import SimulatedRace, write_race
from f1daemon.store.derivation import current_events
from f1daemon.store.eventlog import EventLog
from f1daemon.store.exports import laps_table, write_table
from f1daemon.store.url import parse_store_url


def run_demo(data_dir: Path, *, seed: int, track: str, cars: int, laps: int) -> None:
    """Simulate, ingest, export and summarise one race under `data_dir`."""
    folder = data_dir / "simulated" / f"Simulated_{track.title()}_Grand_Prix__seed{seed}_Race"
    race = write_race(folder, track=track, seed=seed, cars=cars, laps=laps)
    store_url = f"sqlite:///{data_dir / 'events.db'}"
    with EventLog(parse_store_url(store_url)) as log:
        (ingested,) = ingest_paths(log, [folder])
        events = current_events(log, ingested.session)
        telemetry = [
            fact.payload for _, fact in log.facts(ingested.session) if fact.topic == "CarData.z"
        ]
    export_dir = data_dir / "exports" / ingested.session.replace("/", "__")
    table = laps_table(events)
    write_table(table, "parquet", export_dir / "laps.parquet")
    write_table(table, "csv", export_dir / "laps.csv")

    print(f"f1daemon demo: simulated {track.title()} race, seed {seed}, {cars} cars, {laps} laps")
    print(f"  feed files  {folder}  ({len(race.files)} topics)")
    print(
        f"  event log   {store_url}  (session {ingested.session}: {ingested.appended} messages "
        f"appended, {ingested.already_logged} already there)"
    )
    print(f"  exports     {export_dir / 'laps.parquet'}, {export_dir / 'laps.csv'}")
    _print_classification(events)
    _print_fastest(events)
    _print_telemetry(telemetry)
    matched, total = compare_with_ground_truth(events, race)
    print(f"\nCheck: {matched} of {total} derived laps equal the simulator's own record of them.")


# What a lap is compared on: the columns a strategy engineer reads.
LAP_FIELDS = (
    "driver",
    "lap",
    "lap_time_ms",
    "sector1_ms",
    "sector2_ms",
    "sector3_ms",
    "pit_in",
    "pit_out",
    "compound",
    "stint",
)
lap_values = attrgetter(*LAP_FIELDS)


def compare_with_ground_truth(
    events: Sequence[DerivedEvent], race: SimulatedRace
) -> tuple[int, int]:
    """How many of the simulator's laps the log derived exactly; and how many there are."""
    derived = {lap_values(e) for e in events if isinstance(e, LapCompleted)}
    matched = sum(1 for truth in race.laps if lap_values(truth) in derived)
    return matched, len(race.laps)


def _print_classification(events: Sequence[DerivedEvent]) -> None:
    last_lap: dict[int, LapCompleted] = {}
    for event in events:
        if isinstance(event, LapCompleted) and event.lap >= last_lap.get(event.driver, event).lap:
            last_lap[event.driver] = event
    order = sorted(last_lap.values(), key=lambda lap: (-lap.lap, lap.session_time_ms))
    print("\nClassification (laps completed, then order at the line)")
    leader = order[0] if order else None
    for position, lap in enumerate(order, start=1):
        gap = ""
        if leader is not None and lap is not leader:
            gap = (
                f"+{(lap.session_time_ms - leader.session_time_ms) / 1000:.3f}s"
                if lap.lap == leader.lap
                else f"+{leader.lap - lap.lap} laps"
            )
        print(f"  P{position:<3} #{lap.driver:<3} {lap.lap:>3} laps  {gap}")


def _print_fastest(events: Sequence[DerivedEvent], count: int = 5) -> None:
    timed = [e for e in events if isinstance(e, LapCompleted) and e.lap_time_ms is not None]
    timed.sort(key=lambda lap: (lap.lap_time_ms or 0, lap.session_time_ms))
    print("\nFastest laps")
    for lap in timed[:count]:
        print(
            f"  #{lap.driver:<3} lap {lap.lap:>3}  {format_time_ms(lap.lap_time_ms or 0)}  "
            f"({lap.compound or 'unknown'}, stint {lap.stint})"
        )


def _print_telemetry(payloads: Sequence[str]) -> None:
    # The archive line's JSON is a string holding the base64; the native decoder inflates it.
    decoded = decode_z_many([orjson.loads(p) for p in payloads])
    samples = 0
    top: tuple[int, int] = (0, 0)
    for text in decoded:
        for entry in orjson.loads(text).get("Entries", []):
            for number, car in entry.get("Cars", {}).items():
                samples += 1
                speed = car.get("Channels", {}).get("2", 0)
                top = max(top, (speed, int(number)))
    print(
        f"\nTelemetry (CarData.z, decoded natively): {samples} car samples in {len(payloads)} "
        f"messages; top speed {top[0]} km/h by #{top[1]}"
    )
