"""Backoff, circuit breaker and supervisor, on trio's virtual clock.

Test policy: every sleep runs on the autojump clock, so times are asserted exactly
(``trio.current_time() == …``) and the whole file takes well under a second; jitter is
either 0 or drawn from a seeded `random.Random`; the breaker's state machine is also
checked outside trio by Hypothesis with an injected fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from f1daemon.actors import (
    ActorState,
    Backoff,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    StateDetail,
    Supervisor,
    open_supervisor,
    supervise,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
EXACT = Backoff(jitter=0)

# -- helpers -------------------------------------------------------------------------

Report = tuple[float, str, ActorState, float | None]


class Reports:
    """An on_state callback that keeps (time, name, state, delay) in order."""

    def __init__(self) -> None:
        self.log: list[Report] = []
        self.details: list[StateDetail] = []

    def __call__(self, name: str, state: ActorState, detail: StateDetail) -> None:
        self.log.append((trio.current_time(), name, state, detail.delay))
        self.details.append(detail)

    def of(self, name: str) -> list[Report]:
        return [r for r in self.log if r[1] == name]


class Boom(Exception):
    pass


class FailsAt:
    """An actor that raises at the given virtual times, then (after the last) does
    ``then``: "hang" forever or "return"; ``starts`` records when each run began."""

    def __init__(self, times: Iterable[float], then: str = "hang") -> None:
        self._times = iter(times)
        self._then = then
        self.starts: list[float] = []

    async def __call__(self) -> None:
        self.starts.append(trio.current_time())
        at = next(self._times, None)
        if at is None:
            if self._then == "return":
                return
            await trio.sleep_forever()
        else:
            await trio.sleep_until(at)
            raise Boom(f"failed at {at}")


class Healthy:
    def __init__(self) -> None:
        self.starts: list[float] = []

    async def __call__(self) -> None:
        self.starts.append(trio.current_time())
        await trio.sleep_forever()


# -- backoff -------------------------------------------------------------------------


def test_backoff_schedule_doubles_up_to_the_cap() -> None:
    delays = EXACT.start()
    assert [delays.next_delay(0.0) for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert delays.failures == 9
    odd_cap = Backoff(jitter=0, cap=10).start()
    assert [odd_cap.next_delay(0.0) for _ in range(6)] == [1, 2, 4, 8, 10, 10]


def test_backoff_jitter_stays_in_bounds_and_is_reproducible() -> None:
    policy = Backoff(jitter=0.1)
    a, b = policy.start(random.Random(7)), policy.start(random.Random(7))
    bases = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    got = [a.next_delay(0.0) for _ in bases]
    assert got == [b.next_delay(0.0) for _ in bases]
    for base, delay in zip(bases, got, strict=True):
        assert base <= delay < base * 1.1
    assert got != bases  # the jitter did something


@given(
    jitter=st.floats(0, 1),
    cap=st.floats(1, 1000),
    factor=st.floats(1, 10),
    seed=st.integers(0, 2**32),
    runs=st.lists(st.floats(0, 100), max_size=50),
)
def test_backoff_delays_are_bounded(
    jitter: float, cap: float, factor: float, seed: int, runs: list[float]
) -> None:
    delays = Backoff(cap=cap, factor=factor, jitter=jitter).start(random.Random(seed))
    for ran_for in runs:
        delay = delays.next_delay(ran_for)
        assert 1.0 <= delay <= cap * (1 + jitter)
        if ran_for >= 30.0:
            assert delay <= 1 + jitter  # a healthy run starts again from initial


def test_backoff_resets_after_a_healthy_run() -> None:
    delays = EXACT.start()
    assert [delays.next_delay(1.0) for _ in range(3)] == [1, 2, 4]
    assert delays.next_delay(29.9) == 8  # not quite healthy
    assert delays.next_delay(30.0) == 1  # healthy: start again
    assert delays.failures == 1
    assert delays.next_delay(0.0) == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0},
        {"initial": 100, "cap": 60},
        {"factor": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"healthy_after": -1},
    ],
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message names the field)
        Backoff(**kwargs)


# -- circuit breaker -----------------------------------------------------------------


async def fail_once(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        async with breaker.guard():
            raise Boom


async def test_breaker_opens_rejects_and_half_opens_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    changes: list[tuple[float, BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        on_change=lambda old, new: changes.append((trio.current_time(), old, new))
    )
    for t in (1.0, 2.0):
        await trio.sleep_until(t)
        await fail_once(breaker)
        assert breaker.state is CLOSED
    assert breaker.failures == 2
    await trio.sleep_until(3.0)
    await fail_once(breaker)
    assert breaker.state is OPEN
    assert changes == [(3.0, CLOSED, OPEN)]
    assert breaker.half_open_at == 63.0

    await trio.sleep_until(23.0)
    assert not breaker.allow()
    with pytest.raises(CircuitOpenError) as rejected:
        async with breaker.guard():
            pytest.fail("the block must not run while the breaker is open")
    assert rejected.value.remaining == 40.0
    assert breaker.failures == 3  # a rejection is not a failure

    await trio.sleep_until(62.5)
    assert breaker.state is OPEN
    assert breaker.remaining() == 0.5
    await trio.sleep_until(63.0)
    assert breaker.state is HALF_OPEN
    assert breaker.remaining() == 0.0
    assert changes[-1] == (63.0, OPEN, HALF_OPEN)


async def test_breaker_failed_trial_reopens_and_successful_trial_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    changes: list[tuple[float, BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        on_change=lambda old, new: changes.append((trio.current_time(), old, new))
    )
    for _ in range(3):
        await fail_once(breaker)
    assert breaker.state is OPEN  # at t=0

    await trio.sleep_until(60.0)
    await trio.sleep(0.5)  # the trial takes half a second, then fails
    assert breaker.state is HALF_OPEN
    await fail_once(breaker)
    assert breaker.state is OPEN
    assert breaker.remaining() == 60.0  # the timer restarted at 60.5
    await trio.sleep_until(120.0)
    assert breaker.state is OPEN
    await trio.sleep_until(120.5)
    async with breaker.guard():  # the trial succeeds
        assert breaker.state is HALF_OPEN
        await trio.sleep(1)
    assert breaker.state is CLOSED
    assert breaker.failures == 0
    assert changes == [
        (0.0, CLOSED, OPEN),
        (60.5, OPEN, HALF_OPEN),
        (60.5, HALF_OPEN, OPEN),
        (120.5, OPEN, HALF_OPEN),
        (121.5, HALF_OPEN, CLOSED),
    ]


async def test_breaker_lets_one_trial_through_and_a_cancelled_trial_gives_it_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10)
    await fail_once(breaker)
    await trio.sleep(10)
    assert breaker.allow()  # this caller holds the trial
    assert not breaker.allow()
    with pytest.raises(CircuitOpenError) as rejected:
        async with breaker.guard():
            pass
    assert rejected.value.remaining == 0.0
    breaker.release()

    with trio.move_on_after(5):
        async with breaker.guard():
            await trio.sleep_forever()
    assert breaker.state is HALF_OPEN  # no verdict from a cancelled trial
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED


def test_breaker_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0, clock=lambda: 0.0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker(reset_timeout=-1, clock=lambda: 0.0)


EDGES = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (HALF_OPEN, CLOSED)}


class BreakerMachine(RuleBasedStateMachine):
    """Calls that succeed or fail (through allow(), or late and unguarded) and time
    passing, against the breaker's invariants."""

    THRESHOLD = 3
    TIMEOUT = 60.0

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.breaker = CircuitBreaker(
            failure_threshold=self.THRESHOLD,
            reset_timeout=self.TIMEOUT,
            clock=lambda: self.now,
            on_change=self.on_change,
        )
        self.consecutive_failures = 0  # since the last success (or close)
        self.opened_at: float | None = None
        self.trial_held = False  # a call was let through in HALF_OPEN, no verdict yet
        self.pending = 0  # calls let through, not yet finished

    def on_change(self, old: BreakerState, new: BreakerState) -> None:
        assert (old, new) in EDGES
        self.trial_held = False
        if new is OPEN:
            self.opened_at = self.now
        if new is HALF_OPEN:
            assert self.opened_at is not None
            assert self.now - self.opened_at >= self.TIMEOUT

    # Quarter seconds: binary fractions keep the clock arithmetic exact, so the
    # invariants can compare times with ==, and 60 s boundaries are hit often.
    @rule(quarters=st.one_of(st.sampled_from([0, 4, 236, 240]), st.integers(0, 800)))
    def advance(self, quarters: int) -> None:
        self.now += quarters / 4

    @rule()
    def begin(self) -> None:
        state = self.breaker.state
        allowed = self.breaker.allow()
        expected = state is CLOSED or (state is HALF_OPEN and not self.trial_held)
        assert allowed == expected
        if allowed:
            self.pending += 1
            self.trial_held = state is HALF_OPEN

    @precondition(lambda self: self.pending > 0)
    @rule(ok=st.booleans())
    def finish(self, ok: bool) -> None:
        self.pending -= 1
        if ok:
            self.succeed()
        else:
            self.fail()

    @rule()
    def late_failure(self) -> None:
        self.fail()

    def succeed(self) -> None:
        before = self.breaker.state
        if before is not OPEN:  # a late success while open changes nothing
            self.consecutive_failures = 0
        self.breaker.record_success()
        assert self.breaker.state is (OPEN if before is OPEN else CLOSED)

    def fail(self) -> None:
        before = self.breaker.state
        self.consecutive_failures += 1
        self.breaker.record_failure()
        if before is HALF_OPEN:
            assert self.breaker.state is OPEN
            assert self.breaker.remaining() == self.TIMEOUT

    @invariant()
    def open_only_after_threshold_failures(self) -> None:
        if self.breaker.state is OPEN:
            assert self.consecutive_failures >= self.THRESHOLD
            assert self.breaker.failures >= self.THRESHOLD

    @invariant()
    def closed_below_threshold(self) -> None:
        if self.breaker.state is CLOSED:
            assert self.breaker.failures == self.consecutive_failures < self.THRESHOLD

    @invariant()
    def timing(self) -> None:
        state = self.breaker.state
        if state is CLOSED:
            return
        assert self.opened_at is not None
        waited = self.now - self.opened_at
        if state is OPEN:
            assert waited < self.TIMEOUT
            assert 0 < self.breaker.remaining() <= self.TIMEOUT
        else:
            assert waited >= self.TIMEOUT
            assert self.breaker.remaining() == 0


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
TestBreakerMachine = BreakerMachine.TestCase


# -- supervisor ----------------------------------------------------------------------


async def test_failing_actor_restarts_on_the_backoff_schedule_beside_a_healthy_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reports = Reports()
    flaky = FailsAt([0.5, 2.0, 4.5, 9.0])
    healthy = Healthy()
    async with open_supervisor(on_state=reports, backoff=EXACT) as sup:
        await sup.start("healthy", healthy)
        await sup.start("flaky", flaky)
        assert sup.names == {"healthy", "flaky"}
        await trio.sleep_until(50.0)
        sup.stop("flaky")
        await trio.sleep_until(100.0)
        assert sup.names == {"healthy"}
        sup.stop_all()

    assert flaky.starts == [0.0, 1.5, 4.0, 8.5, 17.0]  # each failure + 1, 2, 4, 8 s
    assert healthy.starts == [0.0]  # never restarted
    assert reports.of("flaky") == [
        (0.0, "flaky", "running", None),
        (0.5, "flaky", "backing-off", 1.0),
        (1.5, "flaky", "running", None),
        (2.0, "flaky", "backing-off", 2.0),
        (4.0, "flaky", "running", None),
        (4.5, "flaky", "backing-off", 4.0),
        (8.5, "flaky", "running", None),
        (9.0, "flaky", "backing-off", 8.0),
        (17.0, "flaky", "running", None),
        (50.0, "flaky", "stopped", None),
    ]
    assert reports.of("healthy") == [
        (0.0, "healthy", "running", None),
        (100.0, "healthy", "stopped", None),
    ]
    backing_off = [d for d in reports.details if d.delay is not None]
    assert [d.restarts for d in backing_off] == [1, 2, 3, 4]
    assert all(isinstance(d.error, Boom) for d in backing_off)
    assert str(backing_off[-1].error) == "failed at 9.0"


async def test_breaker_opens_after_three_failures_and_the_trial_waits_reset_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reports = Reports()
    changes: list[tuple[float, BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        on_change=lambda old, new: changes.append((trio.current_time(), old, new))
    )
    # Three quick failures open the breaker at 4.5; the trial at 64.5 fails (reopens);
    # the trial at 125 runs healthily for 30 s before failing (closes, backoff resets);
    # the next run returns normally.
    actor = FailsAt([0.5, 2.0, 4.5, 65.0, 155.0], then="return")
    await supervise("src", actor, backoff=EXACT, breaker=breaker, on_state=reports)

    assert trio.current_time() == 156.0  # the last run returned at once
    assert actor.starts == [0.0, 1.5, 4.0, 64.5, 125.0, 156.0]
    assert reports.log == [
        (0.0, "src", "running", None),
        (0.5, "src", "backing-off", 1.0),
        (1.5, "src", "running", None),
        (2.0, "src", "backing-off", 2.0),
        (4.0, "src", "running", None),
        (4.5, "src", "circuit-open", 60.0),
        (64.5, "src", "running", None),
        (65.0, "src", "circuit-open", 60.0),
        (125.0, "src", "running", None),
        (155.0, "src", "backing-off", 1.0),
        (156.0, "src", "running", None),
        (156.0, "src", "stopped", None),
    ]
    assert changes == [
        (4.5, CLOSED, OPEN),
        (64.5, OPEN, HALF_OPEN),
        (65.0, HALF_OPEN, OPEN),
        (125.0, OPEN, HALF_OPEN),
        (155.0, HALF_OPEN, CLOSED),
    ]
    assert breaker.state is CLOSED
    assert breaker.failures == 0


async def test_hanging_actor_cancelled_by_its_scope_reports_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reports = Reports()
    actor = Healthy()
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            nursery.start_soon(trio.sleep, 10)  # keeps the outer nursery open until 10
            async with trio.open_nursery() as inner:
                await inner.start(
                    lambda task_status=trio.TASK_STATUS_IGNORED: supervise(
                        "stuck", actor, backoff=EXACT, on_state=reports, task_status=task_status
                    )
                )
                assert trio.current_time() == 0.0  # start() returned as the first run began
                await trio.sleep(7)
                scope.cancel()
    assert trio.current_time() == 10.0
    assert actor.starts == [0.0]
    assert reports.log == [(0.0, "stuck", "running", None), (7.0, "stuck", "stopped", None)]


async def test_cancelled_while_backing_off_reports_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reports = Reports()
    with trio.move_on_after(3):
        await supervise("src", FailsAt([1.0, 2.0]), backoff=EXACT, on_state=reports)
    assert [r[2] for r in reports.log] == [
        "running",
        "backing-off",
        "running",
        "backing-off",
        "stopped",
    ]
    assert reports.log[-1][0] == 3.0
    assert isinstance(reports.details[-1].error, Boom)


async def test_normal_return_stops_without_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reports = Reports()
    runs: list[float] = []

    async def finite() -> None:
        runs.append(trio.current_time())
        await trio.sleep(3)

    await supervise("once", finite, backoff=EXACT, on_state=reports)
    assert trio.current_time() == 3.0
    assert runs == [0.0]
    assert reports.log == [(0.0, "once", "running", None), (3.0, "once", "stopped", None)]


class Fatal(BaseException):
    pass


async def test_base_exceptions_propagate_after_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reports = Reports()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5)
    breaker.record_failure()
    await trio.sleep(5)

    async def fatal() -> None:
        await trio.sleep(1)
        raise Fatal

    with pytest.raises(Fatal):
        await supervise("src", fatal, backoff=EXACT, breaker=breaker, on_state=reports)
    assert reports.log == [(5.0, "src", "running", None), (6.0, "src", "stopped", None)]
    assert breaker.state is HALF_OPEN  # the trial was given back, no verdict
    assert breaker.allow()


async def test_shared_breaker_with_a_held_trial_is_polled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reports = Reports()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10)
    breaker.record_failure()
    await trio.sleep(10)
    assert breaker.allow()  # someone else holds the trial …

    async def other_trial_succeeds() -> None:
        await trio.sleep(2.5)
        breaker.record_success()  # … and it succeeds at 12.5

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_trial_succeeds)
        await supervise(
            "src", FailsAt([], then="return"), backoff=EXACT, breaker=breaker, on_state=reports
        )
    assert reports.log == [
        (10.0, "src", "circuit-open", 1.0),
        (11.0, "src", "circuit-open", 1.0),
        (12.0, "src", "circuit-open", 1.0),
        (13.0, "src", "running", None),
        (13.0, "src", "stopped", None),
    ]


async def test_supervisor_names_are_unique_and_stopping_before_the_first_run_is_safe(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reports = Reports()
    breaker = CircuitBreaker(failure_threshold=1)
    breaker.record_failure()  # open: the first run waits 60 s
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, on_state=reports, backoff=EXACT)
        await sup.start("a", Healthy())
        with pytest.raises(ValueError, match="already supervised"):
            await sup.start("a", Healthy())

        async def stop_b_soon() -> None:
            await trio.sleep(1)
            sup.stop("b")

        nursery.start_soon(stop_b_soon)
        await sup.start("b", Healthy(), breaker=breaker)  # returns although b never ran
        assert trio.current_time() == 1.0
        assert sup.names == {"a"}
        sup.stop_all()
    assert reports.of("b") == [(0.0, "b", "circuit-open", 60.0), (1.0, "b", "stopped", None)]
