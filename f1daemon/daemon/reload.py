"""Reloading the configuration (SIGHUP, `ctl reload`): apply what can change while running.

The log level and the control socket's limits change at once; a source whose settings
changed (or that is gone) is stopped, and a new or changed one started. The metrics
server, the writer and the store are set up once: a change to them is reported as
needing a restart, and otherwise waits for one.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from f1daemon.config import load_config
from f1daemon.control.protocol import ProtocolError
from f1daemon.errors import UserError
from f1daemon.logs import set_level

if TYPE_CHECKING:
    from f1daemon.daemon.app import Daemon

log = logging.getLogger("f1daemon.daemon")


class ConfigReload:
    """Reads `daemon`'s configuration again from `config_path` (and the command line's
    `cli_sources`) and applies it."""

    def __init__(
        self, daemon: Daemon, config_path: Path | None, cli_sources: tuple[str, ...]
    ) -> None:
        self._daemon = daemon
        self._config_path = config_path
        self._cli_sources = cli_sources

    async def reload(self) -> dict[str, object]:
        """Read the configuration again and apply what can change while running."""
        daemon = self._daemon
        try:
            new = await trio.to_thread.run_sync(
                functools.partial(load_config, self._config_path, sources=self._cli_sources)
            )
        except UserError as error:
            log.error("reload refused: %s", error)
            raise ProtocolError(f"reload refused, configuration unchanged: {error}") from None
        old, daemon.config = daemon.config, new
        set_level(new.daemon.log_level)
        daemon.update_control_limits()
        started, stopped = [], []
        old_sources = {s.name: s for s in old.sources}
        new_sources = {s.name: s for s in new.sources}
        running = daemon.supervision.running()
        for name, settings in old_sources.items():
            if new_sources.get(name) != settings and name in running:
                daemon.supervision.stop(name)
                daemon.sources.pop(name, None)
                stopped.append(name)
        for name, settings in new_sources.items():
            if name not in daemon.sources:
                await daemon.start_source(settings, daemon.feed_for(settings))
                started.append(name)
        needs_restart = [
            section
            for section in ("metrics", "http", "writer")
            if getattr(old, section) != getattr(new, section)
        ]
        if old.store_url != new.store_url:
            needs_restart.append("store")
        log.info(
            "configuration reloaded",
            extra={"fields": {"started": started, "stopped": stopped, "restart": needs_restart}},
        )
        daemon.notifier.status(daemon.status_line())
        return {"started": started, "stopped": stopped, "needs_restart": needs_restart}
