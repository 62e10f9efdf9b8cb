#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, then lint.
source "$(dirname "$0")/_env.sh"
.venv/bin/python -m ruff check shared tests scripts
.venv/bin/python -m mypy
.venv/bin/python -m pytest "$@"
