"""Errors a user can act on: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A mistake in what the user asked for: a missing file, a bad URL, an unknown session."""
