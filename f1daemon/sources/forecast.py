"""Weather forecasts for a circuit: Open-Meteo (no key) and OpenWeatherMap (with a key).

Each request's response is a fact — a `MessageReceived` (source `open-meteo` or
`openweathermap`, topic `WeatherForecast`, stream `<source>/<circuit>`, payload the body
exactly as received) — and `f1daemon.feed.forecast` turns a payload into
`WeatherForecast` rows, one per forecast time (the decoders do the same on replay).

Open-Meteo is asked for hourly values in SI units (`wind_speed_unit=ms`, UTC times);
the parser still honours whatever `hourly_units` the response declares. OpenWeatherMap's
5 day / 3 hour forecast is asked for in metric units; its rain/snow volumes cover the
3 hours up to each forecast time. Neither API says when its forecast was issued, so
`issued_at` is None and `fetched_at` is when the response arrived.

OpenWeatherMap is used only when an API key is configured (`forecast_providers`). The key
is held as a `SecretStr`: it is not in any repr, and every URL logged or raised is
redacted (see `http_fetch`).

Circuit coordinates: the MultiViewer circuit data has track geometry (x/y in the track's
own frame) but no latitude/longitude, so `CIRCUITS` is a table of the calendar's
circuits, keyed by Ergast/Jolpica `circuitId` (coordinates as Jolpica publishes them).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx
from pydantic import SecretStr

from f1daemon.domain.events import MessageReceived, RecordQuarantined, WeatherForecast
from f1daemon.feed.forecast import (
    CIRCUITS,
    OPEN_METEO,
    OPEN_METEO_HOURLY,
    OPENWEATHERMAP,
    TOPIC,
    Circuit,
    ForecastParseError,
    Provider,
    circuit,
    parse_open_meteo,
    parse_openweathermap,
    utc,
)
from f1daemon.sources.http_fetch import (
    FetchError,
    RateLimit,
    RateLimiter,
    RetryPolicy,
    fetch,
)

OPEN_METEO_URL = "https://api.open-meteo.com/v1/forecast"
OPENWEATHERMAP_URL = "https://api.openweathermap.org/data/2.5/forecast"
# What the fetching below shares with the decoder (callers may import it from here).
__all__ = [
    "CIRCUITS",
    "OPENWEATHERMAP",
    "OPENWEATHERMAP_URL",
    "OPEN_METEO",
    "OPEN_METEO_HOURLY",
    "OPEN_METEO_URL",
    "TOPIC",
    "Circuit",
    "ForecastError",
    "ForecastFetch",
    "ForecastParseError",
    "ForecastProvider",
    "OpenMeteo",
    "OpenWeatherMap",
    "Provider",
    "circuit",
    "forecast_providers",
    "parse_open_meteo",
    "parse_openweathermap",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- fetching ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForecastFetch:
    """One response: the fact and the rows parsed from it."""

    provider: Provider
    circuit: Circuit
    fact: MessageReceived
    rows: list[WeatherForecast]


class ForecastError(Exception):
    """A forecast could not be fetched; `quarantined` keeps the last body received, if any."""

    def __init__(
        self,
        provider: Provider,
        circuit: Circuit,
        reason: str,
        quarantined: RecordQuarantined | None,
    ) -> None:
        self.provider = provider
        self.circuit = circuit
        self.reason = reason
        self.quarantined = quarantined
        super().__init__(f"{provider} forecast for {circuit.circuit_id}: {reason}")


class ForecastProvider(Protocol):
    """What the weather source actor calls, whichever the provider."""

    @property
    def provider(self) -> Provider: ...

    async def fetch(self, circuit: Circuit) -> ForecastFetch: ...


class _Client(ABC):
    """What both providers share: fetching, facts, sequences, quarantine. A provider
    says how to ask (`_params`), how often (`_limiter`) and how to read (`_parse`)."""

    provider: Provider

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        session: str,
        policy: RetryPolicy | None,
        rng: random.Random | None,
        now: Callable[[], datetime] | None,
    ) -> None:
        self.client = client
        self.url = url
        self.session = session
        self.policy = policy or RetryPolicy(attempts=4, timeout=20.0)
        self._rng = rng
        self._now = now
        self._sequences: dict[str, int] = {}

    @abstractmethod
    def _limiter(self, circuit: Circuit) -> RateLimiter:
        """The rate limit the provider asks of requests for this circuit."""

    @abstractmethod
    def _parse(self, payload: str, fetched_at: datetime, circuit: Circuit) -> list[WeatherForecast]:
        """The rows of a response (`ForecastParseError` when it is not one)."""

    @abstractmethod
    def _params(self, circuit: Circuit) -> dict[str, str | int | float]:
        """The query string of the request for this circuit."""

    def _secrets(self) -> tuple[str, ...]:
        return ()

    async def fetch(self, circuit: Circuit) -> ForecastFetch:
        """The current forecast for the circuit: the fact and the rows."""
        stream = f"{self.provider}/{circuit.circuit_id}"
        sequence = self._sequences.get(stream, 0) + 1
        self._sequences[stream] = sequence
        try:
            got = await fetch(
                self.client,
                self.url,
                lambda text: self._parse(text, _EPOCH, circuit),
                params=self._params(circuit),
                limiter=self._limiter(circuit),
                policy=self.policy,
                secrets=self._secrets(),
                rng=self._rng,
                now=self._now,
            )
        except FetchError as exc:
            quarantined = None
            if exc.body is not None:
                quarantined = RecordQuarantined(
                    session=self.session,
                    source=self.provider,
                    stream=stream,
                    sequence=sequence,
                    topic=TOPIC,
                    rule="http.response",
                    reason=str(exc),
                    payload=exc.body,
                )
            raise ForecastError(self.provider, circuit, str(exc), quarantined) from None
        fact = MessageReceived(
            session=self.session,
            source=self.provider,
            stream=stream,
            topic=TOPIC,
            sequence=sequence,
            offset_ms=None,
            received_at=got.received_at,
            payload=got.text,
        )
        # `parse` ran before the time of receipt was known: stamp it now.
        fetched_at = utc(got.received_at)
        rows = [row.model_copy(update={"fetched_at": fetched_at}) for row in got.value]
        return ForecastFetch(self.provider, circuit, fact, rows)


class OpenMeteo(_Client):
    """Open-Meteo's forecast API (no key). At most one request per circuit per `min_interval_s`."""

    provider: Provider = OPEN_METEO

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        url: str = OPEN_METEO_URL,
        session: str = "",
        forecast_days: int = 7,
        min_interval_s: float = 60.0,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(client, url, session=session, policy=policy, rng=rng, now=now)
        if not 1 <= forecast_days <= 16:
            raise ValueError(f"forecast_days must be in 1..16, got {forecast_days}")
        self.forecast_days = forecast_days
        self.min_interval_s = min_interval_s
        self._limiters: dict[str, RateLimiter] = {}

    def __repr__(self) -> str:
        return f"OpenMeteo({self.url!r}, min_interval_s={self.min_interval_s:g})"

    def _limiter(self, circuit: Circuit) -> RateLimiter:
        key = circuit.circuit_id
        if key not in self._limiters:
            self._limiters[key] = RateLimiter(RateLimit(1, self.min_interval_s))
        return self._limiters[key]

    def _params(self, circuit: Circuit) -> dict[str, str | int | float]:
        return {
            "latitude": circuit.latitude,
            "longitude": circuit.longitude,
            "hourly": ",".join(OPEN_METEO_HOURLY),
            "wind_speed_unit": "ms",
            "timezone": "GMT",
            "forecast_days": self.forecast_days,
        }

    def _parse(self, payload: str, fetched_at: datetime, circuit: Circuit) -> list[WeatherForecast]:
        return parse_open_meteo(
            payload, fetched_at=fetched_at, session=self.session, circuit=circuit.circuit_id
        )


class OpenWeatherMap(_Client):
    """OpenWeatherMap's 5 day / 3 hour forecast; needs an API key (never shown)."""

    provider: Provider = OPENWEATHERMAP

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_key: SecretStr | str,
        *,
        url: str = OPENWEATHERMAP_URL,
        session: str = "",
        limiter: RateLimiter | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(client, url, session=session, policy=policy, rng=rng, now=now)
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not key.get_secret_value().strip():
            raise ValueError("an OpenWeatherMap API key is empty")
        self._key = key
        # Free tier: 60 calls a minute (and 1,000,000 a month).
        self.limiter = limiter if limiter is not None else RateLimiter(RateLimit(60, 60.0))

    def __repr__(self) -> str:
        return f"OpenWeatherMap({self.url!r}, api_key=SecretStr('**********'), {self.limiter!r})"

    def _limiter(self, circuit: Circuit) -> RateLimiter:
        return self.limiter

    def _secrets(self) -> tuple[str, ...]:
        return (self._key.get_secret_value(),)

    def _params(self, circuit: Circuit) -> dict[str, str | int | float]:
        return {
            "lat": circuit.latitude,
            "lon": circuit.longitude,
            "appid": self._key.get_secret_value(),
            "units": "metric",
        }

    def _parse(self, payload: str, fetched_at: datetime, circuit: Circuit) -> list[WeatherForecast]:
        return parse_openweathermap(
            payload, fetched_at=fetched_at, session=self.session, circuit=circuit.circuit_id
        )


def forecast_providers(
    client: httpx.AsyncClient,
    *,
    openweathermap_key: SecretStr | str | None = None,
    session: str = "",
    open_meteo_url: str = OPEN_METEO_URL,
    openweathermap_url: str = OPENWEATHERMAP_URL,
    policy: RetryPolicy | None = None,
) -> Sequence[ForecastProvider]:
    """Open-Meteo always; OpenWeatherMap too when a (non-empty) key is configured."""
    providers: list[ForecastProvider] = [
        OpenMeteo(client, url=open_meteo_url, session=session, policy=policy)
    ]
    key = (
        openweathermap_key.get_secret_value()
        if isinstance(openweathermap_key, SecretStr)
        else openweathermap_key
    )
    if key and key.strip():
        providers.append(
            OpenWeatherMap(
                client,
                openweathermap_key or "",
                url=openweathermap_url,
                session=session,
                policy=policy,
            )
        )
    return providers
