"""Type stub of `f1daemon._native`, the Rust extension (native/src/lib.rs). Hand-written."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Self, final

# stubtest runs without the project's mypy config, which ignores pyarrow's missing stubs.
import pyarrow  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "MAX_DECODED_BYTES",
    "AnomalyDetector",
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
    str | None,
]
"""One driver's entry of a digested TimingData message, in this order:

0 `driver` (the `Lines` key: 1-5 ASCII digits), 1 `NumberOfLaps`, 2 `InPit`, 3 `PitOut`,
4 `Position`, 5 `LastLapTime.Value` in ms, 6 `LastLapTime.PersonalFastest`, 7-9 sectors
1-3 `Value` in ms, 10-13 `Speeds` `I1`, `I2`, `FL`, `ST` `Value`, 14 the driver's latest
`GapToLeader`, 15 its latest `IntervalToPositionAhead.Value` (both after the message).
See `TimingDigest`.
"""

GapChange = tuple[int, str | None, str | None]
"""`(driver, GapToLeader, IntervalToPositionAhead.Value)`: a driver whose remembered gap
or interval a message changed, both as remembered after it."""

TimingDigestOutput = tuple[int | None, list[TimingEntry], list[GapChange]]
"""`(session_part, entries, gaps)`: a relevant TimingData message, digested."""

@final
class TimingDigest:
    """The digest of `TimingData` messages: what `f1daemon.feed.laps.LapFitter` reads, typed.

    Of a message (a JSON object; anything else raises ValueError; JSON as `orjson.loads`
    reads it, nesting at most 1024 deep, a repeated key keeping its last value at its
    first position) it returns `(session_part, entries, gaps)`:

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

    The digest remembers each driver's latest `GapToLeader` and
    `IntervalToPositionAhead.Value` (of an object): a string replaces it (the empty string
    forgets it), another type changes nothing; every entry with a digit key and an object
    value counts, kept or not. Items 14 and 15 of a kept entry are that gap and interval
    after the whole message. `gaps`: a `GapChange` per driver whose remembered gap or
    interval the message changed, in the order of the driver's first entry. A message is
    relevant iff it keeps an entry, has a `session_part` or changes a gap or interval;
    otherwise `feed` returns None.
    """

    def __init__(self) -> None: ...
    def feed(self, payload: str | bytes) -> TimingDigestOutput | None:
        """Digest one message: `(session_part, entries, gaps)` if relevant, else None.

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

@final
class AnomalyDetector:
    """Streaming anomaly detection over telemetry, per (driver, channel).

    Feed rows (a driver, a time in ms, one value per channel) with `feed` (one channel)
    or `feed_columns` (several, e.g. the columns of a `TelemetryBatch`; lap times as a
    `lap_time_ms` channel). Any channel name is accepted. Each call returns the anomalies
    found as `(driver, channel, time_ms, value, score, kind)` tuples, in row order, then
    channel order; per sample the spike verdict on the sample before it, then `zscore`,
    `mad`, `flatline`.

    Streaming: the state (windows, runs, a pending spike, each driver's latest speed)
    carries over from one call to the next, so rows fed in several calls give exactly the
    anomalies of one call on all of them. Calls run without the GIL; feed one detector
    from one thread at a time (a concurrent call raises RuntimeError).

    A value is used iff it is a finite float or int (`bool` too); `None`, NaN, +-inf and
    ints too large for a float are skipped (no state changes); `-0.0` reads as `0.0`.
    The time is carried into the anomalies, never interpreted.

    The window of a (driver, channel) is its last `window` used values before the sample
    scored; scoring needs `min_samples` of them. Over the window: `mean`, population
    `std`, `median` (of two middle values, `(a + b) / 2`), `mad` (the median of
    `|w - median|`) and `mean_ad` (the mean of `|w - median|`); sums add the values in
    ascending order in 4 interleaved partial sums (`tests/native_reference.py`,
    `lane_sum`), which the reference reproduces bit for bit. Detectors:

    * `zscore`: `(x - mean) / std`, if `std > 0`.
    * `mad`: `0.6745 * (x - median) / mad` if `mad > 0`; if `mad == 0` (over half the
      window holds one value), `(x - median) / (1.253314 * mean_ad)` if `mean_ad > 0`;
      a window of one repeated value gives no score (a change after a constant stretch,
      such as a car leaving the garage, is a new regime; stuck sensors are `flatline`'s).
    * `spike`: a sample `x` between used samples `p` and `q` whose window had `std > 0`,
      with `x - p` and `q - x` of opposite signs: `min(|x - p|, |q - x|) / std`, negated
      for a dip. Decided when `q` arrives, reported with `x`'s time and value.
    * `flatline` (channels in `flatline_channels`): a value repeated in consecutive used
      samples, reported once per run, when the run reaches `flatline_run` (score
      `flatline_run`). With `flatline_while_moving`, a sample taken while the driver
      stands (latest used `speed`, the row's own included, known and `<= 0`) ends the run.

    A score is reported iff it is finite and its absolute value exceeds the detector's
    threshold (`inf` disables a detector). Settings out of range raise ValueError:
    `2 <= window <= 65536`, `2 <= min_samples <= window`, thresholds `>= 0`,
    `2 <= flatline_run <= 2**32`.
    """

    def __new__(
        cls,
        *,
        window: int = 50,
        min_samples: int = 10,
        zscore_threshold: float = 3.0,
        mad_threshold: float = 3.5,
        spike_threshold: float = 3.0,
        flatline_run: int = 50,
        flatline_channels: Iterable[str] = ...,
        flatline_while_moving: bool = True,
    ) -> Self:
        """`flatline_channels` defaults to `{"rpm", "speed"}` (a `str` is refused)."""

    def feed(
        self,
        driver: Iterable[int],
        time_ms: Iterable[int],
        channel: str,
        values: Iterable[float | None],
    ) -> list[tuple[int, str, int, float, float, Literal["zscore", "mad", "spike", "flatline"]]]:
        """Feed one channel's samples: `feed_columns(driver, time_ms, {channel: values})`."""

    def feed_columns(
        self,
        driver: Iterable[int],
        time_ms: Iterable[int],
        channels: Mapping[str, Iterable[float | None]],
    ) -> list[tuple[int, str, int, float, float, Literal["zscore", "mad", "spike", "flatline"]]]:
        """Feed rows `(driver[i], time_ms[i], {channel: values[i]})`; return the anomalies.

        Each column is read in full first (any iterable). Raises ValueError when the
        lengths differ or a driver or time does not fit 64 bits, TypeError for a driver
        or time that is not an int, a value that is not float, int or None, a channel
        name that is not a str or `channels` that is not a mapping. Nothing changes on
        an error.
        """

    @property
    def window(self) -> int: ...
    @property
    def min_samples(self) -> int: ...
    @property
    def zscore_threshold(self) -> float: ...
    @property
    def mad_threshold(self) -> float: ...
    @property
    def spike_threshold(self) -> float: ...
    @property
    def flatline_run(self) -> int: ...
    @property
    def flatline_channels(self) -> frozenset[str]: ...
    @property
    def flatline_while_moving(self) -> bool: ...
