"""Type stub of `f1daemon._native`, the Rust extension (native/src/lib.rs). Hand-written."""

from collections.abc import Sequence
from typing import final

# stubtest runs without the project's mypy config, which ignores pyarrow's missing stubs.
import pyarrow  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "MAX_DECODED_BYTES",
    "TimingDigest",
    "__version__",
    "decode_car_data",
    "decode_position",
    "decode_z",
    "decode_z_many",
    "digest_timing_stream",
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

TimingEntry = tuple[
    int,
    int | None,
    bool | None,
    bool | None,
    int | None,
    int | None,
    bool | None,
    int | None,
    int | None,
    int | None,
    int | None,
    int | None,
    int | None,
    int | None,
    str | None,
]
"""One driver's entry of a digested TimingData message, in this order:

0 `driver` (the `Lines` key: 1-5 ASCII digits), 1 `NumberOfLaps`, 2 `InPit`, 3 `PitOut`,
4 `Position`, 5 `LastLapTime.Value` in ms, 6 `LastLapTime.PersonalFastest`, 7-9 sectors
1-3 `Value` in ms, 10-13 `Speeds` `I1`, `I2`, `FL`, `ST` `Value`, 14 the driver's latest
`GapToLeader` (after the message). See `TimingDigest`.
"""

TimingDigestOutput = tuple[int | None, list[TimingEntry]]
"""`(session_part, entries)`: a relevant TimingData message, digested."""

@final
class TimingDigest:
    """The digest of `TimingData` messages: what `f1daemon.feed.laps.LapFitter` reads, typed.

    Of a message (a JSON object; anything else raises ValueError; JSON as `orjson.loads`
    reads it, nesting at most 1024 deep, a repeated key keeping its last value at its
    first position) it returns `(session_part, entries)`:

    * `session_part`: the top-level `SessionPart` if it is a JSON integer (not a bool)
      fitting i64, else None;
    * `entries`: a `TimingEntry` per entry of `Lines` (an object) whose key is 1-5 ASCII
      digits and whose value is an object, in message order, kept iff any of items 1-13
      is not None. Each item is None unless the value has the right type:
      `NumberOfLaps` a JSON integer fitting i64; `InPit`, `PitOut`,
      `LastLapTime.PersonalFastest` JSON bools; `Position` and the `Speeds` traps'
      `Value` strings of 1-5 ASCII digits (read as a number); `LastLapTime.Value` and the
      sectors' `Value` times (below). `LastLapTime`, the sectors and the traps must be
      objects; `Sectors` is a list (items 0-2) or an object (keys "0", "1", "2").

    A time: a string that, stripped of ASCII whitespace at both ends, matches
    `(?:([0-9]+):)?([0-9]+)(?:\\.([0-9]{1,3}))?` (ASCII digits; minutes and seconds at most
    6 digits each), read as `(minutes * 60 + seconds) * 1000 + millis` (the fraction
    padded with zeros on the right), as `f1daemon.feed.timing.parse_time_ms` reads it.

    The digest remembers each driver's latest `GapToLeader`: a string replaces it (the
    empty string forgets it), another type changes nothing; every entry with a digit key
    and an object value counts, kept or not. Item 14 of a kept entry is that gap after
    the whole message. A message is relevant iff it keeps an entry or has a
    `session_part`; otherwise `feed` returns None.
    """

    def __init__(self) -> None: ...
    def feed(self, payload: str | bytes) -> TimingDigestOutput | None:
        """Digest one message: `(session_part, entries)` if relevant, else None.

        Raises ValueError if the payload is not a JSON object (the state is then
        unchanged), TypeError if it is neither str nor bytes.
        """

def digest_timing_stream(
    data: bytes,
) -> list[tuple[int, int | None, TimingDigestOutput | None, str | None]]:
    """Digest a whole `TimingData.jsonStream` file with a fresh `TimingDigest`.

    Split as `split_json_stream`; each dated line is fed in order. Returns
    `(line_number, offset_ms, digest, error)` only for the first non-blank line (the
    keyframe, whatever it holds), every relevant line, every undated line (not fed:
    `(n, None, None, None)`) and every line that is not a JSON object (`digest` None,
    `error` the ValueError message `feed` raises). The work runs without the GIL.
    """
