"""What the backend tests share: a real data dir, the real app over real HTTP.

The server is uvicorn in a thread on a free loopback port (``LiveServer``), serving
``create_app`` over an ``AsyncMemoryManager`` opened on a real encrypted data dir with
cheap KDF settings and the fast ``HashingEncoder``. ``api`` is one such server per test
module, with users ``maya`` and ``bob``, a token each and the admin token.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import AsyncMemoryManager, MemoryManager
from aico.config import Config, load_config
from aico.data.repositories import TOKEN_HASH_PURPOSE, TokenRepository, UserService
from aico.security import KdfParams
from aico_backend import BackendSettings, uvicorn_config

PASSPHRASE = "backend test passphrase"


def backend_test_config(**backend: Any) -> Config:
    """Defaults with cheap Argon2, no keyring, the scheduler off unless asked for."""
    params = KdfParams.for_tests()
    scheduler = backend.pop("scheduler", {"enabled": False})
    return load_config(
        env={},
        overrides={
            "security": {
                "use_keyring": False,
                "kdf_time_cost": params.time_cost,
                "kdf_memory_cost_kib": params.memory_cost_kib,
                "kdf_parallelism": params.parallelism,
            },
            "backend": {**backend, "scheduler": scheduler},
        },
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token_repo(memory: MemoryManager) -> TokenRepository:
    store = memory.store
    return TokenRepository(
        store.connection("core"),
        store.master_key.subkey(TOKEN_HASH_PURPOSE),
        key_id=store.master_key.key_id,
    )


class LiveServer:
    """uvicorn serving the app in a thread; ``stop`` is a graceful shutdown (lifespan)."""

    def __init__(
        self,
        memory: AsyncMemoryManager,
        settings: BackendSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.config = uvicorn_config(memory, settings, clock=clock, log_level="warning")
        self.app = self.config.app
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = f"http://{settings.host}:{settings.port}"

    @property
    def service(self) -> Any:
        return self.app.state.service

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        assert not self.thread.is_alive(), "the server did not stop"


@dataclass
class Api:
    """A running server and what the tests need to talk to it."""

    server: LiveServer
    memory: AsyncMemoryManager
    data_dir: Path
    tokens: dict[str, str]  # "maya", "bob", "admin"

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, who: str | None = None, *, scheme: str = "Bearer") -> httpx.Client:
        headers = {} if who is None else {"Authorization": f"{scheme} {self.tokens[who]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def make_data_dir(path: Path, config: Config) -> MemoryManager:
    """A new data dir with users maya and bob, open."""
    memory = MemoryManager.initialize(path, PASSPHRASE, config=config, encoder=HashingEncoder())
    users = UserService(memory.store.connection("core"))
    users.create_user("Maya", user_id="maya", nickname="May")
    users.create_user("Bob", user_id="bob")
    return memory


def start_api(path: Path, config: Config, **settings_changes: Any) -> Api:
    manager = make_data_dir(path, config)
    repo = token_repo(manager)
    tokens = {
        "maya": repo.create("maya", label="maya's phone")[1],
        "bob": repo.create("bob")[1],
        "admin": repo.create(admin=True)[1],
    }
    memory = AsyncMemoryManager.from_manager(manager)
    settings = BackendSettings.from_config(config).bound(port=free_port())
    server = LiveServer(memory, settings).start()
    return Api(server=server, memory=memory, data_dir=path, tokens=tokens)


def new_conversation(client: httpx.Client, title: str = "talk", **extra: Any) -> str:
    response = client.post("/v1/conversations", json={"title": title, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def say(
    client: httpx.Client, conversation: str, content: str, role: str = "user", **extra: Any
) -> str:
    response = client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"role": role, "content": content, **extra},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
