"""``aico semantic …``: the long-term index (status, verify, search, rebuild, reembed).

The index's condition (``IndexHealth``: ok, damaged, rebuilding, unavailable) is shown by
``status`` and ``verify`` (``--json``: ``index_health``, ``index_state``); ``rebuild`` works
on a damaged index too and says what it found and did.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click

from aico.ai.memory.key_rotation import finish_index_rekey
from aico.ai.memory.semantic import IndexHealth, ReembedProgress, SemanticMemoryStore
from aico.ai.memory.stores import open_semantic
from aico.ai.memory.upgrade import upgrade_store
from aico.cli._common import CliState, emit_json, handle_errors, pass_state
from aico.data.repositories import UserService
from aico.errors import NotFound


@contextmanager
def _open(state: CliState, *, check_model: bool = True) -> Iterator[SemanticMemoryStore]:
    """For the verbs that change the index: upgrades the data dir first."""
    with state.open_store(write=True) as store:
        upgrade_store(store)
        semantic = open_semantic(store, state.config, check_model=check_model)
        try:
            if check_model:
                # A master-key rotation that stopped after retiring the old-key index.
                finish_index_rekey(semantic, store.layout)
            yield semantic
        finally:
            semantic.close()


@contextmanager
def _open_read(state: CliState, *, check_model: bool = True) -> Iterator[SemanticMemoryStore]:
    """For the read verbs: no migration, and a store that writes nothing anywhere
    (with ``--read-only``, the databases are opened read-only too)."""
    with state.open_store(write=False) as store:
        semantic = open_semantic(store, state.config, check_model=check_model, read_only=True)
        try:
            yield semantic
        finally:
            semantic.close()


@contextmanager
def _progress(label: str) -> Iterator[Callable[[ReembedProgress], None]]:
    """A click progress bar fed by the store's progress callbacks."""
    bar: Any = None
    try:

        def update(p: ReembedProgress) -> None:
            nonlocal bar
            if bar is None:
                bar = click.progressbar(length=max(p.total, 1), label=label)
                bar.__enter__()
            bar.update(p.done - bar.pos)

        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


@click.group("semantic")
def semantic_group() -> None:
    """Long-term memory: FTS5 in libSQL + the derived Chroma index."""


@semantic_group.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def status_cmd(state: CliState, as_json: bool) -> None:
    """Model, segment count, and the index check where it needs no write. Read-only."""
    with _open_read(state, check_model=False) as semantic:
        report = semantic.verify_index()
        health = semantic.index_health()
        info: dict[str, Any] = {
            "model": asdict(semantic.model),
            "model_mismatch": semantic.model_mismatch,
            "segments": semantic.count(),
            "index": asdict(report),
            "index_health": asdict(health),
        }
    if as_json:
        emit_json(info)
        return
    model = info["model"]
    click.echo(f"model      {model['name']} ({model['dimension']}-d, {model['fingerprint'][:12]})")
    if info["model_mismatch"]:
        click.echo("           vectors were made by another model: run 'aico semantic reembed'")
    click.echo(f"segments   {info['segments']}")
    _echo_health(health)
    _echo_index(report)


def _echo_health(health: IndexHealth) -> None:
    if health.state == "ok":
        return
    click.echo(f"index      {health.state} ({health.reason}): {health.detail}")
    if health.state == "unavailable":
        click.echo("           dense search uses the exact scan until the server answers")
    else:
        click.echo("           dense search uses the exact scan; 'aico semantic rebuild' heals it")


def _echo_index(report: Any) -> None:
    if report.index_state != "ok" and not report.chroma_checked:
        click.echo(
            f"chroma     not checked ({report.index_state}), "
            f"{report.pending_outbox} queued, {report.unindexed_count} with no vector or work"
        )
        return
    if not report.chroma_checked:
        click.echo(
            f"chroma     not opened (read-only; 'aico semantic verify' compares it), "
            f"{report.pending_outbox} queued, {report.unindexed_count} with no vector or work"
        )
        return
    click.echo(
        f"chroma     {report.chroma_count} vectors, {report.missing_count} missing, "
        f"{report.extra_count} extra, {report.pending_outbox} queued, "
        f"{report.unindexed_count} with no vector or work"
    )


@semantic_group.command("verify")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def verify_cmd(state: CliState, as_json: bool) -> None:
    """Compare the Chroma index with libSQL (every segment); exit 1 if they disagree.

    It opens the index, so chromadb records its own open in its files; aico writes only the
    index's manifest (``chroma.state``: damage found, or a clean close). A damaged index is
    reported (exit 1), not rebuilt.
    """
    with state.open_store(write=False) as store:
        semantic = open_semantic(store, state.config, check_model=False, read_only=state.read_only)
        try:
            report = semantic.verify_index()
            health = semantic.index_health()
        finally:
            semantic.close()
    if as_json:
        emit_json(asdict(report))
    else:
        _echo_health(health)
        _echo_index(report)
    if not report.ok:
        sys.exit(1)


@semantic_group.command("search")
@click.option("--user", "user_id", required=True)
@click.argument("query")
@click.option("-k", "k", type=int, default=5, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def search_cmd(state: CliState, user_id: str, query: str, k: int, mode: str, as_json: bool) -> None:
    """Search one user's long-term memory (decrypted output: for the key holder only).

    Read-only: the dense half is an exact scan of the stored vectors.
    """
    with state.open_store(write=False) as store:
        if not UserService(store.connection("core")).exists(user_id):
            raise NotFound("no user with this user_id")
        semantic = open_semantic(store, state.config, read_only=True)
        try:
            hits = semantic.search(user_id, query, k, mode=mode)  # type: ignore[arg-type]
        finally:
            semantic.close()
    if as_json:
        emit_json([asdict(h) for h in hits])
        return
    if not hits:
        click.echo("no results")
    for h in hits:
        click.echo(f"{h.score:.3f} bm25#{h.bm25_rank} dense#{h.dense_rank}  {h.text}")


@semantic_group.command("rebuild")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def rebuild_cmd(state: CliState, as_json: bool) -> None:
    """Recreate the Chroma index from the vectors in libSQL (no re-embedding).

    Works on a damaged index: it is never opened, its directory is discarded whole.
    """
    with _open(state) as semantic:
        semantic.wait_ready()  # the file checks tell whether the index was damaged
        before = semantic.index_health()
        with _progress("rebuilding") as progress:
            written = semantic.rebuild(progress=progress)
        after = semantic.index_health()
    if as_json:
        emit_json({"before": asdict(before), "after": asdict(after), "vectors": written})
        return
    if before.state != "ok":
        click.echo(f"the index was {before.state} ({before.reason}): {before.detail}")
        click.echo("discarded it without opening it")
    click.echo(f"rebuilt the dense index: {written} vectors; index {after.state}")


@semantic_group.command("reembed")
@pass_state
@handle_errors
def reembed_cmd(state: CliState) -> None:
    """Re-embed every segment with the current model (resumable), then rebuild Chroma."""
    with _open(state, check_model=False) as semantic, _progress("re-embedding") as progress:
        done = semantic.reembed(progress=progress)
    click.echo(f"re-embedded {done} segments")
