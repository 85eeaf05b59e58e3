"""A circuit breaker: stop hammering a source that keeps failing, try again later.

A pure state machine over a clock (trio's by default); it does no I/O and never sleeps.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    """Calls go through; consecutive failures are counted."""
    OPEN = "open"
    """Calls are rejected until ``reset_timeout`` has passed since opening."""
    HALF_OPEN = "half-open"
    """One trial call goes through: success closes the breaker, failure reopens it."""


class CircuitOpenError(Exception):
    """A call was rejected because the breaker is open (or its one trial is in flight)."""

    def __init__(self, remaining: float) -> None:
        super().__init__(f"circuit open; next trial in {remaining:.3f} s")
        self.remaining = remaining
        """Seconds until the breaker half-opens (0 while another caller holds the trial)."""


OnChange = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    """CLOSED → OPEN after ``failure_threshold`` consecutive failures; OPEN → HALF_OPEN
    ``reset_timeout`` seconds later (evaluated lazily on access); HALF_OPEN lets one
    trial through: its success closes the breaker, its failure reopens it and restarts
    the timer.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        reset_timeout: float = 60.0,
        clock: Callable[[], float] = trio.current_time,
        on_change: OnChange | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if reset_timeout < 0:
            raise ValueError(f"reset_timeout must be >= 0, got {reset_timeout}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._half_open_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The current state; an OPEN breaker whose timeout has passed becomes HALF_OPEN."""
        if self._state is BreakerState.OPEN and self._clock() >= self._half_open_at:
            self._trial_in_flight = False
            self._move(BreakerState.HALF_OPEN)
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures recorded since the breaker last closed."""
        return self._failures

    @property
    def half_open_at(self) -> float | None:
        """The clock time at which an open breaker half-opens (None unless OPEN)."""
        return self._half_open_at if self.state is BreakerState.OPEN else None

    def remaining(self) -> float:
        """Seconds until an open breaker half-opens; 0 when it is not open."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return min(self.reset_timeout, max(0.0, self._half_open_at - self._clock()))

    def allow(self) -> bool:
        """May a call go through now? In HALF_OPEN, True once: the caller holds the trial
        and must report its outcome (`record_success`, `record_failure` or `release`)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: the failure count resets and a half-open breaker closes.

        A late success while OPEN (a call begun before the breaker opened) changes nothing.
        """
        if self.state is BreakerState.OPEN:
            return
        self._failures = 0
        self._trial_in_flight = False
        self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A call failed: count it; open at the threshold, or reopen after a failed trial.

        A late failure while OPEN is counted but does not extend the timeout.
        """
        state = self.state
        self._failures += 1
        if state is BreakerState.HALF_OPEN or (
            state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._trial_in_flight = False
            self._half_open_at = self._clock() + self.reset_timeout
            self._move(BreakerState.OPEN)

    def trip(self) -> None:
        """A call failed in a way known to persist: count it and open now, whatever the
        count (the timeout starts again if the breaker was open already)."""
        self.state  # noqa: B018 - a lapsed timeout turns OPEN into HALF_OPEN first
        self._failures += 1
        self._trial_in_flight = False
        self._half_open_at = self._clock() + self.reset_timeout
        self._move(BreakerState.OPEN)

    def release(self) -> None:
        """Give back a half-open trial without a verdict (its caller was cancelled)."""
        self._trial_in_flight = False

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run a block under the breaker: raises `CircuitOpenError` if the call is not
        allowed; an `Exception` from the block is a failure (and propagates), a normal
        exit a success; cancellation gives back the trial without a verdict."""
        if not self.allow():
            raise CircuitOpenError(self.remaining())
        try:
            yield
        except Exception:
            self.record_failure()
            raise
        except BaseException:
            self.release()
            raise
        self.record_success()

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new and self._on_change is not None:
            self._on_change(old, new)

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self.state.value}, failures={self._failures}/"
            f"{self.failure_threshold}, reset_timeout={self.reset_timeout})"
        )
