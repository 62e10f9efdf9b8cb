"""The MCP server, driven by the SDK's own client: in process (tool behaviour and errors),
over stdio with the server in a child process, and over streamable HTTP on loopback with
aico user tokens. The child serves with the test encoder (``mcp_child.py``); the
``aico mcp`` command's own checks run in process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from click.testing import CliRunner
from integration_support import PASSPHRASE, scan
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from aico.ai.memory import MemoryManager
from aico.cli.main import cli
from aico.data.repositories import TOKEN_HASH_PURPOSE, TokenRepository
from aico.integrations.mcp import build_server

CHILD = str(Path(__file__).with_name("mcp_child.py"))
TOOLS = {
    "add_memory",
    "search_memories",
    "get_memories",
    "update_memory",
    "delete_memory",
    "delete_all_memories",
    "recall_context",
    "forget_conversation",
}


def text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def data(result: Any) -> Any:
    assert not result.is_error, text(result)
    return (
        result.structured_content
        if result.structured_content is not None
        else json.loads(text(result))
    )


async def call(client: Client, name: str, **arguments: Any) -> Any:
    return await client.call_tool(name, arguments)


# -- in process ------------------------------------------------------------------------


def test_tools_in_process(memory: MemoryManager) -> None:
    memory.store_message("maya", "s1", "user", "I adopted a cat named Miso", conversation_id="c1")
    memory.store_message("maya", "s1", "assistant", "Miso is a lovely name!", conversation_id="c1")
    memory.end_session("s1")
    server = build_server(memory, user_id="maya")

    async def run() -> None:
        async with Client(server) as client:
            listed = await client.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            added = data(
                await call(
                    client, "add_memory", text="Maya is allergic to nuts", metadata={"src": "chat"}
                )
            )
            mid = added["results"][0]["id"]
            assert added["results"][0]["event"] == "ADD"
            hits = data(await call(client, "search_memories", query="nut allergy", limit=3))
            assert hits["results"][0]["id"] == mid and "score" in hits["results"][0]
            listed_memories = data(await call(client, "get_memories"))["results"]
            assert [m["memory"] for m in listed_memories] == ["Maya is allergic to nuts"]
            assert data(
                await call(
                    client, "update_memory", memory_id=mid, text="Maya is allergic to peanuts"
                )
            )
            context = data(
                await call(client, "recall_context", message="can Miso the cat eat peanuts?")
            )
            assert "Miso" in context["context"] and "peanuts" in context["context"]
            assert context["token_estimate"] <= context["max_tokens"]
            forgot = data(await call(client, "forget_conversation", conversation_id="c1"))
            assert forgot["forgotten"] and forgot["messages"] == 2
            after = data(await call(client, "recall_context", message="what about Miso the cat?"))
            assert "Miso" not in after["context"]
            assert data(await call(client, "delete_memory", memory_id=mid))
            assert data(await call(client, "get_memories"))["results"] == []
            data(await call(client, "add_memory", text="one more", run_id="r1"))
            assert data(await call(client, "delete_all_memories", run_id="r1"))
            assert data(await call(client, "get_memories"))["results"] == []

    anyio.run(run)


def test_tool_errors_are_typed_and_never_echo_input(memory: MemoryManager) -> None:
    bobs = build_server(memory, user_id="bob")
    server = build_server(memory, user_id="maya")

    async def run() -> None:
        async with Client(bobs) as client:
            bob_memory = data(await call(client, "add_memory", text="bob's own"))["results"][0][
                "id"
            ]
        async with Client(server) as client:
            cases = [
                ("search_memories", {"query": "zqsecret", "limit": "zqsecret"}, "limit"),
                ("search_memories", {"query": "zqsecret", "limit": 0}, "InvalidInput"),
                ("add_memory", {"text": "zqsecret\x00"}, "InvalidInput"),
                ("add_memory", {"text": "zqsecret", "user_id": "zqsecretuser"}, "InvalidInput"),
                ("add_memory", {}, "text"),
                ("update_memory", {"memory_id": bob_memory, "text": "zqsecret"}, "NotFound"),
                ("delete_memory", {"memory_id": "zqsecret-missing"}, "NotFound"),
                ("forget_conversation", {"conversation_id": "zqsecret-conv"}, "NotFound"),
                ("recall_context", {"message": "zqsecret", "max_tokens": -5}, "InvalidInput"),
                (
                    "search_memories",
                    {"query": "x", "filters": {"a": {"regex": "zqsecret"}}},
                    "InvalidInput",
                ),
            ]
            for name, arguments, expected in cases:
                result = await client.call_tool(name, arguments)
                message = text(result)
                assert result.is_error, name
                assert expected in message, (name, message)
                assert "zqsecret" not in message and "Traceback" not in message, (name, message)
        assert memory.search("bob", "bob's own")[0:0] == []  # bob's memory untouched
        async with Client(bobs) as client:
            assert data(await call(client, "get_memories"))["results"][0]["id"] == bob_memory

    anyio.run(run)


def test_read_only_server_refuses_writes(open_memory, memory: MemoryManager) -> None:
    from aico.integrations.mem0 import Memory

    Memory(memory).add("kept", user_id="maya")
    server = build_server(open_memory(read_only=True), user_id="maya")

    async def run() -> None:
        async with Client(server) as client:
            assert data(await call(client, "search_memories", query="kept"))["results"]
            result = await call(client, "add_memory", text="new")
            assert result.is_error and "ReadOnly" in text(result)

    anyio.run(run)


# -- the command's checks ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mcp"], "give --user ID"),
        (["mcp", "--http", "--user", "maya"], "not both"),
        (["mcp", "--http", "--host", "0.0.0.0"], "loopback only"),
    ],
)
def test_command_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path / "none"), *args], env={"AICO_CONFIG": ""}
    )
    assert result.exit_code == 1 and message in result.output, result.output


def test_command_names_an_unknown_user(memory: MemoryManager, data_dir: Path) -> None:
    memory.close()
    result = CliRunner().invoke(
        cli,
        ["--data-dir", str(data_dir), "mcp", "--user", "zqnobody"],
        env={
            "AICO_CONFIG": "",
            "AICO_PASSPHRASE": PASSPHRASE,
            "AICO_SECURITY__USE_KEYRING": "false",
        },
    )
    assert result.exit_code == 1 and "no user with this user_id" in result.output
    assert "zqnobody" not in result.output


# -- over stdio and HTTP, the server in a child process -----------------------------------


def _env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {
        **keep,
        "AICO_PASSPHRASE": PASSPHRASE,
        "AICO_CONFIG": "",
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "OPENBLAS_NUM_THREADS": "1",
    }


def test_stdio_round_trips(memory: MemoryManager, data_dir: Path, tmp_path: Path) -> None:
    memory.close()
    params = StdioServerParameters(
        command=sys.executable, args=[CHILD, str(data_dir), "stdio", "maya"], env=_env()
    )
    errlog = tmp_path / "stderr.txt"

    async def run() -> None:
        with errlog.open("w") as err:
            async with Client(stdio_client(params, errlog=err)) as client:
                assert {t.name for t in (await client.list_tools()).tools} == TOOLS
                mid = data(await call(client, "add_memory", text="zqstdiomarker likes rowing"))[
                    "results"
                ][0]["id"]
                hits = data(await call(client, "search_memories", query="zqstdiomarker rowing"))
                assert hits["results"][0]["id"] == mid
                bad = await call(client, "update_memory", memory_id="nope", text="zqstdiomarker")
                assert bad.is_error and "NotFound" in text(bad)

    anyio.run(run)
    assert b"zqstdiomarker" not in errlog.read_bytes()  # nothing of the content on stderr
    assert scan(data_dir, [b"zqstdiomarker"]) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server(memory: MemoryManager, data_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    repo = TokenRepository(
        memory.store.connection("core"), memory.store.master_key.subkey(TOKEN_HASH_PURPOSE)
    )
    tokens = {user: repo.create(user)[1] for user in ("maya", "bob")}
    tokens["admin"] = repo.create(admin=True)[1]
    memory.close()
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, CHILD, str(data_dir), "http", str(port)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if child.poll() is not None:
                    raise AssertionError("the server child died") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", tokens
    finally:
        child.terminate()
        child.wait(timeout=10)


def _client(url: str, token: str | None) -> Client:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0))
    return Client(streamable_http_client(url, http_client=http))


def test_http_with_tokens(http_server: tuple[str, dict[str, str]]) -> None:
    url, tokens = http_server

    async def run() -> None:
        async with _client(url, tokens["maya"]) as maya:
            mid = data(await call(maya, "add_memory", text="maya swims on Tuesdays"))["results"][0][
                "id"
            ]
            assert (
                data(await call(maya, "search_memories", query="swims"))["results"][0]["id"] == mid
            )
        async with _client(url, tokens["bob"]) as bob:
            assert data(await call(bob, "get_memories"))["results"] == []  # acts for bob only
            denied = await call(bob, "delete_memory", memory_id=mid)
            assert denied.is_error and "NotFound" in text(denied)
            wrong = await call(bob, "get_memories", user_id="maya")
            assert wrong.is_error and "one user" in text(wrong)

    anyio.run(run)

    async def refused(token: str | None) -> int:
        headers = {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        async with httpx2.AsyncClient() as http:
            return (await http.post(url, headers=headers, json=body)).status_code

    for token in (None, "aico_0000000000000000_" + "x" * 43, tokens["admin"]):
        assert anyio.run(refused, token) == 401
