"""Plain-Python references of `f1daemon._native`, used only by tests and benchmarks.

They define what the native functions must return: the tests compare both on real
recordings and on generated input.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib

_BOM = b"\xef\xbb\xbf"
# ASCII whitespace as `bytes.strip()` knows it (incl. vertical tab and form feed).
_BLANK = b" \t\n\r\x0b\x0c"
# `HH:MM:SS.mmm`, ASCII digits only, minutes and seconds below 60.
_TIMESTAMP = re.compile(rb"([0-9]{2}):([0-5][0-9]):([0-5][0-9])\.([0-9]{3})")


def split_json_stream_reference(data: bytes) -> list[tuple[int, int | None, str]]:
    """`(line_number, offset_ms, text)` for each non-blank line of a `.jsonStream` file."""
    result: list[tuple[int, int | None, str]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.removeprefix(_BOM) if number == 1 else raw
        line = line.removesuffix(b"\r")
        if not line.strip(_BLANK):
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            result.append((number, None, line.decode("utf-8", "replace")))
            continue
        match = _TIMESTAMP.match(line)
        if match is None:
            result.append((number, None, text))
            continue
        hours, minutes, seconds, millis = (int(group) for group in match.groups())
        offset = ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis
        result.append((number, offset, text[match.end() :]))
    return result


def decode_z_reference(payload: str | bytes) -> str:
    """Text of a `.z` payload: base64 → raw deflate → UTF-8 (BOM stripped).

    Python 3.11 and 3.12 ignore `=` after a complete base64 quantum even with
    `validate=True` (`"AAAA="`); 3.13 rejects it, as RFC 4648 and the native decoder
    do. The explicit check below gives the 3.13 behaviour on every version.
    """
    raw = payload.encode("ascii") if isinstance(payload, str) else payload
    data = raw.rstrip(b"=")
    if len(raw) - len(data) != -len(data) % 4:
        raise binascii.Error("Excess padding not allowed")
    return zlib.decompress(base64.b64decode(raw, validate=True), wbits=-15).decode("utf-8-sig")
