# The README's two commands: `make demo` and `make test`. Both set everything up
# on a fresh machine (virtualenv, the Rust build); `make test` also brings its own
# throw-away PostgreSQL cluster.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export VIRTUAL_ENV := $(abspath $(VENV))

.PHONY: demo test lint typecheck rust-lint rust-test pytest bench native clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The build tool; the project's own dependencies come with `maturin develop`.
$(STAMP): | $(BIN)/python
	$(BIN)/pip install --quiet 'maturin>=1.9,<2'
	touch $(STAMP)

# Installs the package in development mode with its dependencies and builds the
# native extension (cargo rebuilds only what changed).
native: $(STAMP)
	PIP_QUIET=1 $(BIN)/maturin develop --release --quiet --extras test

demo: native
	$(BIN)/f1daemon demo

lint: native
	$(BIN)/ruff check f1daemon tests benches
	$(BIN)/ruff format --check f1daemon tests benches

typecheck: native
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest f1daemon._native --allowlist .mypy-stubtest-allowlist

rust-lint:
	cargo clippy --all-targets --locked -- -D warnings

rust-test:
	cargo test --locked

pytest: native
	scripts/ensure-systemd-analyze
	scripts/ensure-chromium
	scripts/with-postgres $(BIN)/pytest

test: lint typecheck rust-lint rust-test pytest

bench: native
	PIP_QUIET=1 $(BIN)/maturin develop --release --quiet --extras test,bench
	scripts/with-postgres $(BIN)/python -m benches

clean:
	rm -rf $(VENV) target .pg
