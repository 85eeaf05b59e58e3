"""systemd's notify protocol: READY=1, STATUS=…, WATCHDOG=1, STOPPING=1 over $NOTIFY_SOCKET.

One datagram per notification to the AF_UNIX socket systemd names (a leading `@`
is the abstract namespace). Without $NOTIFY_SOCKET (not under systemd) every call
does nothing. The watchdog interval comes from $WATCHDOG_USEC (for our own process
only, when $WATCHDOG_PID is set), and pings are sent at half of it from the trio
loop itself: a stalled loop stops pinging, and systemd restarts the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

import trio

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to systemd (or nowhere, when not run by it)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if address.startswith("@"):
            self._address = b"\0" + address[1:].encode()
        elif address:
            self._address = address
        self.watchdog_interval = _watchdog_interval(environ)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> None:
        """Send one datagram of `KEY=VALUE` lines; failures are logged, never raised."""
        message = "\n".join(fields)
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the trio loop: a receiver whose queue is full (a stalled
                # manager) loses this notification, not the daemon its loop.
                sock.sendto(message.encode(), socket.MSG_DONTWAIT, self._address)
        except BlockingIOError:
            log.warning("sd_notify: the notify socket's queue is full; %s dropped", fields[0])
        except OSError as error:
            log.warning("sd_notify failed: %s", error)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> None:
        self.notify("STOPPING=1", f"STATUS={status}")

    async def run_watchdog(self) -> None:
        """Ping WATCHDOG=1 every half interval, from the trio loop, until cancelled."""
        if self.watchdog_interval is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await trio.sleep(self.watchdog_interval / 2)


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        interval = int(usec) / 1_000_000
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec)
        return None
    return interval if interval > 0 else None
