"""OpenF1's tables from our exports: its endpoints, field names, units and types.

Each endpoint of OpenF1's API (`/v1/laps`, `/v1/car_data`, …) is one of our export
kinds with its columns renamed and converted the way OpenF1 has them: durations in
seconds (ours are `_ms`), sample times as UTC timestamps (ours `utc_ms`), flags as
`qa_flags` (a list, our addition; empty where a table has no QA), and every row
with the session's `session_key` and `meeting_key`. A field OpenF1 has that the feed
we derive from does not carry is kept, null (`UNFILLED` says which, and why), so a
client written for OpenF1 finds every key it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from f1daemon.projections.exports import LIST_SEPARATOR

TIMESTAMP = pa.timestamp("us", tz="UTC")
FLAGS = pa.list_(pa.string())

Build = Callable[[Mapping[str, pa.Table]], dict[str, pa.Array | pa.ChunkedArray]]


@dataclass(frozen=True)
class Endpoint:
    """One OpenF1 endpoint: the export kinds it reads and how its columns are made."""

    name: str
    kinds: tuple[str, ...]  # the first is the one it has a row per row of
    build: Build
    # Rows of several sessions that are one thing (a meeting) are merged.
    combine: Callable[[pa.Table], pa.Table] | None = None
    keys: tuple[str, ...] = ("session_key", "meeting_key")


# OpenF1 fields we keep null, and why.
UNFILLED = {
    "laps": {
        "segments_sector_1": "mini-sector statuses are not kept in our laps",
        "segments_sector_2": "mini-sector statuses are not kept in our laps",
        "segments_sector_3": "mini-sector statuses are not kept in our laps",
    },
    "meetings": {
        "meeting_code": "SessionInfo has no meeting code",
        "meeting_official_name": "SessionInfo has no official name",
    },
}


def _seconds(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.divide(pc.cast(column, pa.float64()), 1000.0)


def _flags(table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """Our `;`-joined flags as a list per row (empty for none)."""
    if "flags" not in table.column_names:
        return pa.array([[]] * table.num_rows, FLAGS)
    joined = pc.fill_null(table["flags"], "")
    split = pc.split_pattern(joined, LIST_SEPARATOR)
    # "" splits to [""]: no flags.
    return pa.array([[f for f in row if f] for row in split.to_pylist()], FLAGS)


def _date(utc_ms: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.cast(pc.multiply(utc_ms, 1000), pa.int64()).cast(TIMESTAMP)


def _nulls(count: int, kind: pa.DataType) -> pa.Array:
    return pa.nulls(count, kind)


def _laps(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    laps = t["laps"]
    segments = pa.list_(pa.int64())
    return {
        "date_start": laps["date_start"],
        "driver_number": laps["driver"],
        "duration_sector_1": _seconds(laps["sector1_ms"]),
        "duration_sector_2": _seconds(laps["sector2_ms"]),
        "duration_sector_3": _seconds(laps["sector3_ms"]),
        "i1_speed": laps["speed_i1_kmh"],
        "i2_speed": laps["speed_i2_kmh"],
        "is_pit_out_lap": laps["pit_out"],
        "lap_duration": _seconds(laps["lap_time_ms"]),
        "lap_number": laps["lap"],
        "segments_sector_1": _nulls(laps.num_rows, segments),
        "segments_sector_2": _nulls(laps.num_rows, segments),
        "segments_sector_3": _nulls(laps.num_rows, segments),
        "st_speed": laps["speed_st_kmh"],
        "qa_flags": _flags(laps),
    }


def _stints(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    stints = t["stints"]
    return {
        "compound": stints["compound"],
        "driver_number": stints["driver"],
        "lap_end": stints["lap_end"],
        "lap_start": stints["lap_start"],
        "stint_number": stints["stint"],
        "tyre_age_at_start": stints["tyre_age_at_start"],
        "qa_flags": _flags(stints),
    }


def _intervals(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    intervals = t["intervals"]
    return {
        "date": intervals["date"],
        "driver_number": intervals["driver"],
        "gap_to_leader": intervals["gap_to_leader"],
        "interval": intervals["interval"],
        # Where OpenF1 writes "+1 LAP" in place of the seconds we keep the seconds
        # column numeric (null) and say how many laps in our own column.
        "gap_to_leader_laps": intervals["gap_to_leader_laps"],
        "interval_laps": intervals["interval_laps"],
    }


def _pit(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    pits = t["pits"]
    return {
        "date": pits["utc"],
        "driver_number": pits["driver"],
        "lap_number": pits["in_lap"],
        "pit_duration": _seconds(pits["pit_lane_ms"]),
        "qa_flags": _flags(pits),
    }


def _position(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    positions = t["positions"]
    return {
        "date": positions["utc"],
        "driver_number": positions["driver"],
        "position": positions["position"],
        "qa_flags": _flags(positions),
    }


def _drivers(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    drivers = t["drivers"]
    names = (
        "broadcast_name",
        "country_code",
        "first_name",
        "full_name",
        "headshot_url",
        "last_name",
        "name_acronym",
        "team_colour",
        "team_name",
    )
    return {"driver_number": drivers["driver"], **{n: drivers[n] for n in names}}


_PLACE = (
    "circuit_key",
    "circuit_short_name",
    "country_code",
    "country_key",
    "country_name",
    "gmt_offset",
    "location",
    "year",
)


def _sessions(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    described = t["sessions"]
    names = ("date_end", "date_start", "session_name", "session_type")
    return {**{n: described[n] for n in _PLACE + names}}


def _meetings(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    described = t["sessions"]
    rows = described.num_rows
    return {
        **{n: described[n] for n in _PLACE},
        "date_start": described["date_start"],
        "meeting_code": _nulls(rows, pa.string()),
        "meeting_name": described["meeting_name"],
        "meeting_official_name": _nulls(rows, pa.string()),
    }


def _one_per_meeting(table: pa.Table) -> pa.Table:
    """A meeting's row from its earliest session (a meeting starts with its first)."""
    ordered = table.sort_by([("meeting_key", "ascending"), ("date_start", "ascending")])
    keys = ordered["meeting_key"].to_pylist()
    first = [i for i, key in enumerate(keys) if i == 0 or key != keys[i - 1] or key is None]
    return ordered.take(pa.array(first, pa.int64()))


def _car_data(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    samples = t["telemetry"]
    return {
        "brake": samples["brake"],
        "date": _date(samples["utc_ms"]),
        "driver_number": samples["driver"],
        "drs": samples["drs"],
        "n_gear": samples["gear"],
        "rpm": samples["rpm"],
        "speed": samples["speed"],
        "throttle": samples["throttle"],
    }


def _location(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    samples = t["car-positions"]
    return {
        "date": _date(samples["utc_ms"]),
        "driver_number": samples["driver"],
        "x": samples["x"],
        "y": samples["y"],
        "z": samples["z"],
    }


def _weather(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    weather = t["weather"]
    return {
        "air_temperature": weather["air_temp_c"],
        "date": weather["utc"],
        "humidity": weather["humidity_pct"],
        "pressure": weather["pressure_mbar"],
        "rainfall": pc.cast(weather["rainfall"], pa.int64()),  # OpenF1's 0 / 1
        "track_temperature": weather["track_temp_c"],
        "wind_direction": weather["wind_direction_deg"],
        "wind_speed": weather["wind_speed_mps"],
        "qa_flags": _flags(weather),
    }


def _race_control(t: Mapping[str, pa.Table]) -> dict[str, pa.Array | pa.ChunkedArray]:
    messages = t["race-control"]
    return {
        "category": messages["category"],
        "date": messages["utc"],
        "driver_number": messages["driver"],
        "flag": messages["flag"],
        "lap_number": messages["lap"],
        "message": messages["message"],
        "scope": messages["scope"],
        "sector": messages["sector"],
    }


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("meetings", ("sessions",), _meetings, _one_per_meeting, ("meeting_key",)),
        Endpoint("sessions", ("sessions",), _sessions),
        Endpoint("drivers", ("drivers",), _drivers),
        Endpoint("laps", ("laps",), _laps),
        Endpoint("stints", ("stints",), _stints),
        Endpoint("pit", ("pits",), _pit),
        Endpoint("position", ("positions",), _position),
        Endpoint("intervals", ("intervals",), _intervals),
        Endpoint("car_data", ("telemetry",), _car_data),
        Endpoint("location", ("car-positions",), _location),
        Endpoint("weather", ("weather",), _weather),
        Endpoint("race_control", ("race-control",), _race_control),
    )
}

# OpenF1 endpoints we do not serve, and why (a 404 says so).
NOT_SERVED = {
    "team_radio": "the feed we record carries no team radio",
    "session_result": "final classifications come from Jolpica, not yet served",
    "starting_grid": "starting grids come from Jolpica, not yet served",
    "overtakes": "overtakes are not derived",
    "championship_drivers": "championship standings are not derived",
    "championship_teams": "championship standings are not derived",
}


def openf1_table(
    endpoint: Endpoint,
    tables: Mapping[str, pa.Table],
    session_key: int | None,
    meeting_key: int | None,
) -> pa.Table:
    """One session's rows of an endpoint, with its keys on every row."""
    columns = endpoint.build(tables)
    rows = tables[endpoint.kinds[0]].num_rows
    keys = {"session_key": session_key, "meeting_key": meeting_key}
    for name in endpoint.keys:
        columns[name] = pa.array([keys[name]] * rows, pa.int64())
    return pa.table(columns)
