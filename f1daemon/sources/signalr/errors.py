"""What can go wrong talking to the SignalR server, as the client and its supervisor see it."""

from __future__ import annotations

from f1daemon.errors import UserError


class SignalRError(Exception):
    """Something went wrong talking to the SignalR server."""


class SignalRConnectionError(SignalRError):
    """A connection attempt failed or a connection broke: the client retries."""


class SignalRAuthError(SignalRError, UserError):
    """The server refused the request as unauthorised (HTTP 401/403): not retried.

    Its message says what to do; it never holds the token.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TokenError(SignalRError, UserError):
    """The configured bearer token cannot be read (missing file, unset variable…)."""
