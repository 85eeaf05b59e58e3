"""`_native.TimingDigest` / `digest_timing_stream` against their plain-Python references.

On every real `TimingData.jsonStream` (message by message and whole files), on examples
of the rules, and on generated input (TimingData-like messages with wrong types, repeated
keys, lists for objects; garbage): the native digest must return what the reference
returns, value types included (`1 != True`), or raise exactly when it does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon import _native
from f1daemon.feed.timing import parse_time_ms
from tests.conftest import record_check
from tests.native_reference import (
    TimingDigestReference,
    digest_timing_stream_reference,
    split_json_stream_reference,
    time_ms_reference,
)

if TYPE_CHECKING:
    from f1daemon._native import TimingDigestOutput

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BAKU = "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
# Lines of Baku 2018's TimingData.jsonStream, and how many of them the lap fitter needs
# (the keyframe included), as the reference counts them.
BAKU_LINES = 23_496
# Nearly every Baku line moves a gap or an interval (the rest: segment statuses only).
BAKU_RELEVANT = 23_363

Digest: TypeAlias = "TimingDigestOutput | None"


def ordered(value: Any) -> Any:
    """`value` with dict order and value types made visible to `==` (`1 != True`)."""
    if isinstance(value, dict):
        return ("dict", [(key, ordered(item)) for key, item in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [ordered(item) for item in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def outcome(digest: Any, payload: Any) -> Any:
    """The ordered digest, or the exception type."""
    try:
        return ordered(digest.feed(payload))
    except (ValueError, TypeError) as error:
        return type(error)


def assert_same_sequence(payloads: list[Any]) -> list[Any]:
    """Fresh native and reference digests agree on each payload, in order."""
    native, reference = _native.TimingDigest(), TimingDigestReference()
    results = []
    for index, payload in enumerate(payloads):
        expected = outcome(reference, payload)
        assert outcome(native, payload) == expected, (index, payload, expected)
        results.append(expected)
    return results


def stream_outcome(rows: list[tuple[int, int | None, Digest, str | None]]) -> list[Any]:
    """Rows comparable across implementations: errors only as present or not."""
    return [(n, offset, ordered(digest), error is None) for n, offset, digest, error in rows]


def assert_same_stream(data: bytes) -> list[tuple[int, int | None, Digest, str | None]]:
    native = _native.digest_timing_stream(data)
    reference = digest_timing_stream_reference(data)
    assert stream_outcome(native) == stream_outcome(reference)
    for *_, error in native:
        if error is not None:
            assert error.startswith("invalid TimingData JSON: "), error
    return native


# --- real recordings -------------------------------------------------------------------


@pytest.fixture(scope="module")
def timing_files(testdata: Path) -> list[Path]:
    files = sorted((testdata / "livetiming").glob("*/TimingData.jsonStream"))
    assert len(files) >= 15
    return files


def test_real_messages_match_reference(timing_files: list[Path]) -> None:
    total = relevant = 0
    for path in timing_files:
        native, reference = _native.TimingDigest(), TimingDigestReference()
        for number, _offset, text in split_json_stream_reference(path.read_bytes()):
            expected = reference.feed(text)
            result = native.feed(text.encode() if number % 2 else text)
            assert ordered(result) == ordered(expected), (path.parent.name, number)
            relevant += expected is not None
            total += 1
    # The point of the digest: most messages only move segment statuses (and those that
    # move a gap or interval become a few columns, not a parsed message).
    assert relevant < total * 0.4
    record_check("all TimingData", f"digest of {total:,} messages = reference")


def test_real_files_match_reference(timing_files: list[Path]) -> None:
    for path in timing_files:
        rows = assert_same_stream(path.read_bytes())
        # The keyframe is returned even when it is only `{"Lines":{},"Withheld":false}`.
        assert rows[0][0] == 1
        assert all(error is None for *_, error in rows)
        assert all(digest is not None for _, _, digest, _ in rows[1:])


def test_baku_counts(testdata: Path) -> None:
    data = (testdata / "livetiming" / BAKU / "TimingData.jsonStream").read_bytes()
    assert len(split_json_stream_reference(data)) == BAKU_LINES
    rows = digest_timing_stream_reference(data)
    assert len(rows) == BAKU_RELEVANT
    assert stream_outcome(_native.digest_timing_stream(data)) == stream_outcome(rows)
    # Every driver's gap is carried into the digest: the keyframe has all 20 cars.
    keyframe = rows[0][2]
    assert keyframe is not None
    assert len(keyframe[1]) == 20
    assert sorted(entry[4] for entry in keyframe[1]) == list(range(1, 21))  # type: ignore[type-var]
    record_check(BAKU, f"TimingData digest: {BAKU_RELEVANT:,} of {BAKU_LINES:,} lines")


# --- the rules, by example -------------------------------------------------------------


def entry(
    driver: int, gap: str | None = None, interval: str | None = None, **items: Any
) -> tuple[Any, ...]:
    """A `TimingEntry` of `driver` with the named items set (the rest None)."""
    names = [
        "laps",
        "in_pit",
        "pit_out",
        "position",
        "lap_ms",
        "personal_fastest",
        "s1",
        "s2",
        "s3",
        "i1",
        "i2",
        "fl",
        "st",
    ]
    assert set(items) <= set(names), items
    return (driver, *(items.get(name) for name in names), gap, interval)


def test_example_message() -> None:
    message = {
        "SessionPart": 2,
        "Lines": {
            "44": {
                "NumberOfLaps": 12,
                "Sectors": {
                    "2": {"Value": "26.274", "PersonalFastest": True, "Segments": {"0": {}}},
                    "0": {"PersonalFastest": True},
                    "3": {"Value": "1.000"},
                },
                "LastLapTime": {"Value": "1:49.862", "PersonalFastest": False, "X": 1},
                "Speeds": {"FL": {"Value": "290"}, "XX": {"Value": "1"}, "ST": {}},
                "GapToLeader": "+1.2",
                "IntervalToPositionAhead": {"Value": "+0.3"},
                "InPit": False,
                "PitOut": False,
                "Position": "3",
                "Line": 3,
            },
            "5": {"GapToLeader": "+0.5"},
            "7": 3,
            "x": {"NumberOfLaps": 1},
        },
    }
    expected = (
        2,
        [
            entry(
                44,
                "+1.2",
                "+0.3",
                laps=12,
                in_pit=False,
                pit_out=False,
                position=3,
                lap_ms=109_862,
                personal_fastest=False,
                s3=26_274,
                fl=290,
            )
        ],
        [(44, "+1.2", "+0.3"), (5, "+0.5", None)],
    )
    for digest in (_native.TimingDigest(), TimingDigestReference()):
        assert ordered(digest.feed(json.dumps(message))) == ordered(expected)


def test_gaps_are_remembered_through_dropped_messages() -> None:
    payloads = [
        '{"Lines":{"44":{"GapToLeader":"+0.404","IntervalToPositionAhead":{"Value":"+0.4"}}}}',
        '{"Lines":{"44":{"GapToLeader":5}}}',  # not a string: the gap stays
        '{"Lines":{"44":{"Sectors":[{"Value":"1"},{"Stopped":false},{"Value":""}]}}}',
        '{"Lines":{"44":{"GapToLeader":"LAP 2","NumberOfLaps":"12"}}}',  # laps: a string
        '{"Lines":{"44":{"Position":"1"},"44":{"GapToLeader":"+9"}}}',  # last one counts
        '{"Lines":{"44":{"PitOut":true}}}',
        '{"Lines":{"44":{"GapToLeader":"","InPit":false}}}',  # "" forgets the gap
        '{"Lines":{"44":{"GapToLeader":"+1"},"x":{"GapToLeader":"+2"}}}',
        '{"Lines":{"44":{"InPit":true},"044":{"GapToLeader":"+3"}}}',  # the gap after all
        '{"SessionPart":null,"Lines":[1]}',
        '{"SessionPart":true}',
        '{"SessionPart":3,"Lines":[1]}',
        "[]",
        '{"Lines":{"44":{"InPit":false}}} x',
    ]
    assert_same_sequence(payloads)
    reference = TimingDigestReference()
    got: list[Digest | str] = []
    for payload in payloads:
        try:
            got.append(reference.feed(payload))
        except ValueError:
            got.append("error")
    # A message that moves a gap or interval is relevant: its gap changes say how.
    assert got == [
        (None, [], [(44, "+0.404", "+0.4")]),
        None,
        (None, [entry(44, "+0.404", "+0.4", s1=1000)], []),
        (None, [], [(44, "LAP 2", "+0.4")]),
        (None, [], [(44, "+9", "+0.4")]),
        (None, [entry(44, "+9", "+0.4", pit_out=True)], []),
        (None, [entry(44, None, "+0.4", in_pit=False)], [(44, None, "+0.4")]),
        (None, [], [(44, "+1", "+0.4")]),
        (None, [entry(44, "+3", "+0.4", in_pit=True)], [(44, "+3", "+0.4")]),
        None,
        None,
        (3, [], []),
        "error",
        "error",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1:49.862", 109_862),
        ("26.274", 26_274),
        ("1:02.3", 62_300),
        ("1:02.34", 62_340),
        ("59", 59_000),
        ("0:00", 0),
        (" \t1:02.3\r\n\x0b\x0c", 62_300),
        ("999999:999999.999", (999_999 * 60 + 999_999) * 1000 + 999),
        ("1234567", None),
        ("1234567:00.000", None),
        ("1:1234567", None),
        (".5", None),
        ("5.", None),
        ("1:", None),
        (":5", None),
        ("01:02:03.456", None),
        ("1.2345", None),
        ("+1.2", None),
        ("-1", None),
        ("1 :2", None),
        ("\u0661\u0662", None),  # Arabic-Indic digits
        ("\uff11\uff12.\uff13", None),  # full-width digits
        ("\u00a01", None),  # not ASCII whitespace
        ("\u20071.5", None),
        ("\x851", None),
        ("", None),
        ("  ", None),
        (12, None),
        (True, None),
        (None, None),
        ([], None),
    ],
)
def test_time_grammar(value: object, expected: int | None) -> None:
    assert time_ms_reference(value) == expected
    assert parse_time_ms(value) == expected  # the lap fitter's own parser agrees
    payload = json.dumps({"Lines": {"1": {"LastLapTime": {"Value": value}}}})
    result = _native.TimingDigest().feed(payload)
    assert (result[1][0][5] if result else None) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"NumberOfLaps": True}, None),
        ({"NumberOfLaps": 3.0}, None),
        ({"NumberOfLaps": "3"}, None),
        ({"NumberOfLaps": 2**63 - 1}, entry(1, laps=2**63 - 1)),
        ({"NumberOfLaps": -(2**63)}, entry(1, laps=-(2**63))),
        ({"NumberOfLaps": 2**63}, None),
        ({"NumberOfLaps": 2**64}, None),
        ({"InPit": 1}, None),
        ({"PitOut": "true"}, None),
        ({"Position": 3}, None),
        ({"Position": "03"}, entry(1, position=3)),
        ({"Position": "99999"}, entry(1, position=99_999)),
        ({"Position": "123456"}, None),
        ({"Position": "\u0661\u0662"}, None),
        ({"Position": "\uff11"}, None),
        ({"Position": " 1"}, None),
        ({"Position": ""}, None),
        ({"LastLapTime": "1:40.000"}, None),
        ({"LastLapTime": {"PersonalFastest": True}}, entry(1, personal_fastest=True)),
        ({"LastLapTime": {"PersonalFastest": 1}}, None),
        ({"Sectors": [{}, {"Value": "1"}, 5, {"Value": "2"}]}, entry(1, s2=1000)),
        ({"Sectors": {"2": {"Value": "3.5"}, "02": {"Value": "1"}}}, entry(1, s3=3500)),
        ({"Sectors": "1"}, None),
        ({"Speeds": {"I1": {"Value": 300}, "I2": {"Value": "301"}}}, entry(1, i2=301)),
        ({"Speeds": [{"Value": "300"}]}, None),
        ({"Speeds": {"ST": {"Value": "1"}, "FL": "2"}}, entry(1, st=1)),
    ],
)
def test_typed_values(fields: dict[str, Any], expected: tuple[Any, ...] | None) -> None:
    payload = json.dumps({"Lines": {"1": fields}})
    results = [digest.feed(payload) for digest in (_native.TimingDigest(), TimingDigestReference())]
    assert ordered(results[0]) == ordered(results[1])
    assert ordered(results[0]) == ordered(None if expected is None else (None, [expected], []))


def test_driver_keys() -> None:
    payload = json.dumps(
        {
            "Lines": {
                key: {"InPit": True, "GapToLeader": key}
                for key in [
                    "1",
                    "00044",
                    "99999",
                    "123456",
                    "",
                    "x1",
                    "\u0661",
                    "\uff11",
                    " 1",
                    "-1",
                ]
            }
        }
    )
    for digest in (_native.TimingDigest(), TimingDigestReference()):
        result = digest.feed(payload)
        assert result is not None
        assert [(item[0], item[14]) for item in result[1]] == [
            (1, "1"),
            (44, "00044"),
            (99_999, "99999"),
        ]


def test_errors_and_types() -> None:
    for digest in (_native.TimingDigest(), TimingDigestReference()):
        payloads: list[str | bytes] = ["", "1", "[]", "{", '{"Lines":{}} {}', b"\xff", "\ud800"]
        for payload in [*payloads, "\ufeff{}"]:
            with pytest.raises(ValueError, match="invalid TimingData JSON"):
                digest.feed(payload)
        for wrong in [None, 1, bytearray(b"{}"), memoryview(b"{}")]:
            with pytest.raises(TypeError):
                digest.feed(wrong)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "where", ["NumberOfLaps", "Unknown", "GapToLeader", "Sector", "Part", "NotADriver"]
)
def test_nesting_limit_as_orjson(where: str) -> None:
    def message(levels: int) -> str:
        value = "[" * levels + "]" * levels
        if where == "Sector":
            return f'{{"Lines":{{"1":{{"Sectors":[{{"Value":{value}}}]}}}}}}'
        if where == "Part":
            return f'{{"SessionPart":{value}}}'
        if where == "NotADriver":
            return f'{{"Lines":{{"x":{{"A":{value}}}}}}}'
        return f'{{"Lines":{{"1":{{"{where}":{value}}}}}}}'

    accepted = []
    for levels in range(1015, 1025):
        results = []
        for digest in (_native.TimingDigest(), TimingDigestReference()):
            try:
                results.append(ordered(digest.feed(message(levels))))
            except ValueError:
                results.append("refused")
        assert results[0] == results[1], levels
        accepted.append(results[0] != "refused")
    assert accepted[0]  # the deepest are refused, as orjson refuses them
    assert not accepted[-1]


def test_stream_lines_returned() -> None:
    data = (
        b"\xef\xbb\xbf00:00:01.000{}\r\n"
        b'00:00:02.000{"Lines":{"1":{"GapToLeader":"+1"}}}\r\n'
        b"\r\n"
        b'00:00:03.000{"Lines":{"1":{"Position":"2"}}}\r\n'
        b"no timestamp\n"
        b"00:00:04.000[]\n"
        b'00:00:05.000{"Lines":{"1":{"GapToLeader":"\xff"}}}\n'
        b'00:00:06.000{"SessionPart":3}'
    )
    rows = assert_same_stream(data)
    assert [(n, offset, digest) for n, offset, digest, _ in rows] == [
        (1, 1000, None),
        (2, 2000, (None, [], [(1, "+1", None)])),
        (4, 3000, (None, [entry(1, "+1", position=2)], [])),
        (5, None, None),
        (6, 4000, None),
        (7, None, None),
        (8, 6000, (3, [], [])),
    ]
    assert [error is not None for *_, error in rows] == [
        False,
        False,
        False,
        False,
        True,
        False,
        False,
    ]
    assert _native.digest_timing_stream(b"") == []
    assert _native.digest_timing_stream(b"junk") == [(1, None, None, None)]


# --- properties ------------------------------------------------------------------------


class Obj(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, so that keys can repeat."""


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
anything = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.tuples(st.text(max_size=4), inner), max_size=3).map(Obj),
    ),
    max_leaves=6,
)


def sometimes(value: st.SearchStrategy[Any], odds: int = 8) -> st.SearchStrategy[Any]:
    """`value`, or once in `odds` draws anything at all."""
    return st.sampled_from([False] * (odds - 1) + [True]).flatmap(
        lambda wild: anything if wild else value
    )


def pairs(
    fields: list[tuple[str, st.SearchStrategy[Any]]], max_size: int = 5
) -> st.SearchStrategy[Obj]:
    """Objects of some of `fields` (repeats allowed) and now and then an unknown key."""
    field = st.one_of(
        *(st.tuples(st.just(key), value) for key, value in fields),
        st.tuples(st.text(max_size=4), anything),
    )
    return st.lists(field, max_size=max_size).map(Obj)


# Times and digit strings, well-formed or nearly: other digits, whitespace, extra parts.
odd_digits = st.sampled_from(
    ["\u0661\u0662", "\uff11\uff12", "\u0663", "0", "00", "007", "99999", "123456"]
)
blank = st.sampled_from(["", " ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\u00a0", "\x85", "\u2007"])
time_core = st.one_of(
    st.sampled_from(
        ["1:49.862", "26.274", "1:02.3", "1:02.34", ".5", "1:", ":1", "01:02:03.456", "5."]
    ),
    st.sampled_from(["1.2345", "+1.2", "-1", "1e3", "1234567", "999999:999999.999"]),
    st.builds(
        lambda minutes, seconds, fraction: f"{minutes}{seconds}{fraction}",
        st.sampled_from(["", "1:", "0:", "12:", "1234567:"]),
        st.one_of(st.integers(0, 10**7).map(str), odd_digits),
        st.sampled_from(["", ".", ".1", ".12", ".123", ".1234", ".\u0661"]),
    ),
    st.text(alphabet="0123456789:. \u0661\uff11\t", max_size=8),
)
good_time = st.builds(
    lambda minutes, seconds, fraction: f"{minutes}{seconds}{fraction}",
    st.sampled_from(["", "1:", "01:", "0:"]),
    st.integers(0, 99).map(str),
    st.sampled_from(["", ".1", ".12", ".123"]),
)
timing_text = st.one_of(
    good_time,
    st.builds(lambda a, core, b: a + core + b, blank, time_core, blank),
    st.sampled_from(["", "290", "+1.2", "LAP 3", "1 L"]),
    odd_digits,
    st.text(max_size=5),
)
digit_text = st.one_of(
    st.integers(0, 120).map(str), odd_digits, st.sampled_from(["", " 1", "1 ", "+1", "x"])
)
# Integers where the digest wants them, and what is nearly an integer.
integral = st.one_of(
    st.integers(0, 80),
    st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 2**70]),
    st.booleans(),
    st.floats(0, 80),
    st.integers(0, 80).map(str),
)
valued = pairs(
    [
        ("Value", sometimes(timing_text)),
        ("PersonalFastest", sometimes(st.booleans())),
        ("OverallFastest", st.booleans()),
        ("Segments", anything),
    ],
    max_size=3,
)
speed = pairs([("Value", sometimes(digit_text)), ("PersonalFastest", st.booleans())], max_size=2)
sector_keys = st.sampled_from(["0", "1", "2", "3", "x", "01"])
sectors = st.one_of(
    st.lists(sometimes(valued), max_size=4),
    st.lists(st.tuples(sector_keys, sometimes(valued)), max_size=4).map(Obj),
    anything,
)
speeds = st.one_of(
    st.lists(
        st.tuples(st.sampled_from(["I1", "I2", "FL", "ST", "XX"]), sometimes(speed)), max_size=4
    ).map(Obj),
    anything,
)
entries = pairs(
    [
        ("NumberOfLaps", sometimes(integral)),
        ("InPit", sometimes(st.booleans())),
        ("PitOut", sometimes(st.booleans())),
        ("Position", sometimes(digit_text)),
        ("GapToLeader", sometimes(timing_text)),
        ("IntervalToPositionAhead", valued),
        ("Sectors", sectors),
        ("Speeds", speeds),
        ("LastLapTime", sometimes(valued)),
        ("Line", st.integers(1, 20)),
    ]
)
driver_keys = st.sampled_from(
    ["1", "44", "5", "77", "01", "00001", "123456", "\u0661", "\uff11", "x", ""]
)
lines = st.one_of(
    st.lists(st.tuples(driver_keys, sometimes(entries, odds=15)), max_size=4).map(Obj),
    anything,
)
messages = st.one_of(
    pairs([("Lines", lines), ("SessionPart", sometimes(integral))], max_size=3),
    # the commonest shape: one entry of gaps and intervals (the native fast path)
    st.tuples(driver_keys, entries).map(lambda entry: Obj([("Lines", Obj([entry]))])),
    anything,
)


def to_json(value: Any, *, compact: bool, ascii_only: bool) -> str:
    """JSON text of generated values: `Obj` pairs in order, with or without spaces and
    `\\u` escapes (the feed has neither)."""
    comma, colon = (",", ":") if compact else (", ", ": ")

    def text(item: Any) -> str:
        if isinstance(item, Obj):
            members = (f"{text(key)}{colon}{text(v)}" for key, v in item)
            return "{" + comma.join(members) + "}"
        if isinstance(item, list):
            return "[" + comma.join(text(v) for v in item) + "]"
        return json.dumps(item, ensure_ascii=ascii_only)

    return text(value)


@st.composite
def payloads(draw: st.DrawFn) -> str | bytes:
    message = draw(messages)
    text = to_json(message, compact=draw(st.booleans()), ascii_only=draw(st.booleans()))
    if draw(st.booleans()):
        return text.encode("utf-8", "surrogatepass")
    return text


@PROPERTY
@given(st.lists(payloads(), max_size=12))
def test_generated_sequences_match_reference(sequence: list[str | bytes]) -> None:
    assert_same_sequence(sequence)


@PROPERTY
@given(
    st.lists(st.tuples(payloads(), st.sampled_from(["00:00:01.000", "00:01:02.345", "", "9"]))),
    st.sampled_from([b"\n", b"\r\n"]),
)
def test_generated_streams_match_reference(
    lines: list[tuple[str | bytes, str]], newline: bytes
) -> None:
    data = newline.join(
        stamp.encode()
        + (text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        for text, stamp in lines
    )
    assert_same_stream(data)


@PROPERTY
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.text(max_size=60),
            st.text(alphabet='{}[]":,0123456789-.eE tfalsenuLinesGap\\', max_size=60),
        ),
        max_size=6,
    )
)
def test_garbage_is_refused_as_reference_refuses_it(sequence: list[str | bytes]) -> None:
    assert_same_sequence(sequence)
    assert_same_stream(
        b"\n".join(
            b"00:00:00.001"
            + (item if isinstance(item, bytes) else item.encode("utf-8", "surrogatepass"))
            for item in sequence
        )
    )


@PROPERTY
@given(st.one_of(timing_text, integral, st.none()))
def test_generated_times_match_reference(value: object) -> None:
    expected = time_ms_reference(value)
    assert parse_time_ms(value) == expected  # the lap fitter's own parser agrees
    payload = json.dumps({"Lines": {"1": {"Sectors": [{"Value": value}]}}})
    result = _native.TimingDigest().feed(payload)
    assert (result[1][0][7] if result else None) == expected


def test_orjson_is_the_reference_parser() -> None:
    # The references parse with orjson: numbers beyond 64 bits are floats, `-0` is 0.
    assert orjson.loads("18446744073709551616") == 2.0**64
    payload = '{"Lines":{"1":{"NumberOfLaps":[18446744073709551616,-0,-0.0,1E2,"\\u00e9"]}}}'
    assert_same_sequence([payload])
    for laps in ["-0", "-0.0", "1E2", "18446744073709551615", "18446744073709551616", "1.5"]:
        assert_same_sequence(
            [
                f'{{"SessionPart":{laps},"Lines":{{"1":{{"NumberOfLaps":{laps}}}}}}}',
                f'{{"Lines":{{"1":{{"NumberOfLaps":{laps},"Position":"\\u0031"}}}}}}',
            ]
        )
