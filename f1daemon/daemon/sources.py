"""The daemon's source actors: what each configured source does when it runs.

A source's `Feed` is an ``async`` function of its `SourceRuntime` (its state across
restarts) and an `Emit` (hands facts to the log and returns once they are durable).
The supervisor restarts a feed that raises; the runtime's `position` (facts
acknowledged so far) lets a restarted replay resume where it stopped instead of
starting over — appends are idempotent anyway, so an overlap costs time, not data.

* `recording`: a live recording (SignalR / FastF1 capture, a saved subscribe reply),
  an archive session folder or a FastF1 cache of one session (as `ingest` reads them),
  replayed at `speed` times the pace at which it was received (0: at once).
* `simulator`: a seeded simulated race written in the archive's formats into the
  state directory, then replayed like a recording. It is a source in its own right,
  named as such in the log and the metrics; never a stand-in for a real feed.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from f1daemon.actors.breaker import CircuitBreaker
from f1daemon.config import SourceSettings
from f1daemon.domain.events import Fact
from f1daemon.errors import UserError
from f1daemon.sources.archive import read_facts
from f1daemon.sources.recorded import ArchiveInput, PageInput, read_input
from f1daemon.sources.simulator import write_race

MAX_BATCH = 500  # facts handed to the writer at once by a replay


class SourceStalledError(Exception):
    """A source produced nothing for longer than its stall timeout (the no-data watchdog)."""


@dataclass
class SourceRuntime:
    """What the daemon knows of one source, kept across its restarts."""

    settings: SourceSettings
    breaker: CircuitBreaker
    state: str = "starting"
    restarts: int = 0
    last_error: str | None = None
    session: str | None = None
    position: int = 0  # facts of its data acknowledged so far
    total: int | None = None  # facts in its data, once loaded
    paused: bool = False
    unpaused: trio.Event = field(default_factory=trio.Event)
    deadline: float = math.inf  # trio time by which it must show progress
    # A failure the operator must fix (a refused token), once reported: its retries at
    # the breaker's pace are not reported again until the source logs facts again.
    persistent_error: str | None = None
    # A clean stop: a source that `drains` stops taking in (its connection) when
    # `stopping` is set, writes what it received and returns; `received` counts the
    # facts its connection handed on (the others are cancelled at once).
    drains: bool = False
    stopping: trio.Event = field(default_factory=trio.Event)
    received: int = 0

    def __post_init__(self) -> None:
        self.unpaused.set()

    @property
    def name(self) -> str:
        return self.settings.name

    def pause(self) -> bool:
        """Hold the source at its next message; False if it was paused already."""
        if self.paused:
            return False
        self.paused = True
        self.unpaused = trio.Event()
        return True

    def resume(self) -> bool:
        if not self.paused:
            return False
        self.paused = False
        self.unpaused.set()
        return True

    def expect_progress(self, within: float, stall_timeout: float) -> None:
        """The source is alive and will emit within `within` s (plus the stall timeout)."""
        self.deadline = trio.current_time() + within + stall_timeout


Emit = Callable[[SourceRuntime, Sequence[Fact], float], Awaitable[None]]
"""emit(runtime, facts, arrived_at): log facts that arrived at trio time `arrived_at`."""
Feed = Callable[[SourceRuntime, Emit], Awaitable[None]]


@dataclass(frozen=True)
class LoadedData:
    session: str
    origin: str
    facts: list[Fact]
    times_ms: list[int] = field(init=False)  # each fact's time in the feed (`feed_times`)

    def __post_init__(self) -> None:
        # Computed once with the load, on its worker thread, not at every restart.
        object.__setattr__(self, "times_ms", feed_times(self.facts))


def load_recording(path: Path, session: str | None) -> LoadedData:
    """The facts of a recording or archive files, in feed order (blocking)."""
    inputs = read_input(path, session)
    if len(inputs) > 1:
        keys = ", ".join(item.session for item in inputs)
        raise UserError(f"{path}: holds {len(inputs)} sessions ({keys}); set the one to replay")
    (item,) = inputs
    if isinstance(item, ArchiveInput):
        return LoadedData(item.session, item.origin, list(read_facts(item.session, item.files)))
    if isinstance(item, PageInput):
        raise UserError(f"{path}: a Jolpica page, not a feed recording (`ingest` takes it)")
    return LoadedData(item.session, item.origin, list(item.recording.facts(item.session)))


def simulated_folder(settings: SourceSettings, state_dir: Path) -> Path:
    """Where a simulator source writes its race (named so the session key says it)."""
    name = f"Simulated_{settings.track.title()}_Grand_Prix__seed{settings.seed}_Race"
    return state_dir / "simulated" / name


def load_simulation(settings: SourceSettings, state_dir: Path) -> LoadedData:
    folder = simulated_folder(settings, state_dir)
    write_race(
        folder,
        track=settings.track,
        seed=settings.seed,
        cars=settings.cars,
        laps=settings.laps,
        telemetry_hz=settings.telemetry_hz,
    )
    return load_recording(folder, settings.session)


def replay_feed(
    load: Callable[[], LoadedData], *, stall_timeout: float, on_session: Callable[[str, str], None]
) -> Feed:
    """A feed that replays loaded facts at the source's speed, resuming at its position."""
    loaded: list[LoadedData] = []  # loaded once, kept across restarts

    async def feed(runtime: SourceRuntime, emit: Emit) -> None:
        runtime.expect_progress(0, stall_timeout)
        if not loaded:
            # Loading reads and frames a whole session: minutes of feed in one go.
            runtime.deadline = math.inf
            loaded.append(await trio.to_thread.run_sync(load))
        data = loaded[0]
        runtime.session = data.session
        runtime.total = len(data.facts)
        on_session(data.session, data.origin)
        await _replay(runtime, emit, data, stall_timeout)

    return feed


async def _replay(
    runtime: SourceRuntime, emit: Emit, data: LoadedData, stall_timeout: float
) -> None:
    facts, times = data.facts, data.times_ms
    speed = runtime.settings.speed
    start = runtime.position
    if start >= len(facts):
        return
    wall_start = trio.current_time()

    def due(index: int) -> float:
        return wall_start + (times[index] - times[start]) / 1000 / speed

    i = start
    while i < len(facts):
        await runtime.unpaused.wait()
        now = trio.current_time()
        if speed > 0 and due(i) > now:
            runtime.expect_progress(due(i) - now, stall_timeout)
            await trio.sleep_until(due(i))
            continue
        end = i + 1
        while end < len(facts) and end - i < MAX_BATCH and (speed <= 0 or due(end) <= now):
            end += 1
        await emit(runtime, facts[i:end], due(end - 1) if speed > 0 else now)
        i = end
        runtime.expect_progress(0, stall_timeout)


def feed_times(facts: Sequence[Fact]) -> list[int]:
    """Each fact's time in the feed (ms): its offset, or the latest offset before it
    (a quarantined line has none), so that the times never go backwards."""
    times: list[int] = []
    reached = 0
    for fact in facts:
        offset = getattr(fact, "offset_ms", None)
        if offset is not None and offset > reached:
            reached = offset
        times.append(reached)
    return times
