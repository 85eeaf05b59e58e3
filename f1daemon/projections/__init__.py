"""Readers of the log: the derivation that follows a session's facts, and the views of
its runs (current data with corrections applied, exports, lake, PostgreSQL tables)."""
