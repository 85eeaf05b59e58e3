"""Merging the feed's partial updates into a topic's running state.

The feed sends deltas: objects are merged key by key, and an array sent once in full
is later patched as an object keyed by index ("0", "1", …). A message that carries
`_kf: true` is a keyframe and replaces the state.
"""

from __future__ import annotations

from typing import Any

JSON = Any  # a decoded JSON value: dict, list, str, int, float, bool or None


def merge(state: JSON, patch: JSON) -> JSON:
    """Return `state` with `patch` applied (mutating `state` where it is a container)."""
    if isinstance(patch, dict):
        if isinstance(state, dict):
            for key, value in patch.items():
                if key == "_kf":
                    continue
                state[key] = merge(state.get(key), value)
            return state
        if isinstance(state, list):
            return _patch_list(state, patch)
        return {key: merge(None, value) for key, value in patch.items() if key != "_kf"}
    if isinstance(patch, list):
        return [merge(None, item) for item in patch]
    return patch


def _patch_list(state: list[JSON], patch: dict[str, JSON]) -> list[JSON]:
    for key, value in patch.items():
        if not key.isdigit():
            continue  # a list has no named members; such keys carry nothing for it
        index = int(key)
        if index < len(state):
            state[index] = merge(state[index], value)
        else:
            # An index past the end appends; the feed never leaves holes, but pad if it does.
            state.extend([None] * (index - len(state)))
            state.append(merge(None, value))
    return state
