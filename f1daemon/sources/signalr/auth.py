"""The bearer token and the server's refusals of it.

The token (an F1 TV subscriber's, needed for ``CarData.z`` / ``Position.z``) is read
from `SignalRSettings.token_file` or the environment variable named by
`SignalRSettings.token_env` at every connection attempt (so a renewed token is picked
up without a restart). It is held by `BearerToken`, whose repr hides it; it is sent
only as ``Authorization: Bearer …`` on the negotiate requests and the websocket
upgrade, and scrubbed from every reason and log message the client writes.
"""

from __future__ import annotations

import os
import re
from typing import NoReturn

from f1daemon.sources.signalr.errors import SignalRAuthError, SignalRConnectionError, TokenError
from f1daemon.sources.signalr.settings import SignalRSettings

_REDACTED = "<redacted>"

# What a server's error text says when it refuses the caller's credentials: ASP.NET
# Core's hub errors ("HubException: Unauthorized"), an HTTP status in words or digits,
# an expired or invalid token. Matched on the handshake's and a close message's error.
_AUTH_FAILURE = re.compile(
    r"unauthori[sz]ed|forbidden|\b40[13]\b|authenticat|not authori[sz]"
    r"|\btoken\b[^.;]*\b(?:expired|invalid|rejected|revoked|not valid)"
    r"|\b(?:expired|invalid|revoked)\b[^.;]*\btoken\b",
    re.IGNORECASE,
)


class BearerToken:
    """A secret bearer token: only `reveal` shows it (reprs and str hide it)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The token itself: for the Authorization header, nothing else."""
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the token replaced."""
        return text.replace(self._value, _REDACTED)

    def __repr__(self) -> str:
        return f"BearerToken({_REDACTED})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a bearer token is not to be pickled")


def load_token(settings: SignalRSettings) -> BearerToken | None:
    """The configured bearer token, read now; None when none is configured."""
    if settings.token_file is not None:
        where = f"the bearer token file {settings.token_file}"
        try:
            text = settings.token_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TokenError(f"{where}: no such file") from None
        except (OSError, UnicodeDecodeError) as error:
            # Neither error's text can hold the file's content; the reason stays generic.
            raise TokenError(f"{where}: cannot be read ({type(error).__name__})") from None
    elif settings.token_env is not None:
        where = f"the environment variable {settings.token_env} (the bearer token)"
        value = os.environ.get(settings.token_env)
        if value is None:
            raise TokenError(f"{where} is not set")
        text = value
    else:
        return None
    token = text.strip().removeprefix("Bearer ").strip()
    if not token:
        raise TokenError(f"{where} is empty")
    if not token.isascii() or any(c.isspace() or not c.isprintable() for c in token):
        raise TokenError(f"{where} holds characters an HTTP header cannot carry")
    return BearerToken(token)


def refused(
    what: str, status: int, token: BearerToken | None, settings: SignalRSettings
) -> SignalRAuthError | SignalRConnectionError:
    """The error for an HTTP refusal of `what`: an auth failure for 401/403."""
    if status not in (401, 403):
        return SignalRConnectionError(f"{what}: HTTP {status}")
    return SignalRAuthError(f"{what} refused with HTTP {status}: {advice(token, settings)}", status)


def names_auth_failure(error: str) -> bool:
    """Does a server's error text (handshake reply, close message) refuse the token?"""
    return _AUTH_FAILURE.search(error) is not None


def protocol_refusal(
    where: str, error: str, token: BearerToken | None, settings: SignalRSettings
) -> SignalRAuthError:
    """The auth error for a refusal that came in the protocol (`where`: the handshake,
    a close message), the server's words kept (with the token scrubbed out)."""
    said = token.scrub(error) if token is not None else error
    return SignalRAuthError(
        f"the server refused the token in {where} ({said}): {advice(token, settings)}", None
    )


def advice(token: BearerToken | None, settings: SignalRSettings) -> str:
    """What the operator should do about a refused (or missing) token."""
    if token is None:
        return (
            "the feed wants a bearer token (an F1 TV subscription): "
            "configure token_file or token_env"
        )
    where = settings.token_file or f"${settings.token_env}"
    return f"the bearer token from {where} was not accepted (expired?): renew it"
