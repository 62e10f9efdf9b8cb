"""The memory layer's way to open a data dir's ``DataStore``: with its schemas and steps.

``DataStore`` discovers nothing; whoever opens it says what it works with. Opened here, a
store gets

- the registry with the memory layer's feature schema: ``aico.ai.memory.semantic.schema``
  is imported (which registers "semantic" in ``default_registry``), so ``status`` and
  ``migrate`` cover the semantic tables;
- the memory layer's rotation steps (``key_rotation.ROTATION_STEPS``: working memory, the
  Chroma index), so every rotation of the store, including the one ``open`` resumes after
  a crash, moves all the data of the data dir to the new key.

The ``MemoryManager`` and the CLI open stores only through these two functions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import aico.ai.memory.semantic.schema  # noqa: F401  (registers the "semantic" schema)
from aico.ai.memory import key_rotation
from aico.config import Config
from aico.data.schema import default_registry
from aico.data.store import DataStore
from aico.layout import DataDir

__all__ = ["initialize_data_store", "open_data_store"]


def open_data_store(
    data_dir: str | os.PathLike[str] | DataDir | None = None,
    *,
    passphrase: str | None = None,
    config: Config | None = None,
    env: Mapping[str, str] | None = None,
    interactive: bool | None = None,
    resume_rotation: bool = True,
) -> DataStore:
    """Unlock an existing data dir (``DataStore.open``) with the memory layer's dependencies.

    An interrupted master-key rotation is finished first, with every rotation step;
    ``resume_rotation=False`` leaves it to a rotation the caller runs next.
    """
    return DataStore.open(
        data_dir,
        passphrase=passphrase,
        config=config,
        env=env,
        interactive=interactive,
        registry=default_registry,
        rotation_steps=key_rotation.ROTATION_STEPS,
        resume_rotation=resume_rotation,
    )


def initialize_data_store(
    data_dir: str | os.PathLike[str] | DataDir,
    passphrase: str,
    *,
    config: Config | None = None,
) -> DataStore:
    """Create a new data dir (``DataStore.initialize``): key file, every schema at head."""
    return DataStore.initialize(
        data_dir,
        passphrase,
        config=config,
        registry=default_registry,
        rotation_steps=key_rotation.ROTATION_STEPS,
    )
