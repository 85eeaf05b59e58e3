"""f1daemon: the event-sourced data service of an F1 race-strategy team.

Every message a source receives is appended to an event log as it was received;
everything else (lap tables, stints, exports) is derived from that log by the feed
decoders, and can be derived again by replay. `f1daemon.open()` reads it as Arrow
tables (`f1daemon.api`).
"""

from __future__ import annotations

from importlib.metadata import version as _version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from f1daemon.api import Store

# The one source of the version is pyproject.toml (native/Cargo.toml follows it).
__version__: str = _version("f1daemon")


def open(store_url: str | None = None) -> Store:
    """Open a log's derived data for reading (`f1daemon.api.Store`); the default store
    is `$F1DAEMON_STORE`, else the embedded one."""
    # Imported here so that `import f1daemon` (and `f1daemon --help`) stays fast.
    from f1daemon.api import open_store

    return open_store(store_url)


__all__ = ["__version__", "open"]
