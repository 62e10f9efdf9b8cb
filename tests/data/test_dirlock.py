"""The multi-process policy of a data dir, with real processes: shared use, exclusive rotation.

Every test that needs "another process" starts one (``sys.executable -c``), waits until it
reports that it holds the data dir, and then checks what the parent may and may not do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from aico.data.repositories import UserService
from aico.data.store import DataStore
from aico.errors import StoreBusy, StoreClosed
from aico.layout import DataDir
from aico.locking import DirLock, holders
from aico.security import KdfParams, KeyFile

from ..conftest import PASSPHRASE

CHILD = textwrap.dedent(
    """
    import sys
    from aico.config import load_config
    from aico.data.repositories import UserService
    from aico.data.store import DataStore
    from aico.layout import DataDir
    from aico.locking import DirLock

    data_dir, passphrase, kdf, mode = sys.argv[1:5]
    t, m, p = map(int, kdf.split(","))
    config = load_config(env={}, overrides={"security": {"use_keyring": False,
        "kdf_time_cost": t, "kdf_memory_cost_kib": m, "kdf_parallelism": p}})
    if mode == "exclusive":  # what a rotation (or a restore) holds while it runs
        lock = DirLock(DataDir(data_dir))
        with lock.exclusive():
            print("ready", flush=True)
            sys.stdin.readline()
        sys.exit(0)
    with DataStore.open(data_dir, passphrase=passphrase, config=config) as store:
        users = UserService(store.connection("core"))
        if mode == "share":
            print("ready", users.create_user("from the child").user_id, flush=True)
            other = sys.stdin.readline().strip()
            print(users.get_profile(other).display_name, flush=True)
        else:
            print("ready", flush=True)
        sys.stdin.readline()
    """
)


class Child:
    """A process holding the data dir; ``stop()`` lets it close, ``kill()`` is a crash."""

    def __init__(self, data_dir: Path, kdf: KdfParams, mode: str = "hold") -> None:
        spec = f"{kdf.time_cost},{kdf.memory_cost_kib},{kdf.parallelism}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data_dir), PASSPHRASE, spec, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        self.words = self.readline().split()
        assert self.words[:1] == ["ready"], self.proc.stderr.read() if self.proc.stderr else ""

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0, self.proc.stderr.read() if self.proc.stderr else ""

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.cleanup()


@pytest.fixture
def spawn(children: list[Child], fast_kdf: KdfParams):
    def _spawn(data_dir: Path, mode: str = "hold") -> Child:
        child = Child(data_dir, fast_kdf, mode)
        children.append(child)
        return child

    return _spawn


def test_rotation_is_refused_while_another_process_has_the_data_dir_open(store, spawn):
    child = spawn(store.data_dir)
    before = store.key_path.read_bytes()
    with pytest.raises(StoreBusy) as info:
        store.rotate_master_key(PASSPHRASE)
    assert str(info.value) == (
        f"the data dir {store.data_dir} is open in another process (pid {child.pid}); "
        "close it and retry"
    )
    assert info.value.pids == (child.pid,)
    assert store.key_path.read_bytes() == before  # refused before the key file was touched
    assert store.connection("core").fetch_value("SELECT 1") == 1  # still usable, still shared
    child.stop()
    old = store.master_key.key_id
    assert store.rotate_master_key(PASSPHRASE) != old
    assert not KeyFile.load(store.key_path).rotation_pending


def test_a_killed_holder_does_not_block_the_rotation(store, spawn):
    child = spawn(store.data_dir)
    assert sorted(holders(store.layout)) == sorted([os.getpid(), child.pid])
    child.kill()  # no close, no cleanup: its holder file stays behind
    assert any(p.name.startswith(f"{child.pid}-") for p in store.layout.lock_holders.iterdir())
    store.rotate_master_key(PASSPHRASE)
    assert holders(store.layout) == [os.getpid()]  # the stale entry was removed
    assert not any(p.name.startswith(f"{child.pid}-") for p in store.layout.lock_holders.iterdir())


def test_two_processes_use_one_data_dir_at_once(store, spawn):
    child = spawn(store.data_dir, "share")
    users = UserService(store.connection("core"))
    assert users.get_profile(child.words[1]).display_name == "from the child"
    mine = users.create_user("from the parent").user_id
    child.send(mine)
    assert child.readline().strip() == "from the parent"
    child.stop()


def test_an_open_waits_for_no_rotation_it_is_refused(store, spawn, test_config):
    store.close()
    child = spawn(store.data_dir, "exclusive")
    with pytest.raises(StoreBusy) as info:
        DataStore.open(store.data_dir, passphrase=PASSPHRASE, config=test_config)
    assert f"(pid {child.pid})" in str(info.value)
    assert "held exclusively" in str(info.value)
    assert info.value.pids == (child.pid,)
    assert holders(store.layout) == [child.pid]  # the refused open left nothing behind
    child.stop()
    DataStore.open(store.data_dir, passphrase=PASSPHRASE, config=test_config).close()


def test_another_store_of_this_process_counts_as_another_holder(store, test_config):
    other = DataStore.open(store.data_dir, passphrase=PASSPHRASE, config=test_config)
    try:
        with pytest.raises(StoreBusy) as info:
            store.rotate_master_key(PASSPHRASE)
        assert str(info.value) == (
            f"the data dir {store.data_dir} is open in another store of this process "
            f"(pid {os.getpid()}); close it and retry"
        )
        assert info.value.pids == (os.getpid(),)
    finally:
        other.close()
    store.rotate_master_key(PASSPHRASE)


def test_a_refused_switch_keeps_the_shared_hold(tmp_path):
    layout = DataDir(tmp_path / "d")
    a, b = DirLock(layout), DirLock(layout)
    with pytest.raises(StoreBusy), a.exclusive():
        pass
    b.release()
    c = DirLock(layout)
    with pytest.raises(StoreBusy), c.exclusive():  # ``a`` still holds it shared
        pass
    a.release()
    with c.exclusive():
        assert c.is_exclusive
        with pytest.raises(StoreBusy, match="held exclusively"):
            DirLock(layout)
    assert not c.is_exclusive
    DirLock(layout).release()  # shared again after the block
    c.release()
    c.release()  # idempotent
    assert not c.held and holders(layout) == []
    with pytest.raises(StoreClosed), c.exclusive():
        pass


def test_a_stale_holder_file_never_blocks(tmp_path):
    layout = DataDir(tmp_path / "d")
    with DirLock(layout) as lock:
        stale = layout.lock_holders / "999999999-deadbeef"
        stale.write_text("999999999\n")  # a crashed process's entry: nobody locks it
        with lock.exclusive():
            pass
        assert holders(layout) == [os.getpid()]  # listing drops it
        assert not stale.exists()
        stale.write_text("999999999\n")
        DirLock(layout).release()  # so does every open
        assert not stale.exists()


def test_a_forked_child_does_not_keep_the_parents_hold(tmp_path):
    layout = DataDir(tmp_path / "d")
    lock = DirLock(layout)
    go_read, go_write = os.pipe()
    up_read, up_write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads around
        pid = os.fork()
    if pid == 0:  # the child: fork hooks have run; stay alive until told to go
        os.write(up_write, b"u")
        os.read(go_read, 1)
        os._exit(0)
    os.close(go_read)
    os.close(up_write)
    try:
        assert os.read(up_read, 1) == b"u"
        lock.release()
        with DirLock(layout) as again, again.exclusive():
            pass  # the child's inherited copies were closed at the fork
    finally:
        os.write(go_write, b"x")
        for fd in (go_write, up_read):
            os.close(fd)
        os.waitpid(pid, 0)
