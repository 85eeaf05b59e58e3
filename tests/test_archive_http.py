"""Backfill from the static archive over HTTP, against a local server of the real files.

The server (`tests/archive_server.py`) serves `../shared/f1data/livetiming` in place,
in the archive's URL layout, over real HTTP, with faults injected per URL. Backoff
sleeps go through a recording fake (`Sleeps`): the retries and their delays are
asserted without waiting for them. (trio's `autojump_clock` does not fit here: the
client waits on real sockets served by another thread, and a clock that jumps
whenever trio is idle would fire httpx's timeouts while the answer is on its way.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from f1daemon.actors.backoff import Backoff
from f1daemon.cli import main
from f1daemon.domain.events import MessageReceived
from f1daemon.errors import UserError
from f1daemon.services.ingest import ingest_paths, ingest_session
from f1daemon.sources.archive import read_facts, session_key_for, topic_files
from f1daemon.sources.archive_client import ArchiveHTTPError, SessionBackfill
from f1daemon.sources.archive_http import BackfillReport, backfill
from f1daemon.sources.archive_index import ArchiveSession, resolve_sessions
from f1daemon.sources.http_fetch import RetryPolicy
from f1daemon.store.eventlog import EventLog
from f1daemon.store.url import parse_store_url
from tests.archive_server import ArchiveServer, Fault

BAHRAIN_2021 = "2021/2021-03-28_Bahrain_Grand_Prix/"
BRITISH_2021_RACE = "2021/2021-07-18_British_Grand_Prix/2021-07-18_Race/"
BAHRAIN_2021_RACE = "2021/2021-03-28_Bahrain_Grand_Prix/2021-03-28_Race/"
BAKU_2023 = "2023/2023-04-30_Azerbaijan_Grand_Prix/"


class Sleeps:
    """A stand-in for `trio.sleep` that records the delays and does not wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await trio.lowlevel.checkpoint()


@pytest.fixture
def livetiming(testdata: Path) -> Path:
    return testdata / "livetiming"


@pytest.fixture
def server(livetiming: Path) -> Iterator[ArchiveServer]:
    with ArchiveServer(livetiming) as running:
        yield running


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def policy(attempts: int = 4, timeout: float = 5.0) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts,
        backoff=Backoff(initial=0.01, factor=2.0, cap=1.0, jitter=0.5),
        timeout=timeout,
    )


def local_facts(livetiming: Path, key: str) -> list[MessageReceived]:
    """What ingesting the session's folder from disk gives."""
    folder = livetiming / key.replace("/", "__")
    facts = read_facts(session_key_for(folder), topic_files(folder))
    return [f for f in facts if isinstance(f, MessageReceived)]  # every line is UTF-8


async def run(
    server: ArchiveServer,
    cache: Path,
    year: int,
    event: str | None = None,
    session: str | None = None,
    **options: object,
) -> tuple[list[SessionBackfill], list[str], BackfillReport]:
    """A backfill; returns the sessions handed over, the progress lines and the report."""
    sessions: list[SessionBackfill] = []
    lines: list[str] = []
    options.setdefault("policy", policy())
    report = await backfill(
        year,
        event,
        session,
        cache_dir=cache,
        base_url=server.url,
        on_session=sessions.append,
        progress=lines.append,
        **options,  # type: ignore[arg-type]
    )
    return sessions, lines, report


def part_files(directory: Path) -> list[Path]:
    return list(directory.rglob("*.part"))


def index_of(livetiming: Path, year: int) -> dict[str, object]:
    data = (livetiming / "_index" / str(year) / "Index.json").read_bytes()
    index: dict[str, object] = json.loads(data.decode("utf-8-sig"))
    return index


# -- (1) the facts are those of the same files read from disk


@pytest.mark.parametrize(
    "case",
    [
        (2021, "British Grand Prix", "Race", "2021-07-18_British_Grand_Prix/2021-07-18_Race"),
        (2021, "bahrain", "r", "2021-03-28_Bahrain_Grand_Prix/2021-03-28_Race"),
        (
            2023,
            "Baku",
            "Sprint Shootout",
            "2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint_Shootout",
        ),
    ],
)
async def test_backfill_gives_the_facts_of_the_folder(
    server: ArchiveServer, livetiming: Path, tmp_path: Path, case: tuple[int, str, str, str]
) -> None:
    year, event, session, key = case
    sessions, lines, _ = await run(server, tmp_path, year, event, session)

    assert [s.key for s in sessions] == [key]
    (fetched,) = sessions
    expected = local_facts(livetiming, key)
    assert expected  # a real session, not two empty lists
    assert list(fetched.facts()) == expected
    # Byte for byte what is on disk (BOM, CRLF and all), topic for topic.
    folder = livetiming / key.replace("/", "__")
    local = topic_files(folder)
    assert [f.topic for f in fetched.files] == [f.topic for f in local]
    assert [f.path.read_bytes() for f in fetched.files] == [f.path.read_bytes() for f in local]
    assert fetched.size == sum(f.path.stat().st_size for f in local)
    assert lines[-1].startswith(f"session 1/1: {key}: {len(local)} topics, ")


async def test_http_and_folder_ingests_append_the_same_facts(
    server: ArchiveServer, livetiming: Path, tmp_path: Path
) -> None:
    key = "2021-03-28_Bahrain_Grand_Prix/2021-03-28_Race"
    sessions, _, _ = await run(server, tmp_path / "cache", 2021, "Bahrain", "Race")
    with EventLog(parse_store_url(f"sqlite:///{tmp_path / 'events.db'}")) as log:
        (from_folder,) = ingest_paths(log, [livetiming / key.replace("/", "__")])
        from_http = ingest_session(log, sessions[0].key, sessions[0].files, "archive")

    assert from_folder.session == from_http.session == key
    assert from_folder.appended > 0
    assert (from_http.appended, from_http.already_logged) == (0, from_folder.appended)


# -- (2) faults: the same facts, after the retries the server counted


async def test_faults_are_retried_and_the_facts_are_unchanged(
    server: ArchiveServer, livetiming: Path, tmp_path: Path, sleeps: Sleeps
) -> None:
    key = "2021-07-18_British_Grand_Prix/2021-07-18_Race"
    faults = {
        "2021/Index.json": [Fault("status", status=502)],
        f"{BRITISH_2021_RACE}Index.json": [Fault("status", status=500)],
        f"{BRITISH_2021_RACE}TimingAppData.jsonStream": [
            Fault("status", times=2, status=503),
            Fault("status", status=429, retry_after="7"),
        ],
        f"{BRITISH_2021_RACE}RaceControlMessages.jsonStream": [Fault("truncate")],
        f"{BRITISH_2021_RACE}DriverList.jsonStream": [Fault("reset")],
        f"{BRITISH_2021_RACE}WeatherData.jsonStream": [Fault("slow", delay=0.6)],
    }
    injected = {path: sum(f.times for f in queued) for path, queued in faults.items()}
    for path, queued in faults.items():
        server.inject(path, *queued)

    sessions, _, report = await run(
        server, tmp_path, 2021, "Silverstone", "Race", policy=policy(timeout=0.3), sleep=sleeps
    )

    assert list(sessions[0].facts()) == local_facts(livetiming, key)
    for path, count in injected.items():
        hits = [hit for hit in server.hits if hit.path == path]
        # Every fault was met, then one good answer.
        assert [hit.status for hit in hits][-1] == 200, path
        assert len(hits) == count + 1, path
    assert server.statuses(f"{BRITISH_2021_RACE}TimingAppData.jsonStream") == {
        503: 2,
        429: 1,
        200: 1,
    }
    assert sum(injected.values()) == 8
    assert len(sleeps.delays) == 8
    assert report.retries == 8
    # Retry-After: 7 outweighs the millisecond backoff; the other delays are the backoff's.
    assert max(sleeps.delays) == 7.0
    assert sorted(sleeps.delays)[:-1] == [d for d in sorted(sleeps.delays) if d < 1.0]
    # Nothing half-downloaded is left behind, and nothing truncated was kept.
    assert not part_files(tmp_path)


# -- (3) a second run revalidates: every request conditional, every answer 304


@pytest.mark.parametrize(("etags", "last_modified"), [(True, True), (True, False), (False, True)])
async def test_a_second_run_is_served_from_the_cache(
    server: ArchiveServer, livetiming: Path, tmp_path: Path, etags: bool, last_modified: bool
) -> None:
    server.etags, server.last_modified = etags, last_modified
    first, _, _ = await run(server, tmp_path, 2021, "British", "Race")
    assert server.statuses() == {200: 1 + 1 + 8}  # year index, session index, 8 topics
    assert not any(hit.conditional for hit in server.hits)
    server.reset_counts()

    second, lines, _ = await run(server, tmp_path, 2021, "British", "Race", refresh=True)

    assert server.statuses() == {304: 10}
    assert all(hit.conditional for hit in server.hits)
    assert second[0].revalidated == 8
    assert list(second[0].facts()) == list(first[0].facts())
    assert list(second[0].facts()) == local_facts(livetiming, second[0].key)
    assert "(8 unchanged, from the cache)" in lines[-1]


async def test_a_damaged_cache_entry_is_fetched_again(
    server: ArchiveServer, livetiming: Path, tmp_path: Path
) -> None:
    first, _, _ = await run(server, tmp_path, 2021, "British", "Race")
    damaged = next(f for f in first[0].files if f.topic == "TimingAppData")
    damaged.path.write_bytes(damaged.path.read_bytes()[:100])
    server.reset_counts()

    second, _, _ = await run(server, tmp_path, 2021, "British", "Race", refresh=True)

    path = f"{BRITISH_2021_RACE}TimingAppData.jsonStream"
    assert [(hit.status, hit.conditional) for hit in server.hits if hit.path == path] == [
        (200, False)
    ]
    assert server.statuses() == {304: 9, 200: 1}
    assert list(second[0].facts()) == local_facts(livetiming, second[0].key)


# -- (4) resume: finished sessions are not fetched again


async def test_a_rerun_resumes_after_the_last_finished_session(
    server: ArchiveServer, livetiming: Path, tmp_path: Path, sleeps: Sleeps
) -> None:
    qualifying = "2023-04-30_Azerbaijan_Grand_Prix/2023-04-28_Qualifying"
    shootout = "2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint_Shootout"
    sprint = "2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint"
    # The shootout's last topic fails for good: its other topics are already fetched.
    failing = f"{BAKU_2023}2023-04-29_Sprint_Shootout/TrackStatus.jsonStream"
    server.inject(failing, Fault("status", times=3, status=503))
    handed: list[SessionBackfill] = []
    lines: list[str] = []

    with pytest.raises(ArchiveHTTPError, match=r"TrackStatus\.jsonStream") as failed:
        await backfill(
            2023,
            "Azerbaijan",
            cache_dir=tmp_path,
            base_url=server.url,
            on_session=handed.append,
            progress=lines.append,
            policy=policy(attempts=3),
            sleep=sleeps,
        )
    assert failed.value.status == 503
    assert [s.key for s in handed] == [qualifying]
    assert any(line.startswith(f"session 2/5: {qualifying}: 7 topics") for line in lines)
    shootout_topics = [f.topic for f in topic_files(livetiming / shootout.replace("/", "__"))]
    assert shootout_topics[-1] == "TrackStatus"
    first_hits = list(server.hits)
    server.reset_counts()

    second, lines, report = await run(server, tmp_path, 2023, "Azerbaijan", sleep=sleeps)

    assert [s.key for s in second] == [shootout, sprint]
    assert [s.key for s in report.already_done] == [qualifying]
    assert f"session 2/5: {qualifying}: done by an earlier run, skipped" in lines
    # The finished session: not one request. The interrupted one: what it had is
    # revalidated (304), the rest fetched.
    assert not [hit for hit in server.hits if hit.path.startswith(f"2023/{qualifying}")]
    assert any(hit.path.startswith(f"2023/{qualifying}") for hit in first_hits)
    shootout_hits = {
        hit.path.rsplit("/", 1)[1]: hit.status
        for hit in server.hits
        if hit.path.startswith(f"2023/{shootout}/")
    }
    assert shootout_hits == {
        "Index.json": 304,
        **{f"{topic}.jsonStream": 304 for topic in shootout_topics[:-1]},
        "TrackStatus.jsonStream": 200,
    }
    for fetched in second:
        assert list(fetched.facts()) == local_facts(livetiming, fetched.key)


# -- (5) what YEAR [EVENT] [SESSION] selects


def keys(sessions: list[ArchiveSession]) -> list[str]:
    return [s.key for s in sessions]


@pytest.mark.parametrize(
    ("year", "event", "session", "expected"),
    [
        (2021, "Bahrain", "Race", ["2021-03-28_Bahrain_Grand_Prix/2021-03-28_Race"]),
        (
            2021,
            "BAHRAIN GRAND PRIX",
            "fp3",
            ["2021-03-28_Bahrain_Grand_Prix/2021-03-27_Practice_3"],
        ),
        (2021, "great britain", "race", ["2021-07-18_British_Grand_Prix/2021-07-18_Race"]),
        (
            2021,
            "2021-07-18_British_Grand_Prix",
            "R",
            ["2021-07-18_British_Grand_Prix/2021-07-18_Race"],
        ),
        (
            2021,
            "monza",
            "practice",
            [
                "2021-09-12_Italian_Grand_Prix/2021-09-10_Practice_1",
                "2021-09-12_Italian_Grand_Prix/2021-09-11_Practice_2",
            ],
        ),
        (2021, "Mexico", "Q", ["2021-11-07_Mexico_City_Grand_Prix/2021-11-06_Qualifying"]),
        # "Sprint" is the sprint, not the shootout; "Qualifying" is not the shootout either.
        (2023, "baku", "Sprint", ["2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint"]),
        (2023, "baku", "ss", ["2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint_Shootout"]),
        (
            2023,
            "Azerbaijan",
            "qualifying",
            ["2023-04-30_Azerbaijan_Grand_Prix/2023-04-28_Qualifying"],
        ),
        (2023, "montreal", "Qualifying", ["2023-06-18_Canadian_Grand_Prix/2023-06-17_Qualifying"]),
        # Named "Bahrain", it is the Grand Prix, not the test held in Bahrain.
        (
            2023,
            "Bahrain",
            "2023-03-03_Practice_1",
            ["2023-03-05_Bahrain_Grand_Prix/2023-03-03_Practice_1"],
        ),
        (
            2023,
            "pre-season testing",
            "practice 1",
            ["2023-02-25_Pre-Season_Testing/2023-02-23_Practice_1"],
        ),
    ],
)
def test_selection_resolves_against_the_real_indexes(
    livetiming: Path, year: int, event: str, session: str, expected: list[str]
) -> None:
    assert keys(resolve_sessions(index_of(livetiming, year), year, event, session)) == expected


def test_a_whole_year_or_meeting_is_every_session_the_archive_has(livetiming: Path) -> None:
    for year in (2021, 2023):
        index = index_of(livetiming, year)
        meetings: list[dict[str, list[dict[str, str]]]] = index["Meetings"]  # type: ignore[assignment]
        with_path = [s["Path"] for m in meetings for s in m["Sessions"] if "Path" in s]
        listed = sum(len(m["Sessions"]) for m in meetings)
        assert len(with_path) < listed  # the index lists sessions the archive lacks
        # ... and 2021's has one elsewhere ("../uat/static/2022/…"): not this archive's.
        with_path = [p for p in with_path if not p.startswith("../")]

        resolved = resolve_sessions(index, year)

        assert [s.path for s in resolved] == with_path
    baku = resolve_sessions(index_of(livetiming, 2023), 2023, "Azerbaijan")
    assert [s.name for s in baku] == [
        "Practice 1",
        "Qualifying",
        "Sprint Shootout",
        "Sprint",
        "Race",
    ]
    assert {s.meeting for s in baku} == {"Azerbaijan Grand Prix"}


def test_an_unknown_event_lists_the_meetings(livetiming: Path) -> None:
    with pytest.raises(UserError, match="no meeting of 2021 matches 'Atlantis'") as error:
        resolve_sessions(index_of(livetiming, 2021), 2021, "Atlantis")
    message = str(error.value)
    for meeting in ("Bahrain Grand Prix (Sakhir, Bahrain)", "Abu Dhabi Grand Prix", "Mexico City"):
        assert meeting in message


def test_an_ambiguous_event_lists_the_candidates(livetiming: Path) -> None:
    with pytest.raises(UserError, match="'Sakhir' matches several meetings of 2023") as error:
        resolve_sessions(index_of(livetiming, 2023), 2023, "Sakhir")
    assert "Pre-Season Testing" in str(error.value)
    assert "Bahrain Grand Prix" in str(error.value)


def test_an_unknown_session_lists_the_sessions(livetiming: Path) -> None:
    with pytest.raises(
        UserError, match="no session of Bahrain Grand Prix 2021 matches 'Sprint'"
    ) as error:
        resolve_sessions(index_of(livetiming, 2021), 2021, "Bahrain", "Sprint")
    assert "Practice 1, Practice 2, Practice 3, Qualifying, Race" in str(error.value)


async def test_an_unknown_event_fails_before_fetching_any_session(
    server: ArchiveServer, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="no meeting of 2021 matches 'Atlantis'"):
        await run(server, tmp_path, 2021, "Atlantis")
    assert [hit.path for hit in server.hits] == ["2021/Index.json"]


async def test_sessions_and_topics_the_archive_lacks_are_reported_not_fatal(
    server: ArchiveServer, livetiming: Path, tmp_path: Path
) -> None:
    server.missing_topics[f"{BAHRAIN_2021}2021-03-28_Race/"] = ["Heartbeat"]

    sessions, lines, report = await run(server, tmp_path, 2021, "Bahrain")

    assert keys(report.selected) == [
        "2021-03-28_Bahrain_Grand_Prix/2021-03-26_Practice_1",
        "2021-03-28_Bahrain_Grand_Prix/2021-03-26_Practice_2",
        "2021-03-28_Bahrain_Grand_Prix/2021-03-27_Practice_3",
        "2021-03-28_Bahrain_Grand_Prix/2021-03-27_Qualifying",
        "2021-03-28_Bahrain_Grand_Prix/2021-03-28_Race",
    ]
    assert [s.key for s in sessions] == [
        "2021-03-28_Bahrain_Grand_Prix/2021-03-27_Practice_3",
        "2021-03-28_Bahrain_Grand_Prix/2021-03-28_Race",
    ]
    unavailable = report.unavailable
    assert [s.name for s, _ in unavailable] == ["Practice 1", "Practice 2", "Qualifying"]
    assert all("HTTP 404" in reason for _, reason in unavailable)
    race = sessions[1]
    assert [(s.topic, s.reason) for s in race.skipped] == [
        ("Heartbeat", "not in the archive (HTTP 404)")
    ]
    assert race.skipped[0].url.endswith("/2021-03-28_Race/Heartbeat.jsonStream")
    assert [f.topic for f in race.files] == ["LapCount"]
    assert list(race.facts()) == local_facts(livetiming, race.key)
    assert any("Heartbeat skipped: not in the archive (HTTP 404)" in line for line in lines)
    assert lines[-1].endswith("1 topics, 0.0 MB, 1 missing")


async def test_a_year_without_an_index_is_a_clear_error(
    server: ArchiveServer, tmp_path: Path
) -> None:
    with pytest.raises(
        UserError,
        match=r"the archive has no index for 2031 \(http://.*/2031/Index.json: HTTP 404\)",
    ):
        await run(server, tmp_path, 2031)


# -- (6) retries run out: the error names the URL and the last failure


async def test_exhausted_retries_name_the_url_and_status(
    server: ArchiveServer, tmp_path: Path, sleeps: Sleeps
) -> None:
    path = f"{BAHRAIN_2021}2021-03-28_Race/LapCount.jsonStream"
    server.inject(path, Fault("status", times=99, status=503))

    with pytest.raises(ArchiveHTTPError) as failed:
        await run(
            server, tmp_path, 2021, "Bahrain", "Race", policy=policy(attempts=3), sleep=sleeps
        )

    assert str(failed.value) == (
        f"GET {server.url}{path} failed after 3 attempts: HTTP 503 Service Unavailable"
    )
    assert (failed.value.url, failed.value.status) == (server.url + path, 503)
    assert server.requests(path) == 3
    # Exponential: the second wait at least the factor (2) times the first, less jitter.
    assert len(sleeps.delays) == 2
    assert sleeps.delays[1] >= 2 * 0.01 > sleeps.delays[0] / 1.5
    # The session never counted as done: a rerun fetches it.
    assert not (tmp_path / "progress.json").exists()


async def test_exhausted_retries_on_connection_errors(
    server: ArchiveServer, tmp_path: Path, sleeps: Sleeps
) -> None:
    path = f"{BAHRAIN_2021}2021-03-28_Race/LapCount.jsonStream"
    server.inject(path, Fault("reset", times=2), Fault("truncate"))

    with pytest.raises(
        ArchiveHTTPError, match="after 3 attempts: RemoteProtocolError: peer closed"
    ) as failed:
        await run(
            server, tmp_path, 2021, "Bahrain", "Race", policy=policy(attempts=3), sleep=sleeps
        )

    assert failed.value.url == server.url + path
    assert failed.value.status is None
    assert server.statuses(path) == {0: 2, 200: 1}


async def test_a_client_error_is_not_retried(
    server: ArchiveServer, tmp_path: Path, sleeps: Sleeps
) -> None:
    path = f"{BAHRAIN_2021}2021-03-28_Race/LapCount.jsonStream"
    server.inject(path, Fault("status", times=5, status=400))

    with pytest.raises(
        ArchiveHTTPError, match=r"LapCount\.jsonStream failed: HTTP 400 Bad Request"
    ):
        await run(server, tmp_path, 2021, "Bahrain", "Race", sleep=sleeps)

    assert server.requests(path) == 1
    assert sleeps.delays == []


# -- the command line: `f1daemon ingest --archive YEAR [EVENT] [SESSION]`


def test_ingest_archive_logs_the_same_facts_as_the_folder_and_resumes(
    server: ArchiveServer,
    livetiming: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = f"sqlite:///{tmp_path / 'events.db'}"
    server.inject(f"{BAHRAIN_2021_RACE}LapCount.jsonStream", Fault("status", status=503))
    argv = ["ingest", "--archive", "2021", "bahrain", "race", "--store", store]
    argv += ["--archive-url", server.url, "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    key = "2021-03-28_Bahrain_Grand_Prix/2021-03-28_Race"
    assert f"session 1/1: {key}" in err  # progress
    assert out.startswith(f"{key}: ")
    assert "archive 2021 bahrain race: 1 sessions ingested, 0 done before" in out
    with EventLog(parse_store_url(store)) as log:
        logged = [fact for _, fact in log.facts(key)]
        assert log.latest_derivation(key) is not None
    assert logged == local_facts(livetiming, key)
    assert server.statuses()[503] == 1  # the fault was met, and retried
    # Again: the session is done for this store, nothing is fetched.
    server.reset_counts()
    assert main(argv) == 0
    assert "0 sessions ingested, 1 done before" in capsys.readouterr().out
    assert server.requests() == 1  # the year's index only
    # Bad arguments are one-line errors.
    assert main(["ingest", "--archive", "bahrain", "--store", store]) == 2
    assert "--archive takes YEAR [EVENT] [SESSION]" in capsys.readouterr().err
    assert main(["ingest", "--store", store]) == 2
    assert "nothing to ingest" in capsys.readouterr().err
