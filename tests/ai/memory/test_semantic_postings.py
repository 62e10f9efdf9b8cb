"""The in-memory BM25 (``postings``): FTS5's scores bit for bit, and never a stale answer.

Real encrypted store, real FTS5 (the reference every comparison is made against: the store's
own ``bm25()`` statement), the fake encoder. What is proved:

- the same rowids and the same doubles as FTS5 over a mixed corpus (English, accents, German,
  Japanese, numbers, codes, two users, conversations, roles, both BM25 tables), for fixed and
  for hypothesis-generated queries, also with a cut inside a run of tied scores;
- every write path changes what names the FTS state (insert, delete, text / tag / analysis
  updates, optimize, a tokenizer rebuild, another connection's write), and a search after it
  is never answered from the old snapshot;
- a write that lands while a term is being read makes that search fall back to FTS5;
- what it does not answer (phrases, tag-shaped tokens, time filters) FTS5 does, and the store
  returns the same hits with ``bm25_in_memory`` on and off;
- after any sequence of adds and deletes (hypothesis), and with four searching threads
  beside a writer, the answers are FTS5's;
- close stops the builder thread.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from semantic_support import T0

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory.semantic import Segment, SemanticConfig, SemanticMemoryStore
from aico.ai.memory.semantic import postings as postings_module
from aico.ai.memory.semantic.fts import query_terms, tag_token
from aico.ai.memory.semantic.models import apply_tokenizer, rebuild_fts
from aico.ai.memory.semantic.postings import PostingsIndex, decode_varints
from aico.ai.memory.semantic.schema import FTS_FULL_TABLE, FTS_TABLE
from aico.ai.memory.semantic.search import SearchQuery
from aico.data.libsql import EncryptedLibSQLConnection
from aico.security import Purpose

_WORDS = [
    "garden",
    "tomato",
    "basil",
    "harvest",
    "river",
    "kayak",
    "paddle",
    "marathon",
    "training",
    "knee",
    "physio",
    "wedding",
    "cousin",
    "speech",
    "flight",
    "lisbon",
    "hotel",
    "invoice",
    "budget",
    "rent",
    "landlord",
    "violin",
    "lesson",
    "recital",
    "puppy",
    "vet",
    "vaccine",
    "novel",
    "library",
    "deadline",
    "project",
    "migration",
    "team",
    "running",
    "runs",
    "ran",
    "runner",
    "café",
    "naïve",
    "résumé",
    "Zürich",
    "Straße",
    "über",
    "2024",
    "42",
    "4711",
    "v2.3",
]
_OTHER = [
    "Der Hund läuft jeden Morgen durch den Garten.",
    "Wir fahren im Sommer nach München zu meiner Schwester.",
    "妹のさくらは毎年六月に大阪から遊びに来ます。",
    "東京の天気は今日とても良いです。",
    "QUOKKA3fa9b2c1d4e5 is the code of the locker",
    "the tag u616c6963650 looks like a user tag",
]


def _corpus(seed: int = 7) -> list[Segment]:
    rng = np.random.default_rng(seed)
    segments = []
    for i in range(240):
        words = rng.choice(_WORDS, size=int(rng.integers(3, 30)))
        text = " ".join(words)
        user = "alice" if i % 5 else "bob"
        roles: tuple[str, ...] = ("user",) if i % 3 else ("user", "assistant")
        fts_text = None if i % 3 else " ".join(words[: len(words) // 2]) or None
        segments.append(
            Segment(
                user,
                text,
                T0 + 60.0 * i,
                conversation_id=f"conv-{i % 7}",
                roles=roles,
                fts_text=fts_text,
                segment_id=f"s{i}",
            )
        )
    for j, text in enumerate(_OTHER):
        segments.append(Segment("alice", text, T0 + 99_000 + j, segment_id=f"o{j}"))
    return segments


def _index(store: SemanticMemoryStore) -> PostingsIndex:
    index = store._searcher._postings
    assert index is not None
    return index


def _tables(store: SemanticMemoryStore) -> tuple[str, ...]:
    return (FTS_TABLE, FTS_FULL_TABLE)


def _fts5(store, terms, n, *, user=None, conversation=None, role=None):
    """The reference: the store's own FTS5 statement, every term (no pruning)."""
    q = SearchQuery.parse(user or "alice", "x", 10, conversation_id=conversation, role=role)
    return store._searcher._bm25(list(terms), q, n, user, _tables(store))


def _memory(store, terms, n, *, user=None, conversation=None, role=None):
    tags = []
    if user is not None:
        tags.append(tag_token("u", user))
    if conversation is not None:
        tags.append(tag_token("c", conversation))
    if role is not None:
        tags.append(tag_token("r", role))
    return _index(store).search(_tables(store), list(terms), tags, n)


@pytest.fixture
def corpus_store(sem_open) -> SemanticMemoryStore:
    store = sem_open()
    store.add_segments(_corpus())
    assert store.wait_ready(30)
    return store


def _same(store, terms, n=1000, **scope) -> None:
    mine = _memory(store, terms, n, **scope)
    assert mine is not None, f"not answered from memory: {terms}"
    assert mine == _fts5(store, terms, n, **scope)


# -- the same scores as FTS5 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "garden tomato",
        "running",  # porter: running / runs / runner share a stem
        "runs ran runner",  # three literals, two of them one token: counted twice like FTS5
        "cafe naive resume",  # diacritics folded
        "Zürich strasse über",
        "2024 42 4711",
        "QUOKKA3fa9b2c1d4e5",
        "hund garten münchen",
        "wedding speech cousin flight lisbon hotel invoice budget",
        "nothingmatchesthis",
    ],
)
def test_the_same_rows_and_doubles_as_fts5(corpus_store, query) -> None:
    terms = query_terms(query)
    _same(corpus_store, terms)
    _same(corpus_store, terms, user="alice")
    _same(corpus_store, terms, user="bob", conversation="conv-3")
    _same(corpus_store, terms, user="alice", role="assistant")


def test_a_cut_inside_tied_scores_keeps_the_lowest_rowids(corpus_store) -> None:
    terms = ["garden"]
    full = _fts5(corpus_store, terms, 1000)[0]
    scores = [s for _, s in full]
    tied = next(k for k in range(1, len(scores)) if scores[k] == scores[k - 1])  # a tie
    mine = _memory(corpus_store, terms, tied)[0]
    assert [s for _, s in mine] == scores[:tied]
    assert mine == sorted(full, key=lambda kv: (-kv[1], kv[0]))[:tied]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.sampled_from([*_WORDS, "Garten", "大阪", "Morgen", "xyzzy"]), max_size=8))
def test_generated_queries_match_fts5(corpus_store, words) -> None:
    terms = query_terms(" ".join(words))
    if terms:
        _same(corpus_store, terms, n=25)
        _same(corpus_store, terms, n=25, user="alice")


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(min_size=1, max_size=40))
def test_hostile_query_text_is_answered_like_fts5_or_left_to_it(corpus_store, text) -> None:
    terms = query_terms(text)
    if not terms:
        return
    mine = _memory(corpus_store, terms, 50)
    if mine is not None:  # None: a literal FTS5 splits into a phrase, which FTS5 answers
        assert mine == _fts5(corpus_store, terms, 50)


def test_a_tag_shaped_word_is_left_to_fts5(corpus_store) -> None:
    assert _memory(corpus_store, ["u616c6963650"], 10) is None
    hits = corpus_store.search("alice", "u616c6963650", 5, mode="bm25")
    assert [h.segment_id for h in hits] == ["o5"]


def test_a_phrase_literal_is_left_to_fts5(corpus_store) -> None:
    assert _memory(corpus_store, ["garden tomato"], 10) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**28 - 1), max_size=50))
def test_varints_decode_like_sqlite(values) -> None:
    def encode(v: int) -> bytes:
        groups = [v & 0x7F]
        v >>= 7
        while v:
            groups.append((v & 0x7F) | 0x80)
            v >>= 7
        return bytes(reversed(groups))

    assert decode_varints(b"".join(encode(v) for v in values)).tolist() == values


# -- never a stale answer ------------------------------------------------------------------


def _version(store):
    return _index(store)._versions(_tables(store))


def _writes(store, sem_core):
    """Each write path, as (name, action); every one changes the FTS state."""

    def insert():
        store.add_segments([Segment("alice", "garden gnome figurine", T0 + 5e5, segment_id="n1")])

    def delete():
        assert store.delete_segments(["s7"]) == 1

    def text_update():
        sem_core.execute(
            "UPDATE semantic_segments SET text = 'garden shed roof' WHERE segment_id = 's11'"
        )

    def tag_update():
        sem_core.execute(
            "UPDATE semantic_segments SET conversation_id = 'conv-x' WHERE segment_id = 's12'"
        )

    def lex_update():
        sem_core.execute(
            "UPDATE semantic_segments SET fts_lex = 'garden gart' WHERE segment_id = 's13'"
        )

    def optimize():
        store.optimize_fts()

    def rebuild():
        rebuild_fts(sem_core, store.config.fts_tokenizer)

    return [
        ("insert", insert),
        ("delete", delete),
        ("text update", text_update),
        ("tag update", tag_update),
        ("analysis update", lex_update),
        ("optimize", optimize),
        ("rebuild", rebuild),
    ]


def test_every_write_changes_the_fts_state_and_is_seen(corpus_store, sem_core) -> None:
    terms = query_terms("garden gnome shed party")
    _same(corpus_store, terms)
    for name, write in _writes(corpus_store, sem_core):
        before = _version(corpus_store)
        write()
        assert _version(corpus_store) != before, name
        # Right after the write: FTS5 answers (None) or the answer is the new state's.
        mine = _memory(corpus_store, terms, 1000)
        assert mine is None or mine == _fts5(corpus_store, terms, 1000), name
        assert corpus_store.wait_ready(30)
        _same(corpus_store, terms)


def test_a_write_by_another_connection_is_seen(
    corpus_store, sem_core, sem_master, tmp_path
) -> None:
    """Another process's writer: its own connection to the file, its own store."""
    terms = query_terms("garden party invitation")
    _same(corpus_store, terms)
    other_conn = EncryptedLibSQLConnection(sem_core.path, sem_master.subkey(Purpose.libsql("core")))
    other = SemanticMemoryStore.open(
        other_conn, sem_master, HashingEncoder(), chroma_path=tmp_path / "chroma-other"
    )
    try:
        other.add_segments([Segment("alice", "garden party invitation", T0 + 6e5, segment_id="n2")])
    finally:
        other.close()
        other_conn.close()
    assert _memory(corpus_store, terms, 1000) is None  # stale: FTS5 answers, a build starts
    assert corpus_store.wait_ready(30)
    _same(corpus_store, terms)
    new = _memory(corpus_store, terms, 1000)
    n2 = sem_core.fetch_value("SELECT id FROM semantic_segments WHERE segment_id = 'n2'")
    assert new is not None and new[0][0][0] == n2


def test_a_tokenizer_change_rebuilds_with_the_new_tokenizer(corpus_store, sem_core) -> None:
    terms = query_terms("running")
    _same(corpus_store, terms)
    apply_tokenizer(sem_core, "unicode61")  # no stemming: "running" no longer meets "runs"
    assert corpus_store.wait_ready(30) or True
    mine = _memory(corpus_store, terms, 1000)
    if mine is None:
        assert corpus_store.wait_ready(30)
        mine = _memory(corpus_store, terms, 1000)
    assert mine == _fts5(corpus_store, terms, 1000)
    assert mine is not None


def test_a_write_while_a_term_is_read_falls_back(corpus_store, monkeypatch) -> None:
    real = postings_module._read_postings
    wrote = threading.Event()

    def write_then_read(conn, snap, token):
        if not wrote.is_set():
            wrote.set()
            corpus_store.add_segments(
                [Segment("alice", "kayak paddle kayak", T0 + 7e5, segment_id="race")]
            )
        return real(conn, snap, token)

    monkeypatch.setattr(postings_module, "_read_postings", write_then_read)
    terms = ["kayakx"]  # never read before, so the search must read it
    assert _memory(corpus_store, terms, 10) is None
    monkeypatch.setattr(postings_module, "_read_postings", real)
    assert corpus_store.wait_ready(30)
    hits = _memory(corpus_store, ["kayak"], 1000)
    assert hits is not None and hits == _fts5(corpus_store, ["kayak"], 1000)
    race = corpus_store._core.conn.fetch_value(
        "SELECT id FROM semantic_segments WHERE segment_id = 'race'"
    )
    assert hits[0][0][0] == race


def test_a_small_budget_still_gives_fts5s_answer(sem_open) -> None:
    store = sem_open(config=SemanticConfig(bm25_memory_postings=10))
    store.add_segments(_corpus())
    assert store.wait_ready(30)
    for query in ("garden tomato", "kayak paddle", "wedding speech", "garden"):
        _same(store, query_terms(query))
    assert _index(store).stats().cached_postings <= 10 + 240


# -- through the store ---------------------------------------------------------------------


def _hits(store, query, **kw):
    return [
        (h.segment_id, h.score, h.bm25_score, h.bm25_full_score)
        for h in store.search("alice", query, 10, **kw)
    ]


def test_search_is_the_same_with_and_without_it(sem_open) -> None:
    """BM25 mode (both tables, their fusion, the text read): the same hits and scores.

    Hybrid feeds fusion the same BM25 lists (it is answered from memory too); its hits are
    not compared here because the fake encoder ties many cosines and Chroma orders ties
    differently from one open to the next."""
    queries = ["garden tomato harvest", "kayak", "wedding speech cousin", "Garten", "大阪"]
    off = sem_open(config=SemanticConfig(bm25_in_memory=False))
    off.add_segments(_corpus())
    assert off.postings_stats() is None
    expected = {q: _hits(off, q, mode="bm25") for q in queries}
    window = {"conversation_id": "conv-2", "start": T0, "end": T0 + 6000}
    filtered = _hits(off, "garden", mode="bm25", **window)
    off.close()
    on = sem_open()
    assert on.wait_ready(30)
    for q, hits in expected.items():
        assert _hits(on, q, mode="bm25") == hits, q
    stats = on.postings_stats()
    assert stats is not None and stats.answered == len(queries)
    on.search("alice", "garden tomato harvest", 10, mode="hybrid")
    assert on.postings_stats().answered == len(queries) + 1
    # A time filter is FTS5's (it joins the segments table): same hits, not answered here.
    assert _hits(on, "garden", mode="bm25", **window) == filtered
    assert on.postings_stats().answered == len(queries) + 1


def test_close_stops_the_builder(sem_open) -> None:
    store = sem_open()
    store.add_segments(_corpus())
    store.search("alice", "garden", 5, mode="bm25")  # starts a build in the background
    store.close()
    assert not [t for t in threading.enumerate() if t.name == "aico-bm25-postings"]


# -- writes, deletes and searches together -------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.lists(st.sampled_from(_WORDS), min_size=1, max_size=12)),
            st.tuples(st.just("delete"), st.integers(0, 300)),
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.sampled_from(_WORDS), min_size=1, max_size=4),
)
def test_after_any_writes_and_deletes_the_scores_are_fts5s(corpus_store, ops, words) -> None:
    """Adds and contentless deletes in any order (a delete leaves FTS5's N and token total
    as they were: the in-memory BM25 must use the same), then the same rows and doubles."""
    for op, arg in ops:
        if op == "add":
            corpus_store.add_segments([Segment("alice", " ".join(arg), T0 + 1e6)])
        else:
            corpus_store.delete_segments([f"s{arg}"])
    terms = query_terms(" ".join(words))
    mine = _memory(corpus_store, terms, 1000)
    assert mine is None or mine == _fts5(corpus_store, terms, 1000)
    assert corpus_store.wait_ready(30)
    _same(corpus_store, terms)
    _same(corpus_store, terms, user="alice")


def test_searches_on_threads_while_a_writer_writes(corpus_store) -> None:
    """Four searching threads and a writer: no search fails, every answer from memory is a
    real state's (checked once writes stop: then memory and FTS5 agree exactly)."""
    stop = threading.Event()
    errors: list[BaseException] = []
    answered = [0]

    def search() -> None:
        rng = np.random.default_rng(threading.get_ident() % 1000)
        while not stop.is_set():
            query = " ".join(rng.choice(_WORDS, size=3))
            try:
                corpus_store.search("alice", query, 5, mode="bm25")
                corpus_store.search("alice", query, 5)
                answered[0] += 1
            except BaseException as exc:  # collected, asserted below
                errors.append(exc)
                return

    threads = [threading.Thread(target=search) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for i in range(30):
            corpus_store.add_segments(
                [Segment("alice", f"garden kayak note {i}", T0 + 2e6 + i, segment_id=f"w{i}")]
            )
            if i % 3 == 0:
                corpus_store.delete_segments([f"s{i}"])
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert answered[0] > 0
    stats = corpus_store.postings_stats()
    assert stats is not None and stats.answered > 0 and stats.fell_back > 0
    assert corpus_store.wait_ready(30)
    for query in ("garden kayak note", "garden", "kayak paddle wedding"):
        _same(corpus_store, query_terms(query))


def test_query_words_never_reach_a_temp_file(corpus_store, tmp_path, monkeypatch) -> None:
    """The tokenizer's private database keeps its temp storage in memory (query words pass
    through it), and tokenizing leaves no file in the temp directory."""
    from aico.ai.memory.semantic.postings import FtsTokenizer

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("SQLITE_TMPDIR", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    tokenizer = FtsTokenizer(corpus_store.config.fts_tokenizer)
    try:
        assert tokenizer._conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
        for word in ("QUOKKA3fa9b2c1d4e5", "Geheimnis", "秘密", "confidential"):
            assert tokenizer.tokens(word)
    finally:
        tokenizer.close()
    assert list(temp.iterdir()) == []
