"""The admin verbs (users, facts, conversations, messages, context, search, forget).

In-process with click's CliRunner on one real data dir per module (real encrypted libSQL,
LMDB, Chroma and the real MiniLM model), filled through the CLI itself. Tests that delete
work on users of their own, so the shared ones stay as the fixture made them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aico.cli.main import cli
from aico.security import KdfParams

PASS = "admin cli passphrase"
NO_USER = "Error: no user with this user_id\n"


def run(env: dict[str, str], *args: str, input: str | None = None, **extra: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={**env, **extra}, input=input)


def ok(env: dict[str, str], *args: str, input: str | None = None, **extra: str) -> Result:
    result = run(env, *args, input=input, **extra)
    assert result.exit_code == 0, result.output
    return result


def as_json(env: dict[str, str], *args: str) -> object:
    return json.loads(ok(env, *args, "--json").stdout)


def read_json(env: dict[str, str], *args: str) -> object:
    """A check of what another verb did, under ``--read-only``: no repair, no model warm-up
    at open, so about half the time of a writable open (the default, tested elsewhere)."""
    return as_json(env, "--read-only", *args)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, embedding_cache_dir: Path) -> dict[str, str]:
    """maya: conversation c1 (two messages, consolidated), a favourite fact; quiet: nothing."""
    root = tmp_path_factory.mktemp("admin-cli")
    p = KdfParams.for_tests()
    env = {
        "AICO_DATA_DIR": str(root / "data"),
        "AICO_PASSPHRASE": PASS,
        "AICO_CONFIG": "",
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        "AICO_MEMORY__SEMANTIC__MODEL_CACHE_DIR": str(embedding_cache_dir),
        "COLUMNS": "200",  # keep table rows on one line, so assertions can read them
    }
    ok(env, "init")
    assert ok(env, "users", "create", "Maya", "--id", "maya").stdout == "created user maya\n"
    ok(env, "users", "create", "Quiet", "--id", "quiet")
    say = ("messages", "add", "--user", "maya", "--session", "s1", "--conversation", "c1")
    ok(env, *say, "--title", "June plans", "My sister Ingrid visits Gothenburg every June.")
    result = ok(env, *say, "--role", "assistant", "--end-session", "Lovely, the archipelago!")
    assert "ended the session: 1 long-term segments made" in result.stdout
    ok(env, "facts", "add", "--user", "maya", "Maya's sister is called Ingrid", "--favorite")
    return env


def new_user(env: dict[str, str], user_id: str, *conversations: str) -> None:
    """A user with one two-message conversation per id, each its own consolidated session."""
    ok(env, "users", "create", user_id.title(), "--id", user_id)
    for conv in conversations:
        say = ("messages", "add", "--user", user_id, "--session", f"{conv}-s", "--conversation")
        ok(env, *say, conv, f"First line of {conv} about kayaks.")
        ok(env, *say, conv, "--end-session", f"Second line of {conv} about tents.")


def test_unknown_user_is_an_error_for_every_verb_and_never_echoed(env):
    # `aico semantic search` used to print nothing at all for an unknown user.
    ghost = "ghost-7f3a"
    for args in (
        ("search", "--user", ghost, "Ingrid"),
        ("context", "--user", ghost, "Ingrid"),
        ("facts", "list", "--user", ghost),
        ("conversations", "list", "--user", ghost),
        ("users", "show", ghost),
        ("users", "delete", ghost, "--yes"),
        ("forget", "--user", ghost, "--yes"),
    ):
        result = run(env, *args)
        assert (result.exit_code, result.output) == (1, NO_USER), args


def test_users_create_list_show(env):
    listed = as_json(env, "users", "list")
    assert {u["user_id"] for u in listed} >= {"maya", "quiet"}
    shown = as_json(env, "users", "show", "maya")
    assert shown["display_name"] == "Maya"
    assert shown["counts"] == {"facts": 1, "conversations": 1, "sessions": 1, "messages": 2}
    table = ok(env, "users", "show", "maya").stdout
    assert "messages" in table and "Maya" in table
    made = as_json(env, "users", "create", "Robin", "--type", "guest")
    assert made["user_type"] == "guest" and len(made["user_id"]) == 32  # a new random id

    result = run(env, "users", "create", "Again", "--id", "maya")
    assert (result.exit_code, result.output) == (
        1,
        "Error: a user with this user_id already exists\n",
    )
    assert run(env, "users", "create", "X", "--type", "robot").exit_code == 2


def test_search_says_no_results_and_shows_hits(env):
    [hit] = as_json(env, "search", "--user", "maya", "when does Ingrid visit", "-k", "3")
    assert "Ingrid" in hit["text"] and hit["bm25_rank"] == 1 and hit["conversation_id"] == "c1"
    table = ok(env, "search", "--user", "maya", "Ingrid").stdout
    assert "c1" in table and "My sister Ingrid visits Gothenburg every June." in table

    assert ok(env, "search", "--user", "quiet", "Ingrid").stdout == "no results\n"
    assert ok(env, "search", "--user", "maya", "zebra", "--mode", "bm25").stdout == "no results\n"
    assert run(env, "search", "--user", "maya", "x", "--mode", "fuzzy").exit_code == 2
    assert hit["source"] == "conversation"
    talks = as_json(env, "search", "--user", "maya", "Ingrid", "--source", "conversation")
    assert [h["source"] for h in talks] == ["conversation"]
    assert ok(env, "search", "--user", "maya", "Ingrid", "--source", "file").stdout == (
        "no results\n"
    )
    assert run(env, "search", "--user", "maya", "x", "--source", "mail").exit_code == 2


def test_conversations_list_and_show_with_paging(env):
    [conv] = as_json(env, "conversations", "list", "--user", "maya")
    assert conv["id"] == "c1" and conv["message_count"] == 2 and conv["title"] == "June plans"
    assert ok(env, "conversations", "list", "--user", "quiet").stdout == "no conversations\n"

    shown = as_json(env, "conversations", "show", "c1")
    assert shown["conversation"]["user_id"] == "maya"
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
    page = ok(env, "conversations", "show", "c1", "--limit", "1", "--offset", "1").stdout
    assert "Lovely, the archipelago!" in page and "Ingrid" not in page
    assert "messages 2-2 of 2" in page

    result = run(env, "conversations", "show", "no-such-conversation")
    assert (result.exit_code, result.output) == (
        1,
        "Error: no conversation with this conversation_id\n",
    )


def test_context_items_prompt_and_budget(env):
    ctx = as_json(env, "context", "--user", "maya", "Where is Ingrid in June?")
    assert ctx["session_id"] == "s1"  # the user's latest session by default
    sources = [item["source"] for item in ctx["items"]]
    assert sources == ["fact", "recent", "recent"]  # the memory repeats the recent turns
    assert ctx["prompt"].startswith("Things you know about the user:\n- Maya's sister")
    prompt = ok(env, "context", "--user", "maya", "Ingrid", "--prompt").stdout
    assert prompt == ctx["prompt"] + "\n"

    tight = read_json(env, "context", "--user", "maya", "Ingrid", "--max-tokens", "12")
    assert tight["dropped"] >= 1 and tight["token_estimate"] <= 12
    other = read_json(env, "context", "--user", "maya", "Ingrid", "--session", "s-new")
    assert [i["source"] for i in other["items"]] == ["fact", "memory"]  # no recent turns
    none = read_json(env, "context", "--user", "quiet", "Ingrid")
    assert none["session_id"] is None and none["items"] == []
    assert run(env, "context", "--user", "maya", "x", "--max-tokens", "0").exit_code == 2


def test_facts_add_list_edit_delete(env):
    ok(env, "users", "create", "Fay", "--id", "fay")
    added = as_json(env, "facts", "add", "--user", "fay", "Fay likes tea", "--category", "food")
    fact_id = added["fact_id"]
    assert not added["is_favorite"] and added["confidence"] == 1.0
    edit = ("facts", "edit", fact_id, "--content", "Fay likes green tea", "--favorite")
    edited = as_json(env, *edit, "--confidence", "0.5")
    assert (edited["content"], edited["category"]) == ("Fay likes green tea", "food")
    listed = ok(env, "facts", "list", "--user", "fay", "--favorites").stdout
    assert fact_id in listed and "Fay likes green tea" in listed and "0.50" in listed

    assert run(env, "facts", "edit", fact_id).exit_code == 2  # nothing to change
    assert run(env, "facts", "edit", fact_id, "--confidence", "2").exit_code == 2
    assert ok(env, "facts", "delete", fact_id).stdout == f"deleted fact {fact_id}\n"
    assert ok(env, "--read-only", "facts", "list", "--user", "fay").stdout == "no facts\n"
    result = run(env, "facts", "delete", fact_id)
    assert (result.exit_code, result.output) == (1, "Error: no fact with this fact_id\n")
    result = run(env, "facts", "add", "--user", "nobody-here", "text")
    assert (result.exit_code, result.output) == (1, NO_USER)


def test_messages_add_from_stdin_and_bad_input(env):
    ok(env, "users", "create", "Sam", "--id", "sam")
    add = ("messages", "add", "--user", "sam", "--session", "sam-1")
    stored = json.loads(ok(env, *add, "--json", "-", input="hi from stdin").stdout)
    assert stored["session_id"] == "sam-1" and "segments" not in stored
    shown = read_json(env, "users", "show", "sam")
    assert shown["counts"]["messages"] == 1 and shown["counts"]["conversations"] == 0

    result = run(env, "messages", "add", "--user", "sam", "--session", "s1", "taken")
    assert (result.exit_code, result.output) == (
        1,
        "Error: this session_id belongs to another user\n",
    )
    result = run(env, "messages", "add", "--user", "nobody-here", "--session", "n1", "hello")
    assert (result.exit_code, result.output) == (1, "Error: no such user; create the user first\n")
    assert run(env, *add, "--title", "t", "x").exit_code == 2  # --title needs --conversation
    assert run(env, *add, "--role", "narrator", "x").exit_code == 2


def test_forget_each_grain_after_confirmation(env):
    ok(env, "users", "create", "Fiona", "--id", "fiona")
    say = ("messages", "add", "--user", "fiona", "--session")
    ok(env, *say, "fs1", "--conversation", "f1", "Kayaks on the lake.")
    ok(env, *say, "fs1", "--conversation", "f1", "--end-session", "Tents in the rain.")
    ok(env, *say, "fs2", "--conversation", "f2", "Maps of the coast.")
    forget = ("forget", "--user", "fiona")

    result = run(env, *forget, "--conversation", "f1", input="n\n")
    assert result.exit_code == 1 and "This cannot be undone. [y/N]: n\nAborted!" in result.output
    result = ok(env, *forget, "--conversation", "f1", input="y\n")  # all still there
    assert "forgot the conversation: 2 messages, 1 conversations, 1 sessions" in result.stdout
    assert "long-term segments" in result.stdout
    [(message_id, left)] = [
        (m["id"], c["id"])
        for c in read_json(env, "conversations", "list", "--user", "fiona")
        for m in read_json(env, "conversations", "show", c["id"])["messages"]
    ]
    assert left == "f2"

    # Another user's ids are refused as missing ones are, before anything is asked.
    result = run(env, "forget", "--user", "maya", "--conversation", "f2")
    assert (result.exit_code, result.output) == (
        1,
        "Error: no conversation with this conversation_id for this user\n",
    )
    result = run(env, "forget", "--user", "maya", "--message", message_id)
    assert (result.exit_code, result.output) == (
        1,
        "Error: no message with this message_id for this user\n",
    )
    assert run(env, *forget, "--conversation", "f2", "--message", "m").exit_code == 2

    report = as_json(env, *forget, "--message", message_id, "--yes")
    assert (report["grain"], report["messages"]) == ("message", 1)
    result = ok(env, "users", "delete", "fiona", input="y\n")
    assert result.stdout.startswith("forgot the user: ")
    assert "the user's profile is deleted" in result.stdout
    assert run(env, "users", "show", "fiona").output == NO_USER


def _tree_digest(root: Path) -> dict[str, str]:
    """Every file's digest but LMDB's reader table, which a read-only reader still uses
    (while the lock file is writable) to tell writers it is reading."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "lock.mdb"
    }


def test_read_only_reads_write_nothing_and_writes_refuse(env):
    data = Path(env["AICO_DATA_DIR"])
    before = _tree_digest(data)
    ro = ("--read-only",)
    assert "maya" in ok(env, *ro, "users", "list").stdout
    assert as_json(env, *ro, "search", "--user", "maya", "Ingrid")
    assert as_json(env, *ro, "context", "--user", "maya", "Ingrid")["items"]
    assert _tree_digest(data) == before

    refused = "Error: this command writes, and --read-only was given\n"
    for args in (
        ("users", "create", "X"),
        ("users", "delete", "maya", "--yes"),
        ("facts", "add", "--user", "maya", "x"),
        ("facts", "delete", "f"),
        ("messages", "add", "--user", "maya", "--session", "s1", "x"),
        ("forget", "--user", "maya", "--yes"),
    ):
        result = run(env, *ro, *args)
        assert (result.exit_code, result.output) == (1, refused), args
    assert _tree_digest(data) == before


def test_tables_print_user_text_literally_and_without_colour_when_piped(env):
    ok(env, "users", "create", "Mark [bold]Up[/bold]", "--id", "markup")
    text = "Use [red]this[/red] :smile: now"
    ok(env, "messages", "add", "--user", "markup", "--session", "mk", "--conversation", "mk", text)
    ok(env, "facts", "add", "--user", "markup", f"Fact: {text}")
    for args, shown in (
        (("users", "list"), "Mark [bold]Up[/bold]"),
        (("conversations", "show", "mk"), text),
        (("context", "--user", "markup", "fact"), f"Fact: {text}"),
    ):
        result = ok(env, *args, FORCE_COLOR="1")  # CliRunner's stdout is not a terminal
        assert "\x1b[" not in result.stdout, args
        assert shown in result.stdout, args
    assert "fact" in result.stdout and "recent" in result.stdout  # the context's sources
    assert "tokens, 0 items dropped (session mk)" in result.stdout
