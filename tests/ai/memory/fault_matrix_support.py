"""The child side of the fault matrix: damage one file of a data dir copy, then use it.

``python fault_matrix_support.py <template> <work> <cells.json>`` runs each cell on a fresh
copy of ``template``: damage the file (truncate / flip / delete), open a ``MemoryManager`` and
exercise every verb, then print one ``CELL <json>`` line. ``START <cell>`` is printed (and
flushed) first, so when a signal kills the child the parent knows which cell did it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from coordinator_support import USER, open_manager

from aico.errors import AicoError


def damage(path: Path, how: str) -> bool:
    """Apply ``how`` to ``path``; False when the file does not exist (cell not applicable)."""
    if not path.exists():
        return False
    size = path.stat().st_size
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        with open(path, "r+b") as fh:
            fh.truncate(size // 2)
    elif how.startswith("flip"):
        if size == 0:
            return False
        # Three spread offsets: the header, the middle, near the end.
        with open(path, "r+b") as fh:
            for offset in {min(100, size - 1), size // 2, max(0, size - 200)}:
                fh.seek(offset)
                byte = fh.read(1)
                fh.seek(offset)
                fh.write(bytes([byte[0] ^ 0x5A]))
    else:
        raise ValueError(how)
    return True


def describe(exc: BaseException) -> dict[str, Any]:
    return {
        "error": type(exc).__name__,
        "store": getattr(exc, "store", None),
        "path": None if getattr(exc, "path", None) is None else str(exc.path),  # type: ignore[attr-defined]
        "message": str(exc)[:300],
    }


def exercise(data_dir: Path, expected: dict[str, str]) -> dict[str, Any]:
    """Open and use every verb; report what held."""
    try:
        memory = open_manager(data_dir)
    except AicoError as exc:
        return {"outcome": "refused", **describe(exc)}
    result: dict[str, Any] = {"outcome": "opened"}
    try:
        logged = {m.id: m.content for m in memory.log.messages_of_user(USER)}
        result["lost"] = sorted(set(expected) - set(logged))
        result["garbled"] = sorted(i for i in expected if i in logged and logged[i] != expected[i])
        working = {m.id for m in memory.working.recent("s-live", 1000)}
        live = {i for i, text in expected.items() if text.startswith("live")}
        result["working_missing"] = len(live - working)
        hits = memory.search(USER, "marmalade", 5, mode="hybrid")
        result["search_hits"] = len(hits)
        memory.assemble_context(USER, "s-live", "marmalade")
        new_id = memory.store_message(USER, "s-after", "user", "after the damage marmalade")
        memory.end_session("s-after")
        memory.maintenance()
        result["stored_after"] = memory.log.message(new_id) is not None
        result["index_state"] = getattr(memory.semantic, "index_state", None)
    except AicoError as exc:
        result.update({"outcome": "failed_in_use", **describe(exc)})
    finally:
        with contextlib.suppress(AicoError):
            memory.close()
    return result


def main(template: str, work: str, cells_file: str) -> None:
    cells = json.loads(Path(cells_file).read_text())
    expected = json.loads((Path(template) / "expected.json").read_text())
    for cell in cells:
        print("START " + json.dumps(cell), flush=True)
        target = Path(work) / "data"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(Path(template) / "data", target, symlinks=True)
        if not damage(target / cell["file"], cell["how"]):
            print("CELL " + json.dumps({**cell, "outcome": "absent"}), flush=True)
            continue
        print("CELL " + json.dumps({**cell, **exercise(target, expected)}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:4])
