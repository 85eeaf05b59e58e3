"""Sources: one module per feed. Each turns what it reads into `MessageReceived` facts."""
