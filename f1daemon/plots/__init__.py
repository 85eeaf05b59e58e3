"""Charts and the session report (matplotlib, the `plot` extra)."""
