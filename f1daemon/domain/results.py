"""Official results as derived events: Jolpica's (the Ergast successor's) pages, row by row.

A Jolpica page logged as a fact (source `jolpica`, topic `jolpica.<kind>`) derives one
event per row: a race or sprint classification line, a qualifying line, a lap timing,
a pit stop. Each names its race as Jolpica does (`season`, `round`) and its driver by
Ergast `driver_id` and, where Jolpica gives it, the racing number (`driver`, as every
feed-derived event has it). The feed's keys — F1's numeric `session_key`, the driver's
code and team from `DriverList` — are added by the exports, from the same log session's
`SessionDescribed` and `DriverListed`, exactly as for the feed's own tables.

Names follow OpenF1 and the feed-derived events where they overlap (`driver`, `lap`,
`lap_time_ms`, `pit_lane_ms`, `number_of_laps`); times are milliseconds.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from f1daemon.domain.base import Event


class JolpicaRow(Event):
    """What every row of a Jolpica page says about where it belongs."""

    season: int = Field(description="Season (year), as Jolpica numbers it.")
    round: int = Field(description="Round of the season, as Jolpica numbers it.")
    race_name: str | None = Field(description="E.g. Azerbaijan Grand Prix.")
    circuit_id: str | None = Field(description="Ergast circuitId, e.g. `baku`.")
    race_start_utc: datetime | None = Field(
        description="The race's scheduled start (Jolpica's date and time), UTC."
    )
    driver: int | None = Field(
        description="Racing number (Jolpica's `number`; lap and pit-stop pages lack it, "
        "and the exports take it from the same race's result)."
    )
    driver_id: str = Field(description="Ergast driverId, e.g. `max_verstappen`.")


class ResultPublished(JolpicaRow):
    """One line of a race's or a sprint's official classification."""

    session_name: str = Field(description="`Race` or `Sprint`, as SessionInfo names the session.")
    name_acronym: str | None = Field(description="Jolpica's three-letter code, e.g. HAM.")
    constructor_id: str = Field(description="Ergast constructorId, e.g. `red_bull`.")
    constructor_name: str | None = Field(description="Constructor, e.g. Red Bull.")
    position: int = Field(description="Position in the classification (every line has one).")
    position_text: str = Field(
        description="`1`…, or R retired, D disqualified, E excluded, W withdrawn, F failed "
        "to qualify, N not classified."
    )
    classified: bool = Field(description="Classified (position_text is a number).")
    grid_position: int | None = Field(description="Grid position; null for a pit-lane start.")
    number_of_laps: int = Field(description="Laps completed.")
    status: str = Field(description="`Finished`, `+1 Lap`, `Collision`, …")
    race_time_ms: int | None = Field(
        description="Total race time (ms), for finishers on the lead lap (Jolpica's millis)."
    )
    time_text: str | None = Field(
        description="Race time (winner) or gap to the winner, as Jolpica shows it."
    )
    points: float = Field(description="Championship points scored.")
    fastest_lap: int | None = Field(description="Lap of the driver's fastest lap.")
    fastest_lap_time_ms: int | None = Field(description="The driver's fastest lap time (ms).")
    fastest_lap_rank: int | None = Field(description="Rank of that lap among all drivers'.")


class QualifyingPublished(JolpicaRow):
    """One line of a qualifying result: each part's best time."""

    name_acronym: str | None = Field(description="Jolpica's three-letter code, e.g. LEC.")
    constructor_id: str = Field(description="Ergast constructorId.")
    constructor_name: str | None = Field(description="Constructor, e.g. Ferrari.")
    position: int = Field(description="Qualifying position.")
    q1_ms: int | None = Field(description="Best Q1 time (ms); null if none set.")
    q2_ms: int | None = Field(description="Best Q2 time (ms); null if none set.")
    q3_ms: int | None = Field(description="Best Q3 time (ms); null if none set.")


class ReferenceLapPublished(JolpicaRow):
    """A driver's race lap as Jolpica times it: running position at the line, lap time."""

    lap: int = Field(description="Lap number (lap 1 is the first lap from the start).")
    position: int = Field(description="Running position at the end of the lap.")
    lap_time_ms: int | None = Field(description="Lap time (ms); null if the text is no time.")


class ReferencePitStopPublished(JolpicaRow):
    """A race pit stop as Jolpica records it."""

    stop: int = Field(description="The driver's pit stop number in the race.")
    lap: int = Field(description="Lap on which the car stopped.")
    local_time: str = Field(description="Local time of day of the stop, e.g. `14:14:23`.")
    pit_lane_ms: int | None = Field(
        description="Pit-lane time (ms), entry to exit, as Jolpica's duration."
    )


ResultEvent = (
    ResultPublished | QualifyingPublished | ReferenceLapPublished | ReferencePitStopPublished
)

RESULT_TYPES: tuple[type[Event], ...] = (
    ResultPublished,
    QualifyingPublished,
    ReferenceLapPublished,
    ReferencePitStopPublished,
)
