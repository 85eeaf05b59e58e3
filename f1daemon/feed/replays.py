"""Replayed messages: a frame the feed (or a recording) delivered twice.

A live connection re-sends frames after a hiccup, and recordings hold lines twice. A
TimingData patch applied twice is not harmless: its sector value lands on the next
lap as well, and the fitter's view of the car goes wrong. A message whose content
was seen before on its topic, with a stamp no later than the latest seen there, is
a replay and changes nothing. The same content with a later stamp is news (the feed
does repeat itself: "PersonalFastest": true, a position). The fact itself stays in
the log, as received.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field

# Messages remembered per topic: a replay comes within moments of the original.
REMEMBERED = 4_096


@dataclass
class _Seen:
    latest_ms: int
    order: deque[bytes] = field(default_factory=deque)
    digests: set[bytes] = field(default_factory=set)


@dataclass
class ReplayFilter:
    """Per topic: the latest stamp and the digests of the latest messages."""

    _topics: dict[str, _Seen] = field(default_factory=dict)
    replays: int = 0  # messages told apart as replays

    def is_replay(self, topic: str, payload: str, stamp_ms: int) -> bool:
        """Whether this message repeats one seen on its topic, no later than the
        latest; remembers it otherwise."""
        digest = hashlib.blake2b(payload.encode(), digest_size=16).digest()
        seen = self._topics.get(topic)
        if seen is None:
            self._topics[topic] = _Seen(stamp_ms, deque([digest]), {digest})
            return False
        if digest in seen.digests and stamp_ms <= seen.latest_ms:
            self.replays += 1
            return True
        seen.latest_ms = max(seen.latest_ms, stamp_ms)
        if digest not in seen.digests:
            if len(seen.order) == REMEMBERED:
                seen.digests.discard(seen.order.popleft())
            seen.order.append(digest)
            seen.digests.add(digest)
        return False
