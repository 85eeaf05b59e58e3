"""`f1daemon demo`: a simulated race through the real daemon, then a summary.

The daemon runs in-process with one source, the simulator, which writes the race in
the archive's file formats and replays it as fast as the log takes it; the writer
logs it, the session follows the feed's SessionStatus to COMPLETED (derived and
verified), and the summary is read back from the log. The simulator's own record of the race is the
ground truth the derived laps are checked against.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path

import trio

from f1daemon.config import Config, ControlSettings, DaemonSettings, MetricsSettings, SourceSettings
from f1daemon.daemon.app import Daemon
from f1daemon.daemon.lifecycle import SessionState
from f1daemon.daemon.sources import simulated_folder
from f1daemon.domain.events import (
    DerivedEvent,
    LapCompleted,
    NeutralisationPeriod,
    PitStop,
    TelemetryBatch,
)
from f1daemon.errors import UserError
from f1daemon.feed.timing import format_time_ms
from f1daemon.projections.exports import export_table, write_table
from f1daemon.services.derivation import current_events
from f1daemon.sources.simulator import SimulatedRace, simulate_race
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url


def run_demo(data_dir: Path, *, seed: int, track: str, cars: int, laps: int) -> None:
    """Run a simulated race through the daemon, then export and summarise it."""
    data_dir = data_dir.absolute()
    source = SourceSettings(
        name="simulator", kind="simulator", track=track, seed=seed, cars=cars, laps=laps, speed=0
    )
    config = Config(
        daemon=DaemonSettings(state_dir=data_dir, store=f"sqlite:///{data_dir / 'events.db'}"),
        control=ControlSettings(socket=data_dir / "f1daemon.sock"),
        metrics=MetricsSettings(enabled=False),
        sources=(source,),
    )
    folder = simulated_folder(source, data_dir)
    with EventLog(parse_store_url(config.store_url)) as log:
        before = _facts_logged(log)
    session = trio.run(_until_completed, Daemon(config))
    with EventLog(parse_store_url(config.store_url)) as log:
        logged = _facts_logged(log)
        events = current_events(log, session, telemetry=True)
    race = simulate_race(track=track, seed=seed, cars=cars, laps=laps)
    export_dir = data_dir / "exports" / session.replace("/", "__")
    table = export_table("laps", events)
    write_table(table, "parquet", export_dir / "laps.parquet")
    write_table(table, "csv", export_dir / "laps.csv")

    print(f"f1daemon demo: simulated {track.title()} race, seed {seed}, {cars} cars, {laps} laps")
    print(
        "  through     f1daemon run: source 'simulator' -> writer -> derivation, session COMPLETED"
    )
    print(f"  feed files  {folder}")
    print(
        f"  event log   {config.store_url}  (session {session}: {logged - before} messages "
        f"appended, {before} already there)"
    )
    print(f"  exports     {export_dir / 'laps.parquet'}, {export_dir / 'laps.csv'}")
    _print_classification(events)
    _print_fastest(events)
    _print_neutralisations(events)
    _print_telemetry(events)
    matched, total = compare_with_ground_truth(events, race)
    print(f"\nCheck: {matched} of {total} derived laps equal the simulator's own record of them.")
    _print_serving(config.store_url, events)


def _print_serving(store_url: str, events: Sequence[DerivedEvent]) -> None:
    """How to read the demo's data over HTTP (OpenF1's API) and one request of it."""
    driver = next((e.driver for e in events if isinstance(e, LapCompleted)), 1)
    print("\nServe it over HTTP, with OpenF1's paths and fields:")
    print(f"  f1daemon serve --store {store_url}")
    print(
        "  curl 'http://127.0.0.1:8000/v1/laps?session_key=latest"
        f"&driver_number={driver}&lap_number>=5'"
    )


async def _until_completed(daemon: Daemon) -> str:
    """Run the daemon until its session is COMPLETED (derived and verified), then stop it;
    return the session's key."""
    source = daemon.sources  # filled once the daemon has started
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        simulator = source["simulator"]
        while True:
            track = daemon.sessions.get(simulator.session or "")
            if track is not None and track.lifecycle.state is SessionState.COMPLETED:
                break
            if simulator.state in ("backing-off", "circuit-open"):
                raise UserError(f"the simulator failed: {simulator.last_error}")
            await trio.sleep(0.05)
        daemon.request_shutdown()
    return track.lifecycle.session


def _facts_logged(log: EventLog) -> int:
    return sum(1 for session in log.sessions() for _ in log.facts(session))


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


def _print_neutralisations(events: Sequence[DerivedEvent]) -> None:
    periods = [e for e in events if isinstance(e, NeutralisationPeriod)]
    stops = sum(1 for e in events if isinstance(e, PitStop))
    print(f"\nPit stops: {stops}; neutralisations: {len(periods) or 'none'}")
    for period in periods:
        print(f"  {period.kind:<4} laps {period.first_lap}-{period.last_lap}")


def _print_telemetry(events: Sequence[DerivedEvent]) -> None:
    batches = [e for e in events if isinstance(e, TelemetryBatch)]
    samples = sum(len(b.utc_ms) for b in batches)
    top = max(
        (
            (speed or 0, driver)
            for b in batches
            for speed, driver in zip(b.speed, b.driver, strict=True)
        ),
        default=(0, 0),
    )
    print(
        f"\nTelemetry (CarData.z, decoded natively): {samples} car samples in {len(batches)} "
        f"messages; top speed {top[0]} km/h by #{top[1]}"
    )
