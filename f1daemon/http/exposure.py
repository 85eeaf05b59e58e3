"""Who may reach the HTTP API: localhost freely, any other address with a bearer token.

Kept apart from the server (no Hypercorn, no Starlette here) so the configuration
and the command line can check it without importing either.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from f1daemon.errors import UserError

TOKEN_ENV_VAR = "F1DAEMON_HTTP_TOKEN"  # noqa: S105 - the variable's name, not a token


def is_loopback(host: str) -> bool:
    """Whether a host to bind to is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def check_exposure(host: str, token: str | None) -> None:
    """Bound beyond localhost, the API asks every request for a token."""
    if token is None and not is_loopback(host):
        raise UserError(
            f"serving HTTP on {host} (beyond this machine) needs a bearer token: "
            f"a token file or ${TOKEN_ENV_VAR}"
        )


def read_token(path: Path | None) -> str | None:
    """The token: a file's first line, else `$F1DAEMON_HTTP_TOKEN` (None: neither)."""
    if path is None:
        return os.environ.get(TOKEN_ENV_VAR) or None
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise UserError(f"cannot read the token file {path}: {error.strerror}") from None
    if not lines or not lines[0].strip():
        raise UserError(f"the token file {path} is empty")
    return lines[0].strip()
