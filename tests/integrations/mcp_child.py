"""Serve ``aico.integrations.mcp`` from a data dir in a child process, with the test encoder.

``python mcp_child.py DATA_DIR stdio USER`` or ``python mcp_child.py DATA_DIR http PORT``:
the same ``build_server``/``serve_stdio``/``serve_http`` the ``aico mcp`` command runs, with
``HashingEncoder`` instead of the real model so a test does not load it. The passphrase
comes from ``AICO_PASSPHRASE`` like the command's.
"""

from __future__ import annotations

import os
import sys

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.config import load_config
from aico.integrations.mcp import build_server, serve_http, serve_stdio


def main() -> None:
    data_dir, mode, arg = sys.argv[1:4]
    config = load_config(env={}, overrides={"security": {"use_keyring": False}})
    memory = MemoryManager.open(
        data_dir,
        passphrase=os.environ["AICO_PASSPHRASE"],
        config=config,
        encoder=HashingEncoder(),
        interactive=False,
    )
    try:
        if mode == "stdio":
            serve_stdio(build_server(memory, user_id=arg))
        else:
            serve_http(memory, port=int(arg))
    finally:
        memory.close()


if __name__ == "__main__":
    main()
