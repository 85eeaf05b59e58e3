"""`f1daemon._native` against its plain-Python reference (`tests/native_reference.py`).

On every real `.jsonStream` file and every real `.z` payload, and on generated input.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon import _native
from tests.native_reference import decode_z_reference, split_json_stream_reference

Z_TOPICS = ("CarData.z", "Position.z")
BOM = b"\xef\xbb\xbf"
# Every message `decode_z` raises starts with one of these reasons.
Z_ERROR = r"^(payload \d+: )?(invalid base64|invalid deflate stream|invalid UTF-8|decoded payload)"
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

# Each generated example takes microseconds; these bounds keep the file at a few seconds.
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encode_z(data: bytes, level: int = 6) -> str:
    """How the feed encodes a `.z` payload: base64 of raw deflate."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(data) + compressor.flush()).decode("ascii")


def first_difference(native: list[Any], reference: list[Any]) -> tuple[Any, Any] | None:
    """The first differing pair of items (or of lengths), for a readable failure."""
    for ours, theirs in zip(native, reference, strict=False):
        if ours != theirs:
            return ours, theirs
    if len(native) != len(reference):
        return len(native), len(reference)
    return None


# --- real recordings -------------------------------------------------------------------


@pytest.fixture(scope="module")
def z_payloads(testdata: Path) -> dict[str, list[str]]:
    """The `.z` payloads of the Monaco 2023 FP2 SignalR capture, by topic.

    `feed` frames under the topic name, the subscribe reply's snapshot under
    `"<topic> snapshot"`.
    """
    path = testdata / "f1dash-signalr-2023_Monaco" / "fp2.txt"
    if not path.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{path} is required under CI=true")
        pytest.skip(f"{path} not available")
    payloads: dict[str, list[str]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines[3:]:  # three plain-text log lines first
        if not line.strip():
            continue
        frame = json.loads(line)
        for topic, payload in (frame.get("R") or {}).items():
            if topic in Z_TOPICS:
                payloads.setdefault(f"{topic} snapshot", []).append(payload)
        for message in frame.get("M", []):
            if message.get("M") == "feed" and message["A"][0] in Z_TOPICS:
                payloads.setdefault(message["A"][0], []).append(message["A"][1])
    return payloads


def test_real_json_streams_match_reference(testdata: Path) -> None:
    files = sorted((testdata / "livetiming").glob("*/*.jsonStream"))
    assert len(files) > 100
    total = 0
    for path in files:
        data = path.read_bytes()
        native = _native.split_json_stream(data)
        reference = split_json_stream_reference(data)
        assert native == reference, (path, first_difference(native, reference))
        # The archive is clean: every line is timed and carries a JSON object.
        assert all(offset is not None and text.startswith("{") for _, offset, text in native)
        total += len(native)
    assert total > 100_000


def test_real_z_payloads_match_reference(z_payloads: dict[str, list[str]]) -> None:
    assert len(z_payloads["CarData.z"]) == 316
    assert len(z_payloads["Position.z"]) == 316
    assert len(z_payloads["CarData.z snapshot"]) == len(z_payloads["Position.z snapshot"]) == 1
    for topic, payloads in z_payloads.items():
        expected = [decode_z_reference(payload) for payload in payloads]
        for payload, text in zip(payloads, expected, strict=True):
            assert _native.decode_z(payload) == text, topic
            assert _native.decode_z(payload.encode("ascii")) == text, topic
        assert _native.decode_z_many(payloads) == expected, topic
        assert _native.decode_z_many([p.encode("ascii") for p in payloads]) == expected, topic
        decoded = [json.loads(text) for text in expected]
        key = "Entries" if topic.startswith("CarData") else "Position"
        assert all(key in message for message in decoded), topic


def test_decode_z_many_from_threads(z_payloads: dict[str, list[str]]) -> None:
    payloads = z_payloads["CarData.z"] + z_payloads["Position.z"]
    expected = _native.decode_z_many(payloads)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_native.decode_z_many, [payloads] * 8))
    assert all(result == expected for result in results)


# --- edge cases ------------------------------------------------------------------------


def test_module_metadata() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", _native.__version__)
    assert _native.MAX_DECODED_BYTES == 64 * 1024 * 1024


def test_split_json_stream_examples() -> None:
    data = BOM + b'00:00:01.000{"a":1}\r\n\r\n  \n01:02:03.004{"b":2}\r\nno timestamp\n\xff\n'
    assert _native.split_json_stream(data) == [
        (1, 1000, '{"a":1}'),
        (4, 3_723_004, '{"b":2}'),
        (5, None, "no timestamp"),
        (6, None, "\ufffd"),
    ]
    assert _native.split_json_stream(b"") == []
    with pytest.raises(TypeError):
        _native.split_json_stream("00:00:01.000{}")  # type: ignore[arg-type]


def test_decode_z_errors_name_the_reason() -> None:
    good = encode_z(b"{}")
    cases = {
        good + "=": "invalid base64",
        good + "\n": "invalid base64",
        good.rstrip("="): "invalid base64",
        "é" + good: "invalid base64: string payload contains non-ASCII",
        "\ud800": "invalid base64: string payload contains non-ASCII",
        "": "invalid deflate stream: incomplete or truncated stream",
        encode_z(b"{}" * 100)[:-8]: "invalid deflate stream",
        base64.b64encode(b"\x03\x02\x00\x00").decode(): "invalid deflate stream",  # too far back
        encode_z(b'{"a":"\xff"}'): "invalid UTF-8",
    }
    for payload, reason in cases.items():
        with pytest.raises(ValueError, match=f"^{re.escape(reason)}"):
            _native.decode_z(payload)
        with pytest.raises((ValueError, zlib.error)):
            decode_z_reference(payload)


def test_decode_z_bomb_is_refused() -> None:
    bomb = encode_z(bytes(_native.MAX_DECODED_BYTES + 1), level=1)
    assert len(bomb) < 1_000_000
    with pytest.raises(ValueError, match=r"^decoded payload exceeds 67108864 bytes$"):
        _native.decode_z(bomb)
    with pytest.raises(ValueError, match=r"^payload 1: decoded payload exceeds"):
        _native.decode_z_many([encode_z(b"{}"), bomb])


def test_decode_z_many_names_first_bad_index() -> None:
    good = encode_z(b"[1]")
    assert _native.decode_z_many([]) == []
    assert _native.decode_z_many((good, good.encode())) == ["[1]", "[1]"]
    with pytest.raises(ValueError, match=r"^payload 2: invalid base64"):
        _native.decode_z_many([good, good, "!!!!", "é"])
    with pytest.raises(ValueError, match=r"^payload 1: invalid base64: string payload"):
        _native.decode_z_many([good, "é", "!!!!"])
    with pytest.raises(TypeError, match=r"^payload 1: payload must be str or bytes, not int$"):
        _native.decode_z_many([good, 5])  # type: ignore[list-item]


def test_wrong_types() -> None:
    with pytest.raises(TypeError, match=r"^payload must be str or bytes, not bytearray$"):
        _native.decode_z(bytearray(b"AwA="))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^payloads must be a sequence of str or bytes, not str$"):
        _native.decode_z_many("AwA=")
    with pytest.raises(TypeError):
        _native.decode_z_many(5)  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------

timestamps = st.builds(
    "{:02}:{:02}:{:02}.{:03}".format,
    st.integers(0, 99),
    st.integers(0, 99),  # 60-99: not a timestamp
    st.integers(0, 99),
    st.integers(0, 999),
).map(str.encode)
prefixes = st.one_of(
    timestamps,
    st.sampled_from(
        [b"", b"0:00:00.000", b"00:00:00.00", b"00:00:00,000", "00:0٣:00.000".encode()]
    ),
)
bodies = st.one_of(
    st.text(max_size=20).map(str.encode),
    st.binary(max_size=20),
    st.sampled_from(
        [b"", b" ", b"\t\x0b\x0c", b'{"a":1}', BOM + b"{}", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\r"]
    ),
)
line_ends = st.sampled_from([b"\n", b"\r\n", b"\r", b"\r\r\n", b"\n\n"])
json_streams = st.builds(
    lambda bom, lines: bom + b"".join(p + b + e for p, b, e in lines),
    st.sampled_from([b"", BOM, BOM + BOM]),
    st.lists(st.tuples(prefixes, bodies, line_ends), max_size=12),
)


@PROPERTY
@given(st.one_of(st.binary(max_size=200), json_streams))
def test_split_json_stream_matches_reference(data: bytes) -> None:
    assert _native.split_json_stream(data) == split_json_stream_reference(data)


json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
json_texts = st.one_of(
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False)),
    st.text(max_size=200),
)


@st.composite
def damaged_payloads(draw: st.DrawFn) -> str:
    """A valid payload with one typical kind of damage."""
    compressed = base64.b64decode(encode_z(draw(json_texts).encode(), draw(st.integers(0, 9))))
    damage = draw(st.sampled_from(["cut", "flip", "trail", "pad", "insert"]))
    if damage == "cut":
        compressed = compressed[: draw(st.integers(0, len(compressed)))]
    elif damage == "flip":
        at = draw(st.integers(0, len(compressed) - 1))
        compressed = (
            compressed[:at]
            + bytes([compressed[at] ^ draw(st.integers(1, 255))])
            + compressed[at + 1 :]
        )
    elif damage == "trail":
        compressed += draw(st.binary(min_size=1, max_size=8))
    text = base64.b64encode(compressed).decode()
    if damage == "pad":
        text += "=" * draw(st.integers(1, 3))
    elif damage == "insert":
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at] + draw(st.sampled_from([*B64_ALPHABET[:3], "=", "\n", " ", "-"])) + text[at:]
        )
    return text


z_inputs = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=B64_ALPHABET + "=", max_size=40),
    st.binary(max_size=40),
    st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode()),  # valid base64
    st.binary(max_size=200).map(encode_z),  # valid deflate, maybe not UTF-8
    st.binary(max_size=50).map(lambda raw: encode_z(BOM + raw)),
    damaged_payloads(),
)


@PROPERTY
@given(z_inputs, st.booleans())
def test_decode_z_matches_reference(payload: str | bytes, as_bytes: bool) -> None:
    if as_bytes and isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    try:
        expected: str | None = decode_z_reference(payload)
    except (ValueError, zlib.error):
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match=Z_ERROR):
            _native.decode_z(payload)
        with pytest.raises(ValueError, match=r"^payload 0: "):
            _native.decode_z_many([payload])
    else:
        assert _native.decode_z(payload) == expected
        assert _native.decode_z_many([payload]) == [expected]


@PROPERTY
@given(st.lists(st.tuples(json_texts, st.integers(0, 9), st.booleans()), max_size=5))
def test_decode_z_round_trip(items: list[tuple[str, int, bool]]) -> None:
    payloads = [
        encode_z((BOM if bom else b"") + text.encode(), level) for text, level, bom in items
    ]
    # `utf-8-sig` drops one leading BOM, whether we added it or the text began with one.
    texts = [text if bom else text.removeprefix("\ufeff") for text, _, bom in items]
    assert [_native.decode_z(payload) for payload in payloads] == texts
    assert _native.decode_z_many(payloads) == texts
