"""Schema version 2 of knowledge.db: version 1 frozen, owners added, reversible."""

from __future__ import annotations

from aico.ai.memory import MemoryManager
from aico.data.schema.registry import default_registry

# Version 1's checksum as first applied (git history): an applied version never changes.
V1_CHECKSUM = "15e932c88e51c834da8147d29fb7fbe5dfcb5f8317a8f5c925931a01df892091"
FILE_INDEX_TABLES = ("embedding_metadata", "search_indexes")


def columns(manager: MemoryManager, table: str) -> list[str]:
    conn = manager.store.connection("knowledge")
    return [r["name"] for r in conn.fetch_all(f"PRAGMA table_info({table})")]


def test_version_one_is_frozen_and_two_is_head():
    schema = default_registry.get("knowledge")
    assert schema.version(1).checksum == V1_CHECKSUM
    assert schema.latest == 2


def test_owned_tables_have_user_id_and_file_index_tables_are_untouched(manager):
    for table in (
        "project_components",
        "documentation_files",
        "project_decisions",
        "success_patterns",
        "conversation_effectiveness",
        "context_relevance_feedback",
    ):
        assert "user_id" in columns(manager, table), table
    for table in FILE_INDEX_TABLES:
        assert "user_id" not in columns(manager, table), table
    assert {"superseded_by", "status_changed_at"} <= set(columns(manager, "project_decisions"))
    assert {"message_count", "turn_count", "duration_seconds"} <= set(
        columns(manager, "conversation_effectiveness")
    )


def test_rollback_to_one_and_upgrade_again(manager):
    store = manager.store
    conn = store.connection("knowledge")
    before = {t: columns(manager, t) for t in FILE_INDEX_TABLES}
    store.rollback(to=1, schema="knowledge")
    assert "user_id" not in columns(manager, "project_decisions")
    sql = conn.fetch_value(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'documentation_files'"
    )
    assert "file_path TEXT UNIQUE NOT NULL" in sql
    store.migrate()
    assert "user_id" in columns(manager, "project_decisions")
    assert {t: columns(manager, t) for t in FILE_INDEX_TABLES} == before
