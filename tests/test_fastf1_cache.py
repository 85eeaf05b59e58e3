"""FastF1 caches as input: its `.raw` pages and its HTTP cache (`fastf1_http_cache.sqlite`).

The reference is the archive folder of the same session, 2020 70th Anniversary FP2,
which has five topics (SessionStatus, TimingAppData, TimingData, TrackStatus,
WeatherData). The `.raw` folder has those five, byte for byte the same messages, and
three more: DriverList, SessionInfo and RaceControlMessages. So:

* the five common `.raw` pages derive the archive folder's laps export exactly (every
  row, every column), and log the same facts (the log dedupes them);
* the whole `.raw` folder derives the same laps, the same rows and values, except for
  what its three extra topics add: `utc` (SessionInfo and race control's UTC stamps
  give the time base the archive folder lacks) and `deleted` / `flags` (three laps
  race control deleted);
* an HTTP cache built with requests-cache, as FastF1 3.x builds it, holding the
  archive's responses for the folder's files, derives the archive folder's laps
  export exactly.
"""

from __future__ import annotations

import csv
import datetime
import io
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_cache
from requests.adapters import HTTPAdapter
from urllib3.response import HTTPResponse

from f1daemon.cli import main
from f1daemon.domain.events import MessageReceived
from f1daemon.sources.archive import read_facts, topic_files
from f1daemon.sources.fastf1_http_cache import read_http_cache
from f1daemon.sources.fastf1_raw import read_raw

RAW = Path("fastf1-cache_test_2020_70thAnniversary_FP2")
MEETING, SESSION = "2020-08-09_70th_Anniversary_Grand_Prix", "2020-08-07_Practice_2"
KEY = f"{MEETING}/{SESSION}"
ARCHIVE = Path("livetiming") / f"{MEETING}__{SESSION}"
COMMON_PAGES = ("session_status", "timing_app_data", "timing_data", "track_status", "weather_data")
LIVETIMING = "https://livetiming.formula1.com/static/"
MIRROR = "https://livetiming-mirror.fastf1.dev/static/"


def store(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


def ingest(*argv: str | Path) -> None:
    assert main(["ingest", *map(str, argv)]) == 0


def laps_csv(tmp_path: Path, store_url: str, name: str) -> str:
    out = tmp_path / name
    assert main(["export", "laps", "--format", "csv", "-o", str(out), "--store", store_url]) == 0
    return out.read_text()


@pytest.fixture(scope="module")
def archive_laps(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The laps export of the archive folder: what every FastF1 cache must derive."""
    tmp = tmp_path_factory.mktemp("archive")
    url = store(tmp, "archive.db")
    ingest(testdata / ARCHIVE, "--store", url)
    laps = laps_csv(tmp, url, "laps.csv")
    assert laps.count("\n") > 500
    return laps


# -- the .raw pages ----------------------------------------------------------------------


def test_raw_pages_are_the_archive_jsonstream_text(testdata: Path) -> None:
    """Not pickled nor compressed: the archive's responses, read by the archive's reader."""
    raw = read_raw(testdata / RAW)
    assert [f.topic for f in raw.files] == [
        "DriverList", "RaceControlMessages", "SessionInfo", "SessionStatus", "TimingAppData",
        "TimingData", "TrackStatus", "WeatherData",
    ]  # fmt: skip
    assert raw.skipped == ("ergast_race.raw", "ergast_race_result.raw", "mvapi_circuits.raw")
    assert raw.session_key() == KEY  # SessionInfo's Path: the archive folder's key
    archive = list(read_facts(KEY, topic_files(testdata / ARCHIVE)))
    common = [f for f in raw.files if f.topic in {a.stream for a in archive}]
    assert len(common) == 5
    assert list(read_facts(KEY, common)) == archive


def test_the_common_raw_pages_derive_the_archive_folders_laps_exactly(
    testdata: Path, tmp_path: Path, archive_laps: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = store(tmp_path, "raw5.db")
    ingest(*(testdata / RAW / f"{page}.raw" for page in COMMON_PAGES), "--store", url)
    assert laps_csv(tmp_path, url, "laps.csv") == archive_laps
    capsys.readouterr()
    # The same facts as the archive folder's: ingesting it as well adds nothing.
    ingest(testdata / ARCHIVE, "--store", url)
    out = capsys.readouterr().out
    assert f"{KEY}: 5 files, 0 messages appended, 17893 already in the log" in out


def test_the_raw_folder_derives_the_archive_folders_laps(
    testdata: Path, tmp_path: Path, archive_laps: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = store(tmp_path, "raw.db")
    ingest(testdata / RAW, "--store", url)
    out = capsys.readouterr().out
    assert f"{KEY}: 8 files, 17979 messages appended" in out
    assert "3 .raw files are not live-timing streams and were skipped (ergast_race.raw" in out
    ours = list(csv.DictReader(io.StringIO(laps_csv(tmp_path, url, "laps.csv"))))
    theirs = list(csv.DictReader(io.StringIO(archive_laps)))
    # What only the extra topics (SessionInfo, DriverList, RaceControlMessages) can
    # change: the time base (a lap's end and start), race control's deletions (and so
    # which laps are personal bests), who the drivers are.
    extra = {"utc", "date_start", "deleted", "is_personal_best", "flags"}
    extra |= {"session_key", "driver_code", "team"}

    def same(row: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in row.items() if k not in extra}

    assert [same(r) for r in ours] == [same(r) for r in theirs]
    assert all(r["utc"] and r["date_start"] for r in ours)
    assert not any(r["utc"] for r in theirs)  # no UTC stamp in the archive folder's topics
    assert {r["session_key"] for r in ours} == {"5778"}  # SessionInfo's Key
    assert all(r["driver_code"] and r["team"] for r in ours)  # DriverList's names
    changed = [(r["driver"], r["lap"], r["flags"]) for r, t in zip(ours, theirs, strict=True)
               if (r["deleted"], r["flags"]) != (t["deleted"], t["flags"])]  # fmt: skip
    assert len(changed) == 3
    assert all(flags == "qa:race_control.deleted" for _, _, flags in changed)
    assert sum(r["deleted"] == "true" for r in ours) == 3
    # A lap is a personal best alike in both but where race control deleted it.
    best = [(r["driver"], r["lap"]) for r, t in zip(ours, theirs, strict=True)
            if r["is_personal_best"] != t["is_personal_best"]]  # fmt: skip
    assert set(best) <= {(r["driver"], r["lap"]) for r in ours if r["deleted"] == "true"}


def test_bad_raw_pages_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "timing_data.raw"
    page.write_bytes(pickle.dumps({"Lines": {}}))  # what a pickling cache would hold
    assert main(["ingest", str(page), "--store", store(tmp_path, "e.db")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"f1daemon: error: {page}: not the archive's jsonStream text that FastF1 keeps for "
        "TimingData.jsonStream (expected HH:MM:SS.mmm and the JSON on each line)\n"
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "ergast_race.raw").write_text('{"MRData": {}}')
    assert main(["ingest", str(other), "--store", store(tmp_path, "e.db")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"f1daemon: error: {other}: no .jsonStream files in this folder (nor FastF1 .raw pages)\n"
    )


# -- the HTTP cache ------------------------------------------------------------------------


class CorpusArchive(HTTPAdapter):
    """Answers archive URLs (any host) from the corpus's `livetiming/` folders, 404 otherwise."""

    def __init__(self, livetiming: Path, extra: dict[str, bytes] | None = None) -> None:
        super().__init__()
        self.livetiming = livetiming
        self.extra = extra or {}

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        url = str(request.url)
        body = self.extra.get(url)
        if body is None and "/static/" in url:
            _, meeting, session, name = url.split("/static/", 1)[1].split("/")
            file = self.livetiming / f"{meeting}__{session}" / name
            body = file.read_bytes() if file.is_file() else None
        raw = HTTPResponse(
            body=io.BytesIO(body or b"<Error>NoSuchKey</Error>"),
            headers={"Content-Type": "application/json"},
            status=200 if body is not None else 404,
            preload_content=False,
            request_url=url,
        )
        return self.build_response(request, raw)


def fastf1_session(cache: Path, adapter: HTTPAdapter, **options: object) -> requests.Session:
    """A cached session as FastF1 3.x configures it (`fastf1.req.Cache.configure`)."""
    session = requests_cache.CachedSession(
        str(cache.with_suffix("")),
        backend="sqlite",
        allowable_methods=("GET", "POST"),
        expire_after=datetime.timedelta(hours=12),
        cache_control=True,
        stale_if_error=True,
        **options,  # type: ignore[arg-type]
    )
    session.mount("https://", adapter)
    return session


def build_cache(testdata: Path, cache: Path, sessions: dict[str, list[str]]) -> None:
    """Fetch archive files through requests-cache into `cache`, plus what FastF1 also
    fetches (an index, Ergast) and a 404 kept by a session that caches 404s."""
    extra = {"https://api.jolpi.ca/ergast/f1/2020/5/results.json": b'{"MRData": {}}'}
    adapter = CorpusArchive(testdata / "livetiming", extra)
    with fastf1_session(cache, adapter) as http:
        for path, names in sessions.items():
            for name in names:
                assert http.get(LIVETIMING + path + name).status_code == 200
        http.get(next(iter(extra)))
        first = next(iter(sessions))
        http.get(MIRROR + first + "TrackStatus.jsonStream")  # a fallback fetch, same file
    with fastf1_session(cache, adapter, allowable_codes=(200, 404)) as http:
        assert http.get(LIVETIMING + first + "CarData.z.jsonStream").status_code == 404


def archive_names(testdata: Path) -> list[str]:
    return sorted(p.name for p in (testdata / ARCHIVE).iterdir())


def test_an_http_cache_derives_the_archive_folders_laps_exactly(
    testdata: Path, tmp_path: Path, archive_laps: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "fastf1_http_cache.sqlite"
    build_cache(testdata, cache, {f"2020/{MEETING}/{SESSION}/": archive_names(testdata)})
    url = store(tmp_path, "http.db")
    ingest(cache, "--store", url)  # the session from the cached URLs
    out = capsys.readouterr().out
    assert f"{KEY}: 5 files, 17893 messages appended" in out
    assert (
        "fastf1_http_cache.sqlite: responses passed over: 1 not a 200 response, "
        "1 not an archive stream" in out
    )
    assert laps_csv(tmp_path, url, "laps.csv") == archive_laps
    # The archive's facts: its folder adds nothing to the log.
    ingest(testdata / ARCHIVE, "--store", url)
    assert "0 messages appended, 17893 already in the log" in capsys.readouterr().out


def test_an_http_cache_of_two_sessions_and_the_session_option(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hungary = "2020-07-19_Hungarian_Grand_Prix/2020-07-17_Practice_2"
    cache = tmp_path / "fastf1_http_cache.sqlite"
    build_cache(
        testdata,
        cache,
        {
            f"2020/{MEETING}/{SESSION}/": ["TrackStatus.jsonStream", "SessionStatus.jsonStream"],
            f"2020/{hungary}/": ["TrackStatus.jsonStream"],
        },
    )
    read = read_http_cache(cache)
    assert {key: [f.topic for f in files] for key, files in read.sessions.items()} == {
        KEY: ["SessionStatus", "TrackStatus"],
        hungary: ["TrackStatus"],
    }
    url = store(tmp_path, "two.db")
    ingest(cache, "--store", url)
    out = capsys.readouterr().out
    assert f"{KEY}: 2 files" in out
    assert f"{hungary}: 1 file" in out
    # --session picks one of the cache's sessions ...
    ingest(cache, "--store", store(tmp_path, "one.db"), "--session", hungary)
    out = capsys.readouterr().out
    assert f"{hungary}: 1 file" in out
    assert KEY not in out
    # ... and cannot put two sessions under one key.
    assert main(["ingest", str(cache), "--store", url, "--session", "x/y"]) == 2
    assert capsys.readouterr().err == (
        f"f1daemon: error: {cache}: holds 2 sessions ({hungary}, {KEY}); "
        "--session must name one of them\n"
    )


def test_an_http_cache_of_one_session_is_filed_under_the_session_option(
    testdata: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache.sqlite"
    build_cache(testdata, cache, {f"2020/{MEETING}/{SESSION}/": ["TrackStatus.jsonStream"]})
    url = store(tmp_path, "e.db")
    ingest(cache, "--store", url, "--session", "mine/fp2")
    assert main(["export", "track-status", "--store", url, "--session", "mine/fp2"]) == 0


class Exploit:
    """A pickle that runs code when loaded, as a hostile cache entry could."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_cache_entries_are_unpickled_as_data_only(testdata: Path, tmp_path: Path) -> None:
    cache = tmp_path / "fastf1_http_cache.sqlite"
    build_cache(testdata, cache, {f"2020/{MEETING}/{SESSION}/": ["TrackStatus.jsonStream"]})
    marker = tmp_path / "pwned"
    with sqlite3.connect(cache) as connection:
        connection.execute(
            "INSERT INTO responses (key, value) VALUES (?, ?)",
            ("hostile", pickle.dumps(Exploit(marker))),
        )
    connection.close()
    read = read_http_cache(cache)
    assert not marker.exists()
    assert read.passed_over["unreadable"] == 1
    (files,) = read.sessions.values()
    facts = list(read_facts(KEY, files))
    assert facts
    assert all(isinstance(f, MessageReceived) and f.stream == "TrackStatus" for f in facts)


def test_bad_http_caches_are_one_line_and_exit_2(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A requests-cache store without archive URLs (here: Ergast only).
    cache = tmp_path / "fastf1_http_cache.sqlite"
    extra = {"https://api.jolpi.ca/ergast/f1/2020/5/results.json": b'{"MRData": {}}'}
    with fastf1_session(cache, CorpusArchive(testdata / "livetiming", extra)) as http:
        http.get(next(iter(extra)))
    assert main(["ingest", str(cache), "--store", store(tmp_path, "e.db")]) == 2
    assert capsys.readouterr().err == (
        f"f1daemon: error: {cache}: a requests-cache store without 200 responses for the "
        "archive's static/{year}/{meeting}/{session}/{Topic}.jsonStream URLs "
        "(1 not an archive stream)\n"
    )
    # An SQLite database that is no cache: our own event log.
    log = tmp_path / "e.db"
    assert main(["ingest", str(log), "--store", store(tmp_path, "other.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"f1daemon: error: {log}: an SQLite database, but not a requests-cache")
    assert err.count("\n") == 1
