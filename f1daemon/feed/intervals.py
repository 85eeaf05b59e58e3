"""Gaps and intervals over time, from the native digest's gap changes of `TimingData`.

Most `TimingData` messages only move a car's `GapToLeader` or
`IntervalToPositionAhead`; the digest (`f1daemon._native.TimingDigest`) reports each
driver whose remembered gap or interval a message changed, with both after it. Each
change is a row of OpenF1's `intervals` table, with the seconds as numbers and the laps
behind in their own columns (`f1daemon.feed.timing.parse_gap`). Rows are gathered into
`IntervalBatch` events of `BATCH_MS` of stream time each (a race has tens of thousands
of changes: one event each would outweigh the rest of its derived data); a batch is
emitted with the first change after its stretch, or at the end of the stream, so the
batches depend only on the messages and their offsets, live and in replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from f1daemon.domain.events import IntervalBatch
from f1daemon.feed.timing import parse_gap

if TYPE_CHECKING:
    from f1daemon._native import GapChange
    from f1daemon.feed.timebase import TimeBaseTracker

BATCH_MS = 60_000


@dataclass
class IntervalTracker:
    """Gathers the gap changes of a session into `IntervalBatch` events."""

    session: str
    time_base: TimeBaseTracker
    _rows: list[tuple[int, int, float | None, float | None, int | None, int | None]] = field(
        default_factory=list
    )

    def on_changes(self, changes: list[GapChange], now: int) -> list[IntervalBatch]:
        """Add one message's gap changes; return the batch they close, if any."""
        if not changes:
            return []
        done = self.finish() if self._rows and now - self._rows[0][0] >= BATCH_MS else []
        for driver, gap, interval in changes:
            gap_s, gap_laps = parse_gap(gap)
            interval_s, interval_laps = parse_gap(interval)
            self._rows.append((now, driver, gap_s, interval_s, gap_laps, interval_laps))
        return done

    def finish(self) -> list[IntervalBatch]:
        """The batch of the changes gathered so far (none if there are none)."""
        if not self._rows:
            return []
        time_ms, driver, gap, interval, gap_laps, interval_laps = zip(*self._rows, strict=True)
        self._rows = []
        return [
            IntervalBatch(
                session=self.session,
                session_time_ms=time_ms[0],
                utc=self.time_base.utc_at(time_ms[0]),
                time_ms=time_ms,
                driver=driver,
                gap_to_leader=gap,
                interval=interval,
                gap_to_leader_laps=gap_laps,
                interval_laps=interval_laps,
            )
        ]
