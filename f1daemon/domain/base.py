"""Base classes of every event: what all events and all timed events carry."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    """Base of every event in the log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_version: ClassVar[int] = 1

    session: str = Field(
        description="Session key, e.g. `2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race`."
    )


class Timed(Event):
    """An event that happened at a moment of the session."""

    session_time_ms: int = Field(description="Milliseconds since the stream's start (offset).")
    utc: datetime | None = Field(description="UTC of the moment; null if no time base.")
