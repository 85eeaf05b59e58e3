"""Laps from `TimingData`: fitting the feed's scattered values to the laps they belong to.

Per driver the feed sends `NumberOfLaps` when the car crosses the line, the three
sector times as each sector ends, and `LastLapTime`. They do not arrive together:
the lap time or the last sector may come a few seconds after the lap count moved
on, or just before it. The rules, in the order a race engineer would apply them:

* a lap is the interval between two increments of `NumberOfLaps`; its number is the
  count after the increment;
* a value that arrives within `LATE_VALUE_WINDOW_MS` after the count moved on, and
  that the just-completed lap still lacks, belongs to that lap (late values);
* any other value belongs to the lap in progress;
* a lap time is never invented: a lap without `LastLapTime` is untimed;
* a lap is emitted once the late-value window has passed (or the stream ends), so
  the result depends only on the messages and their stream offsets — replay gives
  the same laps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from f1daemon.domain.events import LapCompleted
from f1daemon.feed.state import JSON
from f1daemon.feed.stints import StintTracker
from f1daemon.feed.timing import driver_number, parse_time_ms

LATE_VALUE_WINDOW_MS = 10_000
SECTOR_SUM_TOLERANCE_MS = 100  # the feed rounds each sector to the millisecond


@dataclass
class _LapValues:
    """What the feed has said so far about one lap."""

    sectors: list[int | None] = field(default_factory=lambda: [None, None, None])
    lap_time_ms: int | None = None
    pit_in: bool = False
    pit_out: bool = False
    flags: list[str] = field(default_factory=list)


@dataclass
class _ClosedLap:
    """A lap whose count has moved on, still open to late values."""

    number: int
    closed_at_ms: int
    values: _LapValues
    stint: int | None


@dataclass
class _DriverTiming:
    completed: int | None = None
    current: _LapValues = field(default_factory=_LapValues)
    closing: _ClosedLap | None = None
    in_pit: bool | None = None  # None until the feed has said
    pit_out: bool | None = None


@dataclass
class LapFitter:
    """Derives `LapCompleted` events from TimingData messages, one driver at a time."""

    session: str
    stints: StintTracker
    drivers: dict[int, _DriverTiming] = field(default_factory=dict)

    def on_message(
        self, message: JSON, session_time_ms: int, *, keyframe: bool
    ) -> list[LapCompleted]:
        """Apply one TimingData message; return the laps whose window has now passed.

        `keyframe` marks a full snapshot (the first message of a stream): lap counts
        in it are where the session already stands, not laps completed now.
        """
        done = self.due(session_time_ms)
        lines = message.get("Lines") if isinstance(message, dict) else None
        if not isinstance(lines, dict):
            return done
        for key, patch in lines.items():
            driver = driver_number(key)
            if driver is None or not isinstance(patch, dict):
                continue
            timing = self.drivers.setdefault(driver, _DriverTiming())
            done.extend(self._apply(driver, timing, patch, session_time_ms, keyframe=keyframe))
        return done

    def due(self, session_time_ms: int) -> list[LapCompleted]:
        """Emit the laps whose late-value window has passed by `session_time_ms`."""
        done: list[LapCompleted] = []
        for driver, timing in self.drivers.items():
            closing = timing.closing
            if (
                closing is not None
                and session_time_ms - closing.closed_at_ms > LATE_VALUE_WINDOW_MS
            ):
                done.append(self._emit(driver, closing))
                timing.closing = None
        return done

    def finish(self) -> list[LapCompleted]:
        """Emit every lap still waiting for late values (the stream has ended)."""
        done: list[LapCompleted] = []
        for driver, timing in self.drivers.items():
            if timing.closing is not None:
                done.append(self._emit(driver, timing.closing))
                timing.closing = None
        return done

    def _apply(
        self,
        driver: int,
        timing: _DriverTiming,
        patch: dict[str, JSON],
        now: int,
        *,
        keyframe: bool,
    ) -> list[LapCompleted]:
        done: list[LapCompleted] = []
        # Only a change of a known state is an event on this lap: the first state the
        # feed tells (e.g. in the garage before the start) is where the car already is.
        in_pit = patch.get("InPit")
        if isinstance(in_pit, bool):
            if in_pit and timing.in_pit is False:
                timing.current.pit_in = True
            timing.in_pit = in_pit
        pit_out = patch.get("PitOut")
        if isinstance(pit_out, bool):
            if pit_out and timing.pit_out is False:
                timing.current.pit_out = True
            timing.pit_out = pit_out
        count = patch.get("NumberOfLaps")
        if isinstance(count, int) and not isinstance(count, bool):
            if keyframe or (timing.completed is None and count > 1):
                # Joined mid-session: earlier laps are not ours to reconstruct.
                timing.completed = count
            elif count > (timing.completed or 0):
                done.extend(self._close(driver, timing, count, now))
        sectors = patch.get("Sectors")
        if isinstance(sectors, list):
            sectors = {str(i): s for i, s in enumerate(sectors)}
        if isinstance(sectors, dict):
            for index_key, sector in sectors.items():
                index = driver_number(index_key)
                if index is not None and index < 3 and isinstance(sector, dict):
                    self._sector(timing, index, parse_time_ms(sector.get("Value")), now)
        last = patch.get("LastLapTime")
        if isinstance(last, dict):
            self._lap_time(timing, parse_time_ms(last.get("Value")), now)
        return done

    def _close(
        self, driver: int, timing: _DriverTiming, count: int, now: int
    ) -> list[LapCompleted]:
        done: list[LapCompleted] = []
        if timing.closing is not None:
            done.append(self._emit(driver, timing.closing))
        previous = timing.completed or 0
        for missing in range(previous + 1, count):
            # The count jumped: those laps were driven but the feed said nothing of them.
            gap = _LapValues(flags=["lap_not_reported"])
            done.append(self._emit(driver, _ClosedLap(missing, now, gap, self._stint(driver))))
        timing.closing = _ClosedLap(count, now, timing.current, self._stint(driver))
        timing.current = _LapValues()
        timing.completed = count
        return done

    def _sector(self, timing: _DriverTiming, index: int, value: int | None, now: int) -> None:
        if value is None:
            return  # blanked for the new lap, or not timed
        closing = timing.closing
        if (
            closing is not None
            and now - closing.closed_at_ms <= LATE_VALUE_WINDOW_MS
            and closing.values.sectors[index] is None
            and all(s is None for s in timing.current.sectors[: index + 1])
        ):
            closing.values.sectors[index] = value
            return
        current = timing.current
        if current.sectors[index] is not None and current.sectors[index] != value:
            current.flags.append(f"sector{index + 1}_corrected")
        current.sectors[index] = value

    def _lap_time(self, timing: _DriverTiming, value: int | None, now: int) -> None:
        if value is None:
            return
        closing = timing.closing
        if closing is not None and now - closing.closed_at_ms <= LATE_VALUE_WINDOW_MS:
            if closing.values.lap_time_ms is None:
                closing.values.lap_time_ms = value
                return
            if closing.values.lap_time_ms == value:
                return  # the same value sent again
        # Arrived before the count moves on: the lap in progress is about to end.
        timing.current.lap_time_ms = value

    def _stint(self, driver: int) -> int | None:
        tyres = self.stints.current(driver)
        return tyres.stint if tyres else None

    def _emit(self, driver: int, lap: _ClosedLap) -> LapCompleted:
        values = lap.values
        flags = list(values.flags)
        s1, s2, s3 = values.sectors
        if (
            values.lap_time_ms is not None
            and s1 is not None
            and s2 is not None
            and s3 is not None
            and abs(s1 + s2 + s3 - values.lap_time_ms) > SECTOR_SUM_TOLERANCE_MS
        ):
            flags.append("sectors_do_not_sum_to_lap_time")
        return LapCompleted(
            session=self.session,
            driver=driver,
            lap=lap.number,
            session_time_ms=lap.closed_at_ms,
            lap_time_ms=values.lap_time_ms,
            sector1_ms=s1,
            sector2_ms=s2,
            sector3_ms=s3,
            pit_in=values.pit_in,
            pit_out=values.pit_out,
            compound=None if lap.stint is None else self.stints.compound_of(driver, lap.stint),
            stint=lap.stint,
            flags=tuple(flags),
        )
