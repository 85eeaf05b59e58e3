"""Supervision: keep an actor running, restart it with backoff, respect its breaker.

An actor is any ``async def run() -> None``. `supervise` runs it in a loop and reports
every state change to ``on_state``; `Supervisor` runs many of them in one nursery,
each in its own cancel scope, so one can be stopped alone and one failing never
touches another.
"""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import trio

from f1daemon.actors.backoff import Backoff
from f1daemon.actors.breaker import BreakerState, CircuitBreaker

ActorState = Literal["running", "backing-off", "circuit-open", "stopped"]
Actor = Callable[[], Awaitable[None]]


class PersistentFailure(Exception):
    """A failure that retrying soon will not mend (a refused token, a missing file):
    the operator must act. The supervisor opens the actor's breaker at once, so the
    actor is tried again at the breaker's pace (one trial per reset timeout, which
    picks up the operator's fix) rather than the backoff's."""


@dataclass(frozen=True, slots=True)
class StateDetail:
    """What goes with a state report."""

    restarts: int = 0
    """How many times the actor has failed, so been (or is about to be) restarted."""
    delay: float | None = None
    """backing-off / circuit-open: seconds until the next run is attempted."""
    error: Exception | None = None
    """backing-off / circuit-open: the exception the last run failed with."""


OnState = Callable[[str, ActorState, StateDetail], None]


async def supervise(
    name: str,
    run: Actor,
    *,
    backoff: Backoff,
    breaker: CircuitBreaker | None = None,
    on_state: OnState,
    rng: random.Random | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``await run()`` until it returns, restarting it whenever it raises.

    Reports ``running`` as each run starts; on an `Exception`, records a failure with
    the breaker and reports ``backing-off`` (then sleeps the backoff delay) or, if the
    breaker is now open, ``circuit-open`` (then sleeps until it half-opens, when the
    next run is its trial); a `PersistentFailure` opens the breaker at once. A run
    that lasted ``backoff.healthy_after`` counts as a success for the breaker before
    its failure is counted, and resets the backoff.
    A normal return reports ``stopped`` and returns; cancellation (or any other
    `BaseException`) reports ``stopped`` and propagates. ``task_status.started()`` is
    called once the first run has started.
    """
    delays = backoff.start(rng)
    restarts = 0
    started = False
    error: Exception | None = None
    try:
        while True:
            if breaker is not None and not breaker.allow():
                now = trio.current_time()
                # Open: wait for the half-open instant. Half-open with the trial held by
                # another user of a shared breaker: poll at the initial backoff.
                half_open_at = breaker.half_open_at
                until = now + backoff.initial if half_open_at is None else half_open_at
                on_state(name, "circuit-open", StateDetail(restarts, until - now, error))
                await trio.sleep_until(until)
                continue
            began = trio.current_time()
            on_state(name, "running", StateDetail(restarts))
            if not started:
                started = True
                task_status.started()
            try:
                await run()
            except Exception as exc:
                error = exc
            except BaseException:
                if breaker is not None:
                    breaker.release()
                raise
            else:
                if breaker is not None:
                    breaker.record_success()
                on_state(name, "stopped", StateDetail(restarts))
                return
            ran_for = trio.current_time() - began
            delay = delays.next_delay(ran_for)
            restarts += 1
            if breaker is not None:
                if ran_for >= backoff.healthy_after:
                    breaker.record_success()
                if isinstance(error, PersistentFailure):
                    breaker.trip()
                else:
                    breaker.record_failure()
                if breaker.state is BreakerState.OPEN:
                    continue  # the breaker decides the wait: reported at the loop's top
            on_state(name, "backing-off", StateDetail(restarts, delay, error))
            await trio.sleep(delay)
    except BaseException:
        on_state(name, "stopped", StateDetail(restarts, error=error))
        raise


class _Started:
    """A task status that remembers whether the child got as far as starting."""

    def __init__(self, outer: trio.TaskStatus[None]) -> None:
        self.outer = outer
        self.called = False

    def started(self, value: Any = None) -> None:  # noqa: ANN401 (TaskStatus's signature)
        self.called = True
        self.outer.started()


class Supervisor:
    """Actors supervised in one nursery, each in its own cancel scope.

    Open with `open_supervisor`; `start` an actor under a unique name, `stop` it alone,
    or leave the ``async with`` block to stop them all.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        on_state: OnState,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._nursery = nursery
        self._on_state = on_state
        self._backoff = backoff if backoff is not None else Backoff()
        self._rng = rng
        self._scopes: dict[str, trio.CancelScope] = {}

    @property
    def names(self) -> frozenset[str]:
        """The actors currently supervised (not yet stopped)."""
        return frozenset(self._scopes)

    async def start(
        self,
        name: str,
        run: Actor,
        *,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        """Supervise ``run`` as ``name``; returns once its first run has started."""
        if name in self._scopes:
            raise ValueError(f"an actor named {name!r} is already supervised")
        scope = trio.CancelScope()
        self._scopes[name] = scope
        body = functools.partial(
            supervise,
            name,
            run,
            backoff=backoff or self._backoff,
            breaker=breaker,
            on_state=self._on_state,
            rng=self._rng,
        )
        await self._nursery.start(self._child, name, scope, body)

    def stop(self, name: str) -> None:
        """Cancel one actor; it reports ``stopped`` and leaves the others running."""
        self._scopes[name].cancel()

    def stop_all(self) -> None:
        """Cancel every actor (the nursery then closes)."""
        self._nursery.cancel_scope.cancel()

    async def _child(
        self,
        name: str,
        scope: trio.CancelScope,
        body: Callable[..., Awaitable[None]],
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        status = _Started(task_status)
        try:
            with scope:
                await body(task_status=status)
        finally:
            if self._scopes.get(name) is scope:
                del self._scopes[name]
        if not status.called:  # stopped before its first run: let start() return
            task_status.started()


@asynccontextmanager
async def open_supervisor(
    *,
    on_state: OnState,
    backoff: Backoff | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[Supervisor]:
    """A `Supervisor` whose nursery lives as long as the ``async with`` block."""
    async with trio.open_nursery() as nursery:
        yield Supervisor(nursery, on_state=on_state, backoff=backoff, rng=rng)
