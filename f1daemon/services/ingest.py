"""`f1daemon ingest`: recorded feed files into a session's log, then derived events.

A path is an archive session folder or `{Topic}.jsonStream` file, a FastF1 cache (its
`.raw` pages, or its HTTP cache `fastf1_http_cache.sqlite`), a saved subscribe reply, a
saved Jolpica page (best given `--session`: the feed session it is the results of), or
a live recording (a classic SignalR capture or a FastF1 live-client file): told apart
by content, see `f1daemon.sources.recorded`. Facts are appended first and idempotently; the session
is derived again only when new facts arrived or the pipeline changed, so ingesting the
same files twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from f1daemon.domain.events import DerivationCompleted, MessageReceived
from f1daemon.errors import UserError
from f1daemon.feed.pipeline import PIPELINE_VERSION
from f1daemon.services.derivation import derive_session, resolve_session
from f1daemon.services.session_names import AmbiguousSessionError
from f1daemon.sources.archive import TopicFile, read_facts
from f1daemon.sources.recorded import ArchiveInput, PageInput, RecordedInput, read_input
from f1daemon.sources.recording import Recording, RecordingReport
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
    notes: tuple[str, ...] = ()  # what the inputs passed over (files of no feed, responses)


@dataclass
class _SessionFiles:
    origin: str
    # Keyed by file and topic: the files of one FastF1 HTTP cache are all its database.
    archive: dict[tuple[Path, str], TopicFile] = field(default_factory=dict)
    recordings: dict[Path, Recording] = field(default_factory=dict)
    pages: dict[Path, MessageReceived] = field(default_factory=dict)
    notes: dict[str, None] = field(default_factory=dict)  # ordered, each once


def session_to_ingest_into(log: EventLog, requested: str) -> str:
    """The key of the session `--session` asks an ingest for: a key (`MEETING/SESSION`,
    new or logged) as written, else the one logged session the name fits
    (`2018 baku race`), so that a results page goes to the race already in the log
    rather than to a new session called "2018 baku race"."""
    if "/" in requested:
        return requested.strip()
    try:
        return resolve_session(log, requested)
    except AmbiguousSessionError:
        raise
    except UserError as error:
        raise UserError(
            f"{error}; a new session's key has the form MEETING/SESSION "
            "(e.g. 2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race)"
        ) from None


def ingest_paths(
    log: EventLog, paths: Sequence[Path], session: str | None = None
) -> list[SessionIngest]:
    """Ingest recorded inputs; group them by session (or into `session`).

    A path named twice is read once. Each input's session is the one it names (folder
    name, SessionInfo, the cached URLs; see `f1daemon.sources.recorded`) unless
    `session` is given: a key, or the name of a session the log holds
    (`session_to_ingest_into`).
    """
    if session is not None:
        session = session_to_ingest_into(log, session)
    groups: dict[str, _SessionFiles] = {}
    read: dict[Path, list[RecordedInput]] = {}
    for path in paths:
        resolved = path.resolve()
        if resolved not in read:
            read[resolved] = read_input(path, session)
        for item in read[resolved]:
            group = groups.setdefault(item.session, _SessionFiles(origin=item.origin))
            if isinstance(item, ArchiveInput):
                group.notes.update(dict.fromkeys(item.notes))
                for topic_file in item.files:
                    where = (topic_file.path.resolve(), topic_file.topic)
                    group.archive.setdefault(where, topic_file)
            elif isinstance(item, PageInput):
                group.pages.setdefault(resolved, item.fact)
            else:
                group.recordings.setdefault(resolved, item.recording)
    return [
        ingest_session(
            log,
            key,
            list(group.archive.values()),
            group.origin,
            recordings=list(group.recordings.values()),
            notes=tuple(group.notes),
            pages=list(group.pages.values()),
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
    notes: tuple[str, ...] = (),
    pages: Sequence[MessageReceived] = (),
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
    if pages:
        result = log.append_facts(pages)
        appended += result.appended
        already += result.already_logged
    latest = log.latest_derivation(session)
    derivation = None
    if appended or quarantined or latest is None or latest.pipeline_version != PIPELINE_VERSION:
        derivation = derive_session(log, session)
    return SessionIngest(
        session=session,
        files=len(files) + len(recordings) + len(pages),
        appended=appended,
        already_logged=already,
        derivation=derivation,
        quarantined=quarantined,
        recordings=tuple(recording.report for recording in recordings),
        notes=notes,
    )
