"""Laps from `TimingData`: fitting the feed's scattered values to the laps they belong to.

Per driver the feed sends `NumberOfLaps` when the car crosses the line, the three
sector times and speed traps as the car passes them, and `LastLapTime`. They do not
arrive together: the lap time or the last sector may come a few seconds after the
lap count moved on, or just before it. The rules, in the order a race engineer
would apply them:

* a lap is the interval between two increments of `NumberOfLaps`; its number is the
  count after the increment;
* a value that arrives within `LATE_VALUE_WINDOW_MS` after the count moved on, that
  the just-completed lap still lacks, and before the new lap has a sector time,
  belongs to the completed lap (late values);
* any other value belongs to the lap in progress;
* a lap time is never invented: a lap without `LastLapTime` is untimed;
* a lap is emitted once the late-value window has passed (or the stream ends), so
  the result depends only on the messages and their stream offsets: replay gives
  the same laps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from f1daemon.domain.events import LapCompleted, PitStop, PositionChanged
from f1daemon.feed.stints import StintTracker
from f1daemon.feed.timebase import TimeBase, TimeBaseTracker
from f1daemon.feed.timing import parse_gap
from f1daemon.feed.track_status import TrackStatusTracker

if TYPE_CHECKING:
    from f1daemon._native import TimingDigestOutput, TimingEntry

LATE_VALUE_WINDOW_MS = 10_000
SECTOR_SUM_TOLERANCE_MS = 100  # the feed rounds each sector to the millisecond
NOT_ACCEPTED_FLAG = "faster_than_personal_best_but_not_marked_one"

SECTOR_SLOTS = ("sector1", "sector2", "sector3")
# The timed values of a digest entry, in its order after the lap time.
TIMED_SLOTS = (*SECTOR_SLOTS, "speed_i1", "speed_i2", "speed_fl", "speed_st")
# What a snapshot tells of the lap last completed, not of the one in progress: its time
# and its speed at the finish line (the sectors and the other traps are the lap's own).
COMPLETED_LAP_SLOTS = frozenset({"lap_time", "speed_fl"})
# A pit exit this close before the count moves on begins the new lap (FastF1: 5 s).
PIT_EXIT_LAP_START_MS = 5_000
# Longer in the pit lane than a pit stop takes, a repair or a penalty included: a stay
# in the garage or a red flag. (Pit stops in the corpus's races: 15-40 s, entry to exit.)
LONGEST_PIT_STOP_MS = 120_000
# The entry of a stay in the pits that began before we joined the session: any time.
UNSEEN_PIT_ENTRY_MS = -(2**62)
# The feed's times are to the millisecond, its message stamps up to a second later.
STAMP_TOLERANCE_MS = 1_000
# The speed trap (ST) can be passed early enough in a lap to arrive within the late
# window: it always belongs to the lap in progress (as FastF1 has it).
CURRENT_LAP_SLOTS = frozenset({"speed_st"})


@dataclass
class _LapValues:
    """What the feed has said so far about one lap."""

    started_ms: int | None
    # False for the lap in progress when we joined a session: it began before
    # `started_ms`, at a moment the feed did not show us.
    start_seen: bool = True
    session_part: int | None = None  # the qualifying part the lap began in
    values: dict[str, int] = field(default_factory=dict)
    last_value_ms: int | None = None
    pit_in: bool = False
    pit_out: bool = False
    lap_time_at_ms: int | None = None  # when the lap time came
    personal_best: bool | None = None  # LastLapTime.PersonalFastest of its lap time
    flags: list[str] = field(default_factory=list)

    def has_sector_times(self) -> bool:
        return any(slot in self.values for slot in SECTOR_SLOTS)


@dataclass
class _ClosedLap:
    """A lap whose count has moved on, still open to late values."""

    number: int
    closed_at_ms: int
    values: _LapValues
    stint: int | None
    position: int | None
    gap_to_leader: str | None
    session_part: int | None
    interval: str | None = None


@dataclass
class _PitVisit:
    entry_ms: int
    in_lap: int
    utc: datetime | None


@dataclass
class _DriverTiming:
    completed: int | None = None
    current: _LapValues = field(default_factory=lambda: _LapValues(started_ms=None))
    closing: _ClosedLap | None = None
    in_pit: bool | None = None  # None until the feed has said
    pit_out: bool | None = None
    position: int | None = None
    gap_to_leader: str | None = None
    interval: str | None = None  # IntervalToPositionAhead
    stops: int = 0
    emitted: int = 0  # laps emitted
    lap_offset: int = 0  # what the feed's count runs ahead of the laps (a pseudo-lap)
    visit: _PitVisit | None = None
    pit_exit_ms: int | None = None  # the latest pit exit
    visits: list[tuple[int, int]] = field(default_factory=list)  # (entry, exit) ms
    in_pit_when_joined: bool = False  # in the pits when we joined: the entry unseen
    laps_by_time: dict[int, int] = field(default_factory=dict)  # lap time ms -> latest lap
    laps_in_stint: dict[int, int] = field(default_factory=dict)
    best_ms: int | None = None  # best lap time the feed accepted
    # LastLapTime.PersonalFastest as merged: a patch omits it when it does not change.
    personal_fastest: bool | None = None
    # The latest value the feed sent for each timed slot (and the lap time), to tell a
    # snapshot's repeats from news when a reconnect re-sends the whole state.
    last_sent: dict[str, int] = field(default_factory=dict)


@dataclass
class LapFitter:
    """Derives `LapCompleted`, `PitStop` and `PositionChanged` events from TimingData."""

    session: str
    stints: StintTracker
    track: TrackStatusTracker
    time_base: TimeBase | TimeBaseTracker
    drivers: dict[int, _DriverTiming] = field(default_factory=dict)
    session_part: int | None = None
    _next_due: int | None = None  # earliest end of a late-value window still open

    def on_message(
        self, digest: TimingDigestOutput, now: int, *, keyframe: bool
    ) -> list[LapCompleted | PitStop | PositionChanged]:
        """Apply one digested TimingData message; return the laps, stops and positions it completes.

        The message comes through `f1daemon._native.TimingDigest` (or
        `digest_timing_stream`): typed values of what concerns laps, one entry per
        driver. Laps waiting for late values are emitted by `due()`, which the caller
        calls for every message of any topic. `keyframe` marks a full snapshot: lap
        counts in it are where the session already stands, not laps completed now.
        """
        part, entries, _ = digest
        if part is not None and part != self.session_part:
            self.session_part = part
            for timing in self.drivers.values():
                timing.best_ms = None  # the feed's personal bests count per part
        done: list[LapCompleted | PitStop | PositionChanged] = []
        for entry in entries:
            driver = entry[0]
            known = self.drivers.get(driver)  # (setdefault would build one every time)
            timing = (
                known if known is not None else self.drivers.setdefault(driver, _DriverTiming())
            )
            done.extend(self._apply(driver, timing, entry, now, keyframe=keyframe))
        return done

    def due(self, now: int) -> list[LapCompleted | PitStop | PositionChanged]:
        """Emit the laps whose late-value window has passed by `now`."""
        if self._next_due is None or now <= self._next_due:
            return []  # nothing to emit yet: skip the scan (called for every message)
        done: list[LapCompleted | PitStop | PositionChanged] = []
        self._next_due = None
        for driver, timing in self.drivers.items():
            closing = timing.closing
            if closing is None:
                continue
            if now - closing.closed_at_ms > LATE_VALUE_WINDOW_MS:
                done.extend(self._emit(driver, timing, closing))
                timing.closing = None
            else:
                self._due_at(closing.closed_at_ms)
        return done

    def _due_at(self, closed_at_ms: int) -> None:
        deadline = closed_at_ms + LATE_VALUE_WINDOW_MS
        if self._next_due is None or deadline < self._next_due:
            self._next_due = deadline

    def finish(self) -> list[LapCompleted | PitStop | PositionChanged]:
        """Emit every lap still waiting for late values, and stops without an exit.

        A lap the feed timed but whose count never moved on (the last in-lap of a
        practice or qualifying run, ending in the garage) is emitted too, flagged.
        """
        done: list[LapCompleted | PitStop | PositionChanged] = []
        for driver, timing in self.drivers.items():
            if timing.closing is not None:
                done.extend(self._emit(driver, timing, timing.closing))
                timing.closing = None
            current = timing.current
            if "lap_time" in current.values and current.last_value_ms is not None:
                current.flags.append("lap_count_never_moved_on")
                done.extend(
                    self._close(driver, timing, (timing.completed or 0) + 1, current.last_value_ms)
                )
                if timing.closing is not None:
                    done.extend(self._emit(driver, timing, timing.closing))
                    timing.closing = None
            if timing.visit is not None:
                done.append(self._stop(driver, timing, None, None))
        return done

    def lap_with_time(self, driver: int, lap_time_ms: int) -> int | None:
        """The driver's latest lap with this lap time (to match race-control messages)."""
        timing = self.drivers.get(driver)
        if timing is None:
            return None
        if (
            timing.closing is not None
            and timing.closing.values.values.get("lap_time") == lap_time_ms
        ):
            return timing.closing.number
        return timing.laps_by_time.get(lap_time_ms)

    def leader_lap(self) -> int | None:
        """The lap the leader is on: one more than the most laps completed."""
        counts = [t.completed for t in self.drivers.values() if t.completed is not None]
        return max(counts) + 1 if counts else None

    def _apply(
        self,
        driver: int,
        timing: _DriverTiming,
        entry: TimingEntry,
        now: int,
        *,
        keyframe: bool,
    ) -> list[LapCompleted | PitStop | PositionChanged]:
        (_, count, in_pit, pit_out, position, lap_time, personal_best, *timed, gap, interval) = (
            entry
        )
        if count is not None:
            count -= timing.lap_offset
        timing.gap_to_leader = gap
        timing.interval = interval
        done: list[LapCompleted | PitStop | PositionChanged] = []
        if count is not None and timing.completed is not None and count < timing.completed:
            # A stale update re-sent after newer ones (the count never goes back): all it
            # carries is old, so none of it is applied.
            timing.current.flags.append("stale_update_ignored")
            return done
        if position is not None and position > 0 and position != timing.position:
            timing.position = position
            done.append(
                PositionChanged(
                    session=self.session,
                    session_time_ms=now,
                    utc=self.time_base.utc_at(now),
                    driver=driver,
                    position=position,
                )
            )
        # Entering the pit lane and crossing the line in one message: the in-lap is the
        # lap that ends; leaving it and crossing the line: the out-lap is the one that
        # begins. So InPit is applied before the count moves on, PitOut after.
        if in_pit is not None:
            self._pit_entry(timing, in_pit, now)
        # A snapshot of a driver already followed (a live reconnect's) re-sends the
        # whole state: only what changed since is news, as in a patch.
        resent = keyframe and timing.completed is not None
        joined = False
        if count is not None:
            if (keyframe and not resent) or (timing.completed is None and count > 1):
                # Joined mid-session: earlier laps are not ours to reconstruct.
                timing.completed = count
                timing.current.started_ms = now
                timing.current.start_seen = False
                joined = True
                timing.in_pit_when_joined = bool(timing.in_pit) and timing.visit is None
            elif count > (timing.completed or 0):
                done.extend(self._close(driver, timing, count, now))
        if pit_out is not None:
            done.extend(self._pit_exit(driver, timing, pit_out, now))
        # Joined at a line crossing, or at a snapshot that still shows the last sector
        # (the feed clears the sectors as the next lap's first comes): every value is
        # of the lap the count says is done, which began before we joined.
        of_completed_lap = joined and (not keyframe or timed[len(SECTOR_SLOTS) - 1] is not None)
        if personal_best is not None:
            timing.personal_fastest = personal_best
            if lap_time is None:
                _mark_latest_lap_time(timing, personal_best)
        for slot, value in (*zip(TIMED_SLOTS, timed, strict=True), ("lap_time", lap_time)):
            if value is None or (resent and timing.last_sent.get(slot) == value):
                continue
            timing.last_sent[slot] = value
            if of_completed_lap or (joined and slot in COMPLETED_LAP_SLOTS):
                # Not the lap in progress's: a snapshot's LastLapTime and finish-line
                # speed are always the completed lap's.
                continue
            if slot == "lap_time":
                self._lap_time(timing, value, personal_best, now)
            else:
                self._value(timing, slot, value, now)
        return done

    def _lap_time(
        self, timing: _DriverTiming, value: int, personal_best: bool | None, now: int
    ) -> None:
        lap = self._value(timing, "lap_time", value, now)
        if lap is None:
            return
        lap.personal_best = timing.personal_fastest
        # The feed marks each new lap time as a personal best or not. A time faster
        # than the driver's best that the feed does not mark as one was not accepted
        # (a pit-lane short cut, a lap run after the flag): keep it, flagged.
        if personal_best is False and timing.best_ms is not None and value < timing.best_ms:
            lap.flags.append(NOT_ACCEPTED_FLAG)
        elif timing.best_ms is None or value < timing.best_ms:
            timing.best_ms = value

    # Only a change of a known state is an event on a lap: the first state the feed
    # tells (e.g. in the garage before the start) is where the car already is.
    def _pit_entry(self, timing: _DriverTiming, in_pit: bool, now: int) -> None:
        if in_pit and timing.in_pit is False:
            timing.current.pit_in = True
            lap = (timing.completed or 0) + 1
            timing.visit = _PitVisit(now, lap, self.time_base.utc_at(now))
        timing.in_pit = in_pit

    def _pit_exit(
        self, driver: int, timing: _DriverTiming, pit_out: bool, now: int
    ) -> list[PitStop]:
        done: list[PitStop] = []
        if pit_out and timing.pit_out is False:
            timing.current.pit_out = True
            timing.pit_exit_ms = now
            if timing.visit is not None:
                timing.visits.append((timing.visit.entry_ms, now))
                done.append(self._stop(driver, timing, now, (timing.completed or 0) + 1))
            elif timing.in_pit_when_joined:
                # A stay that began before we joined, for as long as a lap time says: no
                # pit stop of ours (its entry is unknown), but a lap time across it is
                # the time since the car last crossed the line.
                timing.visits.append((UNSEEN_PIT_ENTRY_MS, now))
            timing.in_pit_when_joined = False
        timing.pit_out = pit_out
        return done

    def _stop(
        self, driver: int, timing: _DriverTiming, exit_ms: int | None, out_lap: int | None
    ) -> PitStop:
        visit = timing.visit
        assert visit is not None  # noqa: S101  (callers check)
        timing.visit = None
        timing.stops += 1
        return PitStop(
            session=self.session,
            session_time_ms=visit.entry_ms,
            utc=visit.utc,
            driver=driver,
            stop=timing.stops,
            in_lap=visit.in_lap,
            out_lap=out_lap,
            pit_exit_time_ms=exit_ms,
            pit_lane_ms=None if exit_ms is None else exit_ms - visit.entry_ms,
        )

    def _close(
        self, driver: int, timing: _DriverTiming, count: int, now: int
    ) -> list[LapCompleted]:
        done: list[LapCompleted] = []
        if timing.closing is not None:
            offset = timing.lap_offset
            done.extend(self._emit(driver, timing, timing.closing))
            count -= timing.lap_offset - offset  # the lap closing was a pseudo-lap
        previous = timing.completed or 0
        stint = self.stints.current(driver)
        stint_number = stint.stint if stint else None
        for missing in range(previous + 1, count):
            # The count jumped: those laps were driven but the feed said nothing of them.
            gap = _LapValues(started_ms=None, flags=["lap_not_reported"])
            skipped = _ClosedLap(missing, now, gap, stint_number, None, None, self.session_part)
            done.extend(self._emit(driver, timing, skipped))
        # A lap belongs to the qualifying part it began in (a lap that ends after the
        # chequered flag still counts for the part it was started in).
        timing.closing = _ClosedLap(
            count,
            now,
            timing.current,
            stint_number,
            timing.position,
            timing.gap_to_leader,
            timing.current.session_part or self.session_part,
            timing.interval,
        )
        self._due_at(now)
        ended = timing.current
        timing.current = _LapValues(started_ms=now, session_part=self.session_part)
        exit_ms = timing.pit_exit_ms
        if ended.pit_out and exit_ms is not None and now - exit_ms <= PIT_EXIT_LAP_START_MS:
            # The pit exit came just before the count moved on: it begins the new lap.
            ended.pit_out = False
            timing.current.pit_out = True
        timing.completed = count
        return done

    def _value(self, timing: _DriverTiming, slot: str, value: int, now: int) -> _LapValues | None:
        """Give a value to the lap it belongs to; return that lap (None if ignored)."""
        closing = timing.closing
        if (
            closing is not None
            and slot not in CURRENT_LAP_SLOTS
            and now - closing.closed_at_ms <= LATE_VALUE_WINDOW_MS
            and slot not in closing.values.values
            and not timing.current.has_sector_times()
        ):
            closing.values.values[slot] = value
            if slot == "lap_time":
                closing.values.lap_time_at_ms = now
            return closing.values
        if (
            slot == "lap_time"
            and closing is not None
            and closing.values.values.get("lap_time") == value
        ):
            return None  # the completed lap's time sent again
        current = timing.current.values
        if slot == "lap_time" and _later_crossing(timing.current, value, now):
            # The time since the lap time came: a later crossing's, of a lap the count
            # never registered (after a stay in the garage), not a correction.
            timing.current.flags.append("later_crossing_time_ignored")
            return None
        if slot in current and current[slot] != value:
            timing.current.flags.append(f"{slot}_corrected")
        current[slot] = value
        if slot == "lap_time":
            timing.current.lap_time_at_ms = now
        timing.current.last_value_ms = now
        return timing.current

    def _lap_start(self, lap: _ClosedLap, duration_ms: int | None) -> int | None:
        """When the lap began: the previous lap's end (FastF1's LapStartTime). No lap
        begins before the session: lap 1 of a race begins at its start, whatever the
        snapshot before it said. The lap we joined a session in began its time
        (`duration_ms`) before its end."""
        if not lap.values.start_seen:
            return None if duration_ms is None else lap.closed_at_ms - duration_ms
        started = lap.values.started_ms
        base = self.time_base
        current = base if isinstance(base, TimeBase) else base.current
        session_start = current.session_start_ms
        if (
            lap.number == 1
            and session_start is not None
            and (started is None or started < session_start)
        ):
            return session_start
        return started

    def _emit(self, driver: int, timing: _DriverTiming, lap: _ClosedLap) -> list[LapCompleted]:
        values = lap.values.values
        if not timing.emitted and _is_pseudo_lap(lap):
            # The count moved on at the first pit exit (practice, qualifying): what it
            # closed was the time in the garage, not a lap. As FastF1 and OpenF1 count,
            # lap 1 is the lap that begins there, and every count is one less.
            timing.lap_offset += 1
            timing.completed = None if timing.completed is None else timing.completed - 1
            if timing.visit is not None:
                timing.visit.in_lap -= 1
            return []
        timing.emitted += 1
        flags = list(lap.values.flags)
        sectors = [values.get(slot) for slot in SECTOR_SLOTS]
        lap_time = values.get("lap_time")
        line_to_line = None
        if _spans_a_pit_stay(lap.values, lap_time, timing.visits):
            # Not this lap's time (FastF1, OpenF1: untimed), kept as what it is.
            line_to_line, lap_time = lap_time, None
        timed_sectors = [s for s in sectors if s is not None]
        if (
            lap_time is not None
            and len(timed_sectors) == len(sectors)
            and abs(sum(timed_sectors) - lap_time) > SECTOR_SUM_TOLERANCE_MS
        ):
            flags.append("sectors_do_not_sum_to_lap_time")
        if lap_time is not None:
            timing.laps_by_time[lap_time] = lap.number
        if lap.stint is None and self.stints.current(driver) is not None:
            # The lap was driven before TimingAppData's first stint came: on that stint
            # (as FastF1 has it).
            lap.stint = 1
        tyre_age = None
        gap_s, gap_laps = parse_gap(lap.gap_to_leader)
        interval_s, interval_laps = parse_gap(lap.interval)
        started = self._lap_start(lap, lap_time if lap_time is not None else line_to_line)
        if lap.stint is not None:
            in_stint = timing.laps_in_stint.get(lap.stint, 0) + 1
            timing.laps_in_stint[lap.stint] = in_stint
            start_laps = self.stints.start_laps_of(driver, lap.stint)
            tyre_age = None if start_laps is None else start_laps + in_stint
        completed = LapCompleted(
            session=self.session,
            session_time_ms=lap.closed_at_ms,
            utc=self.time_base.utc_at(lap.closed_at_ms),
            driver=driver,
            lap=lap.number,
            lap_time_ms=lap_time,
            line_to_line_ms=line_to_line,
            sector1_ms=sectors[0],
            sector2_ms=sectors[1],
            sector3_ms=sectors[2],
            speed_i1_kmh=values.get("speed_i1"),
            speed_i2_kmh=values.get("speed_i2"),
            speed_fl_kmh=values.get("speed_fl"),
            speed_st_kmh=values.get("speed_st"),
            pit_in=lap.values.pit_in,
            pit_out=lap.values.pit_out,
            compound=None if lap.stint is None else self.stints.compound_of(driver, lap.stint),
            stint=lap.stint,
            tyre_age_laps=tyre_age,
            track_statuses=self.track.statuses_between(lap.values.started_ms, lap.closed_at_ms),
            position=lap.position,
            gap_to_leader=lap.gap_to_leader,
            gap_to_leader_s=gap_s,
            gap_to_leader_laps=gap_laps,
            interval_s=interval_s,
            interval_laps=interval_laps,
            session_part=lap.session_part,
            flags=tuple(flags),
            lap_start_time_ms=started,
            date_start=None if started is None else self.time_base.utc_at(started),
            is_personal_best=None if lap_time is None else bool(lap.values.personal_best),
            fresh_tyre=None if lap.stint is None else self.stints.new_of(driver, lap.stint),
        )
        return [completed]


def _mark_latest_lap_time(timing: _DriverTiming, personal_best: bool) -> None:
    """PersonalFastest sent without its lap time: it is about the latest lap time."""
    if "lap_time" in timing.current.values:
        timing.current.personal_best = personal_best
    elif timing.closing is not None and "lap_time" in timing.closing.values.values:
        timing.closing.values.personal_best = personal_best


def _spans_a_pit_stay(lap: _LapValues, lap_time: int | None, visits: list[tuple[int, int]]) -> bool:
    """A lap time during which the car spent longer in the pits than any pit stop takes:
    the time since it last crossed the line before a stay in the garage (or a red flag
    in the pit lane), not a lap's."""
    at = lap.lap_time_at_ms
    if lap_time is None or at is None:
        return False
    began = at - lap_time
    in_pits = sum(max(0, min(exit_ms, at) - max(entry, began)) for entry, exit_ms in visits)
    return in_pits > LONGEST_PIT_STOP_MS


def _later_crossing(lap: _LapValues, value: int, now: int) -> bool:
    """A second lap time that is the time since the first came (within a second)."""
    first = lap.lap_time_at_ms
    return (
        first is not None
        and "lap_time" in lap.values
        and abs((now - first) - value) <= STAMP_TOLERANCE_MS
    )


def _is_pseudo_lap(lap: _ClosedLap) -> bool:
    """A first "lap" without a single value: the car was in the garage (FastF1 drops
    it too, as its "pseudo out-lap")."""
    return (
        not lap.values.values
        and not lap.values.pit_in
        and "lap_not_reported" not in lap.values.flags
    )
