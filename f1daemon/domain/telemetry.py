"""Derived telemetry: the samples of one `CarData.z` or `Position.z` message, as columns."""

from __future__ import annotations

from pydantic import Field

from f1daemon.domain.base import Timed


class TelemetryBatch(Timed):
    """Car telemetry decoded from one CarData.z message, as columns of equal length."""

    utc_ms: tuple[int, ...] = Field(description="Sample time, UTC epoch milliseconds.")
    driver: tuple[int, ...] = Field(description="Racing number.")
    rpm: tuple[int | None, ...] = Field(description="Engine speed (1/min), channel 0.")
    speed: tuple[int | None, ...] = Field(description="Speed (km/h), channel 2.")
    gear: tuple[int | None, ...] = Field(description="Gear (0 = neutral), channel 3.")
    throttle: tuple[int | None, ...] = Field(description="Throttle (%), channel 4.")
    brake: tuple[int | None, ...] = Field(description="Brake (0/100 or %), channel 5.")
    drs: tuple[int | None, ...] = Field(description="DRS state code, channel 45 (null if absent).")


class PositionBatch(Timed):
    """Car positions decoded from one Position.z message, as columns of equal length."""

    utc_ms: tuple[int, ...] = Field(description="Sample time, UTC epoch milliseconds.")
    driver: tuple[int, ...] = Field(description="Racing number.")
    status: tuple[str | None, ...] = Field(description="OnTrack / OffTrack.")
    x: tuple[int | None, ...] = Field(description="X (1/10 m).")
    y: tuple[int | None, ...] = Field(description="Y (1/10 m).")
    z: tuple[int | None, ...] = Field(description="Z (1/10 m).")
