"""Type stub of `f1daemon._native`, the Rust extension (native/src/lib.rs). Hand-written."""

from collections.abc import Sequence

# stubtest runs without the project's mypy config, which ignores pyarrow's missing stubs.
import pyarrow  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "MAX_DECODED_BYTES",
    "__version__",
    "decode_car_data",
    "decode_position",
    "decode_z",
    "decode_z_many",
    "split_json_stream",
]

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

def decode_car_data(payloads: str | bytes | Sequence[str | bytes]) -> pyarrow.RecordBatch:
    """Decode `CarData.z` payloads (one, or a sequence) into one record batch.

    One row per (entry, car): payload order, then `Entries` order, then the order of the
    `Cars` keys. Columns: `utc_ms` int64 (`Utc` as epoch ms, truncated), `driver` int16,
    `rpm` int32, `speed` int16, `gear` int8, `throttle`, `brake`, `drs` int16 (channels
    "0", "2", "3", "4", "5", "45"; null when absent or null). Zero rows keep the schema.

    Accepted, exactly (as `tests/native_reference.py` spells out):
    `{"Entries": [{"Utc": T, "Cars": {"<driver>": {"Channels": {"<channel>": int|null}}}}]}`
    where T is `YYYY-MM-DDTHH:MM:SS[.f{1,7}][Z]` (UTC; a real date and time of day),
    a driver key is ASCII digits worth at most 32767, and a channel is a JSON integer
    fitting its column (floats, strings, booleans are refused; negative zero in any
    spelling reads as 0). Other keys are ignored; a repeated key keeps its last value at
    its first position; JSON as `orjson.loads` accepts it (nesting at most 1024 deep).

    Raises ValueError naming the first bad payload's index and the reason (bad base64,
    deflate or UTF-8, invalid JSON, or the wrong shape and where, e.g. "payload 3: invalid
    CarData JSON: Entries[0].Cars["44"].Channels["3"]: expected an integer or null, found
    string "4""), TypeError for a payload that is neither str nor bytes. The work runs
    without the GIL.
    """

def decode_position(payloads: str | bytes | Sequence[str | bytes]) -> pyarrow.RecordBatch:
    """Decode `Position.z` payloads (one, or a sequence) into one record batch.

    One row per (entry, car) of `{"Position": [{"Timestamp": T, "Entries": {"<driver>":
    {"Status": str|null, "X": int|null, "Y": int|null, "Z": int|null}}}]}` (each field of
    a car optional). Columns: `utc_ms` int64, `driver` int16, `status` string, `x`, `y`,
    `z` int32 (nullable). Acceptance rules and errors as `decode_car_data`.
    """
