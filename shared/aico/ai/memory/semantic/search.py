"""The read path of the semantic store: hybrid search, and the plain lookups by id.

``search`` runs BM25 (FTS5's scores: from its postings held in memory by ``postings``
when that snapshot is current, else FTS5 itself) and dense retrieval (Chroma, one
collection per user) with over-fetching, re-checks every dense hit against libSQL (owner
and filters), fuses the two lists (``fusion``) and reads the text of the winners from
libSQL.

Filters (conversation, role, time, source) are evaluated in libSQL. For the dense half, a
filtered set of at most ``exact_search_limit`` segments is searched exactly with the libSQL
vectors; a larger one is searched in Chroma with a wider over-fetch and post-filtered. (Chroma's own
``where`` filters measured 100-500 ms at 100k vectors, against ~8 ms unfiltered.) Before
Chroma has loaded, while it is damaged, rebuilding or unavailable (``_holder``), and always
in a read-only store over embedded Chroma, the dense half is the same exact scan: the same
cosine scores over the same vectors, so the same hits. A query that fails degrades the store
(and starts its rebuild) instead of failing the search.

Kept apart from the write path because nothing here changes a row: a search reads libSQL
and queries Chroma (the first one starts loading Chroma, if the store may open it), and its
only state is a cache of document counts (``_cached``). One ``SearchQuery`` carries the
validated arguments through every step, instead of nine positional parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

import numpy as np

from aico.ai.memory.semantic import timeparse
from aico.ai.memory.semantic._core import StoreCore
from aico.ai.memory.semantic._sql import FloatArray, by_key, check_blob, filter_sql, from_blob
from aico.ai.memory.semantic.fts import match_expression, query_terms, scope_tags, scoped_expression
from aico.ai.memory.semantic.fusion import fuse
from aico.ai.memory.semantic.language import multilingual_query_terms
from aico.ai.memory.semantic.models import has_languages, has_vocabulary
from aico.ai.memory.semantic.postings import PostingsIndex, PostingsStats
from aico.ai.memory.semantic.schema import FTS_FULL_TABLE, FTS_TABLE
from aico.ai.memory.semantic.timeparse import TimeWindow, time_boost
from aico.ai.memory.semantic.types import (
    SearchHit,
    SearchMode,
    SegmentSource,
    check_id,
    check_role,
    check_source,
    check_time,
)
from aico.errors import InvalidInput, SemanticMemoryError, StoreClosed

__all__ = ["SearchQuery", "Searcher"]

_MAX_K = 1000
_EXACT_CHUNK = 5000
_DF_TTL_S = 300.0
_DF_CACHE_MAX = 10_000
_SOLE_TTL_S = 2.0
_MODES = get_args(SearchMode)
_SOURCE_COLUMNS = "source, source_ref"
_NO_SOURCES = "'conversation' AS source, NULL AS source_ref"  # before schema version 4


@dataclass(frozen=True)
class SearchQuery:
    """One validated search: whose segments, what text, how many, and the filters.

    ``text`` is the query with lone surrogates replaced (they cannot reach the driver or the
    tokenizer); ``start``/``end`` keep segments whose time range overlaps ``[start, end]``.
    """

    user_id: str
    text: str
    k: int = 10
    mode: SearchMode = "hybrid"
    conversation_id: str | None = None
    role: str | None = None
    start: float | None = None
    end: float | None = None
    min_score: float | None = None
    now: datetime | float | None = None
    source: SegmentSource | None = None

    @classmethod
    def parse(
        cls,
        user_id: str,
        query: str,
        k: int,
        *,
        mode: SearchMode = "hybrid",
        conversation_id: str | None = None,
        role: str | None = None,
        start: float | None = None,
        end: float | None = None,
        min_score: float | None = None,
        now: datetime | float | None = None,
        source: SegmentSource | None = None,
    ) -> SearchQuery:
        """Check every argument of ``search``; ``InvalidInput`` names the first bad one."""
        check_id(user_id, "user_id")
        if not isinstance(query, str):
            raise InvalidInput("query must be a string")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
            raise InvalidInput(f"k must be an integer between 1 and {_MAX_K}")
        if mode not in _MODES:
            raise InvalidInput(f"mode must be one of {_MODES}")
        check_id(conversation_id, "conversation_id", optional=True)
        if role is not None:
            check_role(role)
        lo = None if start is None else check_time(start, "start")
        hi = None if end is None else check_time(end, "end")
        if min_score is not None and (
            isinstance(min_score, bool)
            or not isinstance(min_score, int | float)
            or not 0.0 <= min_score <= 1.0
        ):
            raise InvalidInput("min_score must be a number between 0 and 1")
        if now is not None and not isinstance(now, datetime):
            now = check_time(now, "now")
        if source is not None:
            check_source(source)
        text = query.encode("utf-8", "replace").decode("utf-8")
        return cls(user_id, text, k, mode, conversation_id, role, lo, hi, min_score, now, source)

    def where(self) -> tuple[str, tuple[Any, ...]]:
        """Every filter as a WHERE clause over ``semantic_segments AS s`` (owner first)."""
        return filter_sql(
            self.user_id, self.conversation_id, self.role, self.start, self.end, self.source
        )

    def time_where(self) -> tuple[str, tuple[Any, ...]]:
        """Owner, source and time range (BM25 has conversation and role in its MATCH)."""
        return filter_sql(self.user_id, None, None, self.start, self.end, self.source)

    def within(self, window: TimeWindow) -> SearchQuery:
        """This query narrowed to the part of ``window`` its own time range allows."""
        start = window.start if self.start is None else max(self.start, window.start)
        end = window.end if self.end is None else min(self.end, window.end)
        return dataclasses.replace(self, start=start, end=max(start, end))

    @property
    def filtered(self) -> bool:
        """True when anything beyond the owner narrows the segments."""
        return any(
            v is not None
            for v in (self.conversation_id, self.role, self.start, self.end, self.source)
        )


class Searcher:
    """Reads of one store: ``search``, ``count`` and the segment lookups forgetting uses."""

    def __init__(self, core: StoreCore) -> None:
        self._core = core
        self._df_lock = threading.Lock()
        self._df_cache: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._sole: tuple[str, bool, float] | None = None  # (user, answer, when)
        self._foreign_cache: tuple[str, bool, float] | None = None  # (user, answer, when)
        self._has_languages: bool | None = None
        self._postings = _postings_index(core)

    def close(self) -> None:
        """Stop the in-memory BM25's builder thread."""
        if self._postings is not None:
            self._postings.close()

    def wait_ready(self, timeout: float | None) -> bool:
        """Build the in-memory BM25 of the current state now and wait for it."""
        return self._postings is None or self._postings.wait(timeout)

    def postings_stats(self) -> PostingsStats | None:
        """What the in-memory BM25 answered and holds (None when it is off)."""
        return None if self._postings is None else self._postings.stats()

    # -- searching -----------------------------------------------------------------------

    def search(self, q: SearchQuery) -> list[SearchHit]:
        """The ``q.k`` best segments of ``q.user_id``, best first (see ``SemanticMemoryStore``)."""
        hits = self._search(q)
        core = self._core
        core.warm_time_parser()  # after the first answer, not before it
        if self._postings is not None:
            self._postings.after_search()
        if core.index_usable:
            if core.index_future is None:
                core.start_loading()  # the first search is answered; now load Chroma
            else:
                core.maybe_heal()
        return hits

    def _search(self, q: SearchQuery) -> list[SearchHit]:
        core = self._core
        core.check_open()
        core.require_model()
        if not q.text.strip():
            return []
        if q.source is not None and not core.sources:  # before version 4: conversations only
            if q.source != "conversation":
                return []
            q = dataclasses.replace(q, source=None)
        config = core.config
        n = max(config.candidates, q.k * config.overfetch)
        if config.language_analysis:
            terms = multilingual_query_terms(
                q.text, drop_stopwords=config.drop_stopwords, detect=self._foreign(q.user_id)
            )
        else:
            terms = query_terms(q.text, drop_stopwords=config.drop_stopwords)
        window = self._time_window(q)
        lexical = q.mode != "dense" and bool(terms)
        full_too = lexical and core.full_fts and config.fusion.full_share > 0.0
        bm25: list[tuple[int, float]] = []
        full: list[tuple[int, float]] = []
        dense: list[tuple[int, float]] = []
        dense_fill: dict[int, float] = {}
        embedding = None if q.mode == "bm25" else self._start_embedding(q.text)
        try:
            # The model starts first and runs outside the GIL while BM25 (libsql holds the
            # GIL for a whole statement) runs here; see ``_start_embedding``.
            if lexical:
                tables = (FTS_TABLE, FTS_FULL_TABLE) if full_too else (FTS_TABLE,)
                scope = self._fts_user_scope(q.user_id)
                found = self._memory_bm25(terms, q, n, scope, tables, window)
                if found is None:  # FTS5 answers: pruned in a large store (latency guard)
                    kept = self._prune_terms(q.user_id, terms)
                    found = self._bm25(kept, q, n, scope, tables, window)
                bm25, *rest = found
                full = rest[0] if rest else []
        except BaseException:
            if embedding is not None:
                with contextlib.suppress(Exception):
                    embedding()
            raise
        if embedding is not None:
            vector = np.asarray(embedding(), dtype=np.float32)
            dense = self._dense(q, vector, n)
            if window is not None:
                dense = _merge(dense, self._dense(q.within(window), vector, n))
            lexical_keys = {key for key, _ in bm25} | {key for key, _ in full}
            if lexical_keys and dense:
                # The BM25-only candidates get their exact cosine from the libSQL vectors, so
                # every retriever is normalized over the same candidates (see ``fusion``).
                missing = sorted(lexical_keys - {key for key, _ in dense})
                dense_fill = self._dense_scores(q.user_id, vector, missing)
        boosts = None if window is None else self._time_boosts(q.user_id, window, bm25, full, dense)
        # A candidate a BM25 list does not hold scores 0 there (see ``fusion``): exact when
        # the list is shorter than ``n`` (it holds every match), a lower bound when cut.
        fused = fuse(
            bm25,
            dense,
            config.fusion,
            dense_fill=dense_fill,
            full=full,
            boosts=boosts,
            limit=None if q.min_score is not None else q.k,
        )
        if q.min_score is not None:
            fused = [f for f in fused if f.score >= q.min_score]
        fused = fused[: q.k]
        if not fused:
            return []
        rows = {
            int(r["id"]): r
            for r in core.fetch_in(
                "SELECT id, segment_id, text, conversation_id, session_id, roles, start_ts, "
                f"end_ts, {_SOURCE_COLUMNS if core.sources else _NO_SOURCES} "
                "FROM semantic_segments WHERE +user_id = ? AND id IN ({})",
                [f.key for f in fused],
                prefix=(q.user_id,),
            )
        }
        hits = []
        for f in fused:
            row = rows.get(f.key)
            if row is None:  # deleted between the two reads
                continue
            hits.append(
                SearchHit(
                    segment_id=row["segment_id"],
                    text=row["text"],
                    score=f.score,
                    bm25_rank=f.bm25_rank,
                    bm25_score=f.bm25_score,
                    dense_rank=f.dense_rank,
                    dense_score=f.dense_score,
                    conversation_id=row["conversation_id"],
                    session_id=row["session_id"],
                    roles=tuple(r for r in str(row["roles"]).split(",") if r),
                    start_ts=float(row["start_ts"]),
                    end_ts=float(row["end_ts"]),
                    bm25_full_rank=f.full_rank,
                    bm25_full_score=f.full_score,
                    time_boost=f.time_boost,
                    time_window=window,
                    source=row["source"],
                    source_ref=row["source_ref"],
                )
            )
        return hits

    # -- time ----------------------------------------------------------------------------

    def _time_window(self, q: SearchQuery) -> TimeWindow | None:
        """The query's time expression as a window, if ``now`` was given and boosts count."""
        if q.now is None or self._core.config.fusion.time_weight <= 0.0:
            return None
        return timeparse.find_window(q.text, q.now)

    def _time_boosts(
        self, user_id: str, window: TimeWindow, *lists: list[tuple[int, float]]
    ) -> dict[int, float]:
        """Each candidate's boost from its time range (see ``timeparse.time_boost``)."""
        keys = sorted({key for ranked in lists for key, _ in ranked})
        rows = self._core.fetch_in(
            "SELECT id, start_ts, end_ts FROM semantic_segments WHERE +user_id = ? AND id IN ({})",
            keys,
            prefix=(user_id,),
        )
        return {
            int(r["id"]): time_boost(window, float(r["start_ts"]), float(r["end_ts"])) for r in rows
        }

    # -- BM25 ----------------------------------------------------------------------------

    def _bm25(
        self,
        terms: list[str],
        q: SearchQuery,
        n: int,
        scope: str | None,
        tables: tuple[str, ...],
        window: TimeWindow | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Top ``n`` of each of ``tables`` by BM25, one list per table, in one statement.

        User, conversation and role are tag tokens in the MATCH (``scope``: the user tag,
        see ``_fts_user_scope``); ``terms`` are already pruned (``_prune_terms``). Only a
        time range needs a join (a row lookup per match, ~5 ms per 10k matches). With a
        query time ``window``, each table's top ``n`` inside it are added (same scores).
        Every id is re-checked against ``q.user_id`` when the winners' text is read.
        """
        expression = match_expression(terms)
        if expression is None:
            return [[] for _ in tables]
        match = scoped_expression(expression, scope, conversation_id=q.conversation_id, role=q.role)
        parts: list[str] = []
        params: list[Any] = []
        for index, table in enumerate(tables):
            for part in (q,) if window is None else (q, q.within(window)):
                sql, values = _bm25_sql(table, part)
                parts.append(f"SELECT {index} AS t, id, score FROM ({sql})")
                params += [match, *values, n]
        # One statement for every list: each is a driver round trip less (1k segments).
        rows = self._core.conn.fetch_all(" UNION ALL ".join(parts), tuple(params))
        found: list[dict[int, float]] = [{} for _ in tables]
        for r in rows:
            found[int(r["t"])][int(r["id"])] = -float(r["score"])
        return [sorted(f.items(), key=lambda kv: (-kv[1], kv[0])) for f in found]

    def _memory_bm25(
        self,
        terms: list[str],
        q: SearchQuery,
        n: int,
        scope: str | None,
        tables: tuple[str, ...],
        window: TimeWindow | None,
    ) -> list[list[tuple[int, float]]] | None:
        """The same lists as ``_bm25`` over every term, from ``postings``; None if FTS5 must
        answer (off, a time or source filter, a time window, a table changed meanwhile)."""
        index = self._postings
        if index is None or window is not None or q.start is not None or q.end is not None:
            return None
        if q.source is not None:
            return None
        tags = scope_tags(scope, conversation_id=q.conversation_id, role=q.role)
        return index.search(tables, terms, tags, n)

    def _fts_user_scope(self, user_id: str) -> str | None:
        """The user to put in an FTS5 MATCH as a tag, or None when it would filter nothing.

        The tag's posting list is as long as the user's segments and doubled the BM25 work
        per match (100k segments: median 6.6 -> 16 ms; a frequent term's count: up to 8 ms
        -> about 1 ms). In a one-user store it is left out; ids are still checked against
        the user before any text is read.
        """
        return None if self._sole_user(user_id) else user_id

    def _sole_user(self, user_id: str) -> bool:
        """True if every stored segment belongs to ``user_id`` (two index probes, ~30 µs,
        plus a statement's round trip: remembered for ``_SOLE_TTL_S``).

        The answer can only turn false when another user's segments are added: this
        store's own writes forget it (``writes_happened``), another process's are seen
        within the TTL. A stale "true" costs quality for that moment (another user's
        matches take candidate slots), never isolation: every id is checked against the
        user before its text or vector is read.
        """
        now = time.monotonic()
        cached = self._sole
        if cached is not None and cached[0] == user_id and now - cached[2] < _SOLE_TTL_S:
            return cached[1]
        row = self._core.conn.fetch_one(
            # Two subqueries: a single SELECT of both min and max scans the whole index.
            "SELECT (SELECT min(user_id) FROM semantic_segments) AS lo, "
            "(SELECT max(user_id) FROM semantic_segments) AS hi"
        )
        sole = row is not None and row["lo"] == user_id and row["hi"] == user_id
        self._sole = (user_id, sole, now)
        return sole

    def writes_happened(self) -> None:
        """Forget what was remembered about the stored segments' owners (after a write)."""
        self._sole = None
        self._foreign_cache = None

    def _foreign(self, user_id: str) -> bool:
        """True if ``user_id`` has a segment detected as not English (schema version 5).

        Only then is a query's language detected (and its stems added): an English user's
        searches never load the detector. One probe of a partial index, remembered like
        ``_sole_user`` (a stale "false" for another process's new segments costs their
        stems for ``_SOLE_TTL_S``, never their raw words).
        """
        now = time.monotonic()
        cached = self._foreign_cache
        if cached is not None and cached[0] == user_id and now - cached[2] < _SOLE_TTL_S:
            return cached[1]
        if self._has_languages is None:
            self._has_languages = has_languages(self._core.conn)
        foreign = self._has_languages and bool(
            self._core.conn.fetch_value(
                "SELECT EXISTS (SELECT 1 FROM semantic_segments INDEXED BY "
                "idx_semantic_segments_user_foreign WHERE user_id = ? "
                "AND lang IS NOT NULL AND lang != 'en')",
                (user_id,),
            )
        )
        self._foreign_cache = (user_id, foreign, now)
        return foreign

    def _prune_terms(self, user_id: str, terms: list[str]) -> list[str]:
        """Drop terms in more than ``bm25_max_df`` of a large store's segments.

        The cost of a BM25 query grows with the number of matching rows, and a term in a
        quarter of all segments matches many while adding little (IDF <= ln 3). Measured at
        100k segments: p95 38 -> 24 ms with the top 10 unchanged for 150 of 150 queries.
        ``bm25_max_postings`` (off by default) then drops the most frequent remaining terms
        until the summed document counts fit, trading exactness for a latency bound.
        Below ``bm25_prune_min_segments`` nothing is dropped. The rarest term always stays.
        """
        config = self._core.config
        max_df = config.bm25_max_df
        budget = config.bm25_max_postings
        if (max_df is None and budget is None) or len(terms) < 2:
            return terms
        total = self._cached("n", user_id, "", self._count_user_segments)
        if total < config.bm25_prune_min_segments:
            return terms
        dfs = {t: self._cached("df", user_id, t, self._count_fts_term) for t in terms}
        kept = sorted(terms, key=dfs.__getitem__)  # rarest first
        if max_df is not None:
            kept = [t for t in kept if dfs[t] <= max_df * total] or kept[:1]
        if budget is not None:
            while len(kept) > 1 and sum(dfs[t] for t in kept) > budget:
                kept.pop()
        return kept

    def _cached(
        self, kind: str, user_id: str, term: str, compute: Callable[[str, str], int]
    ) -> int:
        """Document counts change slowly; a few minutes' staleness only moves a threshold."""
        key = (kind, user_id, term)
        now = time.monotonic()
        with self._df_lock:
            hit = self._df_cache.get(key)
            if hit is not None and now - hit[1] < _DF_TTL_S:
                return hit[0]
        value = compute(user_id, term)
        with self._df_lock:
            if len(self._df_cache) >= _DF_CACHE_MAX:
                self._df_cache.clear()
            self._df_cache[key] = (value, now)
        return value

    def _count_user_segments(self, user_id: str, _term: str) -> int:
        return self.count(user_id)

    def _count_fts_term(self, user_id: str, term: str) -> int:
        match = scoped_expression(match_expression([term]) or "", self._fts_user_scope(user_id))
        return int(
            self._core.conn.fetch_value(
                f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?", (match,)
            )
            or 0
        )

    # -- dense ---------------------------------------------------------------------------

    def _start_embedding(self, query: str) -> Callable[[], FloatArray]:
        """Begin embedding ``query``; call the result for the vector.

        An encoder with ``start_query`` (the ONNX one) runs the model on its own thread, so
        the caller's BM25 statement overlaps it: measured at 100k segments, hybrid search
        went from the sum of the two halves to about the slower one. Other encoders embed
        when the result is called.
        """
        encoder = self._core.encoder
        start = getattr(encoder, "start_query", None)
        if callable(start):
            waiter: Callable[[], FloatArray] = start(query)
            return waiter
        return lambda: encoder.encode_query(query)

    def _dense_scores(
        self, user_id: str, vector: FloatArray, rowids: list[int]
    ) -> dict[int, float]:
        """Exact cosine of given segments with the query, from their libSQL vectors."""
        if not rowids:
            return {}
        model = self._core.model
        rows = self._core.fetch_in(
            "SELECT id, vector FROM semantic_segments WHERE +user_id = ? "
            "AND vector_fingerprint = ? AND id IN ({})",
            rowids,
            prefix=(user_id, model.fingerprint),
        )
        return {int(r["id"]): float(from_blob(r["vector"], model.dimension) @ vector) for r in rows}

    def _dense(self, q: SearchQuery, vector: FloatArray, n: int) -> list[tuple[int, float]]:
        """Top ``n`` by cosine: Chroma once loaded, the exact libSQL scan until then.

        Chroma is a derived index: if it failed to load or a query fails (damaged files, a
        server that errs), search degrades to the exact scan instead of failing.
        """
        core = self._core
        where, params = q.where()
        index = core.index_if_ready()
        if index is None:
            # Every row the user's and no other filter: walk the table in rowid order
            # instead of via the user index (100k segments: 0.62 -> 0.42 s for the scan).
            if not q.filtered and self._sole_user(q.user_id):
                where = by_key(where)
            return self._exact_dense(vector, where, params, n)
        fetch = n
        if q.filtered:
            matching = int(
                core.conn.fetch_value(
                    f"SELECT count(*) FROM semantic_segments AS s WHERE {where} "
                    "AND s.vector_fingerprint = ?",
                    (*params, core.model.fingerprint),
                )
                or 0
            )
            if matching == 0:
                return []
            if matching <= core.config.exact_search_limit:
                return self._exact_dense(vector, where, params, n)
            total = self._count_vectors(q.user_id)
            fetch = min(core.config.max_dense_fetch, math.ceil(n * total / matching))
            fetch = max(fetch, n)
        try:
            found = index.query(
                core.collection_name(q.user_id), core.rotation.rotate(vector), fetch
            )
        except (SemanticMemoryError, StoreClosed) as exc:
            if core.closed:
                raise
            core.index_failed(index, exc)  # degrades the store once (and logs it)
            if not q.filtered and self._sole_user(q.user_id):
                where = by_key(where)
            return self._exact_dense(vector, where, params, n)
        return self._recheck(found, where, params, n)

    def _recheck(
        self, found: list[tuple[str, float]], where: str, params: tuple[Any, ...], n: int
    ) -> list[tuple[int, float]]:
        """Chroma hits that libSQL confirms: right owner, filters, current vector."""
        if not found:
            return []
        allowed = {
            str(r["chroma_id"]): int(r["id"])
            for r in self._core.fetch_in(
                f"SELECT s.id AS id, s.chroma_id AS chroma_id FROM semantic_segments AS s "
                f"WHERE {by_key(where)} AND s.vector_fingerprint = ? AND s.chroma_id IN ({{}})",
                [cid for cid, _ in found],
                prefix=(*params, self._core.model.fingerprint),
            )
        }
        results = [(allowed[cid], score) for cid, score in found if cid in allowed]
        return results[:n]

    def _exact_dense(
        self, vector: FloatArray, where: str, params: tuple[Any, ...], n: int
    ) -> list[tuple[int, float]]:
        """Exact cosine over the libSQL vectors, streamed in chunks to bound memory."""
        model = self._core.model
        dimension = model.dimension
        best_ids = np.zeros(0, dtype=np.int64)
        best_scores = np.zeros(0, dtype=np.float32)
        last_id = 0
        while True:
            rows = self._core.conn.fetch_all(
                f"SELECT s.id AS id, s.vector AS vector FROM semantic_segments AS s "
                f"WHERE {where} AND s.vector_fingerprint = ? AND s.id > ? "
                f"ORDER BY s.id LIMIT ?",
                (*params, model.fingerprint, last_id, _EXACT_CHUNK),
            )
            if not rows:
                break
            last_id = int(rows[-1]["id"])
            blob = b"".join(check_blob(r["vector"], dimension) for r in rows)
            matrix = np.frombuffer(blob, dtype="<f4").reshape(len(rows), dimension)
            ids = np.fromiter((r["id"] for r in rows), dtype=np.int64, count=len(rows))
            best_ids = np.concatenate([best_ids, ids])
            best_scores = np.concatenate([best_scores, matrix @ vector])
            if len(best_ids) > n:
                keep = np.argpartition(-best_scores, n)[:n]
                best_ids, best_scores = best_ids[keep], best_scores[keep]
            if len(rows) < _EXACT_CHUNK:
                break
        order = np.lexsort((best_ids, -best_scores))[:n]
        return [(int(best_ids[i]), float(best_scores[i])) for i in order]

    def _count_vectors(self, user_id: str) -> int:
        return int(
            self._core.conn.fetch_value(
                "SELECT count(*) FROM semantic_segments WHERE user_id = ? "
                "AND vector_fingerprint = ?",
                (user_id, self._core.model.fingerprint),
            )
            or 0
        )

    # -- lookups -------------------------------------------------------------------------

    def count(self, user_id: str | None = None) -> int:
        """Stored segments, of one user or of all."""
        conn = self._core.conn
        if user_id is None:
            return int(conn.fetch_value("SELECT count(*) FROM semantic_segments") or 0)
        return int(
            conn.fetch_value("SELECT count(*) FROM semantic_segments WHERE user_id = ?", (user_id,))
            or 0
        )

    def segments_of_messages(self, message_ids: Sequence[str]) -> list[str]:
        """Ids of the segments made from any of ``message_ids``."""
        ids = [str(check_id(m, "message_id")) for m in message_ids]
        rows = self._core.fetch_in(
            "SELECT DISTINCT s.segment_id FROM semantic_segment_messages m "
            "JOIN semantic_segments s ON s.id = m.segment_rowid WHERE m.message_id IN ({})",
            ids,
        )
        return [str(r["segment_id"]) for r in rows]

    def segments_of_source(self, user_id: str, source: str, source_ref: str) -> list[str]:
        """Ids of ``user_id``'s segments from one source (e.g. one file of the file index)."""
        rows = self._core.conn.fetch_all(
            "SELECT segment_id FROM semantic_segments "
            "WHERE user_id = ? AND source = ? AND source_ref = ?",
            (
                check_id(user_id, "user_id"),
                check_source(source),
                check_id(source_ref, "source_ref"),
            ),
        )
        return [str(r["segment_id"]) for r in rows]

    def segments_of_conversation(self, user_id: str, conversation_id: str) -> list[str]:
        """Ids of ``user_id``'s segments of one conversation."""
        rows = self._core.conn.fetch_all(
            "SELECT segment_id FROM semantic_segments WHERE user_id = ? AND conversation_id = ?",
            (check_id(user_id, "user_id"), check_id(conversation_id, "conversation_id")),
        )
        return [str(r["segment_id"]) for r in rows]


def _merge(
    first: list[tuple[int, float]], second: list[tuple[int, float]]
) -> list[tuple[int, float]]:
    """Two ranked lists of the same scores as one, best first (each key once)."""
    if not second:
        return first
    best = dict(second)
    best.update(first)
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))


def _bm25_sql(table: str, q: SearchQuery) -> tuple[str, list[Any]]:
    """One table's top-``n`` statement (parameters: MATCH, the filter's values, n).

    FTS5's bm25() is lower-is-better. Ordering by the selected alias puts one bm25() call
    in the program (EXPLAIN); selecting -bm25() and ordering by bm25() had two.
    """
    score = f"bm25({table}, 1.0, 0.0)"
    if q.start is None and q.end is None and q.source is None:
        return (
            f"SELECT rowid AS id, {score} AS score FROM {table} "
            f"WHERE {table} MATCH ? ORDER BY score LIMIT ?"
        ), []
    # CROSS JOIN keeps FTS5 as the outer loop: with a plain JOIN SQLite drove the join from
    # the (user_id, start_ts) index and re-ran the MATCH per row (LongMemEval: 254 ms median
    # per query, 2.4 ms this way).
    where, params = q.time_where()
    return (
        f"SELECT s.id AS id, {score} AS score FROM {table} "
        f"CROSS JOIN semantic_segments AS s ON s.id = {table}.rowid "
        f"WHERE {table} MATCH ? AND {by_key(where)} ORDER BY score LIMIT ?"
    ), list(params)


def _postings_index(core: StoreCore) -> PostingsIndex | None:
    """The in-memory BM25 over the store's FTS tables, if configured and possible."""
    conn = core.conn
    if not core.config.bm25_in_memory or not has_vocabulary(conn, FTS_TABLE):
        return None
    tables = [FTS_TABLE]
    if core.full_fts and has_vocabulary(conn, FTS_FULL_TABLE):
        tables.append(FTS_FULL_TABLE)
    return PostingsIndex(
        conn, tables, budget=core.config.bm25_memory_postings, closed=lambda: core.closed
    )
