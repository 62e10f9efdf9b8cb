#!/usr/bin/env bash
# Set up (if needed), then lint (ruff), type-check (mypy --strict) and run the whole test suite.
source "$(dirname "$0")/_env.sh"
source "$(dirname "$0")/_browser.sh"
.venv/bin/python -m ruff check shared backend tests scripts
.venv/bin/python -m mypy
.venv/bin/python -m pytest "$@"
