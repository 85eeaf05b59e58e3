"""Facts: what sources received (or could not read), and operators' releases.

A derivation reads these; everything else in a session's log derives from them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from f1daemon.domain.base import Event


class MessageReceived(Event):
    """A message exactly as a source received it: the fact everything else derives from."""

    source: str = Field(description="The source that received it, e.g. `archive`.")
    stream: str = Field(description="What `sequence` counts within: a topic file, a connection.")
    topic: str = Field(description="Feed topic, e.g. `TimingData` or `CarData.z`.")
    sequence: int = Field(ge=1, description="Position in the stream (line number for files).")
    offset_ms: int | None = Field(
        description="Milliseconds since the stream's start; null when the line had no valid stamp."
    )
    received_at: datetime | None = Field(
        default=None, description="UTC wall-clock time of receipt (live sources only)."
    )
    sent_at: datetime | None = Field(
        default=None,
        description="The feed's own UTC stamp of the message, when it has one (live sources; "
        "a snapshot's topics have none).",
    )
    payload: str = Field(description="The message text exactly as received.")
    keyframe: bool = Field(
        default=False, description="A full snapshot (subscribe reply) that replaces the state."
    )


class SessionRegistered(Event):
    """A session appeared in the log for the first time."""

    origin: str = Field(description="Where its facts came from, e.g. the ingested folder.")


class RecordQuarantined(Event):
    """Input that could not be accepted, kept whole with the rule it broke and why.

    A source appends one when a line cannot even be framed as a message (it is still
    a fact: it arrived); the decoders derive one when a message's content breaks a
    blocking rule. Nothing is dropped: the original text is here.
    """

    source: str = Field(description="The source the input came from.")
    stream: str = Field(description="What `sequence` counts within.")
    sequence: int = Field(ge=1, description="Position of the input in its stream.")
    topic: str | None = Field(description="Feed topic, when it could be read.")
    rule: str = Field(description="The rule it broke, e.g. `framing.syntax`.")
    reason: str = Field(description="Why, in words an operator can act on.")
    payload: str = Field(
        description="The input exactly as received (when it is not UTF-8: as text, with "
        "U+FFFD for the bytes that are not, and the bytes in `payload_base64`)."
    )
    record: str | None = Field(
        default=None,
        description="QA quarantine only: the derived record, e.g. `car 44 lap 12` "
        "(`payload` is then the record as derived, in JSON).",
    )
    payload_base64: str | None = Field(
        default=None,
        description="The input's exact bytes, base64-encoded, when they are not valid "
        "UTF-8 (a text `payload` cannot hold them); null otherwise.",
    )

    @model_serializer(mode="wrap")
    def _without_absent_bytes(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Stored events are compared byte for byte (verify, digests): an event without
        # bytes serialises as it did before the field existed.
        data: dict[str, Any] = handler(self)
        if data.get("payload_base64") is None:
            data.pop("payload_base64", None)
        return data


class QuarantineReleased(Event):
    """An operator released a record QA had quarantined: derivations from here on keep it.

    A fact of the session (stream `facts:{session}:operator:quarantine-releases`), so a
    replay `--until` before it derives the record quarantined again. The rule's finding
    stays, as a flag naming who released it and why.
    """

    source: str = Field(description="Always `operator`.")
    stream: str = Field(description="Always `quarantine-releases`.")
    sequence: int = Field(ge=1, description="Release number within the session.")
    rule: str = Field(description="The blocking rule whose verdict is overridden.")
    record: str = Field(description="The record released, e.g. `car 44 lap 12`.")
    reason: str = Field(description="Why the operator released it.")
    released_by: str = Field(description="Who released it (user name).")
    quarantine_position: int = Field(description="Log position of the quarantine released.")
    at: datetime = Field(description="UTC wall-clock time of the release.")
