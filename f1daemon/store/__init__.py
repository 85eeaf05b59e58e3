"""The event log (eventsourcing recorders on SQLite or PostgreSQL) and its exports."""
