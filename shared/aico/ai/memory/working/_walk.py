"""Walk an environment that was not closed cleanly, in a child process.

Why a child: after a crash there is no seal (``_closeseal``), and LMDB's pages are not
authenticated. A damaged branch or leaf page can make LMDB read through a wild pointer, and
a SIGSEGV kills whichever process did the reading. So a child does the reading first: it
opens the environment read-only without LMDB's lock (the caller holds the exclusive open
lock, so nobody writes) and

- runs py-lmdb's offline verifier (``lmdb.verify``, pure Python, py-lmdb 3.0 and later) when
  it is there: every reachable page sound and reached once, keys in order, counters right,
  and the free list disjoint from the live pages (the free list is what the next write
  trusts, and no read walks it);
- then iterates every named database with LMDB itself, keys and values, and looks every
  key up again: a damaged separator key in a branch page passes the verifier (it only checks
  the order inside the page) but sends a lookup to the wrong child.

A child that dies of a signal, reports a problem or an LMDB error, or does not finish in
time means the environment is damaged. Where no child can be started (an interpreter this
user may not execute), the pure-Python verifier runs here instead: it reads with plain
file reads and cannot be made to crash; only the LMDB iteration is then skipped.

``subprocess`` with ``sys.executable -I -c`` is the cheap way to get a fresh interpreter
(measured on this 2-core VM, 10,000 messages, 21 MB: 91 ms in all, of which 11 ms
interpreter start-up, 33 ms start-up plus the LMDB iteration and lookups, the rest the
verifier; a bare ``multiprocessing`` spawn alone costs 35 ms).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Final

from aico.ai.memory.working._check import damaged
from aico.errors import WorkingMemoryCorrupted, WorkingMemoryError

__all__ = ["walk", "walk_timeout_s"]

_PROBLEMS: Final = 3  # exit code: the verifier found problems
_LMDB_ERROR: Final = 4  # exit code: LMDB refused something
_LOOKUP: Final = 5  # exit code: a key was not found by a lookup

# Runs in the child. It prints nothing of the data: at most a count or an LMDB class name.
_CHILD: Final = r"""
import sys
import lmdb
path = sys.argv[1]
try:
    from lmdb import verify as offline
except ImportError:
    offline = None
if offline is not None:
    try:
        problems = offline.verify(path, subdir=True)
    except offline.VerifyError:
        problems = ["unparseable"]
    if problems:
        print(len(problems))
        sys.exit(3)
try:
    env = lmdb.open(path, readonly=True, lock=False, subdir=True, max_dbs=64,
                    readahead=False, max_spare_txns=0)
    with env.begin() as txn:
        names = list(txn.cursor().iternext(values=False))
        for name in names:
            db = env.open_db(name, txn=txn, create=False)
            for key, value in txn.cursor(db=db):
                if txn.get(key, db=db) != value:
                    sys.exit(5)
    env.close()
except lmdb.Error as exc:
    print(type(exc).__name__)
    sys.exit(4)
"""


def walk_timeout_s(file_bytes: int) -> float:
    """How long the walk of a file this large may take before it counts as hung."""
    # Generous: the verifier reads about 300 MB/s here; a loaded machine may be 10x slower.
    return 30.0 + file_bytes / 20e6


def walk(directory: Path, file_bytes: int) -> None:
    """Raise ``WorkingMemoryCorrupted`` unless a child walks the whole environment cleanly."""
    command = [sys.executable, "-I", "-c", _CHILD, str(directory)]
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=walk_timeout_s(file_bytes), check=False
        )
    except subprocess.TimeoutExpired:
        raise damaged(directory, "its structural check did not finish") from None
    except OSError as exc:
        _verify_here(directory, exc)
        return
    code = done.returncode
    if code == 0:
        return
    raise _verdict(directory, code, done.stdout.decode("ascii", "replace").strip()[:64])


def _verify_here(directory: Path, why: OSError) -> None:
    try:
        from lmdb import verify as offline  # py-lmdb 3.0 and later
    except ImportError:
        raise WorkingMemoryError(
            f"cannot check working memory at {directory}: {why.strerror}"
        ) from None
    try:
        problems = offline.verify(str(directory), subdir=True)  # type: ignore[no-untyped-call]
    except offline.VerifyError:
        problems = ["unparseable"]
    except OSError as exc:
        raise WorkingMemoryError(
            f"cannot check working memory at {directory}: {exc.strerror}"
        ) from None
    if problems:
        raise damaged(directory, f"its structural check found {len(problems)} problem(s)")


def _verdict(directory: Path, code: int, said: str) -> WorkingMemoryCorrupted:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return damaged(directory, f"reading it killed the checking process ({name})")
    if code == _PROBLEMS:
        return damaged(directory, f"its structural check found {said or 'some'} problem(s)")
    if code == _LOOKUP:
        return damaged(directory, "a key is not found where the tree keeps it")
    if code == _LMDB_ERROR and said.isidentifier():
        return damaged(directory, f"LMDB refused to read it ({said})")
    return damaged(directory, f"its structural check failed (exit status {code})")
