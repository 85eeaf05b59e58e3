"""The vocabulary: pydantic models of the facts and derived events in the log."""

# The events first: `results` builds on them and `events` registers its classes.
from f1daemon.domain import events  # noqa: F401
