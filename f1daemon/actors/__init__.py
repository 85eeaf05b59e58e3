"""Actors: supervised trio tasks that restart with backoff behind a circuit breaker.

Each source of race data runs as an actor (an ``async def run() -> None``) under
`supervise` / `Supervisor`: a failure is retried after an exponential, jittered
`Backoff`; a `CircuitBreaker` stops retrying after repeated failures and lets one trial
through after its timeout. State changes (running, backing-off, circuit-open, stopped)
go to an ``on_state`` callback, from which ``SourceStateChanged`` events are made.
"""

from f1daemon.actors.backoff import Backoff, BackoffState
from f1daemon.actors.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from f1daemon.actors.supervisor import (
    Actor,
    ActorState,
    OnState,
    PersistentFailure,
    StateDetail,
    Supervisor,
    open_supervisor,
    supervise,
)

__all__ = [
    "Actor",
    "ActorState",
    "Backoff",
    "BackoffState",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "OnState",
    "PersistentFailure",
    "StateDetail",
    "Supervisor",
    "open_supervisor",
    "supervise",
]
