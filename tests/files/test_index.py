"""Indexing a folder: rows, changes by hash, relationships, snippets, chunks, ignore rules."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.errors import InvalidInput, NotFound, ReadOnly
from aico.files import reading


def rows(manager: MemoryManager, sql: str, params: tuple[object, ...] = ()) -> list[dict]:
    return manager.store.connection("file_index").fetch_all(sql, params)


def by_rel(manager: MemoryManager, user: str = "alice") -> dict:
    return {f.rel_path: f for f in manager.files.list_files(user)}


def test_first_index_records_every_file(manager: MemoryManager, tree: Path) -> None:
    report = manager.files.index("alice", tree)
    files = by_rel(manager)
    assert set(files) == {
        "pkg/__init__.py",
        "pkg/core.py",
        "pkg/util.py",
        "tests/test_core.py",
        "web/app.ts",
        "web/api.ts",
        "notes/garden.md",
        "image.bin",
    }
    assert report.created == 8 and report.read == 8 and report.binary == 1
    core = files["pkg/core.py"]
    assert core.language == "python" and core.encoding == "utf-8" and core.line_count == 12
    assert core.content_hash == hashlib.sha256((tree / "pkg/core.py").read_bytes()).hexdigest()
    assert core.permissions and core.permissions.startswith("-r")
    assert core.stat_mtime_ns == (tree / "pkg/core.py").stat().st_mtime_ns
    binary = files["image.bin"]
    assert binary.is_binary and binary.chunk_count == 0 and binary.language is None
    assert files["notes/garden.md"].chunk_count and files["notes/garden.md"].chunk_count > 0
    kinds = {r["change_type"] for r in rows(manager, "SELECT change_type FROM file_changes")}
    assert kinds == {"created"}


def test_relationships_imports_tests_and_documents(manager: MemoryManager, tree: Path) -> None:
    manager.files.index("alice", tree)
    files = by_rel(manager)
    ids = {f.id: rel for rel, f in files.items()}
    found = {
        (ids[r["source_file_id"]], ids[r["target_file_id"]], r["relationship_type"])
        for r in rows(
            manager,
            "SELECT * FROM file_relationships WHERE target_file_id IS NOT NULL",
        )
    }
    assert ("pkg/util.py", "pkg/core.py", "imports") in found
    assert ("tests/test_core.py", "pkg/core.py", "imports") in found
    assert ("tests/test_core.py", "pkg/core.py", "tests") in found
    assert ("web/app.ts", "web/api.ts", "imports") in found
    assert ("notes/garden.md", "pkg/core.py", "documents") in found
    assert not any(t == "web/lib/thing" for _, t, _ in found)
    # What a file names before it exists resolves once it is indexed (nothing re-read).
    (tree / "web" / "lib").mkdir()
    (tree / "web" / "lib" / "thing.js").write_text("module.exports = 1;\n")
    report = manager.files.index("alice", tree)
    assert report.read == 1
    related = manager.files.related("alice", "web/app.ts")
    targets = {other.rel_path for kind, way, other, _ in related if other and way == "out"}
    assert targets == {"web/api.ts", "web/lib/thing.js"}


def test_snippets_name_classes_functions_and_headers(manager: MemoryManager, tree: Path) -> None:
    manager.files.index("alice", tree)
    core = manager.files.show("alice", "pkg/core.py")
    kinds = [(s.snippet_type, s.content, s.line_start) for s in core.snippets]
    assert ("header", "Core maths.", 1) in kinds
    assert ("class", "class Calculator:", 6) in kinds
    assert ("function", "def add(self, a, b):", 7) in kinds
    notes = manager.files.show("alice", "notes/garden.md")
    assert [(s.content, s.line_start, s.line_end) for s in notes.snippets] == [
        ("Garden", 1, 7),
        ("Links", 5, 7),
    ]
    ts = manager.files.show("alice", "web/app.ts")
    assert [(s.snippet_type, s.line_start) for s in ts.snippets] == [("function", 3)]


def test_no_change_reindex_reads_no_file(
    manager: MemoryManager, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.files.index("alice", tree)
    opened: list[str] = []
    real = reading.read_file
    monkeypatch.setattr(
        "aico.files.scan.read_file", lambda p, **kw: opened.append(p) or real(p, **kw)
    )
    report = manager.files.index("alice", tree)
    assert opened == [] and report.read == 0 and report.unchanged == 8
    (tree / "pkg" / "util.py").write_text("from . import core\n# changed\n")
    report = manager.files.index("alice", tree)
    assert len(opened) == 1 and report.modified == 1
    change = manager.files.changes("alice", file="pkg/util.py")[0]
    assert change.change_type == "modified" and change.old_hash != change.new_hash


def test_rename_and_move_keep_the_row_and_its_segments(manager: MemoryManager, tree: Path) -> None:
    manager.files.index("alice", tree)
    before = by_rel(manager)
    garden = before["notes/garden.md"]
    segments = manager.semantic.segments_of_source("alice", "file", garden.id)
    assert segments
    (tree / "notes" / "garden.md").rename(tree / "notes" / "allotment.md")
    (tree / "web").mkdir(exist_ok=True)
    shutil.move(tree / "web" / "api.ts", tree / "pkg" / "api.ts")
    report = manager.files.index("alice", tree)
    assert (report.renamed, report.moved, report.created, report.deleted) == (1, 1, 0, 0)
    after = by_rel(manager)
    assert after["notes/allotment.md"].id == garden.id
    assert after["pkg/api.ts"].id == before["web/api.ts"].id
    assert manager.semantic.segments_of_source("alice", "file", garden.id) == segments
    assert report.chunks_added == 0 and report.chunks_deleted == 0
    kinds = {c.change_type for c in manager.files.changes("alice", limit=50)}
    assert {"renamed", "moved"} <= kinds
    renamed = manager.files.changes("alice", file="notes/allotment.md")[0]
    assert renamed.old_path == str(tree / "notes" / "garden.md")
    assert renamed.new_path == str(tree / "notes" / "allotment.md")
    # The knowledge.db rows follow the path.
    paths = {
        r["file_path"]
        for r in manager.store.connection("knowledge").fetch_all(
            "SELECT file_path FROM embedding_metadata"
        )
    }
    assert str(tree / "notes" / "allotment.md") in paths
    assert str(tree / "notes" / "garden.md") not in paths


def test_a_deleted_file_keeps_its_history_and_loses_its_segments(
    manager: MemoryManager, tree: Path
) -> None:
    manager.files.index("alice", tree)
    garden = by_rel(manager)["notes/garden.md"]
    (tree / "notes" / "garden.md").unlink()
    report = manager.files.index("alice", tree)
    assert report.deleted == 1 and report.chunks_deleted > 0
    assert "notes/garden.md" not in by_rel(manager)
    assert manager.semantic.segments_of_source("alice", "file", garden.id) == []
    history = [c.change_type for c in manager.files.changes("alice", file=garden.id)]
    assert history == ["deleted", "created"]
    assert not manager.search("alice", "tomatoes watering", 5, source="file", mode="bm25")


def test_gitignored_and_configured_ignores_and_a_symlink_out(
    manager: MemoryManager, tree: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not mine to index")
    (tree / "link-out").symlink_to(outside)
    (tree / "link-file.txt").symlink_to(outside / "secret.txt")
    (tree / ".gitignore").write_text("*.log\nbuild/\n")
    (tree / "debug.log").write_text("noise")
    (tree / "build").mkdir()
    (tree / "build" / "out.txt").write_text("generated")
    (tree / "notes" / ".gitignore").write_text("private.md\n")
    (tree / "notes" / "private.md").write_text("private")
    (tree / "node_modules").mkdir()
    (tree / "node_modules" / "x.js").write_text("dependency")
    report = manager.files.index("alice", tree, ignore=["node_modules/", "*.bin"])
    files = set(by_rel(manager))
    assert not {"debug.log", "build/out.txt", "notes/private.md", "node_modules/x.js"} & files
    assert "image.bin" not in files
    assert not any(f.startswith("link") for f in files)
    assert report.symlinks_skipped == 2
    assert ".gitignore" in files
    paths = {f.path for f in manager.files.list_files("alice")}
    assert not any(str(outside) in p for p in paths)


def test_a_file_that_changes_while_read_is_stored_as_read_and_read_again(
    manager: MemoryManager, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tree / "notes" / "garden.md"
    writes = {"left": 1}

    def change(path: str) -> None:
        if path == str(target) and writes["left"]:
            writes["left"] -= 1
            with open(path, "a") as fh:
                fh.write("\nA line written during the read.\n")

    monkeypatch.setattr(reading, "_after_read", change)
    manager.files.index("alice", tree)
    garden = by_rel(manager)["notes/garden.md"]
    # Read twice: the second read was stable, and hash and chunks are of what is on disk.
    assert garden.content_hash == hashlib.sha256(target.read_bytes()).hexdigest()
    assert garden.stat_mtime_ns == target.stat().st_mtime_ns
    hits = manager.files.search("alice", "line written during the read", 3, mode="bm25")
    assert hits and hits[0].file is not None and hits[0].file.id == garden.id

    # Changing on every read: stored without a stat cache, so the next index reads it again.
    writes["left"] = 10
    target.write_text("# Garden\n\nNew text.\n")
    report = manager.files.index("alice", tree)
    assert report.unstable == 1
    unstable = by_rel(manager)["notes/garden.md"]
    assert unstable.stat_mtime_ns is None
    writes["left"] = 0
    report = manager.files.index("alice", tree)
    assert report.read == 1 and report.unstable == 0


def test_git_status_where_a_repository_exists(manager: MemoryManager, tree: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("no git")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        cmd = ["git", "-C", str(tree), *args]
        return subprocess.run(cmd, check=True, capture_output=True, env=env)

    run("init", "-q")
    run("add", "pkg")
    run("commit", "-q", "-m", "init")
    (tree / "pkg" / "util.py").write_text("# edited\n")
    report = manager.files.index("alice", tree)
    assert report.git
    files = by_rel(manager)
    assert files["pkg/core.py"].git_status == "clean"
    assert files["pkg/util.py"].git_status == "modified"
    assert files["notes/garden.md"].git_status == "untracked"
    head = run("rev-parse", "HEAD").stdout.decode().strip()
    assert manager.files.changes("alice", file="pkg/util.py")[0].git_commit == head


def test_without_git_there_is_no_status(
    manager: MemoryManager, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    report = manager.files.index("alice", tree)
    assert not report.git
    assert all(f.git_status is None for f in manager.files.list_files("alice"))


def test_files_belong_to_one_user(manager: MemoryManager, tree: Path) -> None:
    manager.files.index("alice", tree)
    manager.files.index("bob", tree)
    assert len(by_rel(manager, "alice")) == len(by_rel(manager, "bob")) == 8
    assert by_rel(manager)["pkg/core.py"].id != by_rel(manager, "bob")["pkg/core.py"].id
    hits = manager.files.search("bob", "tomatoes watering", 5)
    assert hits and all(h.file is not None and h.file.user_id == "bob" for h in hits)
    with pytest.raises(NotFound):
        manager.files.index("carol", tree)


def test_bad_input_and_read_only_are_refused_before_anything_is_written(
    manager: MemoryManager, tree: Path, tmp_path: Path, test_config
) -> None:
    with pytest.raises(InvalidInput):
        manager.files.index("alice", tree / "missing")
    with pytest.raises(InvalidInput):
        manager.files.index("alice", tree / "pkg" / "core.py")
    with pytest.raises(InvalidInput):
        manager.files.index("alice", "bad\x00path")
    assert manager.files.list_files("alice") == []
    data = manager.store.layout.root
    manager.close()
    with MemoryManager.open(
        data,
        passphrase="correct horse battery staple",
        config=test_config,
        encoder=HashingEncoder(dimension=384),
        read_only=True,
    ) as ro:
        with pytest.raises(ReadOnly):
            ro.files.index("alice", tree)
        with pytest.raises(ReadOnly):
            ro.files.purge_user("alice")
        assert ro.files.list_files("alice") == []
