"""The use cases both faces call (the CLI and the daemon): ingest, derive, replay,
verify, tag / rollback / diff, quarantine release."""
