"""The daemon's polled sources: weather forecasts and Jolpica results, on a schedule.

Each run fetches, logs what it received, then sleeps `interval_s`; a fetch that fails
after its retries (5xx, 429, timeouts, bodies that do not parse) logs what did arrive
— the pages before it, the bad body quarantined — and raises, so the supervisor
backs off, records the failure as a `SourceStateChanged` and starts the source again.

Identity in the log (the log skips a fact whose session, source, stream and sequence
it has seen, so a new fetch must not reuse an old one's):

* a forecast is one fact in stream `{provider}/{circuit}` (what the decoder reads the
  circuit from), numbered by its receipt time in UTC milliseconds;
* a Jolpica resource's pages are facts in stream `{path}@{fetched, UTC}`, numbered by
  page; a fetch whose pages are the same as the previous fetch's is not logged again.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
import trio

from f1daemon.config import SourceSettings
from f1daemon.daemon.sources import Emit, Feed, SourceRuntime
from f1daemon.domain.events import Fact, MessageReceived
from f1daemon.sources import forecast, jolpica
from f1daemon.sources.http_fetch import RetryPolicy

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def forecast_session(settings: SourceSettings) -> str:
    """The session a forecast source logs under: the configured one, else its own."""
    return settings.session or f"Forecast/{settings.circuit}"


def results_session(settings: SourceSettings) -> str:
    """The session a results source logs under: the configured one, else its own."""
    if settings.session:
        return settings.session
    race = f"-{settings.round:02d}" if settings.round is not None else ""
    return f"Results/{settings.season}{race}"


def _policy(settings: SourceSettings) -> RetryPolicy:
    return RetryPolicy(attempts=settings.attempts)


def forecast_feed(settings: SourceSettings) -> Feed:
    """A feed that asks each configured provider for the circuit's forecast."""
    circuit = forecast.circuit(settings.circuit or "")
    session = forecast_session(settings)

    async def feed(runtime: SourceRuntime, emit: Emit) -> None:
        runtime.deadline = math.inf  # each request has its own timeout
        runtime.session = session
        key_env = settings.openweathermap_key_env
        async with httpx.AsyncClient() as client:
            providers = forecast.forecast_providers(
                client,
                openweathermap_key=os.environ.get(key_env) if key_env else None,
                session=session,
                open_meteo_url=settings.url or forecast.OPEN_METEO_URL,
                openweathermap_url=settings.openweathermap_url or forecast.OPENWEATHERMAP_URL,
                policy=_policy(settings),
            )
            while True:
                for provider in providers:
                    try:
                        fetched = await provider.fetch(circuit)
                    except forecast.ForecastError as error:
                        if error.quarantined is not None:
                            await emit(runtime, [_numbered(error.quarantined)], trio.current_time())
                        raise
                    await emit(runtime, [_numbered(fetched.fact)], trio.current_time())
                await trio.sleep(settings.interval_s)

    return feed


def _numbered(fact: Fact) -> Fact:
    """A forecast numbered by its receipt time: each fetch is a new fact."""
    received = fact.received_at if isinstance(fact, MessageReceived) else None
    moment = received or datetime.now(UTC)
    return fact.model_copy(update={"sequence": (moment - _EPOCH) // timedelta(milliseconds=1)})


def results_feed(settings: SourceSettings) -> Feed:
    """A feed that fetches the configured Jolpica resources, every page."""
    session = results_session(settings)
    season = settings.season or 0
    kinds = [jolpica.Kind(name) for name in settings.resources]
    logged: dict[str, str] = {}  # resource path -> digest of its last logged pages

    async def feed(runtime: SourceRuntime, emit: Emit) -> None:
        runtime.deadline = math.inf  # each request has its own timeout
        runtime.session = session
        async with httpx.AsyncClient() as client:
            api = jolpica.Jolpica(
                client,
                base_url=settings.url or jolpica.DEFAULT_BASE_URL,
                session=session,
                policy=_policy(settings),
            )
            while True:
                for kind in kinds:
                    fetched_at = datetime.now(UTC)
                    try:
                        fetched = await api.fetch(kind, season, settings.round)
                    except jolpica.JolpicaError as error:
                        # What did arrive is logged (the bad page quarantined), always.
                        await emit(runtime, _stamped(error.facts, fetched_at), trio.current_time())
                        raise
                    digest = _digest(fetched.facts)
                    if logged.get(fetched.path) != digest:
                        await emit(
                            runtime, _stamped(fetched.facts, fetched_at), trio.current_time()
                        )
                        logged[fetched.path] = digest
                await trio.sleep(settings.interval_s)

    return feed


def _stamped(facts: Sequence[Fact], fetched_at: datetime) -> list[Fact]:
    """One fetch's pages in a stream of their own."""
    stamp = f"{fetched_at:%Y-%m-%dT%H:%M:%S.%f}Z"
    return [fact.model_copy(update={"stream": f"{fact.stream}@{stamp}"}) for fact in facts]


def _digest(facts: Sequence[MessageReceived]) -> str:
    hashed = hashlib.sha256()
    for fact in facts:
        hashed.update(fact.payload.encode())
        hashed.update(b"\0")
    return hashed.hexdigest()
