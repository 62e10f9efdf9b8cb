"""``aico knowledge`` in-process with click's CliRunner: exact exit codes and output.

The data dir is made once per module in Python (users and a conversation, with the fast
hashing encoder); the knowledge verbs open only its databases, so they never need a model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.cli.main import cli
from aico.data.repositories import FactRepository, UserService
from aico.security import KdfParams

PASS = "knowledge cli passphrase"
NO_USER = "Error: no user with this user_id\n"
T0 = 1_800_000_000.0


def run(env: dict[str, str], *args: str) -> Result:
    """Invoke ``aico``; keys starting with ``_`` are the fixture's notes, not environment."""
    environ = {k: v for k, v in env.items() if not k.startswith("_")}
    return CliRunner().invoke(cli, list(args), env=environ)


def ok(env: dict[str, str], *args: str) -> Result:
    result = run(env, *args)
    assert result.exit_code == 0, result.output
    return result


def as_json(env: dict[str, str], *args: str) -> object:
    return json.loads(ok(env, *args, "--json").stdout)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, test_config_module) -> dict[str, str]:
    """maya: conversation c1 (4 messages over 150 s) and a fact; quiet: nothing."""
    root = tmp_path_factory.mktemp("knowledge-cli")
    with MemoryManager.initialize(
        root / "data", PASS, config=test_config_module, encoder=HashingEncoder(dimension=384)
    ) as manager:
        users = UserService(manager.store.connection("core"))
        users.create_user("Maya", user_id="maya")
        users.create_user("Quiet", user_id="quiet")
        for i, role in enumerate(("user", "assistant", "user", "assistant")):
            manager.store_message(
                "maya",
                "s1",
                role,
                f"line {i}",
                conversation_id="c1",
                timestamp=T0 + 50 * i,
                tokens=10,
            )
        fact = FactRepository(manager.store.connection("core")).remember("maya", "Likes tea")
    p = KdfParams.for_tests()
    return {
        "AICO_DATA_DIR": str(root / "data"),
        "AICO_PASSPHRASE": PASS,
        "AICO_CONFIG": "",
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        "COLUMNS": "200",
    } | {"_fact_id": fact.fact_id}


def knowledge_db(env: dict[str, str]) -> Path:
    return Path(env["AICO_DATA_DIR"]) / "db" / "knowledge" / "knowledge.db"


def test_decision_lifecycle(env):
    made = as_json(
        env,
        "knowledge",
        "add",
        "decision",
        "--user",
        "maya",
        "--title",
        "Use Chroma",
        "--type",
        "storage",
        "--alternative",
        "FAISS",
        "--tag",
        "vectors",
    )
    assert (made["status"], made["alternatives_considered"], made["tags"]) == (
        "active",
        ["FAISS"],
        ["vectors"],
    )
    first = made["id"]
    result = ok(env, "knowledge", "supersede", first, "--user", "maya", "--title", "libSQL vectors")
    assert result.stdout.startswith(f"superseded decision {first} by ")
    second = result.stdout.split()[-1]
    result = run(env, "knowledge", "revert", first, "--user", "maya")
    assert (result.exit_code, result.output) == (
        1,
        "Error: only an active decision can be reverted; this one is superseded\n",
    )
    assert ok(env, "knowledge", "revert", second, "--user", "maya").stdout == (
        f"reverted decision {second}\n"
    )
    chain = as_json(env, "knowledge", "history", second, "--user", "maya")
    assert [(d["title"], d["status"], d["decision_type"]) for d in chain] == [
        ("Use Chroma", "superseded", "storage"),
        ("libSQL vectors", "reverted", "storage"),
    ]
    table = ok(env, "knowledge", "list", "decision", "--user", "maya").stdout
    assert "libSQL vectors" in table and "reverted" in table and second in table
    listed = as_json(
        env, "knowledge", "list", "decision", "--user", "maya", "--status", "superseded"
    )
    assert [d["id"] for d in listed] == [first]
    shown = ok(env, "knowledge", "show", "decision", first, "--user", "maya").stdout
    assert "superseded_by" in shown and second in shown and '["FAISS"]' in shown


def test_effectiveness_is_measured_from_the_conversation(env):
    record = as_json(
        env,
        "knowledge",
        "add",
        "effectiveness",
        "--user",
        "maya",
        "--conversation",
        "c1",
        "--satisfaction",
        "5",
        "--task-type",
        "chat",
    )
    assert {
        k: record[k]
        for k in (
            "message_count",
            "turn_count",
            "duration_seconds",
            "completion_time_minutes",
            "tokens_used",
            "user_satisfaction",
        )
    } == {
        "message_count": 4,
        "turn_count": 2,
        "duration_seconds": 150.0,
        "completion_time_minutes": 3,  # 2.5 min, half up
        "tokens_used": 40,
        "user_satisfaction": 5,
    }
    result = run(
        env, "knowledge", "add", "effectiveness", "--user", "quiet", "--conversation", "c1"
    )
    assert (result.exit_code, result.output) == (
        1,
        "Error: no conversation with this conversation_id for this user\n",
    )


def test_feedback_component_documentation_pattern(env):
    item = f"fact:{env['_fact_id']}"
    result = ok(env, "knowledge", "add", "feedback", "--user", "maya", "--item", item, "--useful")
    assert result.stdout.startswith("added feedback ") and len(result.stdout.split()[-1]) == 32
    result = run(env, "knowledge", "add", "feedback", "--user", "quiet", "--item", item, "--useful")
    assert (result.exit_code, result.output) == (1, "Error: no fact with this id for this user\n")
    component = as_json(
        env,
        "knowledge",
        "add",
        "component",
        "--user",
        "maya",
        "store",
        "--type",
        "module",
        "--confidence",
        "0.5",
        "--evidence",
        '{"files": 3}',
    )
    assert (component["confidence"], component["evidence"]) == (0.5, {"files": 3})
    as_json(env, "knowledge", "add", "documentation", "--user", "maya", "README.md")
    result = run(env, "knowledge", "add", "documentation", "--user", "maya", "README.md")
    assert (result.exit_code, result.output) == (
        1,
        "Error: this user already has a documentation file at this path\n",
    )
    pattern = as_json(
        env,
        "knowledge",
        "add",
        "pattern",
        "--user",
        "maya",
        "--type",
        "tdd",
        "--success-indicator",
        "green",
        "--success-indicator",
        "fast",
    )
    assert pattern["success_indicators"] == ["green", "fast"] and pattern["usage_count"] == 0
    result = ok(env, "knowledge", "delete", "pattern", pattern["id"], "--user", "maya")
    assert result.stdout == f"deleted pattern {pattern['id']}\n"
    assert ok(env, "knowledge", "list", "pattern", "--user", "maya").stdout == "no pattern rows\n"


@pytest.mark.parametrize(
    "args",
    [
        ("list", "decision", "--user", "ghost"),
        ("show", "decision", "abc", "--user", "ghost"),
        ("add", "decision", "--user", "ghost", "--title", "t", "--type", "d"),
        ("add", "component", "--user", "ghost", "c", "--type", "t"),
        ("add", "pattern", "--user", "ghost", "--type", "t"),
    ],
)
def test_unknown_user_exits_1_and_is_never_echoed(env, args):
    result = run(env, "knowledge", *args)
    if args[0] == "show":
        assert (result.exit_code, result.output) == (
            1,
            "Error: no decision with this id for this user\n",
        )
    else:
        assert (result.exit_code, result.output) == (1, NO_USER)


@pytest.mark.parametrize(
    "args",
    [
        ("list", "widget", "--user", "maya"),
        ("add", "effectiveness", "--user", "maya", "--conversation", "c1", "--satisfaction", "6"),
        ("add", "component", "--user", "maya", "c", "--type", "t", "--confidence", "1.5"),
        ("add", "component", "--user", "maya", "c", "--type", "t", "--evidence", "{nope"),
        ("add", "component", "--user", "maya", "c", "--type", "t", "--evidence", '"text"'),
        ("add", "feedback", "--user", "maya", "--item", "fact:x"),  # --useful/--not-useful
        ("list", "decision", "--user", "maya", "--status", "paused"),
        ("add", "decision", "--user", "maya", "--title", "t"),  # --type
    ],
)
def test_usage_errors_exit_2_and_write_nothing(env, args):
    before = hashlib.sha256(knowledge_db(env).read_bytes()).hexdigest()
    result = run(env, "knowledge", *args)
    assert result.exit_code == 2, result.output
    assert hashlib.sha256(knowledge_db(env).read_bytes()).hexdigest() == before


def test_library_errors_exit_1(env):
    for args, message in (
        (
            ("add", "feedback", "--user", "maya", "--item", "widget:1", "--useful"),
            "Error: item must be <kind>:<id> with kind one of segment, fact, message, file\n",
        ),
        (
            ("add", "decision", "--user", "maya", "--title", " ", "--type", "d"),
            "Error: title must not be empty\n",
        ),
        (
            ("list", "pattern", "--user", "maya", "--status", "active"),
            "Error: status filters decisions only\n",
        ),
    ):
        result = run(env, "knowledge", *args)
        assert (result.exit_code, result.output) == (1, message), args


def test_read_only_refuses_writes_and_reads_change_no_byte(env):
    result = run(env, "--read-only", "knowledge", "add", "pattern", "--user", "maya", "--type", "x")
    assert (result.exit_code, result.output) == (
        1,
        "Error: this command writes, and --read-only was given\n",
    )
    db = knowledge_db(env)
    before = (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns)
    for kind in ("component", "documentation", "decision", "pattern", "effectiveness", "feedback"):
        ok(env, "knowledge", "list", kind, "--user", "maya")
        ok(env, "--read-only", "knowledge", "list", kind, "--user", "maya", "--json")
    assert (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns) == before


def test_reads_refuse_a_data_dir_behind_and_a_write_upgrades_it(tmp_path, test_config, env):
    with MemoryManager.initialize(
        tmp_path / "data", PASS, config=test_config, encoder=HashingEncoder(dimension=384)
    ) as manager:
        UserService(manager.store.connection("core")).create_user("Maya", user_id="maya")
        manager.store.rollback(to=1, schema="knowledge")
    mine = {**env, "AICO_DATA_DIR": str(tmp_path / "data")}
    result = run(mine, "knowledge", "list", "decision", "--user", "maya")
    assert (result.exit_code, result.output) == (
        1,
        "Error: the data dir's schemas are behind this code (knowledge); "
        "open it writable once to migrate (aico db migrate)\n",
    )
    ok(mine, "knowledge", "add", "pattern", "--user", "maya", "--type", "tdd")
    assert [
        p["pattern_type"] for p in as_json(mine, "knowledge", "list", "pattern", "--user", "maya")
    ] == ["tdd"]
