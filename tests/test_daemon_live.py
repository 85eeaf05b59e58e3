"""The live source through the real daemon: a local SignalR Core server replays the
2023 Monaco FP2 capture over the real protocol, with disconnects, a cut frame, a
server close, garbage and pings; the log must hold exactly the capture's messages."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from f1daemon.config import Config, SourceSettings, load_config
from f1daemon.daemon.app import Daemon
from f1daemon.daemon.live import SessionPlacer, live_origin, signalr_settings
from f1daemon.domain.events import (
    ConnectionGap,
    DerivedEvent,
    LapCompleted,
    MessageReceived,
    RecordQuarantined,
    SourceStateChanged,
)
from f1daemon.projections.follower import DerivationFollower
from f1daemon.services.derivation import current_events, run_states, verify_run
from f1daemon.services.ingest import ingest_paths
from f1daemon.sources.recording import Recording, read_recording
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.signalr_server import Faults, Interruption, ReplayHub, serve_signalr
from tests.test_daemon import TimedNotifier

FP2 = Path("f1dash-signalr-2023_Monaco") / "fp2.txt"
SESSION = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"  # from its SessionInfo


@pytest.fixture(scope="module")
def fp2(testdata: Path) -> Recording:
    return read_recording(testdata / FP2)


def live_config(
    tmp_path: Path, url: str, topics: Sequence[str] | None, *, extra: str = ""
) -> Config:
    """A daemon with one live source; ``topics`` None: the default topics."""
    listed = "" if topics is None else f"topics = [{', '.join(repr(t) for t in topics)}]"
    text = f"""
[daemon]
state_dir = "{tmp_path}"
store = "sqlite:///{tmp_path / "events.db"}"
[control]
socket = "{tmp_path / "ctl.sock"}"
[metrics]
enabled = false
[[sources]]
name = "live"
kind = "live"
url = "{url}"
{listed}
watchdog_s = 5
reconnect_initial_s = 0.05
reconnect_cap_s = 0.2
{extra}
"""
    path = tmp_path / "f1daemon.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={})


def grown_then_closed(log: EventLog, session: str) -> list[DerivedEvent]:
    """The session's data once its live run, as the daemon left it, is closed.

    The daemon stopped mid-session: its run is open, holding back the laps still in
    the late-value window; it verifies as it is, and is closed as POST_SESSION would.
    """
    for state in run_states(log, session):
        assert verify_run(log, session, state).problems == ()
    follower = DerivationFollower.resume(log, session)
    if follower is not None:
        follower.close()
    return current_events(log, session)


def laps(events: Sequence[object]) -> list[tuple[int, int, int | None, int | None]]:
    return sorted(
        (e.driver, e.lap, e.lap_time_ms, e.sector1_ms)
        for e in events
        if isinstance(e, LapCompleted)
    )


async def test_the_daemons_live_log_is_the_capture_through_faults(
    fp2: Recording, tmp_path: Path, testdata: Path
) -> None:
    expected = [f for f in fp2.facts(SESSION) if isinstance(f, MessageReceived)]
    feed = [(f.topic, f.payload) for f in expected if not f.keyframe]
    snapshot = [(f.topic, f.payload) for f in expected if f.keyframe]
    faults = Faults(
        interruptions=(
            Interruption(400),
            Interruption(300, "drop-mid-frame"),
            Interruption(500, "close", error="test close"),
        ),
        frames_per_message=3,
        split=True,
        garbage={700: ("not json",)},
        ping_every=50,
        current_snapshot=True,  # as the real server: the state at the reconnect
    )
    hub = ReplayHub.from_recording(fp2, faults)
    async with serve_signalr(hub) as url:
        config = live_config(tmp_path, url, sorted({f.topic for f in expected}))
        daemon = Daemon(config, notifier=TimedNotifier())
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            with trio.fail_after(30):  # polling the writer: it has no event for a count
                while daemon.writer is None or daemon.writer.health.facts < len(expected) + 3 * 14:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            daemon.request_shutdown()

    with EventLog(parse_store_url(config.store_url)) as log:
        facts = [f for _, f in log.facts(SESSION)]
        states = log.stream_events("source-states")
        derived = grown_then_closed(log, SESSION)
    received = [f for f in facts if isinstance(f, MessageReceived)]
    # Every message of the capture exactly once, in order, under the session its
    # SessionInfo names; each of the 4 connections opened with the whole snapshot.
    assert [(f.topic, f.payload) for f in received if not f.keyframe] == feed
    streams = list(dict.fromkeys(f.stream for f in received))
    assert len(streams) == 4
    first = [(f.topic, f.payload) for f in received if f.stream == streams[0] and f.keyframe]
    assert first == snapshot
    for stream in streams[1:]:  # the state at the reconnect, every topic
        keyframes = [f.topic for f in received if f.stream == stream and f.keyframe]
        assert keyframes == [topic for topic, _ in snapshot]
    # Stream time never goes backwards (the decoders sort by it).
    offsets = [f.offset_ms or 0 for f in received]
    assert offsets == sorted(offsets)
    # The cut frame and the garbage are kept, quarantined with their reasons.
    quarantined = [f for f in facts if isinstance(f, RecordQuarantined)]
    assert sorted(f.payload for f in quarantined if f.payload == "not json") == ["not json"]
    assert any(f.reason.startswith("truncated: the connection ended") for f in quarantined)
    # Each fault is a ConnectionGap and a SourceStateChanged that says why.
    gaps = [e for e in states if isinstance(e, ConnectionGap)]
    assert [(g.previous_stream, g.stream) for g in gaps] == list(itertools.pairwise(streams))
    assert gaps[2].reason == "server closed the connection: test close"
    changes = [e for e in states if isinstance(e, SourceStateChanged)]
    reconnected = [e for e in changes if e.state == "reconnected"]
    assert [e.error for e in reconnected] == [g.reason for g in gaps]
    # ... and each loss was visible as it happened, before the reconnect.
    lost = [(e.state, e.error) for e in changes if e.state in ("reconnecting", "reconnected")]
    assert lost == [
        (state, gap.reason) for gap in gaps for state in ("reconnecting", "reconnected")
    ]
    # The laps derived from the live log are those of a direct ingest of the capture.
    with EventLog(parse_store_url(f"sqlite:///{tmp_path / 'direct.db'}")) as direct:
        ingest_paths(direct, [testdata / FP2])
        assert laps(derived) == laps(current_events(direct, SESSION))
    assert laps(derived)


BAKU_2018_RACE = Path("livetiming") / "2018-04-29_Azerbaijan_Grand_Prix__2018-04-29_Race"
BAKU_SESSION = "2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race"


async def test_a_whole_archive_race_over_the_live_path_derives_the_same_laps(
    tmp_path: Path, testdata: Path
) -> None:
    """The 2018 Baku race (24,000 messages) sent as the live feed would have, with a
    drop half-way: the daemon's laps equal a direct ingest of the archive's files."""
    folder = testdata / BAKU_2018_RACE
    hub = ReplayHub.from_archive(
        folder, Faults(interruptions=(Interruption(12_000),), current_snapshot=True)
    )
    feed = len(hub.feed_frames)
    async with serve_signalr(hub) as url:
        config = live_config(tmp_path, url, sorted(set(hub.feed_topics)))
        daemon = Daemon(config, notifier=TimedNotifier())
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            with trio.fail_after(60):
                while hub.position < feed:  # noqa: ASYNC110 - polling the replay
                    await trio.sleep(0.05)
                # Then every message, and the topics of the reconnect's snapshot.
                resent = len(hub.connections[1].topics or ())
                while daemon.sources["live"].position < feed + resent:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            daemon.request_shutdown()

    with EventLog(parse_store_url(config.store_url)) as log:
        received = [f for _, f in log.facts(BAKU_SESSION) if isinstance(f, MessageReceived)]
        derived = grown_then_closed(log, BAKU_SESSION)
    assert sum(not f.keyframe for f in received) == feed
    with EventLog(parse_store_url(f"sqlite:///{tmp_path / 'direct.db'}")) as direct:
        ingest_paths(direct, [folder])
        expected = laps(current_events(direct, BAKU_SESSION))
    assert len(expected) == 841
    assert laps(derived) == expected


def test_telemetry_topics_are_asked_for_only_with_a_token() -> None:
    plain = SourceSettings(name="live", kind="live")
    assert not {"CarData.z", "Position.z"} & set(signalr_settings(plain).topics)
    assert "TimingData" in signalr_settings(plain).topics
    with_token = SourceSettings(name="live", kind="live", token_env="F1TV_TOKEN")  # noqa: S106
    assert {"CarData.z", "Position.z"} <= set(signalr_settings(with_token).topics)
    listed = SourceSettings(name="live", kind="live", topics=("TimingData", "CarData.z"))
    assert signalr_settings(listed).topics == ("TimingData", "CarData.z")


def live_fact(topic: str, payload: str, *, keyframe: bool, sent_ms: int | None) -> MessageReceived:
    base = datetime(2026, 5, 24, 13, 0, tzinfo=UTC)
    return MessageReceived(
        session="",
        source="live",
        stream="signalr:x:1",
        topic=topic,
        sequence=1,
        offset_ms=0,
        received_at=base,
        sent_at=None if sent_ms is None else base + timedelta(milliseconds=sent_ms),
        payload=payload,
        keyframe=keyframe,
    )


INFO = (
    '{"Meeting": {"Name": "Monaco Grand Prix"}, "Name": "Race", "StartDate": "2026-06-07T13:00:00"}'
)


async def test_facts_wait_for_the_session_their_snapshot_names() -> None:
    async def no_origin(session: str) -> datetime | None:
        return None

    placer = SessionPlacer("live", None, no_origin)
    # A snapshot whose SessionInfo comes after another topic: both go to its session.
    assert await placer.place(live_fact("TrackStatus", "{}", keyframe=True, sent_ms=None)) == []
    placed = await placer.place(live_fact("SessionInfo", INFO, keyframe=True, sent_ms=None))
    assert [f.session for f in placed] == ["Monaco_Grand_Prix/2026-06-07_Race"] * 2
    # Stream time: from the first stamped message on, never backwards.
    times = [1_000, 3_500, 2_000]
    offsets = []
    for sent in times:
        (fact,) = await placer.place(live_fact("TimingData", "{}", keyframe=False, sent_ms=sent))
        assert isinstance(fact, MessageReceived)
        offsets.append(fact.offset_ms)
    assert offsets == [0, 2_500, 2_500]


async def test_a_snapshot_without_session_info_is_logged_under_the_fallback() -> None:
    async def origin_in_log(session: str) -> datetime:
        return datetime(2026, 5, 24, 12, 0, tzinfo=UTC)  # the session's first fact, earlier

    placer = SessionPlacer("live", None, origin_in_log)
    assert await placer.place(live_fact("TrackStatus", "{}", keyframe=True, sent_ms=None)) == []
    assert placer.waiting
    (flushed,) = await placer.flush()  # the feed's wait for more ran out
    assert flushed.session == "2026-05-24_Live/live"  # not left waiting in memory
    # A feed message also ends the wait: the snapshot is over.
    other = SessionPlacer("live", None, origin_in_log)
    await other.place(live_fact("TrackStatus", "{}", keyframe=True, sent_ms=None))
    ended = await other.place(live_fact("TimingData", "{}", keyframe=False, sent_ms=0))
    assert [f.topic for f in ended] == ["TrackStatus", "TimingData"]
    assert {f.session for f in ended} == {"2026-05-24_Live/live"}
    (fact,) = await placer.place(live_fact("TimingData", "{}", keyframe=False, sent_ms=0))
    assert isinstance(fact, MessageReceived)
    assert fact.offset_ms == 3_600_000  # an hour after the origin found in the log
    pinned = SessionPlacer("live", "Pinned/Session", origin_in_log)
    (kept,) = await pinned.place(live_fact("SessionInfo", INFO, keyframe=True, sent_ms=None))
    assert kept.session == "Pinned/Session"


async def test_a_snapshot_naming_no_session_is_logged_while_the_feed_is_quiet(
    tmp_path: Path,
) -> None:
    # Between sessions: a snapshot without SessionInfo, then nothing but the connection.
    hub = ReplayHub({"TrackStatus": {"Status": "1", "Message": "AllClear"}}, [])
    async with serve_signalr(hub) as url:
        config = live_config(tmp_path, url, ["TrackStatus"])
        daemon = Daemon(config, notifier=TimedNotifier())
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            with trio.fail_after(10):
                while daemon.sources["live"].position < 1:  # noqa: ASYNC110 - a count
                    await trio.sleep(0.05)
            daemon.request_shutdown()
    with EventLog(parse_store_url(config.store_url)) as log:
        (session,) = log.sessions()
        (fact,) = [f for _, f in log.facts(session)]
    assert session.endswith("_Live/live")
    assert isinstance(fact, MessageReceived)
    assert (fact.topic, fact.keyframe) == ("TrackStatus", True)


def test_a_restarted_daemon_finds_the_sessions_stream_origin_in_the_log(tmp_path: Path) -> None:
    logged = live_fact("TimingData", "{}", keyframe=False, sent_ms=90_000)
    logged = logged.model_copy(update={"session": "S/1", "offset_ms": 30_000})
    with EventLog(parse_store_url(f"sqlite:///{tmp_path / 'events.db'}")) as log:
        assert live_origin(log, "S/1", "live") is None  # not in the log yet
        log.register_session("S/1", "test")
        log.append_facts([logged])
        assert logged.sent_at is not None
        assert live_origin(log, "S/1", "live") == logged.sent_at - timedelta(seconds=30)
        assert live_origin(log, "S/1", "other-source") is None
