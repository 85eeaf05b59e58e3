"""FastF1's `*.raw` files: the archive's `{Topic}.jsonStream` responses, kept as they came.

FastF1 keeps, for a session, one `{page}.raw` file per live-timing page it fetched,
named by its API's page names (`timing_data.raw` is `TimingData.jsonStream`,
`car_data.raw` is `CarData.z.jsonStream`, …; the table is `PAGES`). The content is the
response body untouched: the archive's jsonStream text, `HH:MM:SS.mmm` then the JSON,
one message a line — with or without the byte-order mark, with LF where a checkout
normalised the line ends. It is not pickled nor compressed: FastF1 reads these files
back with `line.decode('utf-8-sig')` and its own `parse`, and so do we, with the
archive's reader. Beside them such a folder holds other APIs' answers (`ergast_*.raw`,
`mvapi_*.raw`: Ergast results, circuit geometry); they are no feed and are skipped,
and said so.

The facts are therefore `archive.read_facts` over the files, under the topics they
stand for, in the order a folder of the same `{Topic}.jsonStream` files gives: a
FastF1 folder and the archive folder of a session log the same facts, and the log
dedupes them as it dedupes an HTTP backfill of the session.

The session key is the one the `SessionInfo` in `session_info.raw` names (its `Path`:
the archive's `{meeting}/{session}`, the key of the archive folder), else the
folder's name as an archive folder's is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from f1daemon._native import split_json_stream
from f1daemon.errors import UserError
from f1daemon.sources.archive import SUFFIX, TopicFile, session_key_for
from f1daemon.sources.recording import session_key_from_info

RAW_SUFFIX = ".raw"

# FastF1's names of the archive's jsonStream pages (`fastf1._api.pages`), and the topics.
PAGES: dict[str, str] = {
    "audio_streams": "AudioStreams",
    "car_data": "CarData.z",
    "championship_prediction": "ChampionshipPrediction",
    "content_streams": "ContentStreams",
    "driver_list": "DriverList",
    "extrapolated_clock": "ExtrapolatedClock",
    "heartbeat": "Heartbeat",
    "lap_count": "LapCount",
    "position": "Position.z",
    "race_control_messages": "RaceControlMessages",
    "session_info": "SessionInfo",
    "session_status": "SessionStatus",
    "team_radio": "TeamRadio",
    "timing_app_data": "TimingAppData",
    "timing_data": "TimingData",
    "timing_stats": "TimingStats",
    "track_status": "TrackStatus",
    "weather_data": "WeatherData",
}

# A jsonStream's first line: its stamp, then an object (or a `.z` page's base64 string).
_STREAM_START = re.compile(rb"\A(?:\xef\xbb\xbf)?[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}[{\"]")
_HEAD = 64


@dataclass(frozen=True)
class RawFolder:
    """The feed pages of a FastF1 `.raw` folder (or one of its files) as archive files."""

    folder: Path
    files: tuple[TopicFile, ...]  # in archive folder order: by `{Topic}.jsonStream`
    skipped: tuple[str, ...]  # names of `.raw` files that are no live-timing stream

    def session_key(self) -> str:
        """The session its `session_info.raw` names, else the folder's name."""
        return _session_from_info(self.folder / "session_info.raw") or session_key_for(self.folder)

    def notes(self) -> tuple[str, ...]:
        """What an operator is told besides the facts: the files that were passed over."""
        if not self.skipped:
            return ()
        return (
            f"{self.folder.name}: {len(self.skipped)} .raw files are not live-timing "
            f"streams and were skipped ({', '.join(self.skipped)})",
        )


def is_raw_page(path: Path) -> bool:
    """Whether a file is named as FastF1 names a live-timing stream page."""
    return path.name.endswith(RAW_SUFFIX) and path.name[: -len(RAW_SUFFIX)] in PAGES


def is_raw_folder(path: Path) -> bool:
    """A folder of FastF1 `.raw` pages and no archive files of its own."""
    if not path.is_dir():
        return False
    names = [p for p in path.iterdir() if p.is_file()]
    if any(p.name.endswith(SUFFIX) for p in names):
        return False
    return any(is_raw_page(p) for p in names)


def read_raw(path: Path) -> RawFolder:
    """A FastF1 folder's stream pages, or one page file, as archive files.

    Each page is checked to start as a jsonStream does: a `.raw` file named as a page
    but holding something else is a user error, not a session without data.
    """
    if path.is_dir():
        folder = path
        pages = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(RAW_SUFFIX))
    else:
        folder, pages = path.parent, [path]
    files: list[TopicFile] = []
    skipped: list[str] = []
    for page in pages:
        if not is_raw_page(page):
            skipped.append(page.name)
            continue
        _check_stream(page)
        files.append(TopicFile(page, PAGES[page.name[: -len(RAW_SUFFIX)]]))
    if not files:
        raise UserError(f"{path}: no FastF1 live-timing pages ({', '.join(sorted(PAGES))}.raw)")
    files.sort(key=lambda f: f.topic + SUFFIX)
    return RawFolder(folder, tuple(files), tuple(skipped))


def _check_stream(page: Path) -> None:
    try:
        with page.open("rb") as handle:
            head = handle.read(_HEAD)
    except OSError as error:
        raise UserError(f"{page}: {error.strerror}") from error
    if head and not _STREAM_START.match(head):
        topic = PAGES[page.name[: -len(RAW_SUFFIX)]]
        raise UserError(
            f"{page}: not the archive's jsonStream text that FastF1 keeps for {topic}"
            f"{SUFFIX} (expected HH:MM:SS.mmm and the JSON on each line)"
        )


def _session_from_info(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None  # no session_info.raw: the folder's name says the session
    for _, _, text in split_json_stream(data):
        try:
            info = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(info, dict) and (key := session_key_from_info(info)):
            return key
    return None
