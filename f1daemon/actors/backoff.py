"""Exponential backoff with jitter: how long a supervisor waits before restarting an actor."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """A restart-delay policy: ``initial``, ``initial * factor``, … up to ``cap`` seconds.

    Each delay is lengthened by up to ``jitter`` of itself (``delay * (1 + jitter * u)``
    with ``u`` uniform in [0, 1)), so sources that failed together do not reconnect in
    lockstep; with ``jitter=0`` the schedule is exactly 1, 2, 4, … capped. A run that
    lasted at least ``healthy_after`` seconds starts the sequence again from ``initial``.
    """

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.1
    healthy_after: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.cap:
            raise ValueError(f"need 0 < initial <= cap, got {self.initial} and {self.cap}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")
        if self.healthy_after < 0:
            raise ValueError(f"healthy_after must be >= 0, got {self.healthy_after}")

    def start(self, rng: random.Random | None = None) -> BackoffState:
        """A fresh sequence of delays; ``rng`` draws the jitter (seed it in tests)."""
        return BackoffState(self, rng)


class BackoffState:
    """Where one actor is in its backoff sequence."""

    def __init__(self, policy: Backoff, rng: random.Random | None = None) -> None:
        self.policy = policy
        # Jitter only spreads reconnects out; it needs no cryptographic randomness.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._base = policy.initial
        self.failures = 0
        """Consecutive failed runs since the sequence last (re)started."""

    def reset(self) -> None:
        """Start again from ``initial`` (the actor has been healthy)."""
        self._base = self.policy.initial
        self.failures = 0

    def next_delay(self, ran_for: float) -> float:
        """The delay before the next restart, given that the last run lasted ``ran_for`` s."""
        if ran_for >= self.policy.healthy_after:
            self.reset()
        base = self._base
        # Grow the base rather than compute initial * factor**n: no overflow however long
        # an actor keeps failing.
        self._base = min(base * self.policy.factor, self.policy.cap)
        self.failures += 1
        if self.policy.jitter == 0:
            return base
        return base * (1 + self.policy.jitter * self._rng.random())
