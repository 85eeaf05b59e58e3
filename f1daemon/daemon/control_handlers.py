"""The daemon's answers to control requests: plain data (or `ProtocolError`), no sockets.

`ControlServer` parses a request and calls `ControlHandlers.handle`, which reads and
changes the daemon's state: status, health, sources, pause/resume, session start/stop,
tag, metrics, reload, shutdown.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from f1daemon import __version__
from f1daemon.control.protocol import ProtocolError, Request
from f1daemon.daemon.sources import SourceRuntime
from f1daemon.errors import UserError
from f1daemon.feed.pipeline import PIPELINE_VERSION

if TYPE_CHECKING:
    from f1daemon.daemon.app import Daemon


class ControlHandlers:
    """One handler per control command, over `daemon`'s state."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    async def handle(self, request: Request) -> object:
        """Answer one control request (ProtocolError for an error reply)."""
        args = request.args
        answers: dict[str, Callable[[], object]] = {
            "status": self.status,
            "health": self.health,
            "sources": lambda: [source_info(r) for r in self._daemon.sources.values()],
            "pause": lambda: self.pause_resume("pause", args[0]),
            "resume": lambda: self.pause_resume("resume", args[0]),
            "session": lambda: self.session(args),
            "tag": lambda: self.tag(args[0], args[1] if len(args) > 1 else ""),
            "metrics": lambda: self._daemon.metrics.exposition().decode(),
            "reload": self._daemon.reload,
            "shutdown": self.shutdown,
        }
        answer = answers.get(request.command)
        if answer is None:  # parse_request lets only known commands through
            raise ProtocolError(f"unknown command {request.command!r}")
        result = answer()
        return await result if inspect.isawaitable(result) else result

    def shutdown(self) -> dict[str, object]:
        daemon = self._daemon
        daemon.request_shutdown()
        return {"shutting_down": True, "deadline_s": daemon.config.daemon.shutdown_deadline_s}

    def status(self) -> dict[str, object]:
        daemon = self._daemon
        event_log = daemon.running_log()
        return {
            "version": __version__,
            "pipeline_version": PIPELINE_VERSION,
            "pid": os.getpid(),
            "state": daemon.state,
            "uptime_s": round(time.time() - daemon.started_at, 3),
            "store": event_log.store.redacted,
            "facts_logged": daemon.running_writer().health.facts,
            "sources": {name: r.state for name, r in daemon.sources.items()},
            "sessions": {key: t.lifecycle.state.value for key, t in daemon.sessions.items()},
            "metrics_port": daemon.metrics_port,
            "http": daemon.http.binds,
        }

    def health(self) -> dict[str, object]:
        daemon = self._daemon
        writer = daemon.running_writer()
        health = writer.health
        problems: list[str] = []
        if not health.healthy:
            problems.append(f"store refuses appends: {health.last_error}")
        for runtime in daemon.sources.values():
            if runtime.state in ("backing-off", "circuit-open"):
                problems.append(f"source {runtime.name} {runtime.state}: {runtime.last_error}")
        return {
            "healthy": not problems,
            "problems": problems,
            "writer": {
                "healthy": health.healthy,
                "since": health.since,
                "last_success_at": health.last_success_at,
                "batches": health.batches,
                "facts": health.facts,
                "failures": health.failures,
                "stalls": health.stalls,
                "last_error": health.last_error,
                "mailbox_depth": writer.mailbox_depth(),
            },
            "watchdog_s": daemon.notifier.watchdog_interval,
        }

    def pause_resume(self, command: str, name: str) -> dict[str, object]:
        sources = self._daemon.sources
        runtime = sources.get(name)
        if runtime is None:
            raise ProtocolError(f"no source named {name!r}; sources: {', '.join(sources)}")
        changed = runtime.pause() if command == "pause" else runtime.resume()
        if changed:
            state = "paused" if command == "pause" else "resumed"
            self._daemon.metrics.source_up.labels(name).set(0 if runtime.paused else 1)
            self._daemon.source_states.record(runtime, state, None, None)
        return {"source": name, "paused": runtime.paused, "changed": changed}

    def session(self, args: tuple[str, ...]) -> dict[str, object]:
        tracker = self._daemon.session_tracker
        sessions = tracker.sessions
        action = args[0]
        if action not in ("start", "stop"):
            raise ProtocolError("usage: session start|stop [SESSION]")
        if len(args) > 1:
            key = args[1]
            if key not in sessions:
                tracker.seen(key, "control")
        elif len(sessions) == 1:
            (key,) = sessions
        else:
            known = ", ".join(sessions) or "none yet"
            raise ProtocolError(f"name the session (sessions: {known})")
        track = sessions[key]
        changed = track.lifecycle.start() if action == "start" else track.lifecycle.stop()
        if changed is not None:
            tracker.lifecycle_changed(track, f"operator:{action}")
        return {
            "session": key,
            "state": track.lifecycle.state.value,
            "changed": changed is not None,
        }

    async def tag(self, name: str, message: str) -> dict[str, object]:
        try:
            tagged = await self._daemon.lane.call(
                lambda event_log: event_log.tag(
                    name, pipeline_version=PIPELINE_VERSION, message=message
                )
            )
        except UserError as error:
            raise ProtocolError(str(error)) from None
        return {"name": tagged.name, "position": tagged.position}


def source_info(runtime: SourceRuntime) -> dict[str, object]:
    """What `ctl sources` shows of one source."""
    return {
        "name": runtime.name,
        "kind": runtime.settings.kind,
        "state": runtime.state,
        "paused": runtime.paused,
        "breaker": runtime.breaker.state.value,
        "restarts": runtime.restarts,
        "last_error": runtime.last_error,
        "session": runtime.session,
        "position": runtime.position,
        "total": runtime.total,
    }
