#!/usr/bin/env bash
# Set up (if needed) and run the end-to-end demo on the shipped sample data.
source "$(dirname "$0")/_env.sh"
exec .venv/bin/python -m aico.demo "$@"
