"""The memory layer's way to open a data dir's ``DataStore``: with its schemas and steps.

``DataStore`` discovers nothing; whoever opens it says what it works with. Opened here, a
store gets

- the registry with the memory layer's feature schema: ``aico.ai.memory.semantic.schema``
  is imported (which registers "semantic" in ``default_registry``), so ``status`` and
  ``migrate`` cover the semantic tables;
- the memory layer's rotation steps (``key_rotation.ROTATION_STEPS``: working memory, the
  Chroma index), so every rotation of the store, including the one ``open`` resumes after
  a crash, moves all the data of the data dir to the new key.

The ``MemoryManager`` and the CLI open stores only through this module: the data store
(``open_data_store``, ``initialize_data_store``) and, on it, working and semantic memory
(``open_working``, ``open_semantic``, ``open_memory``), so the assembly of a data dir's stores
is written once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

# Imported for their registrations: the "semantic" and "integrations" feature schemas, so
# every process that opens a data dir knows (and migrates) both.
import aico.ai.memory.semantic.schema
import aico.integrations.schema  # noqa: F401
from aico.ai.embeddings import Encoder, encoder_from_config
from aico.ai.memory import key_rotation
from aico.ai.memory.key_rotation import finish_index_rekey
from aico.ai.memory.semantic import SemanticConfig, SemanticMemoryStore
from aico.ai.memory.working import WorkingMemoryStore, quarantine_working
from aico.config import Config
from aico.data.schema import default_registry
from aico.data.store import DataStore
from aico.errors import WorkingMemoryCorrupted
from aico.layout import DataDir

__all__ = [
    "configured_encoder",
    "initialize_data_store",
    "open_data_store",
    "open_memory",
    "open_semantic",
    "open_working",
    "preload_encoder",
    "semantic_config",
]

log = logging.getLogger(__name__)


def open_data_store(
    data_dir: str | os.PathLike[str] | DataDir | None = None,
    *,
    passphrase: str | None = None,
    config: Config | None = None,
    env: Mapping[str, str] | None = None,
    interactive: bool | None = None,
    resume_rotation: bool = True,
    read_only: bool = False,
) -> DataStore:
    """Unlock an existing data dir (``DataStore.open``) with the memory layer's dependencies.

    An interrupted master-key rotation is finished first, with every rotation step;
    ``resume_rotation=False`` leaves it to a rotation the caller runs next. ``read_only``
    opens every database without writing a byte (see ``DataStore.open``).
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
        read_only=read_only,
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


def configured_encoder(config: Config) -> Encoder:
    """The encoder ``[memory.semantic] embedding_model`` names (MiniLM by default), caching
    its model files where ``model_cache_dir`` says. A store whose vectors belong to another
    model refuses it (``ModelMismatch``) until ``aico semantic reembed`` switches them."""
    return encoder_from_config(config.section("memory.semantic"))


def preload_encoder(encoder: Encoder) -> None:
    """Load an encoder's model on a background thread, if it can load ahead of its first use.

    A failure is not reported here: the first ``encode`` raises it, typed, where a caller
    handles errors.
    """
    load = getattr(encoder, "load", None)
    # Only a model that is ready to load: a first-time ONNX export takes a child process
    # and half a minute, which belongs in the foreground where its errors are seen.
    if callable(load) and getattr(encoder, "exported", False):

        def run() -> None:
            with contextlib.suppress(Exception):
                load()

        # Not a daemon: the interpreter waits for it at exit. A daemon thread still inside
        # onnxruntime's session set-up when the process exits aborts it (SIGABRT,
        # "terminate called without an active exception"), e.g. a quick CLI read.
        threading.Thread(target=run, name="aico-model-load", daemon=False).start()


def open_semantic(
    store: DataStore,
    config: Config,
    encoder: Encoder | None = None,
    *,
    check_model: bool = True,
    read_only: bool = False,
) -> SemanticMemoryStore:
    """The data dir's semantic memory, as ``[memory.semantic]`` configures it.

    ``read_only``: writes nothing anywhere (see ``SemanticMemoryStore``): what the read
    verbs (``aico semantic status|search``) open.
    """
    url = config.section("memory.semantic")["chroma_url"] or None
    return SemanticMemoryStore.open(
        store.connection("core"),
        store.master_key,
        encoder or configured_encoder(config),
        chroma_path=None if url else store.layout.chroma,
        chroma_url=url,
        config=semantic_config(config),
        check_model=check_model,
        read_only=read_only,
    )


def open_working(
    store: DataStore,
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    read_only: bool = False,
) -> WorkingMemoryStore:
    """The data dir's working memory, as ``[memory.working]`` configures it.

    Working memory is a cache of the log: a damaged environment is moved aside
    (``quarantine_working``) and a fresh one opened, which the coordinator's repair then
    refills from the log. Read-only, a damaged one is refused instead (nothing is moved).
    """

    def attempt() -> WorkingMemoryStore:
        return WorkingMemoryStore.from_config(
            store.layout.root, store.master_key, config, clock=clock, read_only=read_only
        )

    try:
        return attempt()
    except WorkingMemoryCorrupted as exc:
        if read_only:
            raise
        moved = quarantine_working(store.layout.working_memory)
        log.warning(
            "working memory was damaged (%s); moved aside to %s and rebuilt from the log",
            exc,
            moved.name,
        )
        return attempt()


def open_memory(
    store: DataStore,
    config: Config,
    encoder: Encoder,
    clock: Callable[[], float],
    *,
    finish_rekey: bool = True,
    read_only: bool = False,
) -> tuple[WorkingMemoryStore, SemanticMemoryStore]:
    """Working and semantic memory under the store's key.

    Also finishes an index rebuild a rotation left pending, so a crash after the key file
    changed is repaired by the next open rather than leaving a stale index (not when
    ``read_only``: then both stores write nothing).
    """
    working = open_working(store, config, clock=clock, read_only=read_only)
    try:
        semantic = open_semantic(store, config, encoder, read_only=read_only)
        try:
            if finish_rekey and not read_only:
                finish_index_rekey(semantic, store.data_dir)
        except BaseException:
            semantic.close()
            raise
    except BaseException:
        working.close()
        raise
    return working, semantic


def semantic_config(config: Config) -> SemanticConfig:
    """``[memory.semantic]`` minus the keys that are not retrieval tuning."""
    values = {
        k: v
        for k, v in config.section("memory.semantic").items()
        if k not in ("embedding_model", "chroma_url", "model_cache_dir")
    }
    return SemanticConfig.from_mapping(values)
