"""Live recordings (classic SignalR captures, FastF1 files) as facts, and their ingest."""

from __future__ import annotations

import base64
import re
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f1daemon.cli import main
from f1daemon.domain.events import (
    LapCompleted,
    MessageReceived,
    PositionBatch,
    RecordQuarantined,
    TelemetryBatch,
)
from f1daemon.errors import UserError
from f1daemon.services.derivation import current_events
from f1daemon.services.ingest import ingest_paths
from f1daemon.sources.recording import (
    SOURCE,
    Ignored,
    LineOutcome,
    Messages,
    Quarantined,
    Recording,
    RecordingFormat,
    detect_format,
    parse_lines,
    parse_recording,
    parse_utc,
    read_recording,
)
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

FP2 = Path("f1dash-signalr-2023_Monaco") / "fp2.txt"
WITH_ERRORS = Path("fastf1-signalr-recordings") / "with_errors.txt"
MONACO_FP2 = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"

# The 14 topics of fp2.txt's subscribe reply (line 21), one keyframe each.
FP2_REPLY_TOPICS = {
    "Heartbeat", "CarData.z", "Position.z", "ExtrapolatedClock", "TopThree", "TimingStats",
    "TimingAppData", "WeatherData", "TrackStatus", "DriverList", "RaceControlMessages",
    "SessionInfo", "SessionData", "TimingData",
}  # fmt: skip

# with_errors.txt, read line by line (see the docstring of f1daemon.sources.recording).
MISSING = "framing.missing_field"
WITH_ERRORS_QUARANTINED = {
    1: "framing.encoding",  # CarData.z base64 with characters cut out (285 data chars)
    2: MISSING,  # ['CarData.z', ]
    3: MISSING,  # ['CarData.z']
    4: "framing.encoding",  # Position.z base64 with characters cut out (429 data chars)
    5: MISSING,
    6: MISSING,
    7: "framing.shape",  # "whatever"
    10: "framing.syntax",  # the closing ] is missing
    11: MISSING,
    12: MISSING,
    14: MISSING,  # [topic, data]: no utc
    16: MISSING,  # [topic, utc]: no data
    17: MISSING,
    18: MISSING,
    21: "framing.syntax",  # a piece cut out of the middle
    24: MISSING,
    25: MISSING,
    27: "framing.timestamp",  # '202103-28TZ'
    29: "framing.syntax",  # a piece cut out of the middle
    30: MISSING,  # [topic, data]: no utc
    31: MISSING,
    32: MISSING,
    34: "framing.timestamp",  # '2021-0341.297Z'
    37: MISSING,
    38: MISSING,
    40: "framing.timestamp",  # '208T14:57:41.297Z'
    44: MISSING,
    45: MISSING,
    47: "framing.timestamp",  # '2021035:00:'
    48: "framing.syntax",  # a } missing: ] closes a dict
    50: MISSING,
    51: MISSING,
}
# Well framed (content damage, such as line 20's inner Utc, is the decoders' to find).
WITH_ERRORS_MESSAGES = {
    8: "Heartbeat", 9: "Heartbeat", 13: "WeatherData", 15: "WeatherData",
    19: "RaceControlMessages", 20: "RaceControlMessages", 22: "RaceControlMessages",
    23: "RaceControlMessages", 26: "TimingAppData", 28: "TimingAppData", 33: "TrackStatus",
    35: "TrackStatus", 36: "TrackStatus", 39: "SessionData", 41: "SessionData",
    42: "SessionData", 43: "SessionData", 46: "TimingData", 49: "TimingData",
}  # fmt: skip


@pytest.fixture(scope="module")
def fp2(testdata: Path) -> Recording:
    return read_recording(testdata / FP2)


@pytest.fixture(scope="module")
def with_errors(testdata: Path) -> Recording:
    return read_recording(testdata / WITH_ERRORS)


def feed_messages(recording: Recording) -> list[tuple[int, MessageReceived]]:
    return [
        (outcome.line, message)
        for outcome, message in zip_lines(recording)
        if isinstance(message, MessageReceived)
    ]


def zip_lines(
    recording: Recording,
) -> list[tuple[LineOutcome, MessageReceived | RecordQuarantined]]:
    """Each fact with the line outcome it came from."""
    facts = iter(recording.facts("test/session"))
    pairs: list[tuple[LineOutcome, MessageReceived | RecordQuarantined]] = []
    for outcome in recording.outcomes:
        count = (
            len(outcome.messages)
            if isinstance(outcome, Messages)
            else int(isinstance(outcome, Quarantined))
        )
        pairs.extend((outcome, next(facts)) for _ in range(count))
    assert next(facts, None) is None
    return pairs


def assert_accounted(recording: Recording, lines: int) -> None:
    """Every line has exactly one outcome, in order, and the report adds up."""
    assert [outcome.line for outcome in recording.outcomes] == list(range(1, lines + 1))
    for outcome in recording.outcomes:
        if isinstance(outcome, Messages):
            assert outcome.messages
        if isinstance(outcome, Quarantined):
            assert outcome.rule.startswith("framing.")
            assert outcome.reason
    report = recording.report
    assert report.lines == lines
    assert report.message_lines + report.quarantined + report.ignored_lines == lines
    facts = list(recording.facts("test/session"))
    assert len(facts) == report.messages + report.quarantined
    assert [fact.sequence for fact in facts] == list(range(1, len(facts) + 1))


# -- the SignalR capture ---------------------------------------------------------------


def test_fp2_yields_every_feed_message_and_one_keyframe_per_reply_topic(
    fp2: Recording, testdata: Path
) -> None:
    assert fp2.format is RecordingFormat.SIGNALR
    lines = len((testdata / FP2).read_bytes().splitlines())
    assert lines == 2175
    assert_accounted(fp2, lines)

    messages = feed_messages(fp2)
    keyframes = [(line, m) for line, m in messages if m.keyframe]
    assert {line for line, _ in keyframes} == {21}
    assert [m.topic for _, m in keyframes] == list(dict.fromkeys(m.topic for _, m in keyframes))
    assert {m.topic for _, m in keyframes} == FP2_REPLY_TOPICS
    assert all(m.received_at is None and m.offset_ms == 0 for _, m in keyframes)

    feed = Counter(m.topic for _, m in messages if not m.keyframe)
    assert feed["TimingData"] == 1568
    assert feed["CarData.z"] == 316
    assert feed["Position.z"] == 316
    assert feed == {
        "TimingData": 1568, "CarData.z": 316, "Position.z": 316, "TimingStats": 73,
        "TimingAppData": 57, "Heartbeat": 21, "DriverList": 9, "WeatherData": 5, "TopThree": 5,
    }  # fmt: skip

    report = fp2.report
    assert (report.messages, report.message_lines, report.quarantined) == (2384, 2123, 0)
    assert report.ignored == {"log-line": 3, "keep-alive": 32, "init": 1, "empty-frame": 16}
    assert [o.line for o in fp2.outcomes if isinstance(o, Ignored) and o.kind == "log-line"] == [
        1,
        2,
        3,
    ]


def test_fp2_facts_carry_stamps_offsets_and_the_archive_payload_shape(
    fp2: Recording, testdata: Path
) -> None:
    facts = list(fp2.facts(MONACO_FP2))
    assert all(isinstance(f, MessageReceived) for f in facts)
    assert {(f.session, f.source, f.stream) for f in facts} == {(MONACO_FP2, SOURCE, "fp2.txt")}
    messages = [f for f in facts if isinstance(f, MessageReceived) and not f.keyframe]
    first = messages[0]
    assert first.received_at == datetime(2023, 5, 26, 15, 31, 42, 671000, tzinfo=UTC)
    assert first.offset_ms == 0
    reached = 0
    for message in messages:
        assert message.received_at is not None
        # The stream time reached: the furthest stamp so far, so arrival order is kept.
        stamp = (message.received_at - first.received_at) // timedelta(milliseconds=1)
        reached = max(reached, stamp)
        assert message.offset_ms == reached
    offsets = [m.offset_ms or 0 for m in messages]
    assert offsets == sorted(offsets)
    assert max(m.offset_ms or 0 for m in messages) == 319_965  # 15:37:02.636

    # The payload is the data as compact JSON; a .z payload is the JSON string of its
    # base64 text, which inflates (raw deflate) to the feed's JSON.
    raw_line = (testdata / FP2).read_text(encoding="utf-8").splitlines()[-1]
    (last_message,) = orjson.loads(raw_line)["M"]
    assert orjson.loads(messages[-1].payload) == last_message["A"][1]
    assert messages[-1].payload == orjson.dumps(last_message["A"][1]).decode()
    car_data = next(m for m in messages if m.topic == "CarData.z")
    text = orjson.loads(car_data.payload)
    assert isinstance(text, str)
    decoded = orjson.loads(zlib.decompress(base64.b64decode(text), -zlib.MAX_WBITS))
    assert "Entries" in decoded


def test_fp2_session_key_comes_from_its_session_info(fp2: Recording) -> None:
    assert fp2.session_hint == MONACO_FP2
    assert fp2.session_key() == MONACO_FP2


def test_parsing_is_deterministic(testdata: Path) -> None:
    for name in (FP2, WITH_ERRORS):
        first = list(read_recording(testdata / name).facts("s/k"))
        again = list(read_recording(testdata / name).facts("s/k"))
        assert first == again


# -- the FastF1 file -------------------------------------------------------------------


def test_with_errors_quarantines_exactly_the_damaged_lines(with_errors: Recording) -> None:
    assert with_errors.format is RecordingFormat.FASTF1
    assert_accounted(with_errors, 51)
    quarantined = {o.line: o.rule for o in with_errors.outcomes if isinstance(o, Quarantined)}
    assert quarantined == WITH_ERRORS_QUARANTINED
    messages = {
        o.line: [m.topic for m in o.messages]
        for o in with_errors.outcomes
        if isinstance(o, Messages)
    }
    assert messages == {line: [topic] for line, topic in WITH_ERRORS_MESSAGES.items()}
    assert not any(isinstance(o, Ignored) for o in with_errors.outcomes)
    assert with_errors.session_key() == "with_errors"  # no SessionInfo: the file's stem


def test_with_errors_reasons_say_what_is_wrong(with_errors: Recording, testdata: Path) -> None:
    raw = (testdata / WITH_ERRORS).read_text(encoding="utf-8").split("\n")
    reasons = {}
    for outcome, fact in zip_lines(with_errors):
        if isinstance(outcome, Quarantined):
            assert isinstance(fact, RecordQuarantined)
            assert fact.payload == raw[outcome.line - 1]  # the line, whole
            assert (fact.rule, fact.reason) == (outcome.rule, outcome.reason)
            assert fact.reason.strip()
            reasons[outcome.line] = fact.reason
    assert reasons[10] == "truncated: unterminated list"
    assert reasons[34] == "utc stamp '2021-0341.297Z' is not a timestamp"
    assert reasons[7] == "expected a list [topic, data, utc], got a string ('whatever')"
    assert reasons[3] == "expected [topic, data, utc], got 1 element: data and utc missing"
    assert reasons[14] == "expected [topic, data, utc], got 2 elements: utc missing"
    assert reasons[16].startswith("expected [topic, data, utc], got 2 elements: data missing")
    assert "not base64" in reasons[1]
    assert "does not match" in reasons[48]
    topics = {o.line: o.topic for o in with_errors.outcomes if isinstance(o, Quarantined)}
    assert (topics[1], topics[7], topics[10], topics[21]) == (
        "CarData.z",
        None,
        "Heartbeat",
        "RaceControlMessages",
    )


def test_with_errors_good_lines_keep_their_data_and_stamps(with_errors: Recording) -> None:
    messages = feed_messages(with_errors)
    by_line = dict(messages)
    assert orjson.loads(by_line[9].payload) == {"_kf": True}  # a keyframe marker alone is valid
    assert by_line[8].received_at == datetime(2021, 3, 28, 14, 52, 32, 124219, tzinfo=UTC)
    assert by_line[8].offset_ms == 0  # the first stamped message
    assert by_line[49].offset_ms == 466_217  # 15:00:18.342 - 14:52:32.124219, floored
    assert not any(m.keyframe for _, m in messages)


# -- format detection ----------------------------------------------------------------


def test_format_is_told_by_content_not_by_name(testdata: Path, tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join((testdata / FP2).read_bytes().split(b"\n")[:30]))
    assert read_recording(capture).format is RecordingFormat.SIGNALR
    fastf1 = tmp_path / "session.jsonStream.txt"
    fastf1.write_bytes((testdata / WITH_ERRORS).read_bytes())
    assert read_recording(fastf1).format is RecordingFormat.FASTF1

    for name, content in [
        ("notes.txt", b"Starting Server\nnothing else\n"),
        ("empty.txt", b""),
        ("core.txt", b'{"type":1,"target":"feed","arguments":[]}\x1e\n'),
        ("TimingData.txt", '\ufeff00:00:01.234{"Lines":{}}\r\n'.encode()),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(UserError, match=re.escape(f"{path}: not a recognised feed recording")):
            read_recording(path)
    with pytest.raises(UserError, match="no such file"):
        read_recording(tmp_path / "missing.txt")


def test_detection_skips_log_lines_and_damaged_frames() -> None:
    assert detect_format(["Starting Server", '{"M":[', "{}"]) is RecordingFormat.SIGNALR
    assert detect_format(["", "['Heartbeat', {}, '2021-01-01T00:00:00Z']"]) is (
        RecordingFormat.FASTF1
    )
    assert detect_format(["[1, 2, 3]", '{"a": 1}']) is None


def test_bytes_edge_cases_crlf_bom_and_invalid_utf8() -> None:
    data = (
        b"\xef\xbb\xbf['Heartbeat', {'_kf': True}, '2021-03-28T14:52:32.1Z']\r\n"
        b"['Heartbeat', {'_kf': True}, '2021-03-28T14:52:33.1Z\xff']\r\n"
        b"\r\n"
    )
    recording = parse_recording(data, stream="x.txt")
    assert recording.format is RecordingFormat.FASTF1
    first, second, third = recording.outcomes
    assert isinstance(first, Messages)
    assert first.messages[0].payload == '{"_kf":true}'
    assert isinstance(second, Quarantined)
    assert second.rule == "framing.encoding"
    assert "\ufffd" in second.text
    assert third == Ignored(3, "blank")


def test_signalr_frames_one_outcome_each() -> None:
    good = '{"H":"Streaming","M":"feed","A":["TrackStatus",{"Status":"1"},"2023-05-26T15:31:42Z"]}'
    bad = '{"H":"Streaming","M":"feed","A":["TrackStatus",{"Status":"1"}]}'
    lines = [
        "Connected to WebSocket",
        f'{{"C":"x","M":[{good},{good}]}}',
        f'{{"C":"x","M":[{good},{bad}]}}',
        '{"R":{"TrackStatus":{"Status":"1"},"CarData.z":"AAAA"},"I":"1"}',
        '{"R":{"CarData.z":{"not":"base64"}},"I":"1"}',
        '{"I":"0"}',
        '{"I":"2","E":"no such hub"}',
        '{"C":"x","M":[{"H":"Streaming","M":"feed","A":["TrackStatus",',
        "[1, 2]",
        '{"C":"x","M":[{"H":"Other","M":"ping","A":[]}]}',
        '{"C":"x","Z":1}',
        '{"C":"x","M":[{"H":"Streaming","M":"feed","A":["TrackStatus","1","2023-05-26T15:31:42Z"]}]}',
    ]
    outcomes = parse_lines(lines, stream="s.txt").outcomes
    kinds = [
        o.kind if isinstance(o, Ignored) else o.rule if isinstance(o, Quarantined) else "messages"
        for o in outcomes
    ]
    assert kinds == [
        "log-line",
        "messages",
        "framing.missing_field",
        "messages",
        "framing.type",
        "ack",
        "framing.server_error",
        "framing.syntax",
        "framing.shape",
        "framing.shape",
        "framing.shape",
        "framing.type",
    ]
    second, third = outcomes[1], outcomes[2]
    assert isinstance(second, Messages)
    assert len(second.messages) == 2
    assert isinstance(third, Quarantined)
    assert third.reason == "M[1].A: expected [topic, data, utc], got 2 elements: utc missing"
    reply = outcomes[3]
    assert isinstance(reply, Messages)
    assert [(m.topic, m.keyframe, m.payload) for m in reply.messages] == [
        ("TrackStatus", True, '{"Status":"1"}'),
        ("CarData.z", True, '"AAAA"'),
    ]
    truncated = outcomes[7]
    assert isinstance(truncated, Quarantined)
    assert truncated.reason.startswith("truncated:")
    assert truncated.topic == "TrackStatus"


def test_utc_stamps() -> None:
    assert parse_utc("2021-03-28T14:52:34.2188616Z") == datetime(
        2021, 3, 28, 14, 52, 34, 218861, tzinfo=UTC
    )
    assert parse_utc("2023-05-26T15:37:02.48Z") == datetime(
        2023, 5, 26, 15, 37, 2, 480000, tzinfo=UTC
    )
    assert parse_utc("2023-05-26T17:37:02+02:00") == datetime(2023, 5, 26, 15, 37, 2, tzinfo=UTC)
    for bad in ["2021-0341.297Z", "208T14:57:41.297Z", "2021035:00:", "2021-13-01T00:00:00Z", ""]:
        assert parse_utc(bad) is None


def test_python_literals_that_json_cannot_hold_are_quarantined() -> None:
    lines = [
        "['TimingData', {'Lines': (1, 2)}, '2021-03-28T14:52:32Z']",
        "['TimingData', {1: 'x'}, '2021-03-28T14:52:32Z']",
        "['TimingData', {'x': 1e999}, '2021-03-28T14:52:32Z']",
        "['TimingData', {'x': 0x" + "f" * 5000 + "}, '2021-03-28T14:52:32Z']",
        "['TimingData', {'x': __import__('os')}, '2021-03-28T14:52:32Z']",
        "[0x" + "f" * 5000 + ", {}, '2021-03-28T14:52:32Z']",
        "['TimingData', {}, '2021-03-28T14:52:32Z', 'extra']",
        "['TimingData', [], '2021-03-28T14:52:32Z']",
    ]
    outcomes = parse_lines(lines, stream="x.txt", fmt=RecordingFormat.FASTF1).outcomes
    rules = [o.rule if isinstance(o, Quarantined) else None for o in outcomes]
    assert rules == [
        "framing.type",
        "framing.type",
        "framing.type",
        "framing.type",
        "framing.syntax",
        "framing.shape",
        "framing.shape",
        "framing.type",
    ]
    assert all(isinstance(o, Quarantined) and "0x7f" not in o.reason for o in outcomes)


# -- properties ------------------------------------------------------------------------

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
any_line = st.text(st.characters(blacklist_characters="\n"), max_size=80)
structural_line = st.lists(
    st.sampled_from(list("{}[]()\"':,. 0123456789eE-+_AZaz\\TRMAHIC")) | any_line, max_size=30
).map("".join)
json_data = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
topics = st.sampled_from(["TimingData", "WeatherData", "SessionInfo", "TrackStatus"])
stamps = st.datetimes(
    min_value=datetime(2018, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


def check_accounted(recording: Recording, lines: list[str]) -> None:
    assert_accounted(recording, len(lines))


@PROPERTY
@given(
    st.lists(any_line | structural_line, max_size=12),
    st.sampled_from(list(RecordingFormat)),
)
def test_any_lines_are_each_accounted_for_once(lines: list[str], fmt: RecordingFormat) -> None:
    recording = parse_lines(lines, stream="fuzz.txt", fmt=fmt)
    check_accounted(recording, lines)
    data = "\n".join(lines).encode("utf-8", errors="surrogatepass")
    try:
        parsed = parse_recording(data, stream="fuzz.txt")
    except ValueError:
        return  # neither format: NotARecordingError
    assert len(parsed.outcomes) == len(data.split(b"\n")) - (data.endswith(b"\n") or not data)


def valid_line(fmt: RecordingFormat, topic: str, data: dict[str, object], stamp: datetime) -> str:
    utc = stamp.isoformat().replace("+00:00", "Z")
    if fmt is RecordingFormat.FASTF1:
        return repr([topic, data, utc])
    message = {"H": "Streaming", "M": "feed", "A": [topic, data, utc]}
    return orjson.dumps({"C": "d-1", "M": [message]}).decode()


@PROPERTY
@given(
    st.sampled_from(list(RecordingFormat)),
    topics,
    st.dictionaries(st.text(max_size=5), json_data, max_size=4),
    stamps,
    st.data(),
)
def test_valid_lines_are_messages_and_their_truncations_are_quarantined(
    fmt: RecordingFormat,
    topic: str,
    data: dict[str, object],
    stamp: datetime,
    draw: st.DataObject,
) -> None:
    line = valid_line(fmt, topic, data, stamp)
    cut = draw.draw(st.integers(0, len(line) - 1), label="cut")
    lines = [line, line[:cut]]
    recording = parse_lines(lines, stream="cut.txt", fmt=fmt)
    check_accounted(recording, lines)
    whole, truncated = recording.outcomes
    assert isinstance(whole, Messages)
    (message,) = whole.messages
    assert (message.topic, message.utc) == (topic, stamp)
    assert orjson.loads(message.payload) == data
    if line[:cut].strip():
        assert isinstance(truncated, Quarantined)
        assert truncated.rule == "framing.syntax"
        assert truncated.text == line[:cut]
    else:
        assert truncated == Ignored(2, "blank")


# -- ingest ----------------------------------------------------------------------------


def test_ingesting_fp2_twice_appends_nothing_the_second_time(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    path = str(testdata / FP2)
    assert main(["ingest", path, "--store", store]) == 0
    out = capsys.readouterr().out
    assert f"{MONACO_FP2}: 1 file, 2384 messages appended, 0 already in the log;" in out
    assert "0 quarantined lines appended" in out
    assert "52 ignored by protocol (3 log-line, 32 keep-alive, 1 init, 16 empty-frame)" in out

    assert main(["ingest", path, "--store", store]) == 0
    again = capsys.readouterr().out
    assert "0 messages appended, 2384 already in the log; nothing new to derive" in again


def test_ingesting_with_errors_logs_quarantined_lines_once(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    path = str(testdata / WITH_ERRORS)
    argv = ["ingest", path, "--store", store, "--session", "2021-03-28_Bahrain_Grand_Prix/x"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "19 messages appended, 0 already in the log;" in out
    assert "32 quarantined lines appended" in out
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "0 messages appended, 51 already in the log; nothing new to derive" in again
    assert "0 quarantined lines appended" in again


def test_ingesting_something_else_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    assert main(["ingest", str(path), "--store", f"sqlite:///{tmp_path / 'e.db'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"f1daemon: error: {path}: not a recognised feed recording (")
    assert err.count("\n") == 1


def test_fp2_derives_its_telemetry_positions_and_laps_through_the_log(
    testdata: Path, tmp_path: Path
) -> None:
    """The live capture goes the whole way: facts, then the same decoders as the archive."""
    with EventLog(parse_store_url(f"sqlite:///{tmp_path / 'events.db'}")) as log:
        (result,) = ingest_paths(log, [testdata / FP2])
        assert result.derivation is not None
        # Telemetry is decoded from the facts on read, not stored (pipeline 3.0).
        stored = log.derived_events(MONACO_FP2, result.derivation.run)
        assert not any(isinstance(e, TelemetryBatch | PositionBatch) for e in stored)
        events = current_events(log, MONACO_FP2, telemetry=True)
    telemetry = [e for e in events if isinstance(e, TelemetryBatch)]
    positions = [e for e in events if isinstance(e, PositionBatch)]
    # The 316 feed messages of each, and the subscribe reply's snapshot of each.
    assert (len(telemetry), len(positions)) == (317, 317)
    speeds = [s for batch in telemetry for s in batch.speed if s is not None]
    assert speeds
    assert 0 <= min(speeds) <= max(speeds) <= 400
    assert all(0 <= g <= 8 for batch in telemetry for g in batch.gear if g is not None)
    # Stamps come from the live receipt times: the batches carry real UTC.
    assert all(b.utc is not None and b.utc.date().isoformat() == "2023-05-26" for b in telemetry)
    assert result.derivation.undecodable == 0
    assert any(isinstance(e, LapCompleted) and e.lap_time_ms for e in events)
