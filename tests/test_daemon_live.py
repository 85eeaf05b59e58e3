"""The live source through the real daemon: a local SignalR Core server replays the
2023 Monaco FP2 capture over the real protocol, with disconnects, a cut frame, a
server close, garbage and pings; the log must hold exactly the capture's messages."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from f1daemon.config import Config, SourceSettings, load_config
from f1daemon.daemon.app import Daemon
from f1daemon.daemon.live import signalr_settings
from f1daemon.domain.events import (
    ConnectionGap,
    LapCompleted,
    MessageReceived,
    RecordQuarantined,
    SourceStateChanged,
)
from f1daemon.ingest import ingest_paths
from f1daemon.sources.recording import Recording, read_recording
from f1daemon.store.derivation import current_events
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.signalr_server import Faults, Interruption, ReplayHub, serve_signalr
from tests.test_daemon import TimedNotifier

FP2 = Path("f1dash-signalr-2023_Monaco") / "fp2.txt"
SESSION = "2023-05-28_Monaco_Grand_Prix/2023-05-26_Practice_2"  # from its SessionInfo


@pytest.fixture(scope="module")
def fp2(testdata: Path) -> Recording:
    return read_recording(testdata / FP2)


def live_config(tmp_path: Path, url: str, topics: Sequence[str]) -> Config:
    quoted = ", ".join(f'"{topic}"' for topic in topics)
    text = f"""
[daemon]
state_dir = "{tmp_path}"
store = "sqlite:///{tmp_path / "events.db"}"
[control]
socket = "{tmp_path / "ctl.sock"}"
[metrics]
enabled = false
[session]
derive_active_s = 3600
derive_idle_s = 3600
[[sources]]
name = "live"
kind = "live"
url = "{url}"
topics = [{quoted}]
watchdog_s = 5
reconnect_initial_s = 0.05
reconnect_cap_s = 0.2
"""
    path = tmp_path / "f1daemon.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={})


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
        derived = current_events(log, SESSION)
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
        derived = current_events(log, BAKU_SESSION)
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
