"""The simulated race written as the static archive's `{Topic}.jsonStream` files
(`write_race`), with SessionInfo, DriverList and RaceControlMessages."""

from __future__ import annotations

import bisect
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import orjson

from f1daemon.sources.simulator.feed import (
    FeedStreams,
    TopicStream,
    bundle_messages,
    encode_lines,
    plain_lines,
    render_laps,
    render_positions,
    timing_snapshot,
    track_model,
    weather_stream,
)
from f1daemon.sources.simulator.model import (
    RACE_START_OFFSET_MS,
    ROSTER,
    TOPIC_FILES,
    TRACKS,
    Json,
    seeded_rng,
)
from f1daemon.sources.simulator.race import SimulatedRace, check_args, ground_truth, simulate
from f1daemon.sources.simulator.runs import Simulation
from f1daemon.sources.simulator.telemetry import telemetry_files


def _race_control(sim: Simulation, feed: FeedStreams) -> TopicStream:
    """`RaceControlMessages`: a list first, then each new message patched in by index."""
    crossings = feed.lap_count.sorted()
    times = [t for t, _, _ in crossings]
    stream = TopicStream()
    for n, said in enumerate(sim.announcements):
        at = bisect.bisect_right(times, said.t) - 1
        lap = crossings[at][2]["CurrentLap"] if at >= 0 else 1
        stamp = sim.stream_start_utc + timedelta(milliseconds=said.t)
        item = {"Utc": f"{stamp:%Y-%m-%dT%H:%M:%S}", "Lap": lap, **said.item}
        stream.add(said.t, {"Messages": [item] if n == 0 else {str(n): item}})
    return stream


def _session_info(sim: Simulation) -> Json:
    track = sim.track
    start_local = sim.stream_start_utc + timedelta(
        milliseconds=RACE_START_OFFSET_MS, hours=track.gmt_offset_hours
    )
    end_local = start_local + timedelta(hours=2)
    name = f"Simulated {track.meeting_name}"
    day = f"{start_local:%Y-%m-%d}"
    meeting_key = 900_000 + list(TRACKS).index(track.key) * 1000 + sim.seed % 1000
    return {
        "Meeting": {
            "Key": meeting_key,
            "Name": name,
            "Location": track.location,
            "Country": {
                "Key": track.country_key,
                "Code": track.country_code,
                "Name": track.country_name,
            },
            "Circuit": {"Key": track.circuit_key, "ShortName": track.circuit_short_name},
        },
        "ArchiveStatus": {"Status": "Complete"},
        "Key": meeting_key * 10 + 1,
        "Type": "Race",
        "Name": "Race",
        "StartDate": f"{start_local:%Y-%m-%dT%H:%M:%S}",
        "EndDate": f"{end_local:%Y-%m-%dT%H:%M:%S}",
        "GmtOffset": f"{track.gmt_offset_hours:02d}:00:00",
        "Path": f"{start_local:%Y}/{day}_{name.replace(' ', '_')}/{day}_Race/",
    }


def _driver_list(sim: Simulation) -> Json:
    roster = {entry[0]: entry for entry in ROSTER}
    out: Json = {}
    for run in sim.runs:
        number, first, last, tla, team, colour = roster[run.number]
        out[str(number)] = {
            "RacingNumber": str(number),
            "BroadcastName": f"{first[0]} {last.upper()}",
            "FullName": f"{first} {last.upper()}",
            "Tla": tla,
            "Line": run.grid,
            "TeamName": team,
            "TeamColour": colour,
            "FirstName": first,
            "LastName": last,
        }
    return out


def _render(sim: Simulation, telemetry_hz: float) -> dict[str, bytes]:
    rng = seeded_rng(sim.seed, "feed")
    model = track_model(sim.track)
    feed = FeedStreams()

    feed.session_status.add(1_000, {"Status": "Inactive"})
    feed.lap_count.add(2_000, {"CurrentLap": 1, "TotalLaps": sim.total_laps})
    feed.track_status.add(3_000, {"Status": "1", "Message": "AllClear"})
    feed.driver_list.add(4_000, _driver_list(sim))
    feed.timing.add(5_000, timing_snapshot(sim))
    feed.timing_app.add(
        5_000,
        {
            "Lines": {
                str(run.number): {
                    "RacingNumber": str(run.number),
                    "Line": run.grid,
                    "GridPos": str(run.grid),
                }
                for run in sim.runs
            }
        },
    )
    feed.timing_app.add(
        6_000,
        {
            "Lines": {
                str(run.number): {
                    "Stints": [
                        {
                            "Compound": run.compounds[0],
                            "New": "true",
                            "TyresNotChanged": "0",
                            "TotalLaps": 0,
                            "StartLaps": 0,
                        }
                    ]
                }
                for run in sim.runs
            }
        },
    )
    feed.session_status.add(RACE_START_OFFSET_MS, {"Status": "Started"})
    for status in sim.statuses:
        feed.track_status.add(status.t, {"Status": status.code, "Message": status.message})

    render_positions(sim, feed, model, rng)
    render_laps(sim, feed, model, rng)
    bundle_messages(feed.timing, rng)

    last_timing = max(t for t, _, _ in feed.timing.items)
    finished = last_timing + 1_000 + rng.randint(0, 2000)
    finalised = finished + 120_000 + rng.randint(0, 10_000)
    ends = finalised + 60_000 + rng.randint(0, 10_000)
    feed.session_status.add(finished, {"Status": "Finished"})
    feed.session_status.add(finalised, {"Status": "Finalised"})
    feed.session_status.add(ends, {"Status": "Ends"})
    car_data, positions = telemetry_files(
        sim,
        feed,
        model=model,
        hz=telemetry_hz,
        first_ms=RACE_START_OFFSET_MS - 60_000,
        last_ms=finished + 10_000,
    )

    return {
        "SessionInfo.jsonStream": encode_lines([(0, orjson.dumps(_session_info(sim)))]),
        "SessionStatus.jsonStream": plain_lines(feed.session_status),
        "DriverList.jsonStream": plain_lines(feed.driver_list),
        "LapCount.jsonStream": plain_lines(feed.lap_count),
        "TrackStatus.jsonStream": plain_lines(feed.track_status),
        "WeatherData.jsonStream": plain_lines(weather_stream(sim, ends)),
        "TimingData.jsonStream": plain_lines(feed.timing),
        "TimingAppData.jsonStream": plain_lines(feed.timing_app),
        "RaceControlMessages.jsonStream": plain_lines(_race_control(sim, feed)),
        "CarData.z.jsonStream": car_data,
        "Position.z.jsonStream": positions,
    }


def write_race(
    folder: Path,
    *,
    track: str = "monza",
    seed: int = 1,
    cars: int = 20,
    laps: int = 12,
    telemetry_hz: float = 4.0,
) -> SimulatedRace:
    """Write a simulated race into `folder` as static-archive topics; return its ground truth.

    The folder is created if needed; files of the same names are overwritten.
    """
    check_args(track, cars, laps, telemetry_hz)
    sim = simulate(track, seed, cars, laps)
    blobs = _render(sim, telemetry_hz)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name in TOPIC_FILES:
        path = folder / name
        path.write_bytes(blobs[name])
        paths.append(path)
    return replace(ground_truth(sim), files=tuple(paths))
