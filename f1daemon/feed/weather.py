"""Weather observations from the circuit's station (`WeatherData`).

Values arrive as strings (`"AirTemp": "20.5"`); a message may carry only what
changed, so each observation is read from the merged state.
"""

from __future__ import annotations

from datetime import datetime

from f1daemon.domain.events import WeatherObserved
from f1daemon.feed.state import JSON


def observation(
    session: str, state: JSON, now: int, utc: datetime | None
) -> WeatherObserved | None:
    """The observation the merged WeatherData state holds, or None if it holds none."""
    if not isinstance(state, dict) or not any(k in state for k in ("AirTemp", "TrackTemp")):
        return None
    rain = _number(state.get("Rainfall"))
    direction = _number(state.get("WindDirection"))
    return WeatherObserved(
        session=session,
        session_time_ms=now,
        utc=utc,
        air_temp_c=_number(state.get("AirTemp")),
        track_temp_c=_number(state.get("TrackTemp")),
        humidity_pct=_number(state.get("Humidity")),
        pressure_mbar=_number(state.get("Pressure")),
        rainfall=None if rain is None else rain > 0,
        wind_direction_deg=None if direction is None else round(direction),
        wind_speed_mps=_number(state.get("WindSpeed")),
    )


def _number(value: JSON) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
