"""Schema version 3: ``semantic_fts_full``, the BM25 over every party's words.

Real encrypted core database, real FTS5: the migration indexes existing segments from their
libSQL text, the triggers keep the table in step, rollback leaves version 2 working, a
tokenizer change rebuilds both tables, and a read-only store over an older database searches
without the table instead of migrating.
"""

from __future__ import annotations

import re

import pytest
from semantic_support import T0

from aico.ai.memory.semantic import Message, SemanticConfig, SemanticMemoryStore, models
from aico.ai.memory.semantic.fts import DEFAULT_FTS_TOKENIZER, tags_sql
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.schema import Migrator, default_registry

EXCHANGE = [
    Message("user", "Where should I hike this weekend?", T0),
    Message("assistant", "Try the ridge trail above the lake.", T0 + 60),
]


def _full_matches(conn: EncryptedLibSQLConnection, word: str) -> int:
    return int(
        conn.fetch_value(
            "SELECT count(*) FROM semantic_fts_full WHERE semantic_fts_full MATCH ?",
            (f'{{body}} : "{word}"',),
        )
    )


def _table_exists(conn: EncryptedLibSQLConnection, name: str) -> bool:
    return bool(conn.fetch_value("SELECT count(*) FROM sqlite_master WHERE name = ?", (name,)))


def _normal(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).replace("( ", "(").replace(" )", ")").strip()


def test_version_3_is_frozen_sql_that_matches_the_live_helpers() -> None:
    # Frozen literals (an applied version's checksum must never follow live code), so check
    # here that they still say what the live helpers say.
    version = default_registry.get("semantic").version(3)
    text = _normal(" ".join(version.sql_statements))
    assert f"tokenize='{DEFAULT_FTS_TOKENIZER}'" in text
    assert _normal(tags_sql()) in text
    assert _normal(tags_sql("new.")) in text


def test_migration_indexes_existing_segments_from_their_text(
    sem_core: EncryptedLibSQLConnection, sem_open
) -> None:
    migrator = Migrator(sem_core, "core")
    migrator.downgrade(schema="semantic", to=2)
    old = sem_open()
    ids = old.add_messages("alice", EXCHANGE, conversation_id="c1")
    old.add_messages("alice", [Message("user", "ridge", T0 + 300)])  # user words only
    assert not _table_exists(sem_core, "semantic_fts_full")
    assert old.search("alice", "trail", mode="bm25") == []  # v2: the user's words only
    old.close()

    migrator.upgrade(schema="semantic")
    assert _full_matches(sem_core, "trail") == 1
    # Only segments whose BM25 text leaves words out: the user-only one is not repeated.
    assert _full_matches(sem_core, "ridge") == 1
    store = sem_open()
    (hit,) = store.search("alice", "trail", mode="bm25")
    assert hit.segment_id == ids[0] and hit.bm25_rank is None and hit.bm25_full_rank == 1
    assert store.search("alice", "trail", conversation_id="c1", mode="bm25")
    assert store.search("alice", "trail", conversation_id="other", mode="bm25") == []
    assert store.search("bob", "trail", mode="bm25") == []


def test_triggers_keep_the_table_in_step(sem_core: EncryptedLibSQLConnection, sem_open) -> None:
    store = sem_open()
    (segment_id,) = store.add_messages("alice", EXCHANGE)
    assert _full_matches(sem_core, "lake") == 1
    sem_core.execute(
        "UPDATE semantic_segments SET text = 'user: hike?\nassistant: the forest path' "
        "WHERE segment_id = ?",
        (segment_id,),
    )
    assert _full_matches(sem_core, "lake") == 0 and _full_matches(sem_core, "forest") == 1
    sem_core.execute(
        "UPDATE semantic_segments SET fts_text = NULL WHERE segment_id = ?", (segment_id,)
    )
    assert _full_matches(sem_core, "forest") == 0  # its BM25 text is all its words again
    sem_core.execute(
        "UPDATE semantic_segments SET fts_text = 'hike?' WHERE segment_id = ?", (segment_id,)
    )
    assert _full_matches(sem_core, "forest") == 1
    assert store.delete_segments([segment_id]) == 1
    assert _full_matches(sem_core, "forest") == 0


def test_rollback_leaves_version_2_working_and_upgrade_refills(
    sem_core: EncryptedLibSQLConnection, sem_open
) -> None:
    store = sem_open()
    store.add_messages("alice", EXCHANGE)
    store.close()
    migrator = Migrator(sem_core, "core")
    migrator.downgrade(schema="semantic", to=2)
    assert not _table_exists(sem_core, "semantic_fts_full")
    assert sem_core.fetch_value("SELECT count(*) FROM sqlite_master WHERE name LIKE '%full%'") == 0
    assert (
        sem_core.fetch_value(
            "SELECT count(*) FROM semantic_settings WHERE key = 'fts_full_tokenizer'"
        )
        == 0
    )
    old = sem_open()
    old.add_messages("alice", [EXCHANGE[0], Message("assistant", "Or the canyon loop.", T0 + 90)])
    assert [h.bm25_rank for h in old.search("alice", "hike", mode="bm25")] == [1, 2]
    old.close()
    migrator.upgrade(schema="semantic")
    assert _full_matches(sem_core, "canyon") == 1 and _full_matches(sem_core, "trail") == 1


def test_a_tokenizer_change_rebuilds_both_tables(
    sem_core: EncryptedLibSQLConnection, sem_open
) -> None:
    store = sem_open()
    store.add_messages("alice", [EXCHANGE[0], Message("assistant", "Go running there.", T0 + 9)])
    assert [h.bm25_full_rank for h in store.search("alice", "run", mode="bm25")] == [1]
    store.close()
    plain = sem_open(config=SemanticConfig(fts_tokenizer="unicode61"))
    assert plain.search("alice", "run", mode="bm25") == []  # no stemming in either table now
    assert [h.bm25_full_rank for h in plain.search("alice", "running", mode="bm25")] == [1]
    settings = dict(
        (r["key"], r["value"])
        for r in sem_core.fetch_all("SELECT key, value FROM semantic_settings")
    )
    assert settings["fts_tokenizer"] == settings["fts_full_tokenizer"] == "unicode61"


def test_read_only_over_version_2_searches_without_the_table(
    sem_core: EncryptedLibSQLConnection, sem_open
) -> None:
    Migrator(sem_core, "core").downgrade(schema="semantic", to=2)
    writer = sem_open()
    writer.add_messages("alice", EXCHANGE)
    writer.close()
    reader: SemanticMemoryStore = sem_open(read_only=True)
    assert [h.bm25_rank for h in reader.search("alice", "hike", mode="bm25")] == [1]
    assert reader.search("alice", "trail", mode="bm25") == []
    assert not _table_exists(sem_core, "semantic_fts_full")  # nothing was migrated


@pytest.mark.parametrize("share", [0.0, 0.35, 1.0])
def test_the_full_share_moves_weight_between_the_two_bm25s(sem_open, share: float) -> None:
    store = sem_open(config=SemanticConfig.from_mapping({"fusion_full_share": share}))
    store.add_messages("alice", EXCHANGE)
    hits = store.search("alice", "trail", mode="bm25")
    assert [h.bm25_full_rank for h in hits] == ([] if share == 0.0 else [1])[: len(hits)]


def test_rebuild_fts_refills_both_tables_from_the_segments(
    sem_core: EncryptedLibSQLConnection, sem_open
) -> None:
    store = sem_open()
    store.add_messages("alice", EXCHANGE)
    for table in ("semantic_fts", "semantic_fts_full"):
        sem_core.execute(f"INSERT INTO {table}({table}) VALUES ('delete-all')")
    assert store.search("alice", "trail hike", mode="bm25") == []
    models.rebuild_fts(sem_core, DEFAULT_FTS_TOKENIZER)
    (hit,) = store.search("alice", "trail hike", mode="bm25")
    assert hit.bm25_rank == 1 and hit.bm25_full_rank == 1
