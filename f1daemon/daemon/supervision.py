"""The daemon's sources as supervised actors (`f1daemon.actors`).

Every source runs in a supervised nursery of its own, so its failures stay inside it:
restarted with jittered backoff, behind a circuit breaker, watched by a no-data
watchdog (`SourceStalledError` once it shows no progress for the stall timeout).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable

import trio

from f1daemon.actors import Backoff, CircuitBreaker, OnState, open_supervisor
from f1daemon.config import SourceSettings, SupervisionSettings
from f1daemon.daemon.sources import Emit, Feed, SourceRuntime, SourceStalledError


class SourceSupervision:
    """Starts and stops the daemon's sources, whose `runtimes` it keeps by name.

    `nursery` gives the daemon's nursery (once running), `settings` the current
    supervision settings; `emit` is where every source's facts go.
    """

    def __init__(
        self,
        runtimes: dict[str, SourceRuntime],
        nursery: Callable[[], trio.Nursery],
        settings: Callable[[], SupervisionSettings],
        emit: Emit,
        rng: random.Random | None,
    ) -> None:
        self._nursery = nursery
        self._settings = settings
        self._emit = emit
        self._rng = rng
        self._runtimes = runtimes
        self._scopes: dict[str, trio.CancelScope] = {}
        self._ended: dict[str, trio.Event] = {}

    def running(self) -> list[str]:
        """The sources started and not stopped since."""
        return list(self._scopes)

    async def start(self, settings: SourceSettings, feed: Feed, on_state: OnState) -> None:
        """Run `feed` as source `settings.name`, its states reported to `on_state`."""
        nursery = self._nursery()
        supervision = self._settings()
        runtime = SourceRuntime(
            settings,
            CircuitBreaker(
                failure_threshold=supervision.breaker_failures,
                reset_timeout=supervision.breaker_reset_s,
            ),
        )
        self._runtimes[settings.name] = runtime
        scope = trio.CancelScope()
        self._scopes[settings.name] = scope
        self._ended[settings.name] = trio.Event()
        await nursery.start(self._supervise, runtime, feed, scope, on_state)

    def stop(self, name: str) -> None:
        """Cancel source `name` (it reports `stopped`); its runtime stays."""
        self._scopes.pop(name).cancel()

    async def stop_all(self, drain_until: float) -> None:
        """Stop every source for a shutdown. One that drains (the live source, whose
        received facts exist nowhere else) stops taking in and writes what it holds,
        until trio time `drain_until`; the others are cancelled at once (a replay
        resumes from its position, a poll fetches again). Then any left are cancelled."""
        names = self.running()
        for name in names:
            runtime = self._runtimes[name]
            if runtime.drains:
                runtime.stopping.set()
                # A paused source holds what it received: a stop writes it all the same.
                runtime.unpaused.set()
            else:
                self.stop(name)
        with trio.move_on_at(drain_until):
            for name in names:
                await self._ended[name].wait()
        for name in self.running():
            self.stop(name)

    async def _supervise(
        self,
        runtime: SourceRuntime,
        feed: Feed,
        scope: trio.CancelScope,
        on_state: OnState,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        supervision = self._settings()
        backoff = Backoff(
            initial=supervision.backoff_initial_s,
            cap=max(supervision.backoff_cap_s, supervision.backoff_initial_s),
            jitter=supervision.backoff_jitter,
            healthy_after=supervision.healthy_after_s,
        )
        ended = self._ended[runtime.name]
        try:
            with scope:
                # One supervised nursery per source: its failures stay inside it.
                async with open_supervisor(
                    on_state=on_state, backoff=backoff, rng=self._rng
                ) as supervisor:
                    await supervisor.start(
                        runtime.name,
                        functools.partial(self._watched, runtime, feed),
                        breaker=runtime.breaker,
                    )
                    task_status.started()
        finally:
            ended.set()

    async def _watched(self, runtime: SourceRuntime, feed: Feed) -> None:
        """One run of a source's feed, under the no-data watchdog."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._stall_watch, runtime)
                await feed(runtime, self._emit)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _single(group) from None

    async def _stall_watch(self, runtime: SourceRuntime) -> None:
        while True:
            now = trio.current_time()
            if runtime.paused or math.isinf(runtime.deadline):
                await trio.sleep(1.0)
                continue
            if now >= runtime.deadline:
                timeout = self._settings().stall_timeout_s
                raise SourceStalledError(f"no data for {timeout:g} s")
            await trio.sleep_until(runtime.deadline)


def _single(error: BaseException) -> BaseException:
    # A nursery wraps its child's exception in a group; a supervisor reports the
    # underlying error, so unwrap a group of one.
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
