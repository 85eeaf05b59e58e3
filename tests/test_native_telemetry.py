"""`_native.decode_car_data` / `decode_position` against their plain-Python references.

On the 316 + 316 real `.z` payloads of the Monaco 2023 FP2 SignalR capture, on examples
of every rule of the accepted JSON, and on generated input (valid, loosely shaped with
repeated keys and wrong types, and garbage): the native decoder must return the same
batch as the reference, or raise exactly when it does.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon import _native
from tests.native_reference import (
    CAR_DATA_SCHEMA,
    POSITION_SCHEMA,
    decode_car_data_reference,
    decode_position_reference,
)

Decoder = Callable[[Any], pa.RecordBatch]
DECODERS: dict[str, tuple[Decoder, Decoder]] = {
    "CarData.z": (_native.decode_car_data, decode_car_data_reference),
    "Position.z": (_native.decode_position, decode_position_reference),
}
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DRS_CODES = {0, 1, 2, 3, 8, 9, 10, 12, 13, 14}  # off, (unknown), eligible, open


def encode_z(data: bytes | str, level: int = 6) -> str:
    """How the feed encodes a `.z` payload: base64 of raw deflate."""
    raw = data.encode() if isinstance(data, str) else data
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(raw) + compressor.flush()).decode("ascii")


def outcome(decode: Decoder, payloads: Any) -> pa.RecordBatch | tuple[type[Exception], str]:
    """The batch, or the exception type with the payload index its message names."""
    try:
        return decode(payloads)
    except (ValueError, TypeError) as error:
        index = re.match(r"payload (\d+): ", str(error))
        kind = TypeError if isinstance(error, TypeError) else ValueError
        return kind, index[1] if index else ""


def assert_same(topic: str, payloads: Any) -> pa.RecordBatch | None:
    """Native and reference agree on `payloads`; returns the batch if there is one."""
    native_decode, reference_decode = DECODERS[topic]
    native = outcome(native_decode, payloads)
    reference = outcome(reference_decode, payloads)
    if isinstance(reference, pa.RecordBatch):
        assert isinstance(native, pa.RecordBatch), (native, reference.to_pylist()[:3])
        assert native.schema == reference.schema
        assert native.equals(reference), (native.to_pylist()[:5], reference.to_pylist()[:5])
        return native
    assert native == reference, (native, reference)
    return None


# --- real recordings -------------------------------------------------------------------


@pytest.fixture(scope="module")
def feed_payloads(testdata: Path) -> dict[str, list[str]]:
    """The `.z` payloads of the capture's `feed` frames, by topic (not the snapshots of
    the subscribe reply)."""
    path = testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt"
    if not path.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{path} is required under CI=true")
        pytest.skip(f"{path} not available")
    payloads: dict[str, list[str]] = {topic: [] for topic in DECODERS}
    for line in path.read_text(encoding="utf-8").splitlines()[3:]:  # 3 log lines first
        if not line.strip():
            continue
        for message in json.loads(line).get("M", []):
            if message.get("M") == "feed" and message["A"][0] in payloads:
                payloads[message["A"][0]].append(message["A"][1])
    return payloads


@pytest.mark.parametrize("topic", DECODERS)
def test_real_payloads_match_reference(feed_payloads: dict[str, list[str]], topic: str) -> None:
    native_decode, reference_decode = DECODERS[topic]
    payloads = feed_payloads[topic]
    assert len(payloads) == 316
    singles = []
    for payload in payloads:
        batch = native_decode(payload)
        assert batch.equals(reference_decode(payload)), topic
        assert batch.equals(native_decode([payload.encode("ascii")]))
        singles.append(batch)
    whole = native_decode(payloads)
    assert whole.schema == (CAR_DATA_SCHEMA if topic == "CarData.z" else POSITION_SCHEMA)
    assert whole.equals(reference_decode(payloads))
    # One call on the sequence is the concatenation of one call per payload.
    assert pa.Table.from_batches([whole]).equals(pa.Table.from_batches(singles))
    assert whole.num_rows == sum(batch.num_rows for batch in singles)


def test_real_car_data_is_plausible(feed_payloads: dict[str, list[str]]) -> None:
    batch = _native.decode_car_data(feed_payloads["CarData.z"])
    assert batch.num_rows == 1202 * 20  # 1202 entries of the 20 cars
    columns = batch.to_pydict()
    assert len(set(columns["driver"])) == 20
    assert all(1 <= d <= 99 for d in columns["driver"])
    assert all(batch.column(name).null_count == 0 for name in batch.schema.names)
    day = datetime.fromisoformat("2023-05-26T00:00:00+00:00").timestamp() * 1000
    assert day <= pc.min(batch["utc_ms"]).as_py() <= pc.max(batch["utc_ms"]).as_py() < day + 86e6
    for name, low, high in [("speed", 0, 400), ("gear", 0, 8), ("rpm", 0, 15500)]:
        assert low <= pc.min(batch[name]).as_py() <= pc.max(batch[name]).as_py() <= high, name
    assert set(columns["drs"]) <= DRS_CODES
    assert set(columns["brake"]) <= {0, 100, 104}
    # Throttle is a percentage, except for 104: the feed sends throttle = brake = 104
    # (with speed 0, gear 0) for cars standing in the garage (1698 rows here).
    stopped = [row for row in batch.to_pylist() if row["throttle"] == 104]
    assert len(stopped) == 1698
    assert all(row["brake"] == 104 and row["speed"] == row["gear"] == 0 for row in stopped)
    assert all(0 <= t <= 100 for t in columns["throttle"] if t != 104)
    assert [row["brake"] == 104 for row in batch.to_pylist()].count(True) == len(stopped)


def test_real_position_is_plausible(feed_payloads: dict[str, list[str]]) -> None:
    batch = _native.decode_position(feed_payloads["Position.z"])
    assert batch.num_rows == 1258 * 20
    assert set(batch["status"].to_pylist()) == {"OnTrack"}
    for name, low, high in [("x", -20000, 20000), ("y", -20000, 20000), ("z", -1000, 2000)]:
        assert low <= pc.min(batch[name]).as_py() <= pc.max(batch[name]).as_py() <= high, name


def test_decoding_from_threads(feed_payloads: dict[str, list[str]]) -> None:
    payloads = feed_payloads["CarData.z"]
    expected = _native.decode_car_data(payloads)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_native.decode_car_data, [payloads] * 6))
    assert all(result.equals(expected) for result in results)


# --- the rules, by example -------------------------------------------------------------

UTC = "2023-05-26T15:31:20.1234567Z"
UTC_MS = 1_685_115_080_123


def car_data(*cars: tuple[str, str], utc: str = f'"{UTC}"') -> str:
    """A one-entry CarData message; each car is (key JSON text, Channels JSON text)."""
    body = ",".join(f'{key}:{{"Channels":{channels}}}' for key, channels in cars)
    return f'{{"Entries":[{{"Utc":{utc},"Cars":{{{body}}}}}]}}'


def test_car_data_example() -> None:
    text = car_data(
        ('"44"', '{"0":11000,"2":300,"3":8,"4":100,"5":0,"45":12,"7":"ignored"}'),
        ('"1"', '{"0":-0,"2":-0.0,"3":null}'),
    )
    batch = _native.decode_car_data(encode_z(text))
    assert batch.to_pydict() == {
        "utc_ms": [UTC_MS, UTC_MS],
        "driver": [44, 1],
        "rpm": [11000, 0],
        "speed": [300, 0],
        "gear": [8, None],
        "throttle": [100, None],
        "brake": [0, None],
        "drs": [12, None],
    }
    assert_same("CarData.z", encode_z(text))


def test_position_example() -> None:
    text = (
        '{"Position":[{"Timestamp":"2023-05-26T15:31:20Z","Entries":{'
        '"1":{"Status":"OnTrack","X":123,"Y":-456,"Z":7},"2":{},"3":{"Status":"Off\\u0054rack"}'
        "}}]}"
    )
    batch = _native.decode_position(encode_z(text))
    assert batch.to_pydict() == {
        "utc_ms": [1_685_115_080_000] * 3,
        "driver": [1, 2, 3],
        "status": ["OnTrack", None, "OffTrack"],
        "x": [123, None, None],
        "y": [-456, None, None],
        "z": [7, None, None],
    }
    assert_same("Position.z", encode_z(text))


@pytest.mark.parametrize("decode", [_native.decode_car_data, _native.decode_position])
def test_zero_rows_keep_the_schema(decode: Decoder) -> None:
    car_data = decode is _native.decode_car_data
    schema, field = (CAR_DATA_SCHEMA, "Entries") if car_data else (POSITION_SCHEMA, "Position")
    for payloads in ([], (), [encode_z(f'{{"{field}":[]}}')] * 3):
        batch = decode(payloads)
        assert batch.num_rows == 0
        assert batch.schema == schema


def test_repeated_keys_keep_the_last_value_at_the_first_position() -> None:
    for text in [
        '{"Entries":5,"Entries":[]}',
        car_data(('"1"', '{"0":"bad","0":1}')),
        car_data(('"1"', '{"0":1}'), ('"2"', '{"0":2}'), ('"1"', '{"0":3}')),
        car_data(('"1"', '{"0":1}'), ('"01"', '{"0":2}')),
        car_data(('"\\u0031"', '{"\\u0030":1}'), ('"1"', '{"0":2}')),
        car_data(('"1"', '{"0":1}'), ('"x"', '{"0":2}'), ('"x"', '{"0":3}')),
        '{"Entries":[{"Utc":5,"Cars":{},"Utc":"2023-05-26T15:31:20Z"}]}',
        '{"Entries":[{"Utc":"2023-05-26T15:31:20Z","Cars":5,"Cars":{"1":{"Channels":{}}}}]}',
    ]:
        assert_same("CarData.z", encode_z(text))
    batch = _native.decode_car_data(
        encode_z(car_data(('"1"', '{"0":1}'), ('"2"', '{"0":2}'), ('"1"', '{"0":3}')))
    )
    assert batch.to_pydict()["driver"] == [1, 2]
    assert batch.to_pydict()["rpm"] == [3, 2]


def test_many_repeated_driver_keys() -> None:
    # Beyond 32 keys repeats are found through a hash map: same result.
    cars = [(f'"{i % 50}"', f'{{"0":{i}}}') for i in range(120)]
    batch = assert_same("CarData.z", encode_z(car_data(*cars)))
    assert batch is not None
    assert batch["driver"].to_pylist() == list(range(50))
    assert batch["rpm"].to_pylist() == list(range(100, 120)) + list(range(70, 100))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "invalid CarData JSON: EOF while parsing a value at line 1 column 0"),
        ("{}", "invalid CarData JSON: missing field `Entries` at line 1 column 2"),
        ("[]", "invalid CarData JSON: invalid type: sequence, expected a CarData object"),
        ('{"Entries":{}}', "invalid CarData JSON: Entries: expected an array, found an object"),
        ('{"Entries":[1]}', "Entries[0]: expected an object with `Utc` and `Cars`, found int"),
        ('{"Entries":[{"Cars":{}}]}', "Entries[0]: missing field `Utc`"),
        (f'{{"Entries":[{{"Utc":"{UTC}"}}]}}', "Entries[0]: missing field `Cars`"),
        (car_data(utc="5"), "Entries[0].Utc: expected a timestamp string, found integer 5"),
        (car_data(utc='"2023-05-26 15:31:20Z"'), 'Utc: string "2023-05-26 15:31:20Z" is not'),
        (car_data(utc='"2023-02-29T00:00:00Z"'), "is not a timestamp"),
        (car_data(('"x"', "{}")), 'Entries[0].Cars["x"]: driver number must be ASCII'),
        (car_data(('"32768"', "{}")), 'Cars["32768"]: driver number'),
        (car_data(('"٣"', "{}")), "driver number"),
        ('{"Entries":[{"Utc":"2023-05-26T15:31:20Z","Cars":{"1":{}}}]}', "missing field `Chan"),
        (car_data(('"1"', "[]")), 'Cars["1"].Channels: expected an object of channels, found'),
        (car_data(('"1"', '{"3":"4"}')), 'Channels["3"]: expected an integer or null, found str'),
        (car_data(('"1"', '{"3":4.0}')), 'Channels["3"]: expected an integer or null, found num'),
        (car_data(('"1"', '{"3":0.0}')), "found number 0.0"),
        (car_data(('"1"', '{"3":1e2}')), "found number 100.0"),
        (car_data(('"1"', '{"3":true}')), "found boolean true"),
        (car_data(('"1"', '{"3":128}')), 'Channels["3"]: integer 128 does not fit i8'),
        (car_data(('"1"', '{"0":2147483648}')), "integer 2147483648 does not fit i32"),
        (car_data(('"1"', '{"2":18446744073709551616}')), "found number 1.8446744073709552e19"),
        ('{"Entries":[],"x":1e400}', "number out of range"),
        ('{"Entries":[],"x":"\\ud800"}', "lone leading surrogate"),
        ('{"Entries":[],"x":["\\ud800\\ud800"]}', "lone leading surrogate"),
        ('{"Entries":[],"x":{"\\ud800\\u0041":1}}', "lone leading surrogate"),
        ('{"Entries":[],"x":[1,-1.8e308]}', "number out of range"),
        ('{"Entries":[],"\\udc00":1}', "lone leading surrogate"),
        ('{"Entries":[],"x":"\x01"}', "control character"),
        ('{"Entries":[]} x', "trailing characters at line 1 column 16"),
        ('{"Entries":[],}', "trailing comma"),
        ('{"Entries":[NaN]}', "expected value"),
        ("\ufeff\ufeff{}", "expected value"),
    ],
)
def test_car_data_errors_name_payload_and_reason(text: str, reason: str) -> None:
    good = encode_z(car_data(('"1"', "{}")))
    with pytest.raises(ValueError, match=r"^payload 2: invalid CarData JSON: ") as error:
        _native.decode_car_data([good, good, encode_z(text)])
    assert reason.replace("invalid CarData JSON: ", "") in str(error.value)
    with pytest.raises(ValueError, match=r"^payload 2: "):
        decode_car_data_reference([good, good, encode_z(text)])


def test_position_errors() -> None:
    for text, reason in [
        ('{"Entries":[]}', "missing field `Position` at line 1 column 14"),
        ('{"Position":[{"Entries":{}}]}', "Position[0]: missing field `Timestamp`"),
        (f'{{"Position":[{{"Timestamp":"{UTC}"}}]}}', "Position[0]: missing field `Entries`"),
        (
            f'{{"Position":[{{"Timestamp":"{UTC}","Entries":{{"1":{{"Status":1}}}}}}]}}',
            'Position[0].Entries["1"].Status: expected a string or null, found integer 1',
        ),
        (
            f'{{"Position":[{{"Timestamp":"{UTC}","Entries":{{"1":{{"X":1.5}}}}}}]}}',
            'Entries["1"].X: expected an integer or null, found number 1.5',
        ),
        (
            f'{{"Position":[{{"Timestamp":"{UTC}","Entries":{{"1":{{"Z":-2147483649}}}}}}]}}',
            "integer -2147483649 does not fit i32",
        ),
    ]:
        with pytest.raises(ValueError, match=r"^payload 0: invalid Position JSON: ") as error:
            _native.decode_position(encode_z(text))
        assert reason in str(error.value)
        with pytest.raises(ValueError, match=r"^payload 0: "):
            decode_position_reference(encode_z(text))


def test_nesting_limit_is_orjsons() -> None:
    # The message object is level 1: 1023 more levels are fine, 1024 more are not.
    for levels, ok in [(1023, True), (1024, False)]:
        for nested in ("[" * levels + "]" * levels, '{"a":' * levels + "1" + "}" * levels):
            text = f'{{"Entries":[],"x":{nested}}}'
            assert (assert_same("CarData.z", encode_z(text)) is not None) is ok
    with pytest.raises(ValueError, match="nesting deeper than 1024 levels"):
        _native.decode_car_data(encode_z('{"Entries":' + "[" * 1024 + "]" * 1024 + "}"))
    deep = car_data(('"1"', '{"0":' + "[" * 1018 + "]" * 1018 + "}"))
    with pytest.raises(ValueError, match=r'Channels\["0"\]: expected an integer or null'):
        _native.decode_car_data(encode_z(deep))


def test_deep_nesting_needs_no_stack() -> None:
    # Skipped values are checked without recursion: 1023 levels fit a 128 KiB thread.
    texts = [
        '{"Entries":[],"x":' + "[" * 1023 + "]" * 1023 + "}",
        '{"Entries":[],"x":' + '{"a":' * 1023 + "1" + "}" * 1023 + "}",
        car_data(('"1"', '{"0":' + "[" * 1018 + "]" * 1018 + "}")),
    ]
    results: list[object] = []

    def run() -> None:
        for text in texts:
            try:
                results.append(_native.decode_car_data(encode_z(text)).num_rows)
            except ValueError as error:
                results.append(str(error))

    previous = threading.stack_size(128 * 1024)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(previous)
    assert results[:2] == [0, 0]
    assert "expected an integer or null, found an array" in str(results[2])


def test_timestamps() -> None:
    cases = {
        "2023-05-26T15:31:20.1234567Z": UTC_MS,
        "2023-05-26T15:31:20.9999999Z": 1_685_115_080_999,
        "2023-05-26T15:31:20.12": 1_685_115_080_120,
        "2023-05-26T15:31:20Z": 1_685_115_080_000,
        "1969-12-31T23:59:59.999": -1,
        "0001-01-01T00:00:00Z": -62_135_596_800_000,
        "2024-02-29T23:59:59.5Z": 1_709_251_199_500,
    }
    for text, millis in cases.items():
        payload = encode_z(car_data(('"1"', "{}"), utc=f'"{text}"'))
        assert _native.decode_car_data(payload)["utc_ms"].to_pylist() == [millis], text
        assert decode_car_data_reference(payload)["utc_ms"].to_pylist() == [millis], text
    for bad in [
        "2023-05-26T15:31:20.",
        "2023-05-26T15:31:20.12345678Z",
        "2023-05-26T15:31:20+00:00",
        "2023-05-26T15:31:20z",
        "2023-05-26t15:31:20Z",
        "2023-05-26T24:00:00Z",
        "2023-05-26T15:60:00Z",
        "2023-05-26T15:31:60Z",
        "0000-01-01T00:00:00Z",
        "2023-05-26T15:31:2٣Z",
        " 2023-05-26T15:31:20Z",
    ]:
        payload = encode_z(car_data(('"1"', "{}"), utc=json.dumps(bad)))
        assert assert_same("CarData.z", payload) is None, bad


def test_wrong_argument_types() -> None:
    good = encode_z(car_data(('"1"', "{}")))
    for decode in (_native.decode_car_data, decode_car_data_reference):
        with pytest.raises(TypeError, match=r"^payload 1: payload must be str or bytes, not int"):
            decode([good, 5])  # type: ignore[list-item]
        with pytest.raises(TypeError, match=r"not bytearray$"):
            decode(bytearray(good.encode()))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            decode(5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^payload 0: "):  # the earlier bad payload first
            decode(["!!!!", 5])  # type: ignore[list-item]
        with pytest.raises(ValueError, match=r"^payload 1: .*non-ASCII|^payload 1: 'ascii'"):
            decode([good, "é"])


def test_decode_errors_as_decode_z() -> None:
    good = encode_z(car_data(('"1"', "{}")))
    for bad, reason in [
        (good + "=", "invalid base64"),
        (good[:-8], "invalid deflate stream"),
        (encode_z(b'{"Entries":["\xff"]}'), "invalid UTF-8"),
    ]:
        with pytest.raises(ValueError, match=rf"^payload 1: {reason}"):
            _native.decode_car_data([good, bad])
        with pytest.raises(ValueError, match=r"^payload 1: "):
            decode_car_data_reference([good, bad])


def test_decompression_bomb_is_refused_by_both() -> None:
    bomb = encode_z(b'{"Entries":[]}' + b" " * _native.MAX_DECODED_BYTES, level=1)
    for decode in (_native.decode_car_data, decode_car_data_reference):
        with pytest.raises(ValueError, match=r"^payload 0: decoded payload exceeds 67108864"):
            decode(bomb)


# --- properties ------------------------------------------------------------------------


def int_range(bits: int) -> st.SearchStrategy[int]:
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@st.composite
def utc_texts(draw: st.DrawFn) -> str:
    """Valid feed timestamps: 0-7 fractional digits, with or without `Z`."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    digits = draw(st.integers(0, 7))
    fraction = f"{moment.microsecond:06}{draw(st.integers(0, 9))}"[:digits]
    return (
        f"{moment.year:04}-{moment.month:02}-{moment.day:02}T"
        f"{moment.hour:02}:{moment.minute:02}:{moment.second:02}"
        + (f".{fraction}" if digits else "")
        + draw(st.sampled_from(["Z", ""]))
    )


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


class Obj(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, so that keys can repeat."""


anything = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.tuples(st.text(max_size=4), inner), max_size=3).map(Obj),
    ),
    max_leaves=8,
)
driver_keys = st.sampled_from([False] * 15 + [True]).flatmap(
    lambda bad: (
        st.sampled_from(["32768", "x", "", " 1", "1 ", "+1", "٣", "1_0"])
        if bad
        else st.one_of(
            st.integers(0, 99).map(str), st.sampled_from(["1", "44", "01", "0", "32767"])
        )
    )
)


def to_json(value: Any, escape_keys: bool = False) -> str:
    """JSON text of generated values: `Obj` pairs in order, keys optionally all `\\u`."""
    if isinstance(value, Obj):
        items = (
            f"{escaped(key) if escape_keys else json.dumps(key)}:{to_json(item, escape_keys)}"
            for key, item in value
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(item, escape_keys) for item in value) + "]"
    return json.dumps(value)


def escaped(key: str) -> str:
    units = key.encode("utf-16-le")
    return (
        '"' + "".join(f"\\u{units[i + 1]:02x}{units[i]:02x}" for i in range(0, len(units), 2)) + '"'
    )


def shuffled_object(
    required: list[tuple[str, st.SearchStrategy[Any]]],
    extra: st.SearchStrategy[tuple[str, Any]],
) -> st.SearchStrategy[Obj]:
    """An object with the required pairs (each dropped now and then) plus extra pairs
    (which may repeat a required key), in any order."""

    @st.composite
    def build(draw: st.DrawFn) -> Obj:
        keep = st.sampled_from([True] * 30 + [False])
        pairs = [(key, draw(value)) for key, value in required if draw(keep)]
        pairs += draw(st.lists(extra, max_size=2))
        return Obj(draw(st.permutations(pairs)))

    return build()


def rarely(
    valid: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = anything, odds: int = 10
) -> st.SearchStrategy[Any]:
    """`valid`, or once in `odds` draws `bad` (so that many messages stay acceptable)."""
    return st.sampled_from([False] * (odds - 1) + [True]).flatmap(lambda b: bad if b else valid)


def with_repeats(name: str, value: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    """An extra pair: the field `name` once more, or an unknown key with any value."""
    return st.one_of(st.tuples(st.just(name), value), st.tuples(st.text(max_size=3), anything))


channel_values = rarely(
    st.one_of(int_range(8), st.none(), st.just(-0.0)),
    st.one_of(st.integers(-(2**40), 2**40), json_scalars),
    odds=25,
)
loose_channels = st.lists(
    st.tuples(st.sampled_from(["0", "2", "3", "4", "5", "45", "7", "00"]), channel_values),
    max_size=5,
).map(Obj)
loose_cars = st.lists(
    st.tuples(
        driver_keys,
        rarely(
            shuffled_object(
                [("Channels", rarely(loose_channels))],
                with_repeats("Channels", rarely(loose_channels)),
            )
        ),
    ),
    max_size=4,
).map(Obj)
loose_utc = rarely(utc_texts(), st.one_of(st.text(max_size=30), anything))
loose_entries = st.lists(
    rarely(
        shuffled_object(
            [("Utc", loose_utc), ("Cars", rarely(loose_cars))],
            st.one_of(with_repeats("Utc", loose_utc), with_repeats("Cars", rarely(loose_cars))),
        )
    ),
    max_size=3,
)
loose_car_data = shuffled_object(
    [("Entries", rarely(loose_entries))], with_repeats("Entries", rarely(loose_entries))
)
position_fields = st.one_of(
    st.tuples(st.just("Status"), rarely(st.one_of(st.text(max_size=8), st.none()), odds=25)),
    st.tuples(st.sampled_from(["X", "Y", "Z"]), rarely(int_range(32), odds=25)),
    st.tuples(st.text(max_size=3), anything),
)
loose_positions = st.lists(
    st.tuples(driver_keys, rarely(st.lists(position_fields, max_size=5).map(Obj))), max_size=4
).map(Obj)
loose_position_entries = st.lists(
    rarely(
        shuffled_object(
            [("Timestamp", loose_utc), ("Entries", rarely(loose_positions))],
            st.one_of(
                with_repeats("Timestamp", loose_utc),
                with_repeats("Entries", rarely(loose_positions)),
            ),
        )
    ),
    max_size=3,
)
loose_position = shuffled_object(
    [("Position", rarely(loose_position_entries))],
    with_repeats("Position", rarely(loose_position_entries)),
)
LOOSE = {"CarData.z": loose_car_data, "Position.z": loose_position}


# Well-formed messages (plain dicts: no repeated keys); every one must decode.
valid_channels = st.fixed_dictionaries(
    {},
    optional={
        "0": st.one_of(int_range(32), st.none()),
        "2": st.one_of(int_range(16), st.none()),
        "3": st.one_of(int_range(8), st.none()),
        "4": st.one_of(int_range(16), st.none()),
        "5": st.one_of(int_range(16), st.none()),
        "45": st.one_of(int_range(16), st.none()),
        "1": anything.map(to_json).map(json.loads),
    },
)
valid_car_data = st.fixed_dictionaries(
    {
        "Entries": st.lists(
            st.fixed_dictionaries(
                {
                    "Utc": utc_texts(),
                    "Cars": st.dictionaries(
                        st.integers(0, 32767).map(str) | st.sampled_from(["007", "44"]),
                        st.fixed_dictionaries({"Channels": valid_channels}),
                        max_size=5,
                    ),
                }
            ),
            max_size=4,
        )
    },
    optional={"Extra": anything.map(to_json).map(json.loads)},
)
valid_position = st.fixed_dictionaries(
    {
        "Position": st.lists(
            st.fixed_dictionaries(
                {
                    "Timestamp": utc_texts(),
                    "Entries": st.dictionaries(
                        st.integers(0, 32767).map(str),
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "Status": st.one_of(st.text(max_size=10), st.none()),
                                "X": st.one_of(int_range(32), st.none()),
                                "Y": st.one_of(int_range(32), st.none()),
                                "Z": st.one_of(int_range(32), st.none()),
                            },
                        ),
                        max_size=5,
                    ),
                }
            ),
            max_size=4,
        )
    }
)
VALID = {"CarData.z": valid_car_data, "Position.z": valid_position}


@PROPERTY
@given(st.data(), st.sampled_from(list(DECODERS)))
def test_well_formed_messages_decode_like_reference(data: st.DataObject, topic: str) -> None:
    messages = data.draw(st.lists(VALID[topic], min_size=1, max_size=3))
    ensure_ascii = data.draw(st.booleans())
    payloads = [encode_z(json.dumps(m, ensure_ascii=ensure_ascii)) for m in messages]
    batch = assert_same(topic, payloads)
    assert batch is not None
    entries = "Entries" if topic == "CarData.z" else "Position"
    cars = "Cars" if topic == "CarData.z" else "Entries"
    assert batch.num_rows == sum(len(e[cars]) for m in messages for e in m[entries])


@PROPERTY
@given(st.data(), st.sampled_from(list(DECODERS)))
def test_loosely_shaped_messages_like_reference(data: st.DataObject, topic: str) -> None:
    """Missing fields, wrong types, repeated keys, escaped keys: same batch or both raise."""
    messages = data.draw(st.lists(rarely(LOOSE[topic]), min_size=1, max_size=3))
    escape_keys = data.draw(st.booleans())
    assert_same(topic, [encode_z(to_json(m, escape_keys)) for m in messages])


@st.composite
def damaged_texts(draw: st.DrawFn) -> str:
    """Well-formed JSON with a cut, an inserted or a deleted character."""
    text = json.dumps(draw(st.one_of(valid_car_data, valid_position)))
    at = draw(st.integers(0, len(text)))
    damage = draw(st.sampled_from(["cut", "insert", "delete"]))
    if damage == "cut":
        return text[:at]
    if damage == "insert":
        return text[:at] + draw(st.sampled_from(list('{}[]",:0-.eE \\tnx'))) + text[at:]
    return text[:at] + text[at + 1 :]


@PROPERTY
@given(damaged_texts(), st.sampled_from(list(DECODERS)))
def test_damaged_json_like_reference(text: str, topic: str) -> None:
    assert_same(topic, encode_z(text))


garbage = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode()),
    st.binary(max_size=100).map(encode_z),
    st.text(max_size=100).map(encode_z),
)


@PROPERTY
@given(st.one_of(garbage, st.lists(garbage, max_size=3)), st.sampled_from(list(DECODERS)))
def test_garbage_raises_value_error(payloads: str | bytes | list[str | bytes], topic: str) -> None:
    native = outcome(DECODERS[topic][0], payloads)
    if not isinstance(native, pa.RecordBatch):
        assert native[0] is ValueError  # naming the payload
        assert native[1] != ""
    assert_same(topic, payloads)


@PROPERTY
@given(st.lists(st.one_of(garbage, st.integers(), st.none(), st.binary().map(bytearray))))
def test_wrong_item_types_raise_type_error(items: list[Any]) -> None:
    assert_same("CarData.z", items)


def iterate(payloads: Iterable[str]) -> Iterator[str]:
    yield from payloads


def test_any_iterable_of_payloads(feed_payloads: dict[str, list[str]]) -> None:
    payloads = feed_payloads["Position.z"][:5]
    expected = _native.decode_position(payloads)
    assert _native.decode_position(tuple(payloads)).equals(expected)
    # The stub promises sequences; any iterable works.
    assert _native.decode_position(iterate(payloads)).equals(expected)  # type: ignore[arg-type]
