"""`f1daemon ingest`: recorded feed files into a session's log, then derived events.

Facts are appended first and idempotently; the session is derived again only when
new facts arrived or the pipeline changed, so ingesting the same files twice adds
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from f1daemon.domain.events import DerivationCompleted
from f1daemon.feed.pipeline import PIPELINE_VERSION
from f1daemon.sources.archive import TopicFile, read_facts, session_key_for, topic_files
from f1daemon.store.derivation import derive_session
from f1daemon.store.eventlog import EventLog


@dataclass(frozen=True)
class SessionIngest:
    """What ingesting one session's files did."""

    session: str
    files: int
    appended: int
    already_logged: int
    derivation: DerivationCompleted | None  # None when nothing needed deriving again


def ingest_paths(
    log: EventLog, paths: Sequence[Path], session: str | None = None
) -> list[SessionIngest]:
    """Ingest archive folders or files; group them by session (or into `session`)."""
    groups: dict[str, dict[Path, TopicFile]] = {}
    origins: dict[str, str] = {}
    for path in paths:
        key = session or session_key_for(path)
        files = groups.setdefault(key, {})
        for topic_file in topic_files(path):
            files.setdefault(
                topic_file.path.resolve(), topic_file
            )  # a file named twice is read once
        origins.setdefault(key, str(path))
    return [
        ingest_session(log, key, list(files.values()), origins[key])
        for key, files in groups.items()
    ]


def ingest_session(
    log: EventLog, session: str, files: Sequence[TopicFile], origin: str
) -> SessionIngest:
    """Append one session's files as facts, then derive the session if anything changed."""
    log.register_session(session, origin)
    result = log.append_facts(read_facts(session, files))
    latest = log.latest_derivation(session)
    derivation = None
    if result.appended or latest is None or latest.pipeline_version != PIPELINE_VERSION:
        derivation = derive_session(log, session)
    return SessionIngest(
        session=session,
        files=len(files),
        appended=result.appended,
        already_logged=result.already_logged,
        derivation=derivation,
    )
