"""Neutralisations (safety car, virtual safety car, red flag) detected live, fact by fact.

`NeutralisationPeriod` (see `track_status`) is emitted when a period *ends*. A race
engineer needs to know when it *starts*, and from whatever evidence arrives first, so
this detector emits `NeutralisationDetected` the moment one kind of evidence is
sufficient and `NeutralisationCleared` when that evidence says it is over. Each kind
of evidence (`source`) keeps its own periods, numbered from 1, so a period seen by the
track status, race control and the timing is told three times, each at the earliest
moment its own evidence allowed: a consumer compares or combines them.

Evidence, by source:

* `track_status`: codes 4 SCDeployed → SC, 6 VSCDeployed / 7 VSCEnding → VSC, 5 Red →
  RED; the period is cleared when the status leaves them (the same periods as
  `NeutralisationPeriod`, told at their start).
* `race_control`: `SAFETY CAR DEPLOYED` → SC, `VIRTUAL SAFETY CAR DEPLOYED` → VSC (the
  SafetyCar category's `DEPLOYED` status), a track-wide red flag (flag `RED`) → RED;
  cleared by `TRACK CLEAR` (flag `CLEAR`, not scoped to a sector or a driver), or for a
  red flag also by a track-wide green flag. `… ENDING` and `… IN THIS LAP` only
  announce the end. A new kind replaces the open one (an SC after a VSC).
* `timing` (races and sprints only, while the session runs — see below): the field
  slows down. Each car's own green pace in a sector is the best of its last
  `REFERENCE_SECTORS` clean times there (clean: the car was not in or leaving the pit
  lane during the sector, and it is not the first sector after a standing restart;
  taken only while no timing period is open); the *field's* green pace is the second
  best of those (the best, so that slow times — a congested first lap, a slowdown not
  yet detected — do not raise it; the second, so that one glitched time does not
  lower it). A sector `SLOW_RATIO` times the field's pace or slower is slow. A period
  starts when, among the cars whose latest clean sector ended within `RECENT_MS`, at
  least `MIN_CARS` and `START_FRACTION` of them are slow (judged when a slow sector
  arrives); it is cleared when at least `1 - END_FRACTION` of the cars with a sector
  since its start are back within `BACK_RATIO` (hysteresis: it does not flicker while
  the field bunches up). A car whose latest sector was not clean is left out until it
  has a clean one, so cars pitting under a safety car neither count as slow nor as
  green. The kind is UNKNOWN: at its start a VSC and an SC look alike (drivers keep
  to a minimum-time delta until they reach the safety car), and a VSC followed by an
  SC is one slowdown. A red flag shows as the field parked in the pit lane: `MIN_CARS`
  and `RED_FRACTION` of the cars that ran in the last `RED_ACTIVE_MS` have been in the
  pit lane for `RED_DWELL_MS` (longer than a pit stop or a drive through the pit lane
  behind a safety car) → RED, cleared when half of them have left it.

Why timing only in races and sprints: in practice and qualifying most cars on track are
not pushing (out-laps, cool-down laps, aborted laps): at the end of every qualifying
part the whole field is on a cool-down lap 30-60 % slower than its push lap, which is
exactly what a neutralisation looks like in sector times. In a race every car races
every lap, so a field-wide slowdown has one cause. The session type comes from
`SessionInfo.Type` (a sprint's is `Race`), else from the session key (`…_Race`,
`…_Sprint`). The timing evidence is taken only while `SessionStatus` is `Started`
(the red-flag rule also while `Aborted`): before the start, after the chequered flag
(cool-down lap) and during a suspension, slow sectors mean nothing.

The detector is causal: every decision uses only the facts up to the current one, so
a session derived at once or fact by fact gives the same events.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import TYPE_CHECKING

from f1daemon.domain.events import (
    NeutralisationCleared,
    NeutralisationDetected,
    RaceControlMessage,
    TrackStatusChanged,
)
from f1daemon.feed.state import JSON
from f1daemon.feed.timebase import TimeBase, TimeBaseTracker
from f1daemon.feed.track_status import NEUTRALISATION_KIND

if TYPE_CHECKING:
    from f1daemon._native import TimingDigestOutput

TRACK_STATUS = "track_status"
RACE_CONTROL = "race_control"
TIMING = "timing"

# --- timing thresholds (see the module's docstring and the report in the tests) ---
SLOW_RATIO = 1.2  # a sector 20 % slower than green pace: VSC ≈ +25-40 %, SC more
BACK_RATIO = 1.1  # back at pace: within 10 % (hysteresis: a period does not flicker)
START_FRACTION = 0.75  # of the cars with a recent clean sector
END_FRACTION = 0.25
MIN_CARS = 6
RECENT_MS = 120_000  # a car's latest clean sector counts this long
MIN_PACE_CARS = 3  # cars with a green time needed before a sector has a field pace
REFERENCE_SECTORS = 5  # green pace: best of the last five clean times of a sector
PIT_MARGIN_MS = 5_000  # a pit-lane state this close to a sector's span taints it
RED_FRACTION = 0.8
RED_DWELL_MS = 90_000
RED_ACTIVE_MS = 300_000  # cars that ran (a sector or a pit entry) this recently count

Event = NeutralisationDetected | NeutralisationCleared

_NO_SECTORS = (None, None, None)
_RACE_KEY = re.compile(r"_(Race|Sprint)$")


@dataclass(slots=True)
class _Open:
    kind: str
    period: int
    start_ms: int


@dataclass(slots=True)
class _Car:
    green: tuple[deque[int], deque[int], deque[int]] = field(
        default_factory=lambda: (
            deque(maxlen=REFERENCE_SECTORS),
            deque(maxlen=REFERENCE_SECTORS),
            deque(maxlen=REFERENCE_SECTORS),
        )
    )
    best: list[int | None] = field(default_factory=lambda: [None, None, None])  # of `green`
    last_values: list[int | None] = field(default_factory=lambda: [None, None, None])
    latest_ms: int | None = None  # when its latest clean sector (with a green pace) ended
    latest_ratio: float = 1.0
    latest_sector: int = 0
    in_pit: bool = False
    pit_seen_ms: int | None = None  # last moment it was in or leaving the pit lane
    pit_entry_ms: int | None = None  # when it entered the pit lane it is in
    skip_next: bool = False  # the first sector after a restart is not clean
    last_run_ms: int | None = None  # last sector or pit entry


@dataclass
class NeutralisationDetector:
    """Detects neutralisations from track status, race control and timing, live."""

    session: str
    time_base: TimeBase | TimeBaseTracker
    race: bool | None = None  # None: not known yet (SessionInfo, else the session key)
    feed_status: str | None = None
    cars: dict[int, _Car] = field(default_factory=dict)
    _open: dict[str, _Open] = field(default_factory=dict)
    _periods: dict[str, int] = field(default_factory=dict)
    next_check_ms: int | None = None  # when a car's pit dwell next reaches RED_DWELL_MS (tick)
    _started: bool = False
    _parked: tuple[int, ...] = ()  # the cars a timing red flag found parked
    _pace: list[float | None] = field(default_factory=lambda: [None, None, None])

    def __post_init__(self) -> None:
        self._key_says_race = _RACE_KEY.search(self.session.rstrip("/")) is not None

    # --- context -------------------------------------------------------------------

    def on_session_info(self, message: JSON) -> None:
        """Note the session's type (`SessionInfo.Type`; a sprint's is `Race`)."""
        if isinstance(message, dict):
            kind = message.get("Type")
            if isinstance(kind, str) and kind:
                self.race = kind == "Race"

    def on_session_status(self, status: str) -> None:
        """Note the feed's session status; a restart makes every car's next sector unclean."""
        if status == "Started" and self._started and self.feed_status != "Started":
            for car in self.cars.values():
                car.skip_next = True  # a standing restart (after a red flag)
        self._started = self._started or status == "Started"
        self.feed_status = status

    def _timing_applies(self) -> bool:
        race = self.race if self.race is not None else self._key_says_race
        return race and self.feed_status in (None, "Started", "Aborted")

    # --- track status and race control ---------------------------------------------

    def on_track_status(self, change: TrackStatusChanged) -> list[Event]:
        """Apply a change of the track status."""
        now, utc = change.session_time_ms, change.utc
        kind = NEUTRALISATION_KIND.get(change.status)
        name = f"track status {change.status}" + (f" {change.message}" if change.message else "")
        if kind is None:
            return self._clear(TRACK_STATUS, now, utc, name)
        return self._start(TRACK_STATUS, kind, now, utc, name)

    def on_race_control(self, message: RaceControlMessage) -> list[Event]:
        """Apply one race-control message."""
        now, utc = message.session_time_ms, message.utc
        text = message.message.strip().upper()
        quoted = f"race control: {message.message.strip()}"
        track_wide = message.scope in (None, "Track")
        if (message.category == "SafetyCar" and (message.status or "").upper() == "DEPLOYED") or (
            text.endswith("SAFETY CAR DEPLOYED")
        ):
            kind = "VSC" if "VIRTUAL" in text else "SC"
            return self._start(RACE_CONTROL, kind, now, utc, quoted)
        if message.flag == "RED" and track_wide:
            return self._start(RACE_CONTROL, "RED", now, utc, quoted)
        opened = self._open.get(RACE_CONTROL)
        if (
            opened is not None
            and track_wide
            and (message.flag == "CLEAR" or (message.flag == "GREEN" and opened.kind == "RED"))
        ):
            return self._clear(RACE_CONTROL, now, utc, quoted)
        return []

    # --- timing ----------------------------------------------------------------------

    def on_timing(self, digest: TimingDigestOutput, now: int, *, keyframe: bool) -> list[Event]:
        """Apply one digested TimingData message."""
        # Sectors are judged only in a race running under its own steam (see above).
        judged = not keyframe and self.feed_status in (None, "Started") and self._timing_applies()
        opened = self._open.get(TIMING)
        evaluate = False
        cars = self.cars
        for entry in digest[1]:
            in_pit = entry[2]
            pit_out = entry[3]
            sectors = entry[7:10]
            if sectors == _NO_SECTORS and in_pit is None and pit_out is None:
                continue  # a lap count, a position, a speed: nothing for this detector
            car = cars.get(entry[0])
            if car is None:
                car = cars[entry[0]] = _Car()
            if in_pit is not None:
                if in_pit and not car.in_pit:
                    car.pit_entry_ms = car.last_run_ms = now
                    self._due_red(now + RED_DWELL_MS)
                elif not in_pit:
                    car.pit_entry_ms = None
                car.in_pit = in_pit
            if in_pit or pit_out or car.in_pit:
                car.pit_seen_ms = now
            if sectors == _NO_SECTORS:
                continue
            last = car.last_values
            for index, value in enumerate(sectors):
                if value is not None and value > 0 and value != last[index]:
                    # (else no time, or the same time sent again)
                    last[index] = value
                    if judged and self._sector(car, index, value, now, opened):
                        evaluate = True
        if not (evaluate or self._parked) and (
            self.next_check_ms is None or now < self.next_check_ms
        ):
            return []  # the common case: nothing to judge
        events: list[Event] = []
        if self._parked:
            events.extend(self._red_over(now))
        if evaluate:
            events.extend(self._slowdown(now))
        events.extend(self.tick(now))
        return events

    def _sector(self, car: _Car, index: int, value: int, now: int, opened: _Open | None) -> bool:
        """Take a new sector time; True when it may change the verdict (a slow one while
        no period is open, one back at pace while one is)."""
        car.last_run_ms = now
        if car.skip_next or (
            car.pit_seen_ms is not None and car.pit_seen_ms >= now - value - PIT_MARGIN_MS
        ):
            car.skip_next = False
            car.latest_ms = None  # its pace now is not known: it is not compared
            return False
        pace = self._pace[index]
        verdict = False
        if pace is not None:
            ratio = value / pace
            car.latest_ms, car.latest_ratio, car.latest_sector = now, ratio, index + 1
            verdict = ratio >= SLOW_RATIO if opened is None else ratio < BACK_RATIO
        if opened is None:
            green = car.green[index]
            best = car.best[index]
            dropped = green[0] if len(green) == REFERENCE_SECTORS else None
            green.append(value)
            if best is None or value < best:
                new = value
            elif dropped == best:
                new = min(green)
            else:
                return verdict  # its best is unchanged, so is the field's pace
            car.best[index] = new
            # The field's pace (the second best) moves only if this car's best was or
            # becomes one of the two best.
            if pace is None or new < pace or (best is not None and best <= pace):
                self._pace[index] = self._field_pace(index)
        return verdict

    def _field_pace(self, index: int) -> float | None:
        # The field's green pace in a sector: the second best of the cars' own (each the
        # best of its last clean times). The best, because a slow time (a congested
        # first lap, a slowdown not yet detected) must not raise it; the second, so
        # that one glitched time does not lower it.
        first = second = None
        count = 0
        for car in self.cars.values():
            best = car.best[index]
            if best is None:
                continue
            count += 1
            if first is None or best < first:
                first, second = best, first
            elif second is None or best < second:
                second = best
        return float(second) if count >= MIN_PACE_CARS and second is not None else None

    def tick(self, now: int) -> list[Event]:
        """Check the red-flag rule (pit-lane dwell) when a dwell may have been reached."""
        if self.next_check_ms is None or now < self.next_check_ms:
            return []
        self.next_check_ms = None
        if not self._timing_applies():
            return []
        return self._red(now)

    def _due_red(self, at: int) -> None:
        if self.next_check_ms is None or at < self.next_check_ms:
            self.next_check_ms = at

    def _slowdown(self, now: int) -> list[Event]:
        opened = self._open.get(TIMING)
        if opened is not None and opened.kind == "RED":
            return []
        since = now - RECENT_MS
        recent = [
            (driver, car)
            for driver, car in self.cars.items()
            if car.latest_ms is not None and car.latest_ms >= since
        ]
        if len(recent) < MIN_CARS:
            return []
        if opened is None:
            return self._slowdown_start(now, recent)
        return self._slowdown_end(now, recent, opened)

    def _slowdown_start(self, now: int, recent: list[tuple[int, _Car]]) -> list[Event]:
        slow = [(d, c) for d, c in recent if c.latest_ratio >= SLOW_RATIO]
        if len(slow) < MIN_CARS or len(slow) < START_FRACTION * len(recent):
            return []
        ratio = median(c.latest_ratio for _, c in slow)
        latest = [c.latest_ms for _, c in slow if c.latest_ms is not None]
        sectors = sorted({c.latest_sector for _, c in slow})
        evidence = (
            f"{len(slow)} of {len(recent)} running cars at least "
            f"{round((SLOW_RATIO - 1) * 100)} % slower than the field's green pace in their "
            f"latest sector (median {round((ratio - 1) * 100)} % slower; sector"
            f"{'s' if len(sectors) > 1 else ''} {', '.join(map(str, sectors))}; "
            f"completed within {round((now - min(latest)) / 1000)} s)"
        )
        return self._start(
            TIMING,
            "UNKNOWN",
            now,
            self.time_base.utc_at(now),
            evidence,
            cars=tuple(sorted(d for d, _ in slow)),
            cars_compared=len(recent),
            ratio=round(ratio, 3),
        )

    def _slowdown_end(self, now: int, recent: list[tuple[int, _Car]], opened: _Open) -> list[Event]:
        # Only sectors that ended after the period began say whether it is over.
        after = [(d, c) for d, c in recent if (c.latest_ms or 0) > opened.start_ms]
        if len(after) < MIN_CARS:
            return []
        back = [1 for _, c in after if c.latest_ratio < BACK_RATIO]
        if len(back) < (1 - END_FRACTION) * len(after):
            return []
        evidence = (
            f"{len(back)} of {len(after)} running cars back within "
            f"{round((BACK_RATIO - 1) * 100)} % of the field's green pace in their latest sector"
        )
        return self._clear(TIMING, now, self.time_base.utc_at(now), evidence)

    def _red(self, now: int) -> list[Event]:
        active = [
            (driver, car)
            for driver, car in self.cars.items()
            if car.last_run_ms is not None and car.last_run_ms >= now - RED_ACTIVE_MS
        ]
        pending = [c.pit_entry_ms for _, c in active if c.in_pit and c.pit_entry_ms is not None]
        later = [at + RED_DWELL_MS for at in pending if at + RED_DWELL_MS > now]
        if later:
            self._due_red(min(later))
        parked = [
            (d, c)
            for d, c in active
            if c.in_pit and c.pit_entry_ms is not None and now - c.pit_entry_ms >= RED_DWELL_MS
        ]
        opened = self._open.get(TIMING)
        if opened is not None and opened.kind == "RED":
            return []
        if len(parked) < MIN_CARS or len(parked) < RED_FRACTION * len(active):
            return []
        evidence = (
            f"{len(parked)} of {len(active)} running cars in the pit lane for "
            f"{RED_DWELL_MS // 1000} s or more"
        )
        self._parked = tuple(d for d, _ in parked)
        return self._start(
            TIMING,
            "RED",
            now,
            self.time_base.utc_at(now),
            evidence,
            cars=tuple(sorted(d for d, _ in parked)),
            cars_compared=len(active),
        )

    def _red_over(self, now: int) -> list[Event]:
        # A red flag seen by timing is over when half the parked cars have left the pit lane.
        gone = [d for d in self._parked if not self.cars[d].in_pit]
        if 2 * len(gone) < len(self._parked):
            return []
        self._parked = ()
        evidence = f"{len(gone)} of the cars parked in the pit lane have left it"
        return self._clear(TIMING, now, self.time_base.utc_at(now), evidence)

    # --- periods -------------------------------------------------------------------

    def _start(
        self,
        source: str,
        kind: str,
        now: int,
        utc: datetime | None,
        evidence: str,
        *,
        cars: tuple[int, ...] = (),
        cars_compared: int | None = None,
        ratio: float | None = None,
    ) -> list[Event]:
        opened = self._open.get(source)
        if opened is not None and opened.kind == kind:
            return []
        events: list[Event] = []
        if opened is not None:
            events.extend(self._clear(source, now, utc, f"{evidence} (a new kind)"))
        period = self._periods.get(source, 0) + 1
        self._periods[source] = period
        self._open[source] = _Open(kind, period, now)
        events.append(
            NeutralisationDetected(
                session=self.session,
                session_time_ms=now,
                utc=utc,
                source=source,
                period=period,
                kind=kind,
                evidence=evidence,
                cars=cars,
                cars_compared=cars_compared,
                ratio=ratio,
            )
        )
        return events

    def _clear(self, source: str, now: int, utc: datetime | None, evidence: str) -> list[Event]:
        opened = self._open.pop(source, None)
        if opened is None:
            return []
        return [
            NeutralisationCleared(
                session=self.session,
                session_time_ms=now,
                utc=utc,
                source=source,
                period=opened.period,
                kind=opened.kind,
                started_time_ms=opened.start_ms,
                evidence=evidence,
            )
        ]
