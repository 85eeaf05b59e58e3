"""Car telemetry (`CarData.z`) and car positions (`Position.z`), decoded natively.

Each message becomes one batch event holding its samples as columns. The payload in
the log is the JSON string of the base64 text, as the archive and the live feed
carry it; the Rust decoder does base64, inflate, JSON and the column building.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from f1daemon._native import decode_car_data, decode_position
from f1daemon.domain.events import PositionBatch, TelemetryBatch

TELEMETRY_COLUMNS = ("utc_ms", "driver", "rpm", "speed", "gear", "throttle", "brake", "drs")
POSITION_COLUMNS = ("utc_ms", "driver", "status", "x", "y", "z")


class TelemetryDecodeError(ValueError):
    """A `.z` message that is not a base64 string of compressed telemetry."""


def telemetry_batch(session: str, payload: str, now: int, utc: datetime | None) -> TelemetryBatch:
    """Decode one CarData.z message."""
    batch = decode_car_data(_base64_text(payload))
    columns = {name: tuple(batch.column(name).to_pylist()) for name in TELEMETRY_COLUMNS}
    return TelemetryBatch(session=session, session_time_ms=now, utc=utc, **columns)


def position_batch(session: str, payload: str, now: int, utc: datetime | None) -> PositionBatch:
    """Decode one Position.z message."""
    batch = decode_position(_base64_text(payload))
    columns = {name: tuple(batch.column(name).to_pylist()) for name in POSITION_COLUMNS}
    return PositionBatch(session=session, session_time_ms=now, utc=utc, **columns)


def _base64_text(payload: str) -> str:
    try:
        text = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise TelemetryDecodeError(f"not JSON: {error}") from None
    if not isinstance(text, str):
        raise TelemetryDecodeError(f"expected a JSON string of base64, got {type(text).__name__}")
    return text
