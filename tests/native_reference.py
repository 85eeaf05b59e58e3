"""Plain-Python references of `f1daemon._native`, used only by tests and benchmarks.

They define what the native functions must return: the tests compare both on real
recordings and on generated input.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime
import math
import operator
import re
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import orjson
import pyarrow as pa

if TYPE_CHECKING:
    from f1daemon._native import TimingDigestOutput, TimingEntry

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
    return zlib.decompress(_b64decode(payload), wbits=-15).decode("utf-8-sig")


def _b64decode(payload: str | bytes) -> bytes:
    """Strict, padded, standard base64 as `decode_z_reference` describes."""
    raw = payload.encode("ascii") if isinstance(payload, str) else payload
    data = raw.rstrip(b"=")
    if len(raw) - len(data) != -len(data) % 4:
        raise binascii.Error("Excess padding not allowed")
    return base64.b64decode(raw, validate=True)


# --- telemetry into Arrow --------------------------------------------------------------

MAX_DECODED_BYTES = 64 * 1024 * 1024  # `_native.MAX_DECODED_BYTES`
_INT8 = (-(2**7), 2**7 - 1)
_INT16 = (-(2**15), 2**15 - 1)
_INT32 = (-(2**31), 2**31 - 1)

CAR_DATA_SCHEMA = pa.schema(
    [
        pa.field("utc_ms", pa.int64(), nullable=False),
        pa.field("driver", pa.int16(), nullable=False),
        pa.field("rpm", pa.int32()),
        pa.field("speed", pa.int16()),
        pa.field("gear", pa.int8()),
        pa.field("throttle", pa.int16()),
        pa.field("brake", pa.int16()),
        pa.field("drs", pa.int16()),
    ]
)
# (column, channel key, bounds) of the CarData.z channels.
_CHANNELS = (
    ("rpm", "0", _INT32),
    ("speed", "2", _INT16),
    ("gear", "3", _INT8),
    ("throttle", "4", _INT16),
    ("brake", "5", _INT16),
    ("drs", "45", _INT16),
)
POSITION_SCHEMA = pa.schema(
    [
        pa.field("utc_ms", pa.int64(), nullable=False),
        pa.field("driver", pa.int16(), nullable=False),
        pa.field("status", pa.string()),
        pa.field("x", pa.int32()),
        pa.field("y", pa.int32()),
        pa.field("z", pa.int32()),
    ]
)
_TIMESTAMP_UTC = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,7}))?Z?"
)
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


class ShapeError(ValueError):
    """JSON of the wrong shape; `path` says where (outermost first)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)


def decode_car_data_reference(payloads: str | bytes | Iterable[str | bytes]) -> pa.RecordBatch:
    """`CarData.z` payloads as one record batch of `CAR_DATA_SCHEMA`.

    One row per (entry, car), in payload, entry and `Cars` key order. Accepted, exactly
    (anything else raises `ValueError` naming the payload's index):

    * the message: an object with `Entries`, an array of objects with `Utc` (a timestamp,
      see `_utc_ms`) and `Cars`, an object keyed by driver number (see `_driver`) of
      objects with an object `Channels`;
    * the channels `"0"` (rpm), `"2"` (speed), `"3"` (gear), `"4"` (throttle), `"5"`
      (brake), `"45"` (DRS): a JSON integer fitting the column (see `_int`), or null, or
      absent (null too);
    * other keys are ignored; a repeated key counts once, with its last value, at the
      position of its first occurrence (what `orjson.loads` makes of it);
    * the JSON itself as `orjson.loads` accepts it (arrays and objects nest at most 1024
      deep; no NaN, no numbers beyond `float`).

    A payload that is neither `str` nor `bytes` raises `TypeError`.
    """
    columns: dict[str, list[Any]] = {name: [] for name in CAR_DATA_SCHEMA.names}
    utc_ms, driver = columns["utc_ms"], columns["driver"]
    channel_columns = [(columns[name], key, bounds) for name, key, bounds in _CHANNELS]

    def add(message: object) -> None:
        for i, entry in enumerate(_array_field(message, "Entries", "a CarData object")):
            path = f"Entries[{i}]"
            fields = _object(entry, path, "an object with `Utc` and `Cars`")
            time = _utc_ms(_required(fields, "Utc", path), f"{path}.Utc")
            cars = _required(fields, "Cars", path)
            for key, car in _object(cars, f"{path}.Cars", "an object keyed by driver").items():
                where = f"{path}.Cars[{key!r}]"
                number = _driver(key, where)
                car_fields = _object(car, where, "an object with `Channels`")
                channels = _object(
                    _required(car_fields, "Channels", where),
                    f"{where}.Channels",
                    "an object of channels",
                )
                utc_ms.append(time)
                driver.append(number)
                for column, channel, bounds in channel_columns:
                    value = channels.get(channel)
                    column.append(
                        value
                        if type(value) is int and bounds[0] <= value <= bounds[1]
                        else _int(value, bounds, f"{where}.Channels[{channel!r}]")
                    )

    _each_message(payloads, "CarData", add)
    return pa.record_batch(
        [pa.array(columns[f.name], f.type) for f in CAR_DATA_SCHEMA], schema=CAR_DATA_SCHEMA
    )


def decode_position_reference(payloads: str | bytes | Iterable[str | bytes]) -> pa.RecordBatch:
    """`Position.z` payloads as one record batch of `POSITION_SCHEMA`.

    Accepted, exactly (else `ValueError` naming the payload): an object with `Position`,
    an array of objects with `Timestamp` (see `_utc_ms`) and `Entries`, an object keyed
    by driver number of objects whose optional `Status` is a string or null and optional
    `X`, `Y`, `Z` are `int32` integers or null (see `_int`). JSON, other and repeated keys
    as in `decode_car_data_reference`.
    """
    columns: dict[str, list[Any]] = {name: [] for name in POSITION_SCHEMA.names}

    def add(message: object) -> None:
        for i, entry in enumerate(_array_field(message, "Position", "a Position object")):
            path = f"Position[{i}]"
            fields = _object(entry, path, "an object with `Timestamp` and `Entries`")
            time = _utc_ms(_required(fields, "Timestamp", path), f"{path}.Timestamp")
            cars = _required(fields, "Entries", path)
            for key, car in _object(cars, f"{path}.Entries", "an object keyed by driver").items():
                where = f"{path}.Entries[{key!r}]"
                number = _driver(key, where)
                position = _object(car, where, "an object with `Status`, `X`, `Y`, `Z`")
                status = position.get("Status")
                if status is not None and type(status) is not str:
                    raise ShapeError(f"{where}.Status", "expected a string or null")
                columns["utc_ms"].append(time)
                columns["driver"].append(number)
                columns["status"].append(status)
                for axis in ("X", "Y", "Z"):
                    columns[axis.lower()].append(
                        _int(position.get(axis), _INT32, f"{where}.{axis}")
                    )

    _each_message(payloads, "Position", add)
    return pa.record_batch(
        [pa.array(columns[f.name], f.type) for f in POSITION_SCHEMA], schema=POSITION_SCHEMA
    )


def _each_message(
    payloads: str | bytes | Iterable[str | bytes], topic: str, add: Callable[[object], None]
) -> None:
    """`add(message)` for each payload's parsed JSON, in order; errors name the payload."""
    if isinstance(payloads, bytearray):
        raise TypeError("payloads must be str, bytes or a sequence of them, not bytearray")
    items = [payloads] if isinstance(payloads, str | bytes) else payloads
    for index, payload in enumerate(items):
        if not isinstance(payload, str | bytes):
            raise TypeError(
                f"payload {index}: payload must be str or bytes, not {type(payload).__name__}"
            )
        try:
            text = _decode_z_capped(payload)
            try:
                message = orjson.loads(text)
            except orjson.JSONDecodeError as error:
                raise ValueError(f"invalid {topic} JSON: {error}") from error
            try:
                add(message)
            except ShapeError as error:
                raise ValueError(f"invalid {topic} JSON: {error}") from error
        except ValueError as error:
            raise ValueError(f"payload {index}: {error}") from error


def _decode_z_capped(payload: str | bytes) -> str:
    """`decode_z_reference` with the native size cap (`MAX_DECODED_BYTES` inflated)."""
    compressed = _b64decode(payload)
    inflater = zlib.decompressobj(wbits=-15)
    try:
        data = inflater.decompress(compressed, MAX_DECODED_BYTES + 1)
    except zlib.error as error:
        raise ValueError(f"invalid deflate stream: {error}") from error
    if len(data) > MAX_DECODED_BYTES:
        raise ValueError(f"decoded payload exceeds {MAX_DECODED_BYTES} bytes")
    if not inflater.eof:
        raise ValueError("invalid deflate stream: incomplete or truncated stream")
    return data.decode("utf-8-sig")


def _array_field(message: object, field: str, expected: str) -> list[Any]:
    if type(message) is not dict:
        raise ShapeError("", f"expected {expected}")
    if field not in message:
        raise ShapeError("", f"missing field `{field}`")
    value = message[field]
    if type(value) is not list:
        raise ShapeError(field, "expected an array")
    return value


def _object(value: object, path: str, expected: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise ShapeError(path, f"expected {expected}")
    return value


def _required(fields: dict[str, Any], name: str, path: str) -> object:
    if name not in fields:
        raise ShapeError(path, f"missing field `{name}`")
    return fields[name]


def _int(value: object, bounds: tuple[int, int], path: str) -> int | None:
    """A JSON integer within `bounds`, or null (`None`).

    Floats (`1.0`, `1e2`), strings and booleans are refused, with one exception forced by
    the parsers: the native one reads `-0` as the float `-0.0` (and orjson reads `-0.0` as
    a float too), so negative zero in any spelling reads as 0.
    """
    if value is None:
        return None
    if type(value) is float and value == 0 and math.copysign(1.0, value) < 0:
        value = 0
    if type(value) is not int:
        raise ShapeError(path, "expected an integer or null")
    if not bounds[0] <= value <= bounds[1]:
        raise ShapeError(path, f"integer {value} out of range")
    return value


def _driver(key: str, path: str) -> int:
    """A driver-number key: one or more ASCII digits worth at most 32767 (`"01"` is 1)."""
    digits = key.lstrip("0")
    if not (key.isascii() and key.isdigit()) or len(digits) > 5 or int(digits or "0") > 32767:
        raise ShapeError(path, "driver number must be ASCII digits worth at most 32767")
    return int(digits or "0")


def _utc_ms(value: object, path: str) -> int:
    """Epoch milliseconds of a feed timestamp, fractional seconds truncated.

    `YYYY-MM-DDTHH:MM:SS`, optionally `.` and 1-7 digits, optionally `Z` (no zone is UTC
    too); ASCII digits, year 1-9999, a real calendar day, hours below 24, minutes and
    seconds below 60. Nothing else (no offsets, lower case, spaces).
    """
    match = _TIMESTAMP_UTC.fullmatch(value) if type(value) is str else None
    if match is None:
        raise ShapeError(path, "expected a timestamp string")
    year, month, day, hour, minute, second = (int(group) for group in match.groups()[:6])
    try:
        days = datetime.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise ShapeError(path, "not a calendar date") from None
    if hour > 23 or minute > 59 or second > 59:
        raise ShapeError(path, "not a time of day")
    millis = int((match.group(7) or "").ljust(3, "0")[:3])
    return (((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis


# --- the TimingData digest ---------------------------------------------------------------

_TRAPS = ("I1", "I2", "FL", "ST")
_SECTOR_KEYS = ("0", "1", "2")
_I64 = (-(2**63), 2**63 - 1)
# 1-5 ASCII digits: a driver key, a position, a speed.
_DIGITS = re.compile(r"[0-9]{1,5}", re.ASCII)
# A lap or sector time, after stripping ASCII whitespace.
_TIME_MS = re.compile(r"^(?:([0-9]+):)?([0-9]+)(?:\.([0-9]{1,3}))?$", re.ASCII)
_TIME_BLANK = " \t\n\r\x0b\x0c"


def time_ms_reference(value: object) -> int | None:
    """Milliseconds of a feed time string, `None` for anything else.

    ASCII whitespace stripped from both ends, then `[M:]S[.f]` (`_TIME_MS`, ASCII
    digits, minutes and seconds at most 6 digits each, 1-3 fraction digits padded with
    zeros on the right): `(M * 60 + S) * 1000 + f`.
    """
    if type(value) is not str:
        return None
    match = _TIME_MS.fullmatch(value.strip(_TIME_BLANK))
    if match is None:
        return None
    minutes, seconds, fraction = match.groups()
    if len(minutes or "") > 6 or len(seconds) > 6:
        return None
    millis = int((fraction or "0").ljust(3, "0"))
    return (int(minutes or "0") * 60 + int(seconds)) * 1000 + millis


def _digits(value: object) -> int | None:
    """A string of 1-5 ASCII digits as their number, else `None`."""
    if type(value) is str and _DIGITS.fullmatch(value):
        return int(value)
    return None


def _int64(value: object) -> int | None:
    """A JSON integer (not a boolean) that fits `i64`, else `None`."""
    if type(value) is int and _I64[0] <= value <= _I64[1]:
        return value
    return None


def _bool(value: object) -> bool | None:
    return value if type(value) is bool else None


def _value(item: object) -> object:
    """`item["Value"]` of an object (`None` when not an object or no `Value`)."""
    return item.get("Value") if type(item) is dict else None


class TimingDigestReference:
    """`_native.TimingDigest`: of each TimingData message, what the lap fitter reads, typed.

    The rules (`native/src/timing.rs` has the same):

    * a message is a JSON object (else `ValueError`; JSON as `orjson.loads` reads it);
      `session_part` is its `SessionPart` if that is an integer (not a bool) fitting
      `i64`, else `None`;
    * its `Lines` is an object keyed by driver; only keys of 1-5 ASCII digits (the driver
      is their number) whose value is an object count; `Lines` of another type has none;
    * of an entry, the `TimingEntry` tuple: driver; `NumberOfLaps` (an `i64` integer);
      `InPit`, `PitOut` (bools); `Position` (1-5 ASCII digits, as a number); of
      `LastLapTime` (an object) `Value` as a time (`time_ms_reference`) and
      `PersonalFastest` (a bool); `Sectors` (a list: items 0-2, or an object: keys "0",
      "1", "2"), each sector (an object) `Value` as a time; `Speeds` (an object), traps
      `I1`, `I2`, `FL`, `ST` (objects): `Value` as 1-5 ASCII digits; anything else is
      `None`. The entry is kept iff any of these (the driver aside) is not `None`;
    * the digest remembers each driver's latest `GapToLeader` and
      `IntervalToPositionAhead.Value` (of an object): a string replaces it (the empty
      string forgets it), another type changes nothing; every counted entry, kept or
      not. Each kept entry ends with the driver's gap and interval after the whole
      message; the gap changes are the drivers whose gap or interval the message
      changed, in the order of their first entry, with both after the whole message;
    * relevant iff an entry is kept, `session_part` is not `None` or there are gap
      changes: then `(session_part, kept entries in message order, gap changes)`, else
      `None`.
    """

    def __init__(self) -> None:
        self._gaps: dict[int, str] = {}
        self._intervals: dict[int, str] = {}

    def feed(self, payload: str | bytes) -> TimingDigestOutput | None:
        """The digest of one message, or `None` if it is irrelevant."""
        if not isinstance(payload, str | bytes):
            raise TypeError(f"payload must be str or bytes, not {type(payload).__name__}")
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise ValueError(f"invalid TimingData JSON: {error}") from error
        if type(message) is not dict:
            raise ValueError("invalid TimingData JSON: expected a TimingData object")
        session_part = _int64(message.get("SessionPart"))
        lines = message.get("Lines")
        kept: list[list[Any]] = []
        changed: list[int] = []
        for key, patch in lines.items() if type(lines) is dict else ():
            driver = _digits(key)
            if driver is None or type(patch) is not dict:
                continue
            moved = _remember(self._gaps, driver, patch.get("GapToLeader"))
            interval = _value(patch.get("IntervalToPositionAhead"))
            moved = _remember(self._intervals, driver, interval) or moved
            if moved and driver not in changed:
                changed.append(driver)
            entry = _digest_entry(driver, patch)
            if any(item is not None for item in entry[1:]):
                kept.append(entry)
        if not kept and session_part is None and not changed:
            return None
        entries = [
            cast("TimingEntry", (*entry, self._gaps.get(entry[0]), self._intervals.get(entry[0])))
            for entry in kept
        ]
        gaps = [(d, self._gaps.get(d), self._intervals.get(d)) for d in changed]
        return session_part, entries, gaps


def _remember(remembered: dict[int, str], driver: int, value: object) -> bool:
    """A string replaces the driver's value (the empty string forgets it); whether it
    changed. Another type changes nothing."""
    if type(value) is not str:
        return False
    before = remembered.get(driver)
    if value:
        remembered[driver] = value
    else:
        remembered.pop(driver, None)
    return remembered.get(driver) != before


def _digest_entry(driver: int, patch: dict[str, Any]) -> list[Any]:
    """Items 0-13 of one entry's `TimingEntry` (the gap comes later)."""
    last = patch.get("LastLapTime")
    if type(last) is not dict:
        last = {}
    sectors = patch.get("Sectors")
    if type(sectors) is list:
        sector_items = [sectors[i] if i < len(sectors) else None for i in range(3)]
    elif type(sectors) is dict:
        sector_items = [sectors.get(key) for key in _SECTOR_KEYS]
    else:
        sector_items = [None, None, None]
    speeds = patch.get("Speeds")
    if type(speeds) is not dict:
        speeds = {}
    return [
        driver,
        _int64(patch.get("NumberOfLaps")),
        _bool(patch.get("InPit")),
        _bool(patch.get("PitOut")),
        _digits(patch.get("Position")),
        time_ms_reference(last.get("Value")),
        _bool(last.get("PersonalFastest")),
        *(time_ms_reference(_value(sector)) for sector in sector_items),
        *(_digits(_value(speeds.get(trap))) for trap in _TRAPS),
    ]


def digest_timing_stream_reference(
    data: bytes,
) -> list[tuple[int, int | None, TimingDigestOutput | None, str | None]]:
    """`_native.digest_timing_stream`: a whole `TimingData.jsonStream` file, digested.

    Split by `split_json_stream_reference`; each dated line is fed, in order, to a fresh
    `TimingDigestReference`. Returned as `(line_number, offset_ms, digest, error)`: the
    first non-blank line (the keyframe, whatever it holds), every relevant line, every
    undated line (not fed: `offset_ms`, `digest`, `error` all `None`) and every line that
    is not a JSON object (`digest` None, `error` the `ValueError` message).
    """
    digest = TimingDigestReference()
    result: list[tuple[int, int | None, TimingDigestOutput | None, str | None]] = []
    for index, (number, offset, text) in enumerate(split_json_stream_reference(data)):
        if offset is None:
            result.append((number, None, None, None))
            continue
        try:
            digested = digest.feed(text)
        except ValueError as error:
            result.append((number, offset, None, str(error)))
            continue
        if index == 0 or digested is not None:
            result.append((number, offset, digested, None))
    return result


# --- streaming anomaly detection ----------------------------------------------------------

Anomaly = tuple[int, str, int, float, float, str]
"""`(driver, channel, time_ms, value, score, kind)`, as `_native.AnomalyDetector` returns."""

# Modified z-score constants (Iglewicz & Hoaglin): 0.6745 makes the MAD of a normal sample
# comparable to its standard deviation; 1.253314 (sqrt(pi/2)) does the same for the mean
# absolute deviation, the scale used when the MAD is 0.
MAD_FACTOR = 0.6745
MEAN_AD_FACTOR = 1.253314
# The speed channel: its latest value says whether a car is moving (the flat-line gate).
SPEED = "speed"
_ANOMALY_LIMITS = {"window": (2, 65_536), "flatline_run": (2, 2**32)}


def lane_sum(values: Iterable[float]) -> float:
    """`values` added in 4 interleaved partial sums, combined as `(s0 + s1) + (s2 + s3)`.

    Item `i` goes to sum `i % 4`. The native detector adds in this order (so the CPU can
    add four at a time) and the results agree bit for bit.
    """
    lanes = [0.0, 0.0, 0.0, 0.0]
    for i, value in enumerate(values):
        lanes[i & 3] += value
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])


def median_of_sorted(ordered: list[float]) -> float:
    """The middle item, or `(a + b) / 2` of the middle two (a non-empty sorted list)."""
    half = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[half]
    return (ordered[half - 1] + ordered[half]) / 2


class _ChannelState:
    """One (driver, channel): the window (arrival and sorted order) and detector state."""

    __slots__ = ("arrivals", "ordered", "pending", "previous", "run_length", "run_value")

    def __init__(self) -> None:
        self.arrivals: deque[float] = deque()
        self.ordered: list[float] = []
        self.previous: float | None = None
        # A spike candidate: (value before it, its value, its time, the window's std).
        self.pending: tuple[float, float, int, float] | None = None
        self.run_value = 0.0
        self.run_length = 0


class _DriverState:
    __slots__ = ("channels", "speed")

    def __init__(self) -> None:
        self.speed: float | None = None  # latest valid speed sample
        self.channels: dict[str, _ChannelState] = {}


class AnomalyDetectorReference:
    """`_native.AnomalyDetector` in plain Python: the same rules, the same float arithmetic.

    Samples are processed row by row; a row is `(driver, time_ms)` and one value per
    channel, the channels in the order given. A value is used iff it is a finite number
    (`None`, NaN, ±inf and ints too large for a float are skipped: no state changes);
    `-0.0` is read as `0.0`. First the row's `speed` (if used) becomes the driver's
    latest speed; then each channel's value goes through `_ChannelState` of its
    (driver, channel) in `_sample`. Everything is documented on the native class.
    """

    def __init__(
        self,
        *,
        window: int = 50,
        min_samples: int = 10,
        zscore_threshold: float = 3.0,
        mad_threshold: float = 3.5,
        spike_threshold: float = 3.0,
        flatline_run: int = 50,
        flatline_channels: Iterable[str] = ("rpm", "speed"),
        flatline_while_moving: bool = True,
    ) -> None:
        if isinstance(flatline_channels, str):
            raise TypeError("flatline_channels must be a collection of str")
        channels = list(flatline_channels)
        if any(not isinstance(name, str) for name in channels):
            raise TypeError("flatline_channels must be a collection of str")
        for name, value in (("window", window), ("flatline_run", flatline_run)):
            low, high = _ANOMALY_LIMITS[name]
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}")
        if not 2 <= min_samples <= window:
            raise ValueError("min_samples must be between 2 and window")
        for name, threshold in (
            ("zscore_threshold", zscore_threshold),
            ("mad_threshold", mad_threshold),
            ("spike_threshold", spike_threshold),
        ):
            if not threshold >= 0:  # NaN too
                raise ValueError(f"{name} must be >= 0 (inf disables it)")
        self.window = window
        self.min_samples = min_samples
        self.zscore_threshold = float(zscore_threshold)
        self.mad_threshold = float(mad_threshold)
        self.spike_threshold = float(spike_threshold)
        self.flatline_run = flatline_run
        self.flatline_channels = frozenset(channels)
        self.flatline_while_moving = flatline_while_moving
        self._drivers: dict[int, _DriverState] = {}

    def feed(
        self,
        driver: Iterable[object],
        time_ms: Iterable[object],
        channel: str,
        values: Iterable[object],
    ) -> list[Anomaly]:
        """`feed_columns(driver, time_ms, {channel: values})`."""
        if not isinstance(channel, str):
            raise TypeError(f"channel must be str, not {type(channel).__name__}")
        return self.feed_columns(driver, time_ms, {channel: values})

    def feed_columns(
        self,
        driver: Iterable[object],
        time_ms: Iterable[object],
        channels: Mapping[str, Iterable[object]],
    ) -> list[Anomaly]:
        """The anomalies found in these rows, in row order, then channel order.

        Read first, in this order (so that both implementations raise the same error):
        each channel's name (a `str`, else `TypeError`) and column (`list(column)`), then
        `driver` and `time_ms`; then the lengths (`ValueError`); then the items of
        `driver`, `time_ms` and each column. Nothing changes on an error.
        """
        if not isinstance(channels, Mapping):
            raise TypeError(f"channels must be a mapping, not {type(channels).__name__}")
        names: list[str] = []
        raw_columns: list[list[object]] = []
        for name, column in channels.items():
            if not isinstance(name, str):
                raise TypeError(f"channel names must be str, not {type(name).__name__}")
            names.append(name)
            raw_columns.append(list(column))
        raw_drivers, raw_times = list(driver), list(time_ms)
        rows = len(raw_drivers)
        if len(raw_times) != rows or any(len(column) != rows for column in raw_columns):
            raise ValueError("driver, time_ms and every channel column must have one length")
        drivers = [_anomaly_int(item, "driver") for item in raw_drivers]
        times = [_anomaly_int(item, "time_ms") for item in raw_times]
        columns = [[_anomaly_value(item) for item in column] for column in raw_columns]
        speed_column = columns[names.index(SPEED)] if SPEED in names else None
        found: list[Anomaly] = []
        for row in range(rows):
            state = self._drivers.get(drivers[row])
            if state is None:
                state = self._drivers[drivers[row]] = _DriverState()
            if speed_column is not None and (speed := speed_column[row]) is not None:
                state.speed = speed
            standing = state.speed is not None and state.speed <= 0
            for name, column in zip(names, columns, strict=True):
                value = column[row]
                if value is None:
                    continue
                channel = state.channels.get(name)
                if channel is None:
                    channel = state.channels[name] = _ChannelState()
                at = _SampleContext(
                    drivers[row], name, times[row], name in self.flatline_channels, standing
                )
                self._sample(channel, at, value, found)
        return found

    def _sample(
        self, state: _ChannelState, at: _SampleContext, value: float, found: list[Anomaly]
    ) -> None:
        """One used sample: the spike verdict on the one before, then zscore, mad, flatline."""
        if state.pending is not None:
            before, candidate, candidate_time, std = state.pending
            state.pending = None
            rise, fall = candidate - before, value - candidate
            if (rise > 0 and fall < 0) or (rise < 0 and fall > 0):
                score = min(abs(rise), abs(fall)) / std
                if rise < 0:
                    score = -score
                if math.isfinite(score) and abs(score) > self.spike_threshold:
                    found.append((at.driver, at.channel, candidate_time, candidate, score, "spike"))
        ordered = state.ordered
        count = len(ordered)
        if count >= self.min_samples:
            mean = lane_sum(ordered) / count
            std = math.sqrt(lane_sum((v - mean) * (v - mean) for v in ordered) / count)
            if std > 0:
                z = (value - mean) / std
                if math.isfinite(z) and abs(z) > self.zscore_threshold:
                    found.append((at.driver, at.channel, at.time, value, z, "zscore"))
                if state.previous is not None:
                    state.pending = (state.previous, value, at.time, std)
            median = median_of_sorted(ordered)
            if math.isfinite(median):
                mad = median_of_sorted(sorted(abs(v - median) for v in ordered))
                robust: float | None = None
                if mad > 0:
                    robust = MAD_FACTOR * (value - median) / mad
                else:
                    mean_ad = lane_sum(abs(v - median) for v in ordered) / count
                    if mean_ad > 0:
                        robust = (value - median) / (MEAN_AD_FACTOR * mean_ad)
                if (
                    robust is not None
                    and math.isfinite(robust)
                    and abs(robust) > self.mad_threshold
                ):
                    found.append((at.driver, at.channel, at.time, value, robust, "mad"))
        if at.flatline:
            if self.flatline_while_moving and at.standing:
                state.run_length = 0
            elif state.run_length > 0 and value == state.run_value:
                state.run_length += 1
            else:
                state.run_value, state.run_length = value, 1
            if state.run_length == self.flatline_run:
                run = float(self.flatline_run)
                found.append((at.driver, at.channel, at.time, value, run, "flatline"))
        if len(state.arrivals) == self.window:
            del ordered[bisect.bisect_left(ordered, state.arrivals.popleft())]
        state.arrivals.append(value)
        bisect.insort(ordered, value)
        state.previous = value


class _SampleContext(NamedTuple):
    """What a sample needs beyond its channel's state."""

    driver: int
    channel: str
    time: int
    flatline: bool  # the channel is watched for flat lines
    standing: bool  # the driver's latest speed is known and <= 0


def _anomaly_int(item: object, what: str) -> int:
    """A driver or time: an int (or `__index__`) fitting `i64`."""
    number = operator.index(item)  # type: ignore[arg-type]
    if not _I64[0] <= number <= _I64[1]:
        raise ValueError(f"{what} {number} does not fit a 64-bit integer")
    return number


def _anomaly_value(item: object) -> float | None:
    """A sample's value if it is used: a finite float or int (as a float, -0.0 as 0.0)."""
    if item is None:
        return None
    if isinstance(item, float):
        value = float.__float__(item)
    elif isinstance(item, int):
        try:
            value = float(item)
        except OverflowError:
            return None
    else:
        raise TypeError(f"values must be float, int or None, not {type(item).__name__}")
    return value + 0.0 if math.isfinite(value) else None
