"""The Python API: a log's derived data as Arrow tables, for notebooks and scripts.

    import f1daemon

    with f1daemon.open("sqlite:///f1daemon-data/events.db") as data:
        race = data.session(5090)             # F1's session key, or the log's key
        laps = race.laps()                    # a pyarrow.Table, as `f1daemon export laps`
        laps.to_pandas()                      # with pandas installed (the `pandas` extra)
        race.telemetry(driver=44, lap=12)     # one lap of one car
        race.laps(version="v1.3.0")           # the data as at a tag

Every table is the one `f1daemon export` writes — the same reader
(`f1daemon.services.reader`) — with the same columns, types and values.
"""

from __future__ import annotations

from types import TracebackType

import pyarrow as pa

from f1daemon.services.reader import Reader, Version, open_log
from f1daemon.store.eventlog import EventLog


def open_store(store_url: str | None = None) -> Store:
    """Open a log for reading (default: `$F1DAEMON_STORE`, else the embedded store)."""
    return Store(open_log(store_url))


class Store:
    """An open log's derived data. Close it (or use it in a `with`) when done."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.reader = Reader(log)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the store's connections."""
        self._log.close()

    def sessions(self, version: str | None = None) -> pa.Table:
        """One row per session of the log: its log key (`session`) and, where the feed
        described it, F1's keys and names (the `sessions` export's columns)."""
        at = self.reader.version(version)
        parts = [self.reader.sessions_table(s, at) for s in self.reader.sessions()]
        return pa.concat_tables(parts) if parts else self.reader.sessions_table(None, at)

    def session(self, key_or_name: str | int) -> Session:
        """A session by F1's numeric key, its log key, or a part of the log key."""
        return Session(self.reader, self.reader.resolve(key_or_name))

    def versions(self) -> pa.Table:
        """The log's tags (name, position, pipeline version, time, message)."""
        return self.reader.versions()


class Session:
    """One session's derived data; every method takes `version=TAG` (default: now)."""

    def __init__(self, reader: Reader, key: str) -> None:
        self.reader = reader
        self.key = key

    def __repr__(self) -> str:
        return f"Session({self.key!r})"

    def table(self, kind: str, version: str | None = None) -> pa.Table:
        """Any export kind by name (`f1daemon export --help` lists them)."""
        return self.reader.table(kind, self.key, self.reader.version(version))

    def laps(self, version: str | None = None) -> pa.Table:
        """One row per lap and driver."""
        return self.table("laps", version)

    def stints(self, version: str | None = None) -> pa.Table:
        """One row per stint (set of tyres) and driver."""
        return self.table("stints", version)

    def pits(self, version: str | None = None) -> pa.Table:
        """One row per pass through the pit lane."""
        return self.table("pits", version)

    def drivers(self, version: str | None = None) -> pa.Table:
        """One row per driver, as DriverList last named them."""
        return self.table("drivers", version)

    def weather(self, version: str | None = None) -> pa.Table:
        """One row per weather observation."""
        return self.table("weather", version)

    def race_control(self, version: str | None = None) -> pa.Table:
        """One row per race-control message."""
        return self.table("race-control", version)

    def track_status(self, version: str | None = None) -> pa.Table:
        """One row per change of the track status."""
        return self.table("track-status", version)

    def neutralisations(self, version: str | None = None) -> pa.Table:
        """One row per safety car, virtual safety car or red flag period."""
        return self.table("neutralisations", version)

    def positions(self, version: str | None = None) -> pa.Table:
        """One row per change of a driver's running position."""
        return self.table("positions", version)

    def intervals(self, version: str | None = None) -> pa.Table:
        """One row per change of a car's gap to the leader or interval to the car ahead."""
        return self.table("intervals", version)

    def results(self, version: str | None = None) -> pa.Table:
        """Jolpica's race classification, keyed as the feed's tables."""
        return self.table("results", version)

    def sprint_results(self, version: str | None = None) -> pa.Table:
        """Jolpica's sprint classification."""
        return self.table("sprint-results", version)

    def qualifying(self, version: str | None = None) -> pa.Table:
        """Jolpica's qualifying results (Q1-Q3)."""
        return self.table("qualifying", version)

    def reference_laps(self, version: str | None = None) -> pa.Table:
        """Jolpica's lap timings, the reference our laps are checked against."""
        return self.table("reference-laps", version)

    def reference_pits(self, version: str | None = None) -> pa.Table:
        """Jolpica's pit stops."""
        return self.table("reference-pits", version)

    def forecasts(self, version: str | None = None) -> pa.Table:
        """The weather forecasts fetched for the session."""
        return self.table("forecasts", version)

    def telemetry(
        self, driver: int | None = None, lap: int | None = None, version: str | None = None
    ) -> pa.Table:
        """Car telemetry samples (CarData.z): all, one driver's, or one lap of one driver
        (the samples after the lap's start, up to the line crossing that ends it)."""
        return self.reader.lap_samples(
            "telemetry", self.key, driver, lap, self.reader.version(version)
        )

    def car_positions(
        self, driver: int | None = None, lap: int | None = None, version: str | None = None
    ) -> pa.Table:
        """Car position samples (Position.z), cut as `telemetry` is."""
        return self.reader.lap_samples(
            "car-positions", self.key, driver, lap, self.reader.version(version)
        )

    def quarantine(self, version: str | None = None) -> pa.Table:
        """What the session's data holds back: one row per quarantined input or record."""
        return self.reader.quarantine(self.key, self.reader.version(version))

    def qa_report(self, version: str | None = None) -> pa.Table:
        """The QA report: one row per rule, with the totals and quality score."""
        return self.reader.qa_report(self.key, self.reader.version(version))


__all__ = ["Session", "Store", "Version", "open_store"]
