"""``aico files index|list|show|changes|related|search``: the file index (``FileMemory``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from aico.cli._common import CliState, handle_errors, pass_state
from aico.cli.admin import _output as out
from aico.cli.admin._open import open_manager

__all__ = ["register"]


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
    cli.add_command(files_group)


@click.group("files")
def files_group() -> None:
    """The file index: a user's folders, searchable beside their conversations."""


def _summary(report: Any) -> str:
    return (
        f"{report.files} files: {report.created} created, {report.modified} modified, "
        f"{report.renamed + report.moved} renamed or moved, {report.deleted} deleted, "
        f"{report.unchanged} unchanged; {report.chunks_added} chunks added "
        f"({report.seconds:.2f} s)"
    )


@files_group.command("index")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--user", "user_id", required=True)
@click.option("--ignore", "ignore", multiple=True, help="A git-style pattern to skip (repeatable).")
@click.option("--no-gitignore", is_flag=True, help="Do not read .gitignore files.")
@click.option("--watch", is_flag=True, help="Re-index on every change until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def index_cmd(
    state: CliState,
    path: str,
    user_id: str,
    ignore: tuple[str, ...],
    no_gitignore: bool,
    watch: bool,
    as_json: bool,
) -> None:
    """Index a folder for a user (a re-index reads only what changed)."""
    options: dict[str, Any] = {"use_gitignore": not no_gitignore}
    if ignore:
        options["ignore"] = list(ignore)

    def show(report: Any) -> None:
        if as_json:
            out.emit(asdict(report))
        else:
            out.line(_summary(report))

    with open_manager(state, write=True) as manager:
        if watch:
            manager.files.watch(user_id, path, on_report=show, **options)
        else:
            show(manager.files.index(user_id, path, **options))


@files_group.command("list")
@click.option("--user", "user_id", required=True)
@click.option("--root", default=None, help="Only files under this indexed folder.")
@click.option("--deleted", is_flag=True, help="Include files deleted since they were indexed.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_cmd(
    state: CliState, user_id: str, root: str | None, deleted: bool, limit: int, as_json: bool
) -> None:
    """A user's indexed files."""
    with open_manager(state, write=False) as manager:
        files = manager.files.list_files(user_id, root=root, include_deleted=deleted, limit=limit)
    if as_json:
        out.emit(files)
        return
    if not files:
        out.line("no files")
        return
    out.table(
        ["id", "language", "lines", "bytes", "git", "path"],
        (
            (
                f.id,
                f.language or ("binary" if f.is_binary else ""),
                f.line_count,
                f.size_bytes,
                f.git_status,
                f.path if f.deleted_at is None else f"{f.path} (deleted)",
            )
            for f in files
        ),
    )


@files_group.command("show")
@click.argument("file")
@click.option("--user", "user_id", required=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def show_cmd(state: CliState, file: str, user_id: str, as_json: bool) -> None:
    """One file (id or path): its record, snippets, relationships and changes."""
    with open_manager(state, write=False) as manager:
        details = manager.files.show(user_id, file)
    if as_json:
        out.emit(
            {
                "file": asdict(details.file),
                "snippets": [asdict(s) for s in details.snippets],
                "relationships": _relations(details.relationships),
                "changes": [asdict(c) for c in details.changes],
            }
        )
        return
    out.fields(asdict(details.file).items())
    if details.snippets:
        out.table(
            ["type", "lines", "snippet"],
            ((s.snippet_type, f"{s.line_start}-{s.line_end}", s.content) for s in details.snippets),
        )
    _relations_table(details.relationships)


@files_group.command("changes")
@click.option("--user", "user_id", required=True)
@click.option("--file", "file", default=None, help="Only this file (id or path).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def changes_cmd(state: CliState, user_id: str, file: str | None, limit: int, as_json: bool) -> None:
    """Changes seen by re-indexing, newest first."""
    with open_manager(state, write=False) as manager:
        changes = manager.files.changes(user_id, file=file, limit=limit)
    if as_json:
        out.emit(changes)
        return
    if not changes:
        out.line("no changes")
        return
    out.table(
        ["when", "change", "file_id", "path"],
        (
            (
                out.when(c.changed_at),
                c.change_type,
                c.file_id,
                f"{c.old_path} -> {c.new_path}"
                if c.old_path and c.new_path
                else c.new_path or c.old_path,
            )
            for c in changes
        ),
    )


@files_group.command("related")
@click.argument("file")
@click.option("--user", "user_id", required=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def related_cmd(state: CliState, file: str, user_id: str, as_json: bool) -> None:
    """What a file imports, tests or links to, and what does so to it."""
    with open_manager(state, write=False) as manager:
        related = manager.files.related(user_id, file)
    if as_json:
        out.emit(_relations(related))
        return
    _relations_table(related)


@files_group.command("search")
@click.argument("query")
@click.option("--user", "user_id", required=True)
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def search_cmd(state: CliState, query: str, user_id: str, k: int, mode: str, as_json: bool) -> None:
    """Search a user's indexed files (``aico recall`` searches conversations too)."""
    with open_manager(state, write=False) as manager:
        hits = manager.files.search(user_id, query, k, mode=mode)  # type: ignore[arg-type]
    if as_json:
        out.emit(
            [
                {
                    "score": h.hit.score,
                    "segment_id": h.hit.segment_id,
                    "file_id": h.hit.source_ref,
                    "path": h.file.path if h.file else None,
                    "text": h.hit.text,
                }
                for h in hits
            ]
        )
        return
    if not hits:
        out.line("no matches")
        return
    out.table(
        ["score", "path", "text"],
        ((f"{h.hit.score:.3f}", h.file.path if h.file else "", h.hit.text) for h in hits),
    )


def _relations(rows: list[tuple[str, str, Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [
        {
            "type": kind,
            "direction": way,
            "file_id": other.id if other else None,
            "path": other.path if other else None,
            "reference": meta.get("spec"),
        }
        for kind, way, other, meta in rows
    ]


def _relations_table(rows: list[tuple[str, str, Any, dict[str, Any]]]) -> None:
    if not rows:
        out.line("no relationships")
        return
    out.table(
        ["type", "dir", "reference", "path"],
        (
            (kind, way, meta.get("spec"), other.path if other else "(not indexed)")
            for kind, way, other, meta in rows
        ),
    )
