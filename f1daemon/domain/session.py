"""Derived events of the session as a whole: its time base, state, track status,
neutralisations, race control, weather, and who and what it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from f1daemon.domain.base import Event, Timed


class TimeBaseEstablished(Event):
    """How stream offsets map to UTC for a session (derived from stamped messages)."""

    t0_utc: datetime | None = Field(description="UTC of offset 0; null without any stamp.")
    session_start_ms: int | None = Field(
        description="Offset (ms) at which the session started (SessionStatus Started)."
    )
    samples: int = Field(description="Number of messages that carried both offset and UTC.")


class SessionStateChanged(Timed):
    """The session moved between PRE_SESSION, ACTIVE, POST_SESSION and COMPLETED."""

    state: str = Field(description="PRE_SESSION, ACTIVE, POST_SESSION or COMPLETED.")
    feed_status: str = Field(
        description="The feed's SessionStatus, e.g. Started, Aborted, Finished."
    )


class TrackStatusChanged(Timed):
    """The track status changed (TrackStatus)."""

    status: str = Field(
        description="Code: 1 AllClear, 2 Yellow, 4 SCDeployed, 5 Red, 6 VSCDeployed, 7 VSCEnding."
    )
    message: str = Field(description="The feed's name for it, e.g. `SCDeployed`.")


class NeutralisationPeriod(Timed):
    """A safety car, virtual safety car or red flag: `session_time_ms` / `utc` are its start."""

    kind: str = Field(description="`SC`, `VSC` or `RED`.")
    end_time_ms: int | None = Field(
        description="Offset (ms) at which it ended; null if open at the end."
    )
    end_utc: datetime | None = Field(description="UTC of its end.")
    first_lap: int | None = Field(description="Leader's lap in progress when it started.")
    last_lap: int | None = Field(description="Leader's lap in progress when it ended.")


class NeutralisationDetected(Timed):
    """A neutralisation detected live from one kind of evidence, as soon as it sufficed.

    `session_time_ms` / `utc` are the fact that made the evidence sufficient. Each
    source numbers its own periods from 1; the same period seen by several sources is
    told once by each (see `f1daemon.feed.neutralisation` for the rules). The end is a
    `NeutralisationCleared` of the same source and period (none if the stream ended
    first). `NeutralisationPeriod` (from the track status, at its end) is unchanged.
    """

    source: str = Field(description="Kind of evidence: `track_status`, `race_control` or `timing`.")
    period: int = Field(ge=1, description="The source's period number in the session (from 1).")
    kind: str = Field(
        description="`SC`, `VSC`, `RED`, or `UNKNOWN` (timing: a slowdown of either safety car)."
    )
    evidence: str = Field(
        description="The evidence in words, e.g. `race control: SAFETY CAR DEPLOYED` or "
        "`14 of 18 running cars at least 25 % slower than their green pace …`."
    )
    cars: tuple[int, ...] = Field(
        default=(), description="Timing: the cars whose data made the evidence (racing numbers)."
    )
    cars_compared: int | None = Field(
        default=None, description="Timing: the running cars the evidence was judged among."
    )
    ratio: float | None = Field(
        default=None,
        description="Timing slowdown: median of the slow cars' sector time / green pace.",
    )


class NeutralisationCleared(Timed):
    """The end of a `NeutralisationDetected` period, by the same kind of evidence.

    `session_time_ms` / `utc` are the fact that said it was over (for timing, the
    moment the field was back at pace, so some seconds after the restart).
    """

    source: str = Field(description="Kind of evidence: `track_status`, `race_control` or `timing`.")
    period: int = Field(ge=1, description="The period's number, as its NeutralisationDetected.")
    kind: str = Field(description="The period's kind, as detected.")
    started_time_ms: int = Field(description="Offset (ms) of its NeutralisationDetected.")
    evidence: str = Field(description="What said it was over, in words.")


class RaceControlMessage(Timed):
    """A race-control message; `utc` is the message's own stamp when it has one."""

    category: str = Field(description="E.g. Flag, SafetyCar, Drs, CarEvent, Other.")
    message: str = Field(description="The text.")
    flag: str | None = Field(default=None, description="Flag shown, e.g. YELLOW, RED, CLEAR.")
    scope: str | None = Field(default=None, description="Track, Sector or Driver.")
    sector: int | None = Field(default=None, description="Sector the flag applies to.")
    driver: int | None = Field(default=None, description="Racing number concerned.")
    lap: int | None = Field(default=None, description="Lap race control stamped it with.")
    status: str | None = Field(default=None, description="E.g. DRS ENABLED / DISABLED.")


def _wind_speed_in_mps(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 named the wind speed `wind_speed_ms`, as if in milliseconds."""
    renamed = {k: v for k, v in data.items() if k != "wind_speed_ms"}
    renamed["wind_speed_mps"] = data.get("wind_speed_ms")
    return renamed


class WeatherObserved(Timed):
    """A weather observation from the circuit's station (WeatherData).

    Version 2 renamed `wind_speed_ms` to `wind_speed_mps` (`_ms` is milliseconds only).
    """

    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        """Version 1 named the wind speed `wind_speed_ms`, as if in milliseconds."""
        return _wind_speed_in_mps(data)

    air_temp_c: float | None = Field(description="Air temperature (°C).")
    track_temp_c: float | None = Field(description="Track temperature (°C).")
    humidity_pct: float | None = Field(description="Relative humidity (%).")
    pressure_mbar: float | None = Field(description="Air pressure (mbar).")
    rainfall: bool | None = Field(description="Whether it is raining.")
    wind_direction_deg: int | None = Field(description="Wind direction (degrees).")
    wind_speed_mps: float | None = Field(description="Wind speed (m/s).")
    flags: tuple[str, ...] = Field(
        default=(), description="QA findings that flag it, e.g. `qa:consistency.track_below_air`."
    )


class WeatherForecast(Event):
    """The weather one provider forecasts for one time at a circuit.

    Version 2 renamed `wind_speed_ms` to `wind_speed_mps`.
    """

    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        """Version 1 named the wind speed `wind_speed_ms`, as if in milliseconds."""
        return _wind_speed_in_mps(data)

    provider: str = Field(description="`open-meteo` or `openweathermap`.")
    circuit: str | None = Field(description="Ergast circuitId, when fetched for a circuit.")
    latitude: float = Field(description="Latitude the provider answered for.")
    longitude: float = Field(description="Longitude the provider answered for.")
    issued_at: datetime | None = Field(
        description="When the provider issued the forecast (neither API says: null)."
    )
    fetched_at: datetime = Field(description="UTC time the response was received.")
    valid_at: datetime = Field(description="UTC time the values are forecast for.")
    period_h: float = Field(
        description="Hours before `valid_at` that `rain_mm` accumulates over (1 or 3)."
    )
    air_temp_c: float | None = Field(description="Air temperature at 2 m (°C).")
    humidity_pct: float | None = Field(description="Relative humidity at 2 m (%).")
    rain_probability_pct: float | None = Field(description="Probability of precipitation (%).")
    rain_mm: float | None = Field(description="Precipitation (rain, showers, snow) in the period.")
    wind_speed_mps: float | None = Field(description="Wind speed at 10 m (m/s).")
    wind_direction_deg: float | None = Field(description="Wind direction at 10 m (° from).")
    pressure_hpa: float | None = Field(description="Surface (ground-level) air pressure (hPa).")


class DriverListed(Timed):
    """Who a racing number is in the session, as `DriverList` tells it (again when the
    feed changes it). Names as OpenF1's `drivers`."""

    driver: int = Field(description="Racing number.")
    name_acronym: str | None = Field(default=None, description="Three-letter code, e.g. VER.")
    first_name: str | None = Field(default=None, description="First name.")
    last_name: str | None = Field(default=None, description="Last name.")
    full_name: str | None = Field(default=None, description="Full name as the feed writes it.")
    broadcast_name: str | None = Field(default=None, description="Name on the TV graphics.")
    team_name: str | None = Field(default=None, description="Team.")
    team_colour: str | None = Field(default=None, description="Team colour, hex RRGGBB.")
    country_code: str | None = Field(default=None, description="Driver's country, if given.")
    headshot_url: str | None = Field(default=None, description="Photo URL, if given.")


class SessionDescribed(Timed):
    """The session as `SessionInfo` describes it, with F1's own numeric keys. Names as
    OpenF1's `sessions`; dates in UTC (the feed gives local time and its offset)."""

    session_key: int | None = Field(default=None, description="F1's numeric session key.")
    meeting_key: int | None = Field(default=None, description="F1's numeric meeting key.")
    meeting_name: str | None = Field(default=None, description="E.g. Mexico City Grand Prix.")
    session_name: str | None = Field(default=None, description="E.g. Qualifying, Practice 2.")
    session_type: str | None = Field(default=None, description="Race, Qualifying, Practice…")
    circuit_key: int | None = Field(default=None, description="F1's numeric circuit key.")
    circuit_short_name: str | None = Field(default=None, description="Circuit, e.g. Monza.")
    country_key: int | None = Field(default=None, description="F1's numeric country key.")
    country_code: str | None = Field(default=None, description="Country code, e.g. MEX.")
    country_name: str | None = Field(default=None, description="Country name.")
    location: str | None = Field(default=None, description="City or area.")
    date_start: datetime | None = Field(default=None, description="Scheduled start, UTC.")
    date_end: datetime | None = Field(default=None, description="Scheduled end, UTC.")
    gmt_offset: str | None = Field(default=None, description="Local time's offset, ±HH:MM:SS.")
    year: int | None = Field(default=None, description="Season.")
