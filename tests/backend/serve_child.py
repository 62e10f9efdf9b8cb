"""``aico serve`` as a child process, with the fast encoder (the data dir was made with it).

Usage: ``python serve_child.py DATA_DIR``; the config comes from ``AICO_CONFIG`` and the
passphrase from ``AICO_PASSPHRASE``, the usual unlock source of a headless service.
"""

from __future__ import annotations

import sys

from aico.ai.embeddings import HashingEncoder
from aico.config import load_config
from aico_backend import BackendSettings, open_memory, serve

if __name__ == "__main__":
    config = load_config()
    memory = open_memory(config, sys.argv[1], encoder=HashingEncoder(), interactive=False)
    serve(memory, BackendSettings.from_config(config), log_level="warning")
