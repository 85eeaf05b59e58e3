"""Type stub of `f1daemon._native`, the Rust extension (native/src/lib.rs). Hand-written."""

from collections.abc import Sequence

__all__ = ["MAX_DECODED_BYTES", "__version__", "decode_z", "decode_z_many", "split_json_stream"]

__version__: str
MAX_DECODED_BYTES: int

def split_json_stream(data: bytes) -> list[tuple[int, int | None, str]]:
    """Split a `.jsonStream` file into `(line_number, offset_ms, text)` per non-blank line."""

def decode_z(payload: str | bytes) -> str:
    """Decode a `.z` payload: base64 -> raw inflate -> UTF-8 (BOM stripped).

    Raises ValueError on bad data, TypeError on a payload of another type.
    """

def decode_z_many(payloads: Sequence[str | bytes]) -> list[str]:
    """Decode many `.z` payloads; a ValueError names the index of the first bad one."""
