"""Kill a real child process between the steps of an atomic key-file write.

The child installs ``_atomic._crash_hook`` and ``os._exit``s at the chosen step, which is
what a power cut looks like to the file system (minus the page cache, which the fsyncs
before each step cover). Whatever the step, the key file must still unlock, with the old
or the new secret, never neither.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aico.errors import WrongPassphrase
from aico.security import KeyFile, MasterKey
from aico.security._atomic import STEP_REPLACED, STEP_TEMP_WRITTEN

from .conftest import PASSPHRASE

pytestmark = pytest.mark.slow

CRASHED = 70

CHILD = """
import os, sys
from aico.security import KdfParams, KeyFile
from aico.security import _atomic

step, op, path, old = sys.argv[1:5]

def crash(reached):
    if reached == step:
        os._exit(70)

_atomic._crash_hook = crash
if op == "change":
    KeyFile.change_passphrase(path, old, "the new one", KdfParams.for_tests())
elif op == "begin":
    KeyFile.begin_rotation(path, old)
elif op == "finish":
    KeyFile.finish_rotation(path, old)
"""


def _crash_during(op: str, step: str, path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, step, op, str(path), PASSPHRASE],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == CRASHED, result.stderr


def _unlocks(path: Path, passphrase: str) -> MasterKey | None:
    try:
        return KeyFile.unlock(path, passphrase)
    except WrongPassphrase:
        return None


@pytest.mark.parametrize("step", [STEP_TEMP_WRITTEN, STEP_REPLACED])
def test_change_passphrase_survives_a_crash(key_path: Path, master: MasterKey, step: str):
    _crash_during("change", step, key_path)

    with_old = _unlocks(key_path, PASSPHRASE)
    with_new = _unlocks(key_path, "the new one")
    if step == STEP_TEMP_WRITTEN:
        assert with_old == master and with_new is None
    else:
        assert with_new == master and with_old is None
    # A leftover temp file never gets in the way of the next change.
    working = PASSPHRASE if with_old else "the new one"
    KeyFile.change_passphrase(key_path, working, "third")
    assert KeyFile.unlock(key_path, "third") == master
    assert not Path(str(key_path) + ".tmp").exists()


@pytest.mark.parametrize("step", [STEP_TEMP_WRITTEN, STEP_REPLACED])
def test_begin_rotation_survives_a_crash(key_path: Path, master: MasterKey, step: str):
    _crash_during("begin", step, key_path)

    assert KeyFile.unlock(key_path, PASSPHRASE) == master
    pending = KeyFile.pending_rotation(key_path, PASSPHRASE)
    assert (pending is None) == (step == STEP_TEMP_WRITTEN)
    old, new = KeyFile.begin_rotation(key_path, PASSPHRASE)  # resume
    assert old == master
    if pending is not None:
        assert new == pending


@pytest.mark.parametrize("step", [STEP_TEMP_WRITTEN, STEP_REPLACED])
def test_finish_rotation_survives_a_crash(key_path: Path, master: MasterKey, step: str):
    _, new = KeyFile.begin_rotation(key_path, PASSPHRASE)
    _crash_during("finish", step, key_path)

    current = KeyFile.unlock(key_path, PASSPHRASE)
    pending = KeyFile.pending_rotation(key_path, PASSPHRASE)
    if step == STEP_TEMP_WRITTEN:
        assert (current, pending) == (master, new)  # still resumable
        assert KeyFile.finish_rotation(key_path, PASSPHRASE) == new
    else:
        assert (current, pending) == (new, None)
    assert KeyFile.unlock(key_path, PASSPHRASE) == new
