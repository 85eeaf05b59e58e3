"""Weather forecasts as the decoders read them: the providers' responses into rows.

A forecast fact (topic `WeatherForecast`, source `open-meteo` or `openweathermap`,
stream `<source>/<circuit>`, payload the body exactly as received) holds one
provider's answer; `parse_open_meteo` / `parse_openweathermap` turn it into
`WeatherForecast` rows, one per forecast time. They are pure functions of the payload
and the time it was received, so a replay derives the same rows. (Fetching is
`f1daemon.sources.forecast`'s.)

Open-Meteo is asked for hourly values in SI units, but the parser honours whatever
`hourly_units` the response declares. OpenWeatherMap's 5 day / 3 hour forecast is in
metric units; its rain/snow volumes cover the 3 hours up to each forecast time. Neither
API says when its forecast was issued, so `issued_at` is None and `fetched_at` is when
the response arrived.

Circuit coordinates: the MultiViewer circuit data has track geometry (x/y in the track's
own frame) but no latitude/longitude, so `CIRCUITS` is a table of the calendar's
circuits, keyed by Ergast/Jolpica `circuitId` (coordinates as Jolpica publishes them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from f1daemon.domain.events import WeatherForecast

TOPIC = "WeatherForecast"
OPEN_METEO: Final = "open-meteo"
OPENWEATHERMAP: Final = "openweathermap"
OPEN_METEO_HOURLY = (
    "temperature_2m",
    "relative_humidity_2m",
    "precipitation_probability",
    "precipitation",
    "wind_speed_10m",
    "wind_direction_10m",
    "surface_pressure",
)

Provider = Literal["open-meteo", "openweathermap"]


# --- circuits ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Circuit:
    """Where a circuit is: `circuit_id` is Ergast/Jolpica's `circuitId`."""

    circuit_id: str
    name: str
    locality: str
    country: str
    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        if not (-90 <= self.latitude <= 90 and -180 <= self.longitude <= 180):
            raise ValueError(
                f"{self.circuit_id}: bad coordinates {self.latitude}, {self.longitude}"
            )


CIRCUITS: dict[str, Circuit] = {
    c.circuit_id: c
    for c in (
        Circuit("albert_park", "Albert Park", "Melbourne", "Australia", -37.8497, 144.968),
        Circuit("shanghai", "Shanghai International Circuit", "Shanghai", "China", 31.3389, 121.22),
        Circuit("suzuka", "Suzuka Circuit", "Suzuka", "Japan", 34.8431, 136.541),
        Circuit("bahrain", "Bahrain International Circuit", "Sakhir", "Bahrain", 26.0325, 50.5106),
        Circuit("jeddah", "Jeddah Corniche Circuit", "Jeddah", "Saudi Arabia", 21.6319, 39.1044),
        Circuit("miami", "Miami International Autodrome", "Miami", "USA", 25.9581, -80.2389),
        Circuit("imola", "Imola", "Imola", "Italy", 44.3439, 11.7167),
        Circuit("monaco", "Circuit de Monaco", "Monte Carlo", "Monaco", 43.7347, 7.42056),
        Circuit("villeneuve", "Circuit Gilles Villeneuve", "Montreal", "Canada", 45.5, -73.5228),
        Circuit(
            "catalunya", "Circuit de Barcelona-Catalunya", "Barcelona", "Spain", 41.57, 2.26111
        ),
        Circuit("red_bull_ring", "Red Bull Ring", "Spielberg", "Austria", 47.2197, 14.7647),
        Circuit("silverstone", "Silverstone Circuit", "Silverstone", "UK", 52.0786, -1.01694),
        Circuit("hungaroring", "Hungaroring", "Budapest", "Hungary", 47.5789, 19.2486),
        Circuit("spa", "Circuit de Spa-Francorchamps", "Spa", "Belgium", 50.4372, 5.97139),
        Circuit(
            "zandvoort", "Circuit Park Zandvoort", "Zandvoort", "Netherlands", 52.3888, 4.54092
        ),
        Circuit("monza", "Autodromo Nazionale di Monza", "Monza", "Italy", 45.6156, 9.28111),
        Circuit("madring", "Madring", "Madrid", "Spain", 40.4637, -3.6163),
        Circuit("baku", "Baku City Circuit", "Baku", "Azerbaijan", 40.3725, 49.8533),
        Circuit(
            "marina_bay", "Marina Bay Street Circuit", "Marina Bay", "Singapore", 1.2914, 103.864
        ),
        Circuit("americas", "Circuit of the Americas", "Austin", "USA", 30.1328, -97.6411),
        Circuit(
            "rodriguez", "Autódromo Hermanos Rodríguez", "Mexico City", "Mexico", 19.4042, -99.0907
        ),
        Circuit(
            "interlagos", "Autódromo José Carlos Pace", "São Paulo", "Brazil", -23.7036, -46.6997
        ),
        Circuit("vegas", "Las Vegas Strip Circuit", "Las Vegas", "USA", 36.1147, -115.173),
        Circuit("losail", "Lusail International Circuit", "Lusail", "Qatar", 25.49, 51.4542),
        Circuit("yas_marina", "Yas Marina Circuit", "Abu Dhabi", "UAE", 24.4672, 54.6031),
    )
}


def circuit(circuit_id: str) -> Circuit:
    """A circuit of the table by its Ergast `circuitId`; `KeyError` naming the known ones."""
    try:
        return CIRCUITS[circuit_id]
    except KeyError:
        known = ", ".join(sorted(CIRCUITS))
        raise KeyError(f"unknown circuit {circuit_id!r}; known: {known}") from None


# --- the parsed rows ---------------------------------------------------------------


class ForecastParseError(ValueError):
    """A body that is not a forecast of the provider it came from."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _loads(payload: str | bytes, provider: str) -> object:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ForecastParseError(f"{provider}: not JSON: {exc}") from None


def _invalid(provider: str, exc: ValidationError) -> ForecastParseError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the body"
    return ForecastParseError(
        f"{provider}: not a forecast: {where}: {first['msg']} ({exc.error_count()} problem(s))"
    )


def utc(value: datetime) -> datetime:
    """A time of receipt in UTC (a naive one is refused: its zone is unknown)."""
    if value.tzinfo is None:
        raise ForecastParseError("fetched_at must be timezone-aware")
    return value.astimezone(UTC)


# --- Open-Meteo --------------------------------------------------------------------


class _OMHourly(_Shape):
    time: list[str | int]
    temperature_2m: list[float | None] | None = None
    relative_humidity_2m: list[float | None] | None = None
    precipitation_probability: list[float | None] | None = None
    precipitation: list[float | None] | None = None
    wind_speed_10m: list[float | None] | None = None
    wind_direction_10m: list[float | None] | None = None
    surface_pressure: list[float | None] | None = None


class _OMBody(_Shape):
    latitude: float
    longitude: float
    utc_offset_seconds: int = 0
    hourly_units: dict[str, str] = {}
    hourly: _OMHourly


_TO_CELSIUS: dict[str, Callable[[float], float]] = {
    "°C": lambda v: v,
    "°F": lambda v: (v - 32) * 5 / 9,
}
_TO_MS: dict[str, Callable[[float], float]] = {
    "m/s": lambda v: v,
    "km/h": lambda v: v / 3.6,
    "mph": lambda v: v * 0.44704,
    "kn": lambda v: v * 0.514444,
}
_TO_MM: dict[str, Callable[[float], float]] = {
    "mm": lambda v: v,
    "inch": lambda v: v * 25.4,
}
_SAME: dict[str, Callable[[float], float]] = {"%": lambda v: v, "°": lambda v: v}
_HPA: dict[str, Callable[[float], float]] = {"hPa": lambda v: v}


def _open_meteo_time(value: str | int, offset_s: int) -> datetime:
    try:
        if isinstance(value, int):
            return datetime.fromtimestamp(value, UTC)
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
        return (parsed - timedelta(seconds=offset_s)).replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise ForecastParseError(f"{OPEN_METEO}: bad time {value!r}: {exc}") from None


def parse_open_meteo(
    payload: str | bytes,
    *,
    fetched_at: datetime,
    session: str = "",
    circuit: str | None = None,
) -> list[WeatherForecast]:
    """An Open-Meteo `/v1/forecast` response's hourly values as `WeatherForecast` rows."""
    data = _loads(payload, OPEN_METEO)
    try:
        body = _OMBody.model_validate(data)
    except ValidationError as exc:
        raise _invalid(OPEN_METEO, exc) from None
    hourly = body.hourly
    n = len(hourly.time)

    def column(name: str, units: dict[str, Callable[[float], float]]) -> list[float | None]:
        values: list[float | None] | None = getattr(hourly, name)
        if values is None:
            return [None] * n
        if len(values) != n:
            raise ForecastParseError(
                f"{OPEN_METEO}: hourly.{name} has {len(values)} values for {n} times"
            )
        unit = body.hourly_units.get(name)
        if unit is None:
            raise ForecastParseError(f"{OPEN_METEO}: no unit for hourly.{name}")
        convert = units.get(unit)
        if convert is None:
            raise ForecastParseError(f"{OPEN_METEO}: unknown unit {unit!r} for hourly.{name}")
        return [None if v is None else convert(v) for v in values]

    temp = column("temperature_2m", _TO_CELSIUS)
    humidity = column("relative_humidity_2m", _SAME)
    pop = column("precipitation_probability", _SAME)
    rain = column("precipitation", _TO_MM)
    wind = column("wind_speed_10m", _TO_MS)
    direction = column("wind_direction_10m", _SAME)
    pressure = column("surface_pressure", _HPA)
    fetched = utc(fetched_at)
    try:
        return [
            WeatherForecast(
                session=session,
                provider=OPEN_METEO,
                circuit=circuit,
                latitude=body.latitude,
                longitude=body.longitude,
                issued_at=None,
                fetched_at=fetched,
                valid_at=_open_meteo_time(t, body.utc_offset_seconds),
                period_h=1.0,
                air_temp_c=temp[i],
                humidity_pct=humidity[i],
                rain_probability_pct=pop[i],
                rain_mm=rain[i],
                wind_speed_mps=wind[i],
                wind_direction_deg=direction[i],
                pressure_hpa=pressure[i],
            )
            for i, t in enumerate(hourly.time)
        ]
    except ValidationError as exc:
        raise _invalid(OPEN_METEO, exc) from None


# --- OpenWeatherMap ----------------------------------------------------------------


class _OWMMain(_Shape):
    temp: float | None = None
    humidity: float | None = None
    pressure: float | None = None
    grnd_level: float | None = None


class _OWMWind(_Shape):
    speed: float | None = None
    deg: float | None = None


class _OWMEntry(_Shape):
    dt: int
    main: _OWMMain
    wind: _OWMWind | None = None
    pop: float | None = None
    rain: dict[str, float] | None = None
    snow: dict[str, float] | None = None


class _OWMCoord(_Shape):
    lat: float
    lon: float


class _OWMCity(_Shape):
    coord: _OWMCoord


class _OWMBody(_Shape):
    cod: str | int
    message: str | int | float | None = None
    list: list[_OWMEntry]
    city: _OWMCity


def parse_openweathermap(
    payload: str | bytes,
    *,
    fetched_at: datetime,
    session: str = "",
    circuit: str | None = None,
) -> list[WeatherForecast]:
    """An OpenWeatherMap 5 day / 3 hour forecast (metric units) as `WeatherForecast` rows."""
    data = _loads(payload, OPENWEATHERMAP)
    if isinstance(data, dict) and str(data.get("cod", "200")) != "200":
        raise ForecastParseError(
            f"{OPENWEATHERMAP}: error {data.get('cod')!r}: {data.get('message')!r}"
        )
    try:
        body = _OWMBody.model_validate(data)
    except ValidationError as exc:
        raise _invalid(OPENWEATHERMAP, exc) from None
    fetched = utc(fetched_at)
    rows = []
    try:
        for entry in body.list:
            try:
                valid_at = datetime.fromtimestamp(entry.dt, UTC)
            except (ValueError, OverflowError, OSError) as exc:
                raise ForecastParseError(f"{OPENWEATHERMAP}: bad dt {entry.dt}: {exc}") from None
            wind = entry.wind or _OWMWind()
            volumes = [v.get("3h") for v in (entry.rain, entry.snow) if v is not None]
            rain_mm = sum(v for v in volumes if v is not None)
            main = entry.main
            rows.append(
                WeatherForecast(
                    session=session,
                    provider=OPENWEATHERMAP,
                    circuit=circuit,
                    latitude=body.city.coord.lat,
                    longitude=body.city.coord.lon,
                    issued_at=None,
                    fetched_at=fetched,
                    valid_at=valid_at,
                    period_h=3.0,
                    air_temp_c=main.temp,
                    humidity_pct=main.humidity,
                    rain_probability_pct=None if entry.pop is None else entry.pop * 100,
                    # OWM leaves `rain`/`snow` out when none is forecast.
                    rain_mm=rain_mm,
                    wind_speed_mps=wind.speed,
                    wind_direction_deg=wind.deg,
                    pressure_hpa=main.grnd_level if main.grnd_level is not None else main.pressure,
                )
            )
    except ValidationError as exc:
        raise _invalid(OPENWEATHERMAP, exc) from None
    if any(not math.isfinite(r.rain_mm or 0.0) for r in rows):
        raise ForecastParseError(f"{OPENWEATHERMAP}: precipitation is not a finite number")
    return rows
