"""Lines that are not UTF-8: what a fact can show of them, why, and their exact bytes.

A fact's `payload` is text, and a line of a recording or an archive file (or a live
SignalR frame in a binary websocket message) that is not UTF-8 cannot be text without
losing bytes. Such a line is quarantined
(`framing.encoding`) with its bytes kept whole, base64-encoded, in
`RecordQuarantined.payload_base64`; `payload` shows it with U+FFFD for the bytes that
are not UTF-8, so that an operator can read the rest.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

ENCODING = "framing.encoding"


@dataclass(frozen=True)
class UndecodableLine:
    """A line's bytes that are not UTF-8: as text, the reason, and the bytes in base64."""

    text: str
    reason: str
    payload_base64: str


def undecodable(raw: bytes, what: str = "line") -> UndecodableLine | None:
    """None for `raw` that is UTF-8; else what to quarantine it with (`what` names it in
    the reason: a recording's line, a websocket frame)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return UndecodableLine(
            text=raw.decode("utf-8", errors="replace"),
            reason=(
                f"not UTF-8: {error.reason} at byte {error.start + 1}; the {what}'s exact "
                "bytes are kept in payload_base64"
            ),
            payload_base64=base64.b64encode(raw).decode("ascii"),
        )
    return None
