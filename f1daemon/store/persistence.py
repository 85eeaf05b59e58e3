"""Mapping between the domain's pydantic events and eventsourcing's stored events.

A stored event's `topic` names the event class (`module:Class`); its `state` is the
JSON envelope `{"class_version": N, "data": {...}}`, so that a later schema can tell
which version wrote it and upcast it. A field added with a default needs no new
version; a field added without one, or changed, does (with an upcaster).
"""

from __future__ import annotations

from typing import TypeVar

import orjson
from eventsourcing.persistence import StoredEvent

from f1daemon.domain.events import EVENT_TYPES, Event

E = TypeVar("E", bound=Event)


def topic_of(event_type: type[Event]) -> str:
    """The stored topic of an event class."""
    return f"{event_type.__module__}:{event_type.__qualname__}"


_TYPES_BY_TOPIC: dict[str, type[Event]] = {topic_of(t): t for t in EVENT_TYPES}


class UnknownEventTopicError(ValueError):
    """A stored event names a class this version of f1daemon does not know."""


class UnexpectedEventError(TypeError):
    """A stream holds an event of a class that does not belong in it."""


def to_stored_event(originator_id: str, version: int, event: Event) -> StoredEvent:
    """Serialise an event for the recorder."""
    state = b'{"class_version":%d,"data":%s}' % (
        type(event).class_version,
        event.model_dump_json().encode(),
    )
    return StoredEvent(
        originator_id=originator_id,
        originator_version=version,
        topic=topic_of(type(event)),
        state=state,
    )


def to_domain_event(stored: StoredEvent) -> Event:
    """Deserialise a stored event into its pydantic model, upcasting older versions.

    An event stored by an earlier schema (a lower `class_version`) goes through the
    class's `upcast_vN_vM` functions, one version at a time, before validation.
    """
    event_type = _TYPES_BY_TOPIC.get(stored.topic)
    if event_type is None:
        raise UnknownEventTopicError(f"unknown event topic {stored.topic!r}")
    envelope = orjson.loads(stored.state)
    data = envelope["data"]
    version = envelope.get("class_version", 1)
    while version < event_type.class_version:
        upcast = getattr(event_type, f"upcast_v{version}_v{version + 1}")
        data = upcast(data)
        version += 1
    return event_type.model_validate(data)


def to_domain_event_of(stored: StoredEvent, event_type: type[E]) -> E:
    """Deserialise a stored event that must be an `event_type`."""
    event = to_domain_event(stored)
    if not isinstance(event, event_type):
        raise UnexpectedEventError(
            f"{stored.originator_id} v{stored.originator_version}: {type(event).__name__} "
            f"where {event_type.__name__} belongs"
        )
    return event
