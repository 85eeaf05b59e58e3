"""Stints and tyres from `TimingAppData`.

`TimingAppData.Lines.<number>.Stints` is a list (patched by index) of the sets a
driver has used: `Compound`, `New`, `TotalLaps`, `StartLaps`. A new index is a new
stint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from f1daemon.domain.events import StintCompoundChanged, StintStarted
from f1daemon.feed.state import JSON, merge
from f1daemon.feed.timing import driver_number


@dataclass(frozen=True)
class Tyres:
    """What a driver runs on at a moment: stint number (from 1) and compound."""

    stint: int
    compound: str | None


@dataclass
class StintTracker:
    """Merged TimingAppData state per driver, and the stints seen so far."""

    session: str
    stints: dict[int, list[JSON]] = field(default_factory=dict)

    def on_message(
        self, message: JSON, session_time_ms: int, utc: datetime | None
    ) -> list[StintStarted | StintCompoundChanged]:
        """Apply one TimingAppData message; return the stints it started or re-named."""
        lines = message.get("Lines") if isinstance(message, dict) else None
        if not isinstance(lines, dict):
            return []
        events: list[StintStarted | StintCompoundChanged] = []
        for number, line in lines.items():
            driver = driver_number(number)
            if driver is None or not isinstance(line, dict) or "Stints" not in line:
                continue
            known = self.stints.get(driver, [])
            compounds = [_compound(stint) for stint in known]
            merged = merge(known, line["Stints"])
            if not isinstance(merged, list):
                continue  # a malformed Stints value; keep what was known
            self.stints[driver] = merged
            for index, stint in enumerate(merged):
                if index >= len(compounds):
                    events.append(self._started(driver, index, session_time_ms, utc))
                elif _compound(stint) != compounds[index] and _compound(stint) is not None:
                    events.append(
                        StintCompoundChanged(
                            session=self.session,
                            session_time_ms=session_time_ms,
                            utc=utc,
                            driver=driver,
                            stint=index + 1,
                            compound=_compound(stint),
                            previous=compounds[index],
                        )
                    )
        return events

    def current(self, driver: int) -> Tyres | None:
        """The stint a driver is on now, if TimingAppData has said."""
        stints = self.stints.get(driver)
        if not stints:
            return None
        return Tyres(stint=len(stints), compound=_compound(stints[-1]))

    def compound_of(self, driver: int, stint: int) -> str | None:
        """The compound of a stint as known now (the feed may name it late)."""
        stints = self.stints.get(driver, [])
        if 1 <= stint <= len(stints):
            return _compound(stints[stint - 1])
        return None

    def new_of(self, driver: int, stint: int) -> bool | None:
        """Whether the set of a stint was new when fitted (`New`), if the feed said."""
        stints = self.stints.get(driver, [])
        if 1 <= stint <= len(stints) and isinstance(stints[stint - 1], dict):
            return _new(stints[stint - 1].get("New"))
        return None

    def start_laps_of(self, driver: int, stint: int) -> int | None:
        """Laps the set of a stint had done before it was fitted (StartLaps)."""
        stints = self.stints.get(driver, [])
        if 1 <= stint <= len(stints) and isinstance(stints[stint - 1], dict):
            start_laps = stints[stint - 1].get("StartLaps")
            if isinstance(start_laps, int) and not isinstance(start_laps, bool):
                return start_laps
        return None

    def _started(
        self, driver: int, index: int, session_time_ms: int, utc: datetime | None
    ) -> StintStarted:
        stint = self.stints[driver][index]
        stint = stint if isinstance(stint, dict) else {}
        start_laps = stint.get("StartLaps")
        return StintStarted(
            session=self.session,
            driver=driver,
            stint=index + 1,
            compound=_compound(stint),
            new_tyres=_new(stint.get("New")),
            tyre_age_laps=start_laps if isinstance(start_laps, int) else None,
            tyres_changed=str(stint.get("TyresNotChanged", "0")) != "1",
            session_time_ms=session_time_ms,
            utc=utc,
        )


def _new(value: JSON) -> bool | None:
    # The feed writes `New` as a string ("true"/"false"); old recordings as a boolean.
    return None if value is None else str(value).lower() == "true"


def _compound(stint: JSON) -> str | None:
    if not isinstance(stint, dict):
        return None
    compound = stint.get("Compound")
    return compound if isinstance(compound, str) and compound else None
