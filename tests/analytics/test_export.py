"""The incremental export: only what changed, deletes of any origin, never the writer lock."""

from __future__ import annotations

import threading

from history import DAY, START, USERS, write_history

from aico.ai.memory import MemoryManager
from aico.data.repositories import UserService
from aico.operations.retention import archive_conversations
from aico.operations.settings import LifecycleSettings


def _ids(memory: MemoryManager) -> set[str]:
    return {r[0] for r in memory.analytics.sql("SELECT id FROM a.messages", limit=100_000).rows}


def _log_ids(memory: MemoryManager) -> set[str]:
    rows = memory.store.connection("conversations").fetch_all("SELECT id FROM messages")
    return {str(r["id"]) for r in rows}


def test_only_new_rows_are_read(memory: MemoryManager) -> None:
    write_history(memory, USERS, messages=300, tag="a")
    first = memory.analytics.export()
    assert first.added["messages"] == 300
    write_history(memory, USERS, messages=45, tag="b")
    second = memory.analytics.export()
    assert second.added["messages"] == 45
    assert second.rows_removed == 0
    third = memory.analytics.export()
    assert third.added["messages"] == 0
    assert _ids(memory) == _log_ids(memory)


def test_deletes_reach_the_copy_without_any_hook(memory: MemoryManager) -> None:
    """Rows removed behind the manager's back (retention, another process, an old build)."""
    write_history(memory, USERS, messages=200, per_session=10, tag="d")
    memory.analytics.export()
    log = memory.store.connection("conversations")
    conv = memory.log.conversations_of_user("ben")[0]
    log.execute("DELETE FROM messages WHERE conversation_id = ?", (conv["id"],))
    report = memory.analytics.export()
    assert report.removed["messages"] > 0
    assert _ids(memory) == _log_ids(memory)

    # The newest message deleted, then a new one: SQLite gives it the freed rowid, at or
    # below the export's mark; the per-user fingerprint still finds it.
    newest = log.fetch_one("SELECT rowid AS r, id FROM messages ORDER BY rowid DESC LIMIT 1")
    assert newest is not None
    log.execute("DELETE FROM messages WHERE id = ?", (newest["id"],))
    memory.store_message("cy", "late-session", "user", "late words", timestamp=START + 5)
    reused = log.fetch_value("SELECT max(rowid) FROM messages")
    assert reused == newest["r"]
    memory.analytics.export()
    assert _ids(memory) == _log_ids(memory)

    # A user deleted without the forget hook: every row of theirs leaves the copy.
    UserService(memory.store.connection("core")).delete_user("ana")
    memory.analytics.export()
    users = memory.analytics.sql("SELECT DISTINCT user_id FROM a.messages").rows
    assert ("ana",) not in users


def test_forget_reaches_the_copy(memory: MemoryManager) -> None:
    """Through the manager's hook (purge_user for a user, an export for the other grains)."""
    write_history(memory, USERS, messages=120, per_session=10, tag="f")
    memory.analytics.export()
    conv = memory.log.conversations_of_user("ben")[0]
    memory.forget("ben", conversation_id=conv["id"])
    assert _ids(memory) == _log_ids(memory)
    memory.forget("ana")
    counts = memory.analytics.sql(
        "SELECT (SELECT count(*) FROM a.messages WHERE user_id = 'ana') + "
        "(SELECT count(*) FROM a.users WHERE user_id = 'ana') + "
        "(SELECT count(*) FROM a.sessions WHERE user_id = 'ana')"
    )
    assert counts.rows == [(0,)]
    assert _ids(memory) == _log_ids(memory)


def test_export_runs_while_another_thread_holds_the_writer(memory: MemoryManager) -> None:
    write_history(memory, USERS, messages=500, tag="w")
    conn = memory.store.connection("conversations")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with conn.transaction():
            conn.execute("UPDATE session_metadata SET summary = NULL WHERE 0")
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(memory.analytics.export().rows_added))
    worker.start()
    worker.join(60)
    finished_while_held = not worker.is_alive()
    release.set()
    holder.join()
    worker.join()
    assert finished_while_held, "the export waited for the writer lock"
    assert done and done[0] >= 500


def test_retention_reaches_the_copy(memory: MemoryManager) -> None:
    """Archiving with ``archived_searchable = false`` drops segments; the hook follows."""
    write_history(memory, ["ana"], messages=60, per_session=6, tag="r")
    for session in memory.log.sessions_of_user("ana"):
        memory.end_session(session)
    memory.analytics.export()
    core = memory.store.connection("core")

    def segments_in_copy() -> int:
        return int(memory.analytics.sql("SELECT count(*) FROM a.segments").rows[0][0])

    before = segments_in_copy()
    assert before == core.fetch_value("SELECT count(*) FROM semantic_segments") > 0
    settings = LifecycleSettings(conversation_archive_days=1, archived_searchable=False)
    outcome = archive_conversations(memory, settings, START + 400 * DAY, dry_run=False)
    assert outcome.done.get("segments_removed", 0) > 0
    report = memory.analytics.after_retention()
    assert report.removed["segments"] > 0
    assert segments_in_copy() == core.fetch_value("SELECT count(*) FROM semantic_segments")
    statuses = memory.analytics.sql("SELECT DISTINCT status FROM a.conversations").rows
    assert ("archived",) in statuses
