"""What can go wrong talking to the SignalR server, as the client and its supervisor see it."""

from __future__ import annotations

from f1daemon.actors.supervisor import PersistentFailure
from f1daemon.errors import UserError


class SignalRError(Exception):
    """Something went wrong talking to the SignalR server."""


class SignalRConnectionError(SignalRError):
    """A connection attempt failed or a connection broke: the client retries."""


class SignalRAuthError(SignalRError, UserError, PersistentFailure):
    """The server refused the token (HTTP 401/403, or an error in the handshake or a
    close message that says so): not retried by the client, and retried by its
    supervisor only at the circuit breaker's pace (a token does not mend itself; a
    renewed one is read at the next attempt).

    Its message says what to do; it never holds the token. `status` is the HTTP
    status, None when the refusal came in the protocol (handshake, close).
    """

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class TokenError(SignalRError, UserError, PersistentFailure):
    """The configured bearer token cannot be read (missing file, unset variable…)."""
