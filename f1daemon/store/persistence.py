"""Mapping between the domain's pydantic events and eventsourcing's stored events.

A stored event's `topic` names the event class (`module:Class`); its `state` is the
JSON envelope `{"class_version": N, "data": {...}}`, so that a later schema can tell
which version wrote it and upcast it. A field added with a default needs no new
version; a field added without one, or changed, does (with an upcaster).

A state longer than `COMPRESS_ABOVE` bytes is stored deflated (zlib): most of a log
is the feed's `CarData.z` / `Position.z` payloads, base64 text that deflate brings to
about three quarters, in a JSON envelope that it shrinks further. A deflated state
starts with zlib's header byte, a JSON one with `{`, so logs written before read as
they are. Digests are taken over the JSON (`plain_state`), whichever way it is stored.
"""

from __future__ import annotations

import zlib
from typing import TypeVar

import orjson
from eventsourcing.persistence import StoredEvent

from f1daemon.domain.events import EVENT_TYPES, Event

E = TypeVar("E", bound=Event)

COMPRESS_ABOVE = 512
# The first byte of a zlib stream with deflate's 32 KiB window (RFC 1950).
_ZLIB_HEADER = 0x78


def digest_entry(topic: str, envelope: bytes) -> bytes:
    """What an event adds to a run's digest (`DerivationCompleted.events_sha256`): its
    topic and its JSON envelope, each ended by a NUL."""
    return b"%s\0%s\0" % (topic.encode(), envelope)


def plain_state(state: bytes) -> bytes:
    """A stored state as its JSON envelope (inflated when it was stored deflated)."""
    return zlib.decompress(state) if state[:1] == bytes((_ZLIB_HEADER,)) else state


# Every event class is imported from here, whichever module of `f1daemon.domain`
# defines it; topics name this module, so moving a class keeps old logs readable.
TOPIC_MODULE = "f1daemon.domain.events"


def topic_of(event_type: type[Event]) -> str:
    """The stored topic of an event class (`f1daemon.domain.events:LapCompleted`)."""
    return f"{TOPIC_MODULE}:{event_type.__qualname__}"


# Before 0.2.0 a topic named the defining module (`f1daemon.domain.results:…`):
# those topics still read.
_TYPES_BY_TOPIC: dict[str, type[Event]] = {
    **{f"{t.__module__}:{t.__qualname__}": t for t in EVENT_TYPES},
    **{topic_of(t): t for t in EVENT_TYPES},
}


class UnknownEventTopicError(ValueError):
    """A stored event names a class this version of f1daemon does not know."""


class UnexpectedEventError(TypeError):
    """A stream holds an event of a class that does not belong in it."""


def envelope_of(event: Event) -> bytes:
    """An event's state as JSON: its class version and its fields."""
    return b'{"class_version":%d,"data":%s}' % (
        type(event).class_version,
        event.model_dump_json().encode(),
    )


def to_stored_event(originator_id: str, version: int, event: Event) -> StoredEvent:
    """Serialise an event for the recorder."""
    state = envelope_of(event)
    return StoredEvent(
        originator_id=originator_id,
        originator_version=version,
        topic=topic_of(type(event)),
        state=zlib.compress(state) if len(state) > COMPRESS_ABOVE else state,
    )


def to_domain_event(stored: StoredEvent) -> Event:
    """Deserialise a stored event into its pydantic model, upcasting older versions.

    An event stored by an earlier schema (a lower `class_version`) goes through the
    class's `upcast_vN_vM` functions, one version at a time, before validation.
    """
    event_type = _TYPES_BY_TOPIC.get(stored.topic)
    if event_type is None:
        raise UnknownEventTopicError(f"unknown event topic {stored.topic!r}")
    envelope = orjson.loads(plain_state(stored.state))
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
