"""A saved subscribe reply (classic `R`, SignalR Core completion, or its `result`) as keyframes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from f1daemon.cli import main
from f1daemon.daemon.sources import load_recording
from f1daemon.domain.events import MessageReceived
from f1daemon.services.derivation import current_events
from f1daemon.services.ingest import ingest_paths
from f1daemon.sources.recording import SOURCE, parse_recording
from f1daemon.sources.subscribe_reply import ReplyError, parse_subscribe_reply
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url

FP2 = Path("f1dash-signalr-2023_Monaco") / "fp2.txt"
MONACO_FP2 = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"


def capture_lines(testdata: Path) -> list[str]:
    return (testdata / FP2).read_text(encoding="utf-8").split("\n")


def reply_index(lines: list[str]) -> int:
    """The index of the capture's first subscribe reply line."""
    return next(i for i, line in enumerate(lines) if line.startswith('{"R":'))


@pytest.fixture(scope="module")
def reply(testdata: Path) -> dict[str, Any]:
    """The capture's own subscribe reply, `{"R": {…}, "I": "1"}`."""
    lines = capture_lines(testdata)
    document = orjson.loads(lines[reply_index(lines)])
    assert isinstance(document, dict)
    return document


def keyframes(log: EventLog, session: str) -> list[tuple[object, ...]]:
    """The keyframe facts of a session, as what they say (not which file they came from)."""
    return [
        (f.topic, f.payload, f.sequence, f.offset_ms, f.received_at, f.sent_at)
        for _, f in log.facts(session)
        if isinstance(f, MessageReceived) and f.keyframe
    ]


def open_log(path: Path) -> EventLog:
    return EventLog(parse_store_url(f"sqlite:///{path}"))


def test_a_pretty_printed_reply_logs_the_captures_keyframes_under_its_session(
    reply: dict[str, Any], testdata: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "initial_state.json"
    saved.write_text(json.dumps(reply, indent=2), encoding="utf-8")
    assert saved.read_text().count("\n") > 1000  # really spread over many lines

    with open_log(tmp_path / "reply.db") as log:
        (ingested,) = ingest_paths(log, [saved])
        from_reply = keyframes(log, ingested.session)
        facts = [f for _, f in log.facts(ingested.session)]
    with open_log(tmp_path / "capture.db") as log:
        (captured,) = ingest_paths(log, [testdata / FP2])
        from_capture = keyframes(log, captured.session)

    assert ingested.session == captured.session == MONACO_FP2
    assert len(from_reply) == 14
    assert from_reply == from_capture  # same topics, payloads, order, offsets and stamps
    # Nothing but the keyframes: the reply holds no feed message.
    assert all(isinstance(f, MessageReceived) and f.keyframe for f in facts)
    assert {f.source for f in facts} == {SOURCE}
    assert {f.stream for f in facts} == {"initial_state.json"}


def test_a_reply_derives_what_the_capture_derives_from_its_reply(
    reply: dict[str, Any], testdata: Path, tmp_path: Path
) -> None:
    """Derived from the same keyframes, the reply alone and the capture cut after its
    reply give the same events: DriverList / SessionInfo-based data included."""
    lines = capture_lines(testdata)
    cut = tmp_path / "capture_until_reply.txt"
    cut.write_text("\n".join(lines[: reply_index(lines) + 1]) + "\n", encoding="utf-8")
    saved = tmp_path / "reply.json"
    saved.write_text(json.dumps(reply, indent=4), encoding="utf-8")

    derived = []
    for path in (saved, cut):
        with open_log(tmp_path / f"{path.stem}.db") as log:
            (result,) = ingest_paths(log, [path])
            assert result.session == MONACO_FP2
            assert result.derivation is not None
            events = current_events(log, MONACO_FP2, telemetry=True)
            derived.append([type(e).__name__ + e.model_dump_json() for e in events])
    assert derived[0]
    assert derived[0] == derived[1]


def shapes(reply: dict[str, Any]) -> dict[str, bytes]:
    snapshot = reply["R"]
    completion = {"type": 3, "invocationId": "1", "result": snapshot}
    return {
        "classic, pretty": json.dumps(reply, indent=2).encode(),
        "classic, one line, keys sorted": orjson.dumps(reply, option=orjson.OPT_SORT_KEYS),
        "classic, BOM and CRLF": b"\xef\xbb\xbf"
        + json.dumps(reply, indent=1).encode().replace(b"\n", b"\r\n"),
        "core completion, pretty": json.dumps(completion, indent=2).encode(),
        "core completion, as framed (\\x1e)": orjson.dumps(completion) + b"\x1e",
        "the completion's result alone": json.dumps(snapshot, indent=2).encode(),
    }


def test_every_shape_of_a_saved_reply_gives_the_same_keyframes(reply: dict[str, Any]) -> None:
    # The states as data: a file saved with its keys sorted has them in another order.
    expected = sorted(
        (topic, orjson.loads(orjson.dumps(state))) for topic, state in reply["R"].items()
    )
    for name, data in shapes(reply).items():
        recording = parse_subscribe_reply(data, stream="reply.json")
        assert recording is not None, name
        assert recording.session_key() == MONACO_FP2, name
        facts = list(recording.facts("s"))
        assert all(isinstance(f, MessageReceived) and f.keyframe for f in facts), name
        states = sorted((f.topic, orjson.loads(f.payload)) for f in facts)
        assert states == expected, name
    assert {topic for topic, _ in expected} >= {"DriverList", "SessionInfo", "TimingData"}


def test_captures_and_other_json_are_not_taken_for_a_reply(testdata: Path) -> None:
    capture = (testdata / FP2).read_bytes()
    assert parse_subscribe_reply(capture, stream="fp2.txt") is None  # one frame a line
    lines = capture_lines(testdata)
    # A capture whose first frame is its reply, followed by feed frames, stays a capture.
    frames = "\n".join(lines[reply_index(lines) : reply_index(lines) + 3]).encode()
    assert parse_subscribe_reply(frames, stream="x.txt") is None
    assert parse_recording(frames, stream="x.txt").report.messages > 14
    # A reply frame that also carries feed messages is a capture's line.
    with_feed = orjson.dumps(
        {"R": {"Heartbeat": {}}, "M": [{"H": "Streaming", "M": "feed", "A": []}]}
    )
    assert parse_subscribe_reply(with_feed, stream="x") is None
    for other in (b'{"a": 1}', b"[1, 2]", b'{"Lines": {}}', b"hello", b""):
        assert parse_subscribe_reply(other, stream="x") is None, other


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(
            "TRUNCATED",
            "a subscribe reply that is truncated: it ends inside an open object, list or string",
            id="truncated",
        ),
        pytest.param(
            '{\n  "R": {\n    "TimingData": {"Lines": {}},\n    "DriverList" {}\n  }\n}\n',
            "a subscribe reply that is not JSON: unexpected character, expected ':' after key"
            " at line 4, column 18",
            id="not JSON inside",
        ),
        pytest.param(
            '{"R": [1, 2], "I": "1"}',
            "a subscribe reply that does not frame: expected the reply R to be an object",
            id="R not an object",
        ),
        pytest.param(
            '{"R": {"TimingData": []}, "I": "1"}',
            "a subscribe reply that does not frame: R['TimingData']: TimingData data must be "
            "an object, got a list of 0 elements",
            id="a topic's state not an object",
        ),
        pytest.param(
            '{"R": {}, "I": "1"}',
            "a subscribe reply that does not frame: the subscribe reply R holds no topics",
            id="R empty",
        ),
        pytest.param(
            '{"type": 3, "invocationId": "1", "error": "Unauthorized"}',
            "the server refused the subscription: 'Unauthorized'",
            id="completion with an error",
        ),
        pytest.param(
            '{"type": 3, "invocationId": "1", "result": null}',
            "a subscribe completion without a snapshot: no topic had data",
            id="completion without result",
        ),
    ],
)
def test_a_reply_that_cannot_be_used_is_one_line_and_exit_2(
    content: str,
    reason: str,
    reply: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if content == "TRUNCATED":
        content = json.dumps(reply, indent=2)[:20000]
    path = tmp_path / "reply.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ReplyError):
        parse_subscribe_reply(path.read_bytes(), stream=path.name)
    assert main(["ingest", str(path), "--store", f"sqlite:///{tmp_path / 'e.db'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"f1daemon: error: {path}: {reason}")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_the_daemons_recording_source_replays_a_saved_reply(
    reply: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(reply, indent=2), encoding="utf-8")
    loaded = load_recording(path, None)
    assert loaded.session == MONACO_FP2
    assert [f.topic for f in loaded.facts] == list(reply["R"])


def test_a_saved_reply_exports_the_captures_drivers_and_session(
    reply: dict[str, Any], testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "initial_state.json"
    saved.write_text(json.dumps(reply, indent=2), encoding="utf-8")
    exported: dict[str, list[list[dict[str, Any]]]] = {"drivers": [], "sessions": []}
    for name, path in (("reply", saved), ("capture", testdata / FP2)):
        store = f"sqlite:///{tmp_path / name}.db"
        assert main(["ingest", str(path), "--store", store]) == 0
        for kind, tables in exported.items():
            argv = ["export", kind, "--store", store, "--format", "json"]
            capsys.readouterr()
            assert main(argv) == 0
            rows = json.loads(capsys.readouterr().out)
            # When the event was derived is not what it says (the capture goes on).
            tables.append([{k: v for k, v in r.items() if k not in ("utc",)} for r in rows])
    for kind, (from_reply, from_capture) in exported.items():
        assert from_reply, kind
        assert from_reply == from_capture, kind
    (session,) = exported["sessions"][0]
    assert (session["session_name"], session["circuit_short_name"]) == ("Practice 2", "Monte Carlo")
