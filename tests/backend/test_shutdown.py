"""SIGTERM stops the service gracefully: acknowledged writes are durable, every store is
closed and sealed, and the next open finds each database cleanly sealed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from backend_support import PASSPHRASE, backend_test_config, free_port, make_data_dir, token_repo

from aico.data.libsql.seal import seal_path, verify_seal
from aico.data.repositories import ConversationLog
from aico.data.store import DataStore
from aico.layout import DataDir
from aico.security import KdfParams, Purpose, unlock_master_key

CHILD = Path(__file__).with_name("serve_child.py")


def _config_file(path: Path, port: int) -> Path:
    params = KdfParams.for_tests()
    path.write_text(
        "[security]\nuse_keyring = false\n"
        f"kdf_time_cost = {params.time_cost}\nkdf_memory_cost_kib = {params.memory_cost_kib}\n"
        f"kdf_parallelism = {params.parallelism}\n"
        f"[backend]\nport = {port}\n"
        "[backend.scheduler]\noutbox_interval_s = 0.2\nsweep_interval_s = 0.2\n"
    )
    return path


def test_sigterm_finishes_requests_and_seals_every_store(tmp_path):
    data_dir = tmp_path / "data"
    manager = make_data_dir(data_dir, backend_test_config())
    _, token = token_repo(manager).create("maya")
    manager.close()
    port = free_port()
    env = {
        **os.environ,
        "AICO_CONFIG": str(_config_file(tmp_path / "aico.toml", port)),
        "AICO_PASSPHRASE": PASSPHRASE,
        "AICO_DATA_DIR": "",
    }
    log = (tmp_path / "child.log").open("w")
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir)], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/v1/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert child.poll() is None, (tmp_path / "child.log").read_text()
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.1)
        cid = client.post("/v1/conversations", json={"title": "before shutdown"}).json()["id"]
        acknowledged: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            with httpx.Client(base_url=url, headers=client.headers, timeout=30) as own:
                while not stop.is_set():
                    try:
                        response = own.post(
                            f"/v1/conversations/{cid}/messages",
                            json={"role": "user", "content": f"message {len(acknowledged)}"},
                        )
                    except httpx.TransportError:
                        return  # the server stopped accepting: expected
                    if response.status_code != 201:
                        return
                    acknowledged.append(response.json()["id"])

        thread = threading.Thread(target=writer)
        thread.start()
        while len(acknowledged) < 20:
            time.sleep(0.01)
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) in (0, -signal.SIGTERM)
        stop.set()
        thread.join(30)
    finally:
        client.close()
        if child.poll() is None:
            child.kill()
        log.close()
    layout = DataDir(data_dir)
    master = unlock_master_key(layout.key_file, passphrase=PASSPHRASE, use_keyring=False, env={})
    sealed = []
    for name, path in layout.databases.items():
        if path.exists():
            assert seal_path(path).exists(), f"{name} was not sealed"
            assert verify_seal(path, master.subkey(Purpose.seal(name))), f"{name}: bad seal"
            sealed.append(name)
    assert {"core", "conversations"} <= set(sealed)
    # Every acknowledged message is in the log.
    with DataStore.open(data_dir, passphrase=PASSPHRASE, config=backend_test_config()) as store:
        log_repo = ConversationLog(store.connection("conversations"))
        for message_id in acknowledged:
            assert log_repo.message(message_id) is not None
    assert "Traceback" not in (tmp_path / "child.log").read_text()
