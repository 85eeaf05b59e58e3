"""`f1daemon ingest`: recorded feed files into a session's log, then derived events.

A path is an archive session folder or `{Topic}.jsonStream` file, or a live recording
(a classic SignalR capture or a FastF1 live-client file; told apart by content, see
`f1daemon.sources.recording`). Facts are appended first and idempotently; the session
is derived again only when new facts arrived or the pipeline changed, so ingesting the
same files twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from f1daemon.domain.events import DerivationCompleted
from f1daemon.feed.pipeline import PIPELINE_VERSION
from f1daemon.services.derivation import derive_session
from f1daemon.sources.archive import SUFFIX, TopicFile, read_facts, session_key_for, topic_files
from f1daemon.sources.recording import Recording, RecordingReport, read_recording
from f1daemon.store.eventlog import EventLog


@dataclass(frozen=True)
class SessionIngest:
    """What ingesting one session's files did."""

    session: str
    files: int
    appended: int  # messages appended
    already_logged: int  # facts (messages or quarantined lines) that were logged before
    derivation: DerivationCompleted | None  # None when nothing needed deriving again
    quarantined: int = 0  # quarantined lines appended (archive files: lines not UTF-8)
    recordings: tuple[RecordingReport, ...] = ()  # what each recording's lines came to


@dataclass
class _SessionFiles:
    origin: str
    archive: dict[Path, TopicFile] = field(default_factory=dict)
    recordings: dict[Path, Recording] = field(default_factory=dict)


def is_archive_path(path: Path) -> bool:
    """Whether a path is read as the static archive: a folder or a `.jsonStream` file."""
    return path.is_dir() or path.name.endswith(SUFFIX) or not path.exists()


def ingest_paths(
    log: EventLog, paths: Sequence[Path], session: str | None = None
) -> list[SessionIngest]:
    """Ingest archive folders or files and recordings; group them by session (or into `session`).

    A file named twice is read once. A recording's session is the one its SessionInfo
    names (else its file's stem) unless `session` is given.
    """
    groups: dict[str, _SessionFiles] = {}
    for path in paths:
        if is_archive_path(path):
            files = topic_files(path)  # a missing path is reported from here
            key = session or session_key_for(path)
            group = groups.setdefault(key, _SessionFiles(origin=str(path)))
            for topic_file in files:
                group.archive.setdefault(topic_file.path.resolve(), topic_file)
        else:
            resolved = path.resolve()
            read = (g.recordings[resolved] for g in groups.values() if resolved in g.recordings)
            recording = next(read, None) or read_recording(path)
            key = session or recording.session_key()
            group = groups.setdefault(key, _SessionFiles(origin=str(path)))
            group.recordings.setdefault(resolved, recording)
    return [
        ingest_session(
            log,
            key,
            list(group.archive.values()),
            group.origin,
            recordings=list(group.recordings.values()),
        )
        for key, group in groups.items()
    ]


def ingest_session(
    log: EventLog,
    session: str,
    files: Sequence[TopicFile],
    origin: str,
    *,
    recordings: Sequence[Recording] = (),
) -> SessionIngest:
    """Append one session's files as facts, then derive the session if anything changed."""
    log.register_session(session, origin)
    appended = already = quarantined = 0
    if files:
        result = log.append_facts(read_facts(session, files))
        appended, already = result.appended - result.quarantined, result.already_logged
        quarantined = result.quarantined  # lines that are not UTF-8
    for recording in recordings:
        result = log.append_facts(recording.facts(session))
        already += result.already_logged
        appended += result.appended - result.quarantined
        quarantined += result.quarantined
    latest = log.latest_derivation(session)
    derivation = None
    if appended or quarantined or latest is None or latest.pipeline_version != PIPELINE_VERSION:
        derivation = derive_session(log, session)
    return SessionIngest(
        session=session,
        files=len(files) + len(recordings),
        appended=appended,
        already_logged=already,
        derivation=derivation,
        quarantined=quarantined,
        recordings=tuple(recording.report for recording in recordings),
    )
