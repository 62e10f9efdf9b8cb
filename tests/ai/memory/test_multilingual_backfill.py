"""Segments stored before the language analysis get it later (``analyze_pending``).

Real encrypted store and FTS5, the fake encoder. A store that wrote without the analysis
(``language_analysis = false``, like every store before schema version 5) holds a Japanese
memory BM25 cannot find; one ``analyze_pending`` pass gives every old segment its language,
re-indexes the non-English ones from their analysis, leaves English FTS rows untouched,
and a second pass finds nothing left to do. ``MemoryManager.maintenance`` runs the pass.
"""

from __future__ import annotations

from pathlib import Path

from semantic_support import T0

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.ai.memory.semantic import Segment, SemanticConfig
from aico.data.libsql import EncryptedLibSQLConnection

_SAKURA = "妹のさくらは毎年六月に大阪から遊びに来ます。"
_ENGLISH = [f"I went for a long run in the park, lap {i}." for i in range(30)]


def _old_store(sem_open):
    store = sem_open(config=SemanticConfig(language_analysis=False))
    store.add_segments(
        [Segment("alice", t, T0 + i, segment_id=f"en-{i}") for i, t in enumerate(_ENGLISH)]
        + [Segment("alice", _SAKURA, T0 + 100, segment_id="sakura")]
    )
    return store


def _bm25(store, query: str) -> list[str]:
    return [h.segment_id for h in store.search("alice", query, mode="bm25", k=5)]


def test_old_segments_get_their_analysis_and_become_findable(
    sem_core: EncryptedLibSQLConnection, sem_open
) -> None:
    old = _old_store(sem_open)
    assert "sakura" not in _bm25(old, "妹はいつ来ますか")
    assert old.analyze_pending() == 0  # the analysis is off in this store
    old.close()

    store = sem_open()
    english_before = sem_core.fetch_value(
        "SELECT count(*) FROM semantic_fts WHERE semantic_fts MATCH 'park'"
    )
    assert sem_core.fetch_value("SELECT count(*) FROM semantic_segments WHERE lang IS NULL") == 31
    assert store.analyze_pending(limit=10) == 10  # bounded, oldest first
    assert store.analyze_pending() == 21
    assert store.analyze_pending() == 0
    assert _bm25(store, "妹はいつ来ますか")[0] == "sakura"
    rows = sem_core.fetch_all("SELECT lang, count(*) AS n FROM semantic_segments GROUP BY lang")
    langs = {r["lang"]: r["n"] for r in rows}
    assert langs == {"en": 30, "ja": 1}
    assert (
        sem_core.fetch_value("SELECT count(*) FROM semantic_segments WHERE fts_lex IS NOT NULL")
        == 1
    )
    assert (
        sem_core.fetch_value("SELECT count(*) FROM semantic_fts WHERE semantic_fts MATCH 'park'")
        == english_before
    )


def test_maintenance_runs_the_pass(tmp_path: Path, test_config) -> None:
    with MemoryManager.initialize(
        tmp_path / "d", "pw", config=test_config, encoder=HashingEncoder()
    ) as m:
        from aico.data.repositories import UserService

        UserService(m.store.connection("core")).create_user("Alice", user_id="alice")
        m.semantic.add_segments([Segment("alice", _SAKURA, T0, segment_id="sakura")])
        core = m.store.connection("core")
        core.execute("UPDATE semantic_segments SET lang = NULL, fts_lex = NULL, full_lex = NULL")
        assert "sakura" not in [
            h.segment_id for h in m.search("alice", "妹はいつ来ますか", mode="bm25")
        ]
        assert m.maintenance().segments_analyzed == 1
        assert [h.segment_id for h in m.search("alice", "妹はいつ来ますか", mode="bm25")] == [
            "sakura"
        ]
