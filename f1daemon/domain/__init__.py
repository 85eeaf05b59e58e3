"""The vocabulary: pydantic models of the facts and derived events in the log."""
