"""Derivation of the 2018 Baku race, ours vs FastF1's, and whether the laps agree.

* ours: the session folder's files → derived events in memory (no store):
  `read_messages` + `derive`, every topic (the same derivation an ingest runs over
  the log's facts; `tests/test_derivation_paths.py` proves the events identical);
* FastF1: its own reader (`fastf1._api.fetch_page`, served the local file instead of
  an HTTP response: decode, split on CRLF, `parse` each line) of TimingData and
  TimingAppData, then `timing_data` and `timing_app_data` on those responses.

Both best of 3, parsing included. Then FastF1's timed laps (LapTime not NaT) are
matched to our `LapCompleted` on (driver, lap number); each disagreement is listed with
a reason found in the raw TimingData messages around it.

FastF1 is the optional `bench` dependency (`fastf1>=3.4`); without it this benchmark
says so and returns. FastF1 makes no network request here: the HTTP getter
it reads through is replaced by a local file read, and its caches are disabled.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from f1daemon._native import split_json_stream
from f1daemon.domain.events import LapCompleted
from f1daemon.feed.pipeline import derive
from f1daemon.sources.archive import read_messages, topic_files

BAKU = "livetiming/2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
REPEATS = 3
REQUIRED_SPEED_UP = 10.0
REQUIRED_AGREEMENT = 0.995
LATE_WINDOW_MS = 5_000  # FastF1 counts values up to 5 s after the count moved on as late
SLOW_LAP_MS = 150_000  # FastF1 drops longer lap times unless the sectors so far sum to them
SECTOR_TOLERANCE_MS = 100  # sectors are rounded to the ms each
CONTEXT_LISTED = 20  # disagreements shown with their raw messages; the rest by reason only


def _testdata() -> Path:
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "f1data"
    return Path(os.environ.get("F1DAEMON_TESTDATA", default))


def _best(repeats: int, work: Callable[[], object]) -> float:
    """The shortest of `repeats` runs, each with its result dropped.

    Each run starts from a collected heap whose objects are frozen out of the garbage
    collector's reach, so that neither side pays for the other's imports (pandas'
    heap would otherwise slow every full collection during our run too).
    """
    times = []
    for _ in range(repeats):
        gc.collect()
        gc.freeze()
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
        gc.unfreeze()
    return min(times)


# --- FastF1's side ------------------------------------------------------------------


@contextmanager
def _offline(fastf1: ModuleType, api: ModuleType) -> Iterator[None]:
    """FastF1 reading local files through its own HTTP reader, with no cache, no network.

    `fetch_page(path, name)` gets `base_url + path + pages[name]` from
    `Cache.requests_get` and parses the body; here that getter reads the file the URL
    names under `path` (a local folder), so the parsing is FastF1's own.
    """

    def local_get(urls: tuple[str, ...], **_: object) -> SimpleNamespace:
        local = Path(urls[0].removeprefix(api.base_url))
        return SimpleNamespace(status_code=200, content=local.read_bytes())

    cache = fastf1.Cache
    original = cache.__dict__["requests_get"]
    fastf1.set_log_level("ERROR")  # its warnings would repeat once per timed run
    cache.set_disabled()
    cache.requests_get = staticmethod(local_get)
    try:
        yield
    finally:
        cache.requests_get = original
        cache.set_enabled()


@dataclass
class FastF1Result:
    """What FastF1 derives: its laps table, its stints table, the parsed TimingData."""

    laps: Any  # pandas.DataFrame
    stints: Any  # pandas.DataFrame
    timing_response: list[list[Any]]  # [["HH:MM:SS.mmm", message], ...]


def _fastf1_derive(api: ModuleType, folder: Path) -> FastF1Result:
    path = f"{folder}/"  # fetch_page joins base_url + path + file name
    timing_response = api.fetch_page(path, "timing_data")
    app_response = api.fetch_page(path, "timing_app_data")
    laps, _stream = api.timing_data(path, response=timing_response)
    stints = api.timing_app_data(path, response=app_response)
    return FastF1Result(laps, stints, timing_response)


# --- our side -----------------------------------------------------------------------


def _our_derive(folder: Path) -> list[LapCompleted]:
    derivation = derive("bench", enumerate(read_messages(topic_files(folder)), start=1))
    return [event for event in derivation.events if isinstance(event, LapCompleted)]


# --- the raw feed, for diagnosing ---------------------------------------------------


def _offset_ms(stamp: str) -> int:
    hours, minutes, seconds = stamp.split(":")
    whole, _, fraction = seconds.partition(".")
    millis = int((fraction + "000")[:3]) if fraction else 0
    return ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 1000 + millis


def _clock(ms: int) -> str:
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    return f"{sign}{ms // 3_600_000}:{ms // 60_000 % 60:02}:{ms // 1000 % 60:02}.{ms % 1000:03}"


def _lap_ms(text: object) -> int | None:
    """`1:43.100` / `43.100` as milliseconds; None for an empty or odd value."""
    if not isinstance(text, str) or not text:
        return None
    minutes, _, seconds = text.rpartition(":")
    try:
        return round((int(minutes or 0) * 60 + float(seconds)) * 1000)
    except ValueError:
        return None


@dataclass
class _Raw:
    """One TimingData message for one driver, reduced to what lap fitting reads."""

    offset_ms: int
    count: int | None
    lap_time: str | None  # LastLapTime.Value as sent ("" = blanked)
    sectors: dict[int, str]  # sector index → Value as sent
    in_pit: bool | None
    pit_out: bool | None

    def describe(self, lap_start_ms: int) -> str:
        parts = [f"{_clock(self.offset_ms)} ({(self.offset_ms - lap_start_ms) / 1000:+.3f} s)"]
        if self.count is not None:
            parts.append(f"NumberOfLaps={self.count}")
        parts.extend(f"S{index + 1}={value!r}" for index, value in sorted(self.sectors.items()))
        if self.lap_time is not None:
            parts.append(f"LastLapTime={self.lap_time!r}")
        if self.in_pit is not None:
            parts.append(f"InPit={self.in_pit}")
        if self.pit_out is not None:
            parts.append(f"PitOut={self.pit_out}")
        return " ".join(parts)


def _raw_by_driver(response: list[list[Any]]) -> dict[int, list[_Raw]]:
    drivers: dict[int, list[_Raw]] = {}
    for entry in response:
        if len(entry) < 2 or not isinstance(entry[1], dict):
            continue
        lines = entry[1].get("Lines")
        if not isinstance(lines, dict):
            continue
        offset = _offset_ms(entry[0])
        for key, patch in lines.items():
            if not isinstance(patch, dict) or not key.isdigit():
                continue
            raw = _reduce(offset, patch)
            if raw is not None:
                drivers.setdefault(int(key), []).append(raw)
    return drivers


def _reduce(offset: int, patch: dict[str, Any]) -> _Raw | None:
    count = patch.get("NumberOfLaps")
    last = patch.get("LastLapTime")
    lap_time = last.get("Value") if isinstance(last, dict) else None
    sectors: dict[int, str] = {}
    raw_sectors = patch.get("Sectors")
    if isinstance(raw_sectors, list):
        raw_sectors = {str(index): sector for index, sector in enumerate(raw_sectors)}
    if isinstance(raw_sectors, dict):
        for index, sector in raw_sectors.items():
            if (
                index.isdigit()
                and isinstance(sector, dict)
                and isinstance(sector.get("Value"), str)
            ):
                sectors[int(index)] = sector["Value"]
    in_pit = patch.get("InPit")
    pit_out = patch.get("PitOut")
    raw = _Raw(
        offset_ms=offset,
        count=count if isinstance(count, int) else None,
        lap_time=lap_time if isinstance(lap_time, str) else None,
        sectors=sectors,
        in_pit=in_pit if isinstance(in_pit, bool) else None,
        pit_out=pit_out if isinstance(pit_out, bool) else None,
    )
    if raw.count is None and raw.lap_time is None and not sectors and in_pit is None:
        return None
    return raw


@dataclass
class _Timeline:
    """One driver's raw messages and when the feed's lap count reached each value."""

    messages: list[_Raw]
    count_reached_ms: dict[int, int]

    @classmethod
    def of(cls, messages: list[_Raw]) -> _Timeline:
        reached: dict[int, int] = {}
        for message in messages:
            if message.count is not None and message.count not in reached:
                for count in range(max(reached, default=0) + 1, message.count + 1):
                    reached[count] = message.offset_ms
        return cls(messages, reached)

    def lap_times_sent(self, value_ms: int) -> list[_Raw]:
        return [m for m in self.messages if _lap_ms(m.lap_time) == value_ms]

    def lap_of(self, offset_ms: int) -> int:
        """The lap a value sent at `offset_ms` belongs to by FastF1's late-value rule."""
        completed = max(
            (n for n, at in self.count_reached_ms.items() if at <= offset_ms), default=0
        )
        if completed and offset_ms - self.count_reached_ms[completed] < LATE_WINDOW_MS:
            return completed
        return completed + 1

    def around(self, lap: int) -> tuple[int, list[_Raw]]:
        """The lap's end (count reached `lap`) and the messages from its start to the next."""
        end = self.count_reached_ms.get(lap)
        start = self.count_reached_ms.get(lap - 1)
        after = self.count_reached_ms.get(lap + 1)
        anchor = end if end is not None else (start or 0)
        low = start if start is not None else anchor - 200_000
        high = (after if after is not None else anchor + 200_000) + LATE_WINDOW_MS * 2
        return anchor, [m for m in self.messages if low <= m.offset_ms <= high]


# --- comparing ----------------------------------------------------------------------


@dataclass(frozen=True)
class _TheirLap:
    """One row of FastF1's laps table, in milliseconds (None for NaT)."""

    driver: int
    fastf1_lap: int  # FastF1's NumberOfLaps
    end_ms: int | None  # FastF1's Time: when the lap ended, on the stream's clock
    lap_time_ms: int | None
    sectors_ms: tuple[int | None, int | None, int | None]
    lap: int = 0  # the feed's NumberOfLaps for this lap: the number ours carries

    @property
    def sector_sum_ms(self) -> int | None:
        s1, s2, s3 = self.sectors_ms
        return None if s1 is None or s2 is None or s3 is None else s1 + s2 + s3


def _their_laps(result: FastF1Result) -> list[_TheirLap]:
    frame = result.laps
    frame = frame[frame["Driver"] != ""]
    drivers = frame["Driver"].tolist()
    numbers = frame["NumberOfLaps"].tolist()
    ends, lap_times, s1, s2, s3 = (
        [
            None if math.isnan(ms) else int(ms)
            for ms in (frame[column].dt.total_seconds() * 1000).round().tolist()
        ]
        for column in ("Time", "LapTime", "Sector1Time", "Sector2Time", "Sector3Time")
    )
    return [
        _TheirLap(int(driver), int(number), end, lap_time, (a, b, c))
        for driver, number, end, lap_time, a, b, c in zip(
            drivers, numbers, ends, lap_times, s1, s2, s3, strict=True
        )
    ]


def _feed_lap_shift(laps: list[_TheirLap], timeline: _Timeline | None) -> int:
    """How far the feed's lap count runs ahead of FastF1's for one driver: 0 or 1.

    FastF1 counts laps itself and drops a first "lap" that holds no timing, as when
    the count moves on as the car leaves the pit lane before its out-lap. Each of its
    laps whose end time (Time) lies within seconds of a count increment votes for it.
    """
    if timeline is None:
        return 0
    reached = timeline.count_reached_ms
    votes = [0, 0]
    for lap in laps:
        if lap.end_ms is None:
            continue
        distances = [
            abs(reached[lap.fastf1_lap + shift] - lap.end_ms)
            if lap.fastf1_lap + shift in reached
            else math.inf
            for shift in (0, 1)
        ]
        if min(distances) <= LATE_WINDOW_MS:  # an in-lap's end is moved to its last sector
            votes[distances.index(min(distances))] += 1
    return 1 if votes[1] > votes[0] else 0


def _aligned(
    their_laps: list[_TheirLap], timelines: dict[int, _Timeline]
) -> tuple[dict[tuple[int, int], _TheirLap], dict[int, int]]:
    """FastF1's laps keyed by (driver, the feed's lap number), and each driver's shift."""
    by_driver: dict[int, list[_TheirLap]] = {}
    for lap in their_laps:
        by_driver.setdefault(lap.driver, []).append(lap)
    shifts = {
        driver: _feed_lap_shift(laps, timelines.get(driver))
        for driver, laps in by_driver.items()
        if any(lap.end_ms is not None for lap in laps)
    }
    keyed = {}
    for lap in their_laps:
        number = lap.fastf1_lap + shifts.get(lap.driver, 0)
        keyed[lap.driver, number] = replace(lap, lap=number)
    return keyed, shifts


@dataclass
class Disagreement:
    """One of FastF1's timed laps that we do not have with the same time."""

    driver: int
    lap: int  # the feed's lap number (ours)
    fastf1_lap: int
    fastf1_ms: int
    ours: LapCompleted | None
    reason: str = ""

    @property
    def ours_ms(self) -> int | None:
        return None if self.ours is None else self.ours.lap_time_ms


def _diagnose(
    item: Disagreement,
    ours: dict[tuple[int, int], LapCompleted],
    theirs: _TheirLap,
    timeline: _Timeline | None,
) -> str:
    if timeline is None:
        return "the feed has no TimingData line for this driver"
    if item.ours is None:
        return _no_lap(item, ours, timeline)
    sent = timeline.lap_times_sent(item.fastf1_ms)
    if not sent:
        return _not_sent(item, ours, theirs, timeline)
    reached = timeline.count_reached_ms.get(item.lap, 0)
    where = ", ".join(
        f"at {_clock(m.offset_ms)} ({(m.offset_ms - reached) / 1000:+.3f}"
        f" s from the count reaching {item.lap}: lap {timeline.lap_of(m.offset_ms)} by FastF1's"
        f" {LATE_WINDOW_MS // 1000} s late-value rule)"
        for m in sent
    )
    if item.ours_ms is None:
        return f"we have no lap time although the feed sent LastLapTime {item.fastf1_ms} ms {where}"
    return _both_timed(item, item.ours, where, timeline)


def _no_lap(
    item: Disagreement, ours: dict[tuple[int, int], LapCompleted], timeline: _Timeline
) -> str:
    """We have no lap of that number."""
    for other in (item.lap - 1, item.lap + 1):
        twin = ours.get((item.driver, other))
        if twin is not None and twin.lap_time_ms == item.fastf1_ms:
            return f"lap numbering: our lap {other} carries this time"
    sent = timeline.lap_times_sent(item.fastf1_ms)
    if item.lap not in timeline.count_reached_ms and sent:
        at = sent[-1].offset_ms
        pit_in = [m.offset_ms for m in timeline.messages if m.in_pit and m.offset_ms <= at]
        how = f"InPit=True at {_clock(pit_in[-1])}, " if pit_in else ""
        return (
            f"the car's last lap: the feed's count never reached {item.lap} ({how}no count"
            f" after it) but LastLapTime came at {_clock(at)}; FastF1 keeps this lap, we never"
            " close a lap that no count ends (ours misses it)"
        )
    if item.lap not in timeline.count_reached_ms:
        return f"the feed's count never reached {item.lap}, nor did it send this lap time"
    return f"we emitted no lap {item.lap} although the feed's count reached it"


def _not_sent(
    item: Disagreement,
    ours: dict[tuple[int, int], LapCompleted],
    theirs: _TheirLap,
    timeline: _Timeline,
) -> str:
    """FastF1's time is not a LastLapTime the feed sent: it computed it."""
    from_sectors = theirs.sector_sum_ms == item.fastf1_ms
    blanked = any(
        m.lap_time == "" and timeline.lap_of(m.offset_ms) == item.lap for m in timeline.messages
    )
    previous = ours.get((item.driver, item.lap - 1))
    if from_sectors and blanked:
        return (
            "FastF1 fills the lap time from the sector sum after an empty LastLapTime;"
            " the feed sent no time for this lap"
        )
    if from_sectors and previous is not None and previous.lap_time_ms == item.fastf1_ms:
        return (
            "FastF1 fills the lap time from the sector sum, equal to the previous lap's"
            " (an unchanged LastLapTime is not re-sent); the feed sent none for this lap"
        )
    if from_sectors:
        return "FastF1's time is its sector sum; the feed never sent it as LastLapTime"
    return "FastF1's time was never sent as LastLapTime for this driver, nor is it a sector sum"


def _both_timed(item: Disagreement, our_lap: LapCompleted, where: str, timeline: _Timeline) -> str:
    """Both sides have a time, a different one: which LastLapTime each took."""
    ours_ms = our_lap.lap_time_ms or 0
    ours_where = (
        ", ".join(
            f"at {_clock(m.offset_ms)} (lap {timeline.lap_of(m.offset_ms)} by FastF1's rule)"
            for m in timeline.lap_times_sent(ours_ms)
        )
        or "never (not a LastLapTime the feed sent)"
    )
    sectors = (our_lap.sector1_ms, our_lap.sector2_ms, our_lap.sector3_ms)
    verdict = ""
    if None not in sectors:
        total = sum(s or 0 for s in sectors)
        if abs(total - item.fastf1_ms) <= SECTOR_TOLERANCE_MS < abs(total - ours_ms):
            verdict = f"; our own sectors sum to {total} ms: FastF1's value fits"
        elif abs(total - ours_ms) <= SECTOR_TOLERANCE_MS < abs(total - item.fastf1_ms):
            verdict = f"; our own sectors sum to {total} ms: our value fits"
    return (
        f"a different LastLapTime taken: FastF1's {item.fastf1_ms} ms was sent {where};"
        f" ours {ours_ms} ms was sent {ours_where}{verdict}"
    )


@dataclass
class Comparison:
    """FastF1's timed laps against ours."""

    timed: int
    agreeing: int
    disagreements: list[Disagreement]
    only_ours_timed: dict[str, list[tuple[int, int]]]  # reason → (driver, lap)
    shifts: dict[int, int]  # driver → the feed's lap number minus FastF1's

    @property
    def agreement(self) -> float:
        return self.agreeing / self.timed if self.timed else 0.0


def compare(
    fastf1_result: FastF1Result,
    our_laps: list[LapCompleted],
    timelines: dict[int, _Timeline],
) -> Comparison:
    """Match FastF1's timed laps to ours on (driver, lap number) and explain each miss."""
    ours = {(lap.driver, lap.lap): lap for lap in our_laps}
    theirs, shifts = _aligned(_their_laps(fastf1_result), timelines)
    agreeing = 0
    disagreements = []
    timed = [lap for _, lap in sorted(theirs.items()) if lap.lap_time_ms is not None]
    for their_lap in timed:
        key = (their_lap.driver, their_lap.lap)
        our_lap = ours.get(key)
        if our_lap is not None and our_lap.lap_time_ms == their_lap.lap_time_ms:
            agreeing += 1
            continue
        item = Disagreement(
            their_lap.driver,
            their_lap.lap,
            their_lap.fastf1_lap,
            their_lap.lap_time_ms or 0,
            our_lap,
        )
        item.reason = _diagnose(item, ours, their_lap, timelines.get(their_lap.driver))
        disagreements.append(item)
    only_ours: dict[str, list[tuple[int, int]]] = {}
    for key, lap in sorted(ours.items()):
        counterpart = theirs.get(key)
        if lap.lap_time_ms is None or (counterpart and counterpart.lap_time_ms is not None):
            continue
        if counterpart is None:
            reason = "FastF1 has no such lap"
        elif lap.lap_time_ms >= SLOW_LAP_MS:
            sectors = (lap.sector1_ms, lap.sector2_ms, lap.sector3_ms)
            sums = None not in sectors and sum(s or 0 for s in sectors) == lap.lap_time_ms
            reason = (
                f"FastF1 drops a lap time of {SLOW_LAP_MS // 1000} s or more unless the three"
                " sectors already received sum to it when LastLapTime comes (a qualifying"
                " filter); "
                + (
                    "they do sum to it, but FastF1 did not have all three yet"
                    if sums
                    else "the sectors do not sum to it"
                )
            )
        else:
            reason = "FastF1 left the lap untimed"
        only_ours.setdefault(reason, []).append(key)
    return Comparison(len(timed), agreeing, disagreements, only_ours, shifts)


# --- report -------------------------------------------------------------------------


def _row(label: str, seconds: float) -> None:
    print(f"  {label:<66} {seconds * 1000:8.1f} ms")


def _verdict(met: bool) -> str:
    return "meets" if met else "MISSES"


def _print_comparison(result: Comparison, timelines: dict[int, _Timeline]) -> None:
    share = result.agreement
    print(
        f"laps: {result.timed} timed by FastF1, {result.agreeing} the same (driver, lap, ms)"
        f" in ours: {share:.2%} ({_verdict(share >= REQUIRED_AGREEMENT)}"
        f" the {REQUIRED_AGREEMENT:.1%} required)"
    )
    shifted = sorted(driver for driver, shift in result.shifts.items() if shift)
    if shifted:
        print(
            f"  lap numbers: FastF1's are one less than the feed's (ours) for cars"
            f" {', '.join(map(str, shifted))} (it drops the count's first step, at the"
            f" pit exit, as a lap without timing); the feed's for the other"
            f" {len(result.shifts) - len(shifted)}"
        )
    else:
        print(f"  lap numbers: FastF1's are the feed's (ours) for all {len(result.shifts)} cars")
    for index, item in enumerate(result.disagreements):
        ours = "no lap" if item.ours is None else f"{item.ours_ms} ms"
        their_number = "" if item.fastf1_lap == item.lap else f" (FastF1's lap {item.fastf1_lap})"
        print(
            f"  car {item.driver} lap {item.lap}{their_number}: FastF1 {item.fastf1_ms} ms,"
            f" ours {ours} — {item.reason}"
        )
        timeline = timelines.get(item.driver)
        if index < CONTEXT_LISTED and timeline is not None:
            anchor, messages = timeline.around(item.lap)
            for message in messages:
                print(f"      {message.describe(anchor)}")
    if len(result.disagreements) > CONTEXT_LISTED:
        print(f"  (raw messages shown for the first {CONTEXT_LISTED} only)")
    for reason, keys in result.only_ours_timed.items():
        listed = ", ".join(f"car {d} lap {n}" for d, n in keys)
        print(f"  timed by us, not by FastF1 ({len(keys)}): {reason}: {listed}")


def main() -> None:
    """Time both derivations, compare the laps, print the figures."""
    if importlib.util.find_spec("fastf1") is None:
        print(
            "fastf1 not installed: skipped (it is the `bench` extra;"
            " install it with `.venv/bin/pip install 'fastf1>=3.4'`)"
        )
        return
    folder = _testdata() / BAKU
    if not folder.is_dir():
        print(f"recording not found: {folder}; set F1DAEMON_TESTDATA")
        return
    fastf1 = importlib.import_module("fastf1")
    api = importlib.import_module("fastf1._api")

    # Timed first, with no result of the other side alive.
    ours = _best(REPEATS, lambda: _our_derive(folder))
    with _offline(fastf1, api):
        theirs = _best(REPEATS, lambda: _fastf1_derive(api, folder))
        fastf1_result = _fastf1_derive(api, folder)
    our_laps = _our_derive(folder)

    speed_up = theirs / ours
    files = topic_files(folder)
    count = sum(len(split_json_stream(f.path.read_bytes())) for f in files)
    print(
        f"2018 Baku race, bytes on disk to derived laps, parsing included"
        f" (best of {REPEATS}; FastF1 {fastf1.__version__})"
    )
    _row("FastF1: fetch_page + timing_data + timing_app_data (2 topics)", theirs)
    _row(f"ours: read_messages + derive ({len(files)} topics, {count} messages)", ours)
    print(
        f"  speed-up: {speed_up:.1f}x ({_verdict(speed_up >= REQUIRED_SPEED_UP)}"
        f" the {REQUIRED_SPEED_UP:.0f}x required)"
    )
    timelines = {
        driver: _Timeline.of(messages)
        for driver, messages in _raw_by_driver(fastf1_result.timing_response).items()
    }
    _print_comparison(compare(fastf1_result, our_laps, timelines), timelines)
