"""The coordinator under concurrency: threads and processes on one data dir.

8 threads in this process and 2 child processes (3 threads each) store messages, end
sessions, run maintenance and search for ``AICO_CONCURRENCY_SECONDS`` (default 30 s), with
Chroma as a local server (the embedded index serves one process; see ``_owner``). Then:
0 errors, 0 acknowledged messages lost, 0 messages in two segments, 0 segments without a
vector once the outbox drains (``check_invariants``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from coordinator_support import (
    PASSPHRASE,
    USER,
    check_invariants,
    child_env,
    create,
    open_manager,
    run_mixed,
    server_config,
    settle,
    start_mixed,
)
from semantic_support import free_port, start_chroma_server, stop_process

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.data.repositories import UserService
from aico.errors import StoreBusy

pytestmark = pytest.mark.slow
SECONDS = float(os.environ.get("AICO_CONCURRENCY_SECONDS", "30"))


def test_threads_and_processes_together(tmp_path: Path) -> None:
    port = free_port()
    server = start_chroma_server(tmp_path / "chroma-server", port)
    url = f"http://127.0.0.1:{port}"
    try:
        data_dir = tmp_path / "data"
        config = server_config(url)
        with MemoryManager.initialize(
            data_dir, PASSPHRASE, config=config, encoder=HashingEncoder()
        ) as memory:
            UserService(memory.store.connection("core")).create_user("One", user_id=USER)
        children = [start_mixed(data_dir, f"p{n}", SECONDS, 3, url) for n in range(2)]
        with MemoryManager.open(
            data_dir, passphrase=PASSPHRASE, config=config, encoder=HashingEncoder()
        ) as memory:
            acked, errors = run_mixed(memory, "main", SECONDS, 8)
            for child in children:
                out, err = child.communicate(timeout=SECONDS + 300)
                assert child.returncode == 0, err[-3000:]
                result = json.loads(out.strip().splitlines()[-1])
                errors += result["errors"]
                acked.update({k: tuple(v) for k, v in result["acked"].items()})
            assert errors == [], errors[0]
            assert len(acked) > 200
            settle(memory)
            report = check_invariants(memory, acked, search_sample=60)
            assert report["segments"] > 50
    finally:
        stop_process(server)


HOLD = """
import sys, time
sys.path[:0] = sys.argv[2:]
import coordinator_support as c
memory = c.open_manager(__import__("pathlib").Path(sys.argv[1]))
memory.search(c.USER, "anything", 3)
print("ready", flush=True)
sys.stdin.readline()
memory.close()
"""


def test_a_second_process_gets_a_typed_error_naming_the_index_holder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    create(data_dir)
    paths = [str(Path(__file__).parent)]
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir), *paths],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusy, match=rf"pid {holder.pid}\b") as caught:
            open_manager(data_dir)
        assert caught.value.pids == (holder.pid,)
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(30)
    with open_manager(data_dir) as memory:  # free again once the holder is gone
        assert memory.search(USER, "anything", 3) == []


def test_stores_in_one_process_share_the_index(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    create(data_dir)
    with open_manager(data_dir) as first, open_manager(data_dir) as second:
        first.store_message(USER, "s", "user", "zqshared words")
        first.end_session("s")
        assert second.search(USER, "zqshared", 3, mode="bm25")


def test_search_degrades_to_the_exact_scan_when_chroma_fails(tmp_path: Path) -> None:
    """Chroma is derived: a server that goes away must not take search down."""
    port = free_port()
    server = start_chroma_server(tmp_path / "chroma-server", port)
    url = f"http://127.0.0.1:{port}"
    config = server_config(url)
    try:
        with MemoryManager.initialize(
            tmp_path / "data", PASSPHRASE, config=config, encoder=HashingEncoder()
        ) as memory:
            UserService(memory.store.connection("core")).create_user("One", user_id=USER)
            memory.store_message(USER, "s", "user", "my owl is called zqhedwig")
            memory.end_session("s")
            memory.semantic.wait_ready()
            memory.semantic.process_outbox()  # end_session left its small batch queued
            assert memory.search(USER, "my owl is called zqhedwig", 3, mode="dense")
            stop_process(server)
            hits = memory.search(USER, "my owl is called zqhedwig", 3, mode="dense")
            assert hits and "zqhedwig" in hits[0].text and hits[0].dense_score > 0.99
            assert memory.assemble_context(USER, "s2", "owl").memories
            # Consolidation still commits its segments; indexing waits in the outbox.
            memory.store_message(USER, "s3", "user", "my cat is called zqtom")
            assert memory.end_session("s3") == 1
            report = memory.maintenance()
            assert report.outbox_remaining >= 1
            assert memory.search(USER, "zqtom", 3, mode="bm25")
    finally:
        if server.poll() is None:
            stop_process(server)


def test_forget_while_the_server_is_down_finishes_when_it_is_back(tmp_path: Path) -> None:
    """The log and libSQL forget at once; the server's ids and vectors are purged later.

    Opening and maintenance must not fail meanwhile (the purge stays pending in the
    ledger), and once the server answers, the next repair purges it.
    """
    port = free_port()
    server_dir = tmp_path / "chroma-server"
    server = start_chroma_server(server_dir, port)
    config = server_config(f"http://127.0.0.1:{port}")
    data_dir = tmp_path / "data"
    try:
        with MemoryManager.initialize(
            data_dir, PASSPHRASE, config=config, encoder=HashingEncoder()
        ) as memory:
            users = UserService(memory.store.connection("core"))
            users.create_user("One", user_id=USER)
            users.create_user("Two", user_id="user-2")
            memory.store_message("user-2", "s2", "user", "zqgone secret words")
            memory.store_message(USER, "s1", "user", "zqkept words")
            memory.end_session("s2")
            memory.end_session("s1")
            memory.maintenance()
            stop_process(server)
            report = memory.forget("user-2")
            assert report.messages == 1 and report.index_purge_pending
            assert memory.search("user-2", "zqgone", 3, mode="bm25") == []
        with MemoryManager.open(
            data_dir, passphrase=PASSPHRASE, config=config, encoder=HashingEncoder()
        ) as memory:  # the server is still down: opening and maintenance work
            assert memory.last_repair.forgets_finished == 0
            memory.maintenance()
            assert memory.search(USER, "zqkept", 3, mode="bm25")
        server = start_chroma_server(server_dir, port)
        with MemoryManager.open(
            data_dir, passphrase=PASSPHRASE, config=config, encoder=HashingEncoder()
        ) as memory:
            assert memory.last_repair.forgets_finished == 1
            pending = memory.store.connection("conversations").fetch_value(
                "SELECT count(*) FROM forget_ledger WHERE completed_at IS NULL"
            )
            assert pending == 0
            assert memory.search(USER, "zqkept", 3, mode="dense")
    finally:
        if server.poll() is None:
            stop_process(server)
