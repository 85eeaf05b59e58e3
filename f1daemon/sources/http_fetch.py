"""HTTP fetching for the polled sources (results, weather): retries and rate limits.

`fetch` gets one URL with a shared `httpx.AsyncClient` (httpx runs under trio through
anyio) and retries what is worth retrying, with the supervisors' jittered exponential
`Backoff`: connection errors, timeouts, truncated bodies, 5xx, 429 (waiting at least as
long as its `Retry-After` says) and bodies the caller's `parse` rejects (a garbage
body from a proxy is as transient as a 502). Other 4xx fail at once: asking again would
get the same answer. Attempts are bounded; the final `FetchError` names the URL and the
reason, and carries the last body received so that the caller can quarantine it.

`RateLimiter` keeps a client under every limit an API documents ("4 per second and 500
per hour"): a sliding log of request times per limit, so that no window of `period`
seconds ever holds more than `count` requests. It runs on trio's clock, so tests drive it
with a mock clock.

Secrets (API keys) travel in query strings for some APIs. Every URL this module logs or
puts in an error goes through `redact_url`, and a filter on httpx's own request log
redacts it there too. An error body is kept for quarantine, and error pages (a
proxy's, an API's "invalid key …") may echo the request: the secrets are taken out of
the body as well (in every form a request carries them: as given, percent-encoded),
so that neither the log nor `quarantine show` ever shows one.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import httpx
import trio

from f1daemon.actors.backoff import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")

SECRET_PARAMS = frozenset({"appid", "apikey", "api_key", "key", "token", "access_token"})
"""Query parameters whose values are secrets: never logged, never in an error."""

REDACTED = "***"

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Statuses that a later attempt may not get (every other 5xx is retried too)."""


def redact_url(url: str | httpx.URL, secrets: Iterable[str] = SECRET_PARAMS) -> str:
    """The URL with the values of secret query parameters replaced by `***`."""
    parts = urlsplit(str(url))
    if not parts.query:
        return str(url)
    names = {s.lower() for s in secrets}
    query = [
        (k, REDACTED if k.lower() in names else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*,:")))


class _RedactHttpxLog(logging.Filter):
    """Redacts secret query parameters from the URLs httpx logs ("HTTP Request: GET …")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, _RedactHttpxLog) for f in _httpx_log.filters):
    _httpx_log.addFilter(_RedactHttpxLog())


class FetchError(Exception):
    """A URL could not be fetched: after every allowed attempt, or at once (4xx).

    `url` is redacted; `body` is the last response body received (None when no
    response came), kept so that the caller can quarantine it rather than lose it.
    """

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        attempts: int,
        status: int | None = None,
        body: str | None = None,
    ) -> None:
        self.url = url
        self.reason = reason
        self.attempts = attempts
        self.status = status
        self.body = body
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(f"GET {url} failed after {tries}: {reason}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class BodyError(ValueError):
    """A response body that is not what the API sends (raised by `parse` callables)."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `count` requests in any `period` seconds."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if self.count < 1 or not self.period > 0:
            raise ValueError(f"need count >= 1 and period > 0, got {self.count}/{self.period}s")


class RateLimiter:
    """Waits, before each request, until every limit allows one more.

    Sliding window log: the times of the last `count` requests of each limit are kept;
    a request may go when the oldest of them is at least `period` seconds old. Waiters
    are served in order (a trio lock is fair). Share one limiter between everything
    that calls the same API.
    """

    def __init__(self, *limits: RateLimit) -> None:
        self.limits = limits
        self._sent: list[deque[float]] = [deque(maxlen=lim.count) for lim in limits]
        self._lock = trio.Lock()

    def __repr__(self) -> str:
        inner = ", ".join(f"{lim.count}/{lim.period:g}s" for lim in self.limits)
        return f"RateLimiter({inner})"

    def delay(self, now: float) -> float:
        """Seconds from `now` until a request may go (0 if it may go now)."""
        wait = 0.0
        for lim, sent in zip(self.limits, self._sent, strict=True):
            if len(sent) == lim.count:
                wait = max(wait, sent[0] + lim.period - now)
        return wait

    async def acquire(self) -> None:
        """Wait for a slot and take it (call once per request, retries included)."""
        async with self._lock:
            # Holding the lock, nobody else takes a slot: one wait is enough.
            wait = self.delay(trio.current_time())
            if wait > 0:
                await trio.sleep(wait)
            now = trio.current_time()
            for sent in self._sent:
                sent.append(now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard `fetch` tries: at most `attempts` requests, `timeout` seconds each."""

    attempts: int = 5
    backoff: Backoff = field(
        default_factory=lambda: Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=0.25)
    )
    timeout: float = 20.0
    max_retry_after: float = 300.0
    """A 429/503 asking to wait longer than this ends the fetch instead."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """A response that `parse` accepted."""

    url: str
    """The URL, redacted."""
    status: int
    text: str
    """The body exactly as received (decoded as the response's charset says)."""
    value: T
    """What `parse` made of the body."""
    received_at: datetime
    attempts: int


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A `Retry-After` header in seconds: delta-seconds or an HTTP date; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class _Retry(Exception):
    """One attempt failed (`final`: and another would fail the same way)."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        body: str | None = None,
        wait: float | None = None,
        final: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.body = body
        self.wait = wait
        self.final = final
        """No point in another attempt (a 4xx other than 429)."""


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            for form in dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret))):
                text = text.replace(form, REDACTED)
    return text


def _scrubbed(body: str | None, secrets: Iterable[str]) -> str | None:
    return None if body is None else _scrub(body, secrets)


def _excerpt(body: str, size: int = 120) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= size else flat[:size] + "…"


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    parse: Callable[[str], T],
    *,
    params: Mapping[str, str | int | float] | None = None,
    limiter: RateLimiter | None = None,
    policy: RetryPolicy | None = None,
    secrets: Iterable[str] = (),
    rng: random.Random | None = None,
    now: Callable[[], datetime] | None = None,
) -> Fetched[T]:
    """GET `url` (with `params`) until `parse` accepts a 2xx body, or raise `FetchError`.

    `parse` raises `BodyError` (or any `ValueError`) for a body it rejects; that attempt
    counts as failed and is retried. `secrets` are values (API keys) to scrub from
    anything this function logs or raises, in addition to secret query parameters.
    """
    policy = policy or RetryPolicy()
    clock = now or (lambda: datetime.now(UTC))
    # The caller's secrets and those the query carries under a secret name.
    names = {name.lower() for name in SECRET_PARAMS}
    in_query = [str(v) for k, v in (params or {}).items() if k.lower() in names]
    secret_values = [s for s in (*secrets, *in_query) if s]
    shown = _scrub(redact_url(httpx.URL(url, params=params)), secret_values)
    backoff = policy.backoff.start(rng)
    last: _Retry | None = None
    for attempt in range(1, policy.attempts + 1):
        if limiter is not None:
            await limiter.acquire()
        try:
            fetched = await _attempt(
                client, url, params=params, parse=parse, policy=policy, clock=clock
            )
            return Fetched(shown, fetched[0], fetched[1], fetched[2], fetched[3], attempt)
        except _Retry as failure:
            last = failure
        reason = _scrub(last.reason, secret_values)
        if last.final:
            raise FetchError(
                shown,
                reason,
                attempts=attempt,
                status=last.status,
                body=_scrubbed(last.body, secret_values),
            ) from None
        if attempt == policy.attempts:
            break
        delay = backoff.next_delay(ran_for=0.0)
        if last.wait is not None:
            if last.wait > policy.max_retry_after:
                raise FetchError(
                    shown,
                    f"{reason}; the server asks to wait {last.wait:g} s, more than the "
                    f"{policy.max_retry_after:g} s allowed",
                    attempts=attempt,
                    status=last.status,
                    body=_scrubbed(last.body, secret_values),
                ) from None
            delay = max(delay, last.wait)
        log.warning(
            "GET %s attempt %d/%d failed (%s); retrying in %.1f s",
            shown,
            attempt,
            policy.attempts,
            reason,
            delay,
        )
        await trio.sleep(delay)
    if last is None:  # pragma: no cover - attempts >= 1, so the loop ran
        raise RuntimeError("no attempt was made")
    raise FetchError(
        shown,
        _scrub(last.reason, secret_values),
        attempts=policy.attempts,
        status=last.status,
        body=_scrubbed(last.body, secret_values),
    ) from None


async def _attempt(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str | int | float] | None,
    parse: Callable[[str], T],
    policy: RetryPolicy,
    clock: Callable[[], datetime],
) -> tuple[int, str, T, datetime]:
    try:
        response = await client.get(url, params=params, timeout=policy.timeout)
    except httpx.TimeoutException as exc:
        raise _Retry(f"timed out after {policy.timeout:g} s ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        # Connection refused / reset, a body cut short (RemoteProtocolError), …
        raise _Retry(f"{type(exc).__name__}: {exc}") from None
    received_at = clock()
    status = response.status_code
    try:
        text = response.text
    except (UnicodeDecodeError, LookupError) as exc:
        raise _Retry(f"HTTP {status} body is not text: {exc}", status=status) from None
    if status == 429 or status >= 500 or status in RETRYABLE_STATUS:
        wait = retry_after_seconds(response.headers.get("retry-after"), received_at)
        raise _Retry(f"HTTP {status}: {_excerpt(text)}", status=status, body=text, wait=wait)
    if not 200 <= status < 300:
        raise _Retry(f"HTTP {status}: {_excerpt(text)}", status=status, body=text, final=True)
    try:
        value = parse(text)
    except ValueError as exc:
        raise _Retry(
            f"HTTP {status} with an unusable body ({exc}): {_excerpt(text)}",
            status=status,
            body=text,
        ) from None
    return status, text, value, received_at
