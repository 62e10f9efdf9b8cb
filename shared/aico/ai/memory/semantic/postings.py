"""Exact BM25 from FTS5's own postings, held in memory: the fast path of BM25 search.

Why: FTS5 evaluates ``bm25()`` for every row that matches any query term (~0.6 µs a row,
with the GIL held for the whole statement); at 100k segments a query with one common word
matches 20-36k rows, and that was the whole growth of hybrid search's latency. The same
formula over numpy arrays of the matching rows costs about a millisecond.

Exact, not approximate, because every input is FTS5's own:

- the postings (a term's frequency in ``body``, per row) are read per term, on first use,
  through the ``fts5vocab`` instance table of schema version 6; tag tokens (user,
  conversation, role) the same way from the ``tags`` column;
- the document lengths come from ``<table>_docsize`` and the row count and token total from
  FTS5's averages record: the ``D``, ``N`` and ``avgdl`` of its formula (FTS5 leaves ``N``
  and the total as they were when a contentless table deletes a row, and so does this);
- query literals are tokenized by FTS5 itself (a private in-memory FTS5 table with the same
  tokenizer spec), so stems and case folding are the index's;
- the score is ``fts5_aux.c``'s bm25 (k1 1.2, b 0.75; weight 1 on ``body``, 0 on ``tags``)
  with the arithmetic in the same order, so the doubles are FTS5's bit for bit (tested
  against its ``bm25()``). Ties at the n-th place are broken by rowid (FTS5 leaves them to
  its sorter).

Consistency: a snapshot belongs to one state of its FTS table, named by FTS5's structure and
averages records (a committed write changes at least one of them; tested for every write
path). A search reads them first, in one statement, and answers from memory only when they
equal the snapshot's; postings fetched on demand count only if the records are still the
same afterwards. Otherwise the answer is None: the caller runs FTS5, and a background thread
builds the new state's snapshot: it serves once the lengths are read, and is then warmed
with the most recently used terms of the old one. A write is never missed or half-seen;
right after one, searches cost what FTS5 costs until the lengths are read.

Not answered here (None, so FTS5 answers): a literal that FTS5 splits into several tokens (a
phrase needs positions) or into none, a token shaped like a tag, and stores without the
vocabulary tables (before version 6, or read-only over an older database).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import libsql_experimental as libsql
import numpy as np
import numpy.typing as npt

from aico.ai.memory.semantic._conn import Connection
from aico.ai.memory.semantic.fts import ENGLISH_STOPWORDS, check_tokenizer

__all__ = ["FtsTokenizer", "PostingsIndex", "PostingsStats", "decode_varints"]

_LOG = logging.getLogger(__name__)

K1 = 1.2
B = 0.75
_IDF_FLOOR = 1e-6
_TAG_LIKE = re.compile(r"[ucr][0-9a-f]+0")
_TOKENIZE = re.compile(r"tokenize\s*=\s*'([^']*)'")
_TOKEN_CACHE_MAX = 50_000
_BUILD_ATTEMPTS = 3
_PREFETCH_MIN_DF = 512
_WARM_BATCH = 16
# The caller of the search that found the snapshot stale gets its answer (and the GIL)
# before the build's statements start.
_AFTER_SEARCH_DELAY_S = 0.25

Ints = npt.NDArray[np.int64]
Positions = npt.NDArray[np.int32]
Floats = npt.NDArray[np.float64]
Counts = npt.NDArray[np.float32]
Ranked = list[tuple[int, float]]
Version = tuple[bytes | None, bytes | None]


class _Stale(Exception):
    """The FTS table changed while a snapshot or a term was being read."""


class _Decline(Exception):
    """A query this index does not answer (FTS5 does)."""


def decode_varints(data: bytes) -> Ints:
    """SQLite varints (7 bits a byte, high bit set on all but the last), values < 2**35.

    FTS5 stores each row's column sizes this way; one call decodes a whole table's.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    last = (raw & 0x80) == 0
    if not last[-1]:
        raise ValueError("truncated varint")
    ends = np.flatnonzero(last)
    which = np.cumsum(last) - last
    shift = 7 * (ends[which] - np.arange(raw.size))
    if int(shift.max()) > 28:
        raise ValueError("varint too long")
    parts = (raw & 0x7F).astype(np.int64) << shift
    return np.bincount(which, weights=parts, minlength=ends.size).astype(np.int64)


def _varints(data: bytes) -> list[int]:
    """The same for a short record (the averages record holds 64-bit counts)."""
    out: list[int] = []
    value = 0
    for byte in data:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            out.append(value)
            value = 0
    return out


def _ints(text: str | None) -> Ints:
    if not text:
        return np.zeros(0, dtype=np.int64)
    return np.array(text.split(","), dtype=np.int64)


class FtsTokenizer:
    """FTS5's tokenizer, run on a private in-memory table: the tokens FTS5 makes of a text."""

    def __init__(self, spec: str) -> None:
        self.spec = check_tokenizer(spec)
        self._conn = libsql.connect(":memory:", isolation_level=None)
        # Query words pass through here: nothing of them may reach a temp file.
        self._conn.execute("PRAGMA temp_store = MEMORY")
        self._conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize='{self.spec}')")
        self._conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, ...]] = {}

    def tokens(self, text: str) -> tuple[str, ...]:
        """The index terms of ``text`` in order (``"Running_fast"`` -> ``("run", "fast")``)."""
        found = self._cache.get(text)
        if found is not None:
            return found
        with self._lock:
            self._conn.execute("INSERT INTO t(rowid, x) VALUES (1, ?)", (text,))
            try:
                rows = self._conn.execute("SELECT term FROM v ORDER BY offset").fetchall()
            finally:
                self._conn.execute("DELETE FROM t")
            if len(self._cache) >= _TOKEN_CACHE_MAX:
                self._cache.clear()
            found = tuple(str(r[0]) for r in rows)
            self._cache[text] = found
        return found

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._conn.close()


@dataclass
class _Snapshot:
    """One FTS table at one state: its statistics and the postings read so far."""

    table: str
    version: Version
    tokenizer: FtsTokenizer
    n_row: int
    avgdl: float
    ids: Ints  # rowids, ascending
    norm: Floats  # k1 * ((1 - b) + b * D / avgdl) per row, as FTS5 computes it
    terms: OrderedDict[str, tuple[Positions, Counts]] = field(default_factory=OrderedDict)
    tags: dict[str, Positions] = field(default_factory=dict)
    postings: int = 0


@dataclass(frozen=True)
class PostingsStats:
    """What the in-memory BM25 did (for benchmarks and health checks)."""

    answered: int
    fell_back: int
    snapshots_built: int
    cached_postings: int
    building: bool


class PostingsIndex:
    """The in-memory BM25 of a store's FTS tables (see the module docstring).

    ``search`` returns one ranked list per table, or None when FTS5 must answer. Thread-safe:
    searches run concurrently; one background thread builds snapshots.
    """

    def __init__(
        self,
        conn: Connection,
        tables: Sequence[str],
        *,
        budget: int,
        closed: Callable[[], bool],
    ) -> None:
        self._conn = conn
        self._tables = tuple(tables)
        self._budget = budget
        self._is_closed = closed
        self._lock = threading.Lock()
        self._snaps: dict[str, _Snapshot] = {}
        self._tokenizers: dict[str, FtsTokenizer] = {}
        self._builder: threading.Thread | None = None
        self._stop = threading.Event()
        self._wanted = False
        self._answered = 0
        self._fell_back = 0
        self._built = 0

    # -- searching -----------------------------------------------------------------------

    def search(
        self, tables: Sequence[str], terms: Sequence[str], tags: Sequence[str], n: int
    ) -> list[Ranked] | None:
        """Top ``n`` rowids of each table by BM25 for ``terms`` OR-ed, within every tag.

        The same rows and scores as ``bm25(table, 1.0, 0.0)`` over ``{body} : (t1 OR t2 ...)
        AND {tags} : tag ...``, best first; None when FTS5 must answer instead.
        """
        if self._stop.is_set() or not terms or any(t not in self._tables for t in tables):
            return None
        versions = self._versions(tables)
        snaps = [self._snaps.get(t) for t in tables]
        current = [s for s, v in zip(snaps, versions, strict=True) if s and s.version == v]
        if len(current) != len(tables):
            self._fell_back += 1
            self._wanted = True  # built after this search (``after_search``)
            return None
        try:
            queries = [
                (
                    [_one_token(s.tokenizer, t) for t in terms],
                    [_one_token(s.tokenizer, t) for t in tags],
                )
                for s in current
            ]
        except _Decline:
            self._fell_back += 1
            return None
        if any(_TAG_LIKE.fullmatch(p) for phrases, _ in queries for p in phrases):
            self._fell_back += 1
            return None
        known = [
            self._known(s, phrases, tag_tokens)
            for s, (phrases, tag_tokens) in zip(current, queries, strict=True)
        ]
        try:
            read = [
                (
                    {p: _read_postings(self._conn, s, p) for p in phrases if p not in terms_known},
                    {t: _read_tag(self._conn, s, t) for t in tag_tokens if t not in tags_known},
                )
                for s, (phrases, tag_tokens), (terms_known, tags_known) in zip(
                    current, queries, known, strict=True
                )
            ]
        except _Stale:
            read = []
        if len(read) != len(current) or (
            any(a or b for a, b in read) and self._versions(tables) != versions
        ):
            self._fell_back += 1
            self._wanted = True  # built after this search (``after_search``)
            return None
        results: list[Ranked] = []
        for snap, (phrases, tag_tokens), (terms_known, tags_known), (terms_read, tags_read) in zip(
            current, queries, known, read, strict=True
        ):
            self._install(snap, terms_read, tags_read)
            entries = {**terms_known, **terms_read}
            tag_rows = {**tags_known, **tags_read}
            results.append(
                _rank(snap, [entries[p] for p in phrases], [tag_rows[t] for t in tag_tokens], n)
            )
        self._answered += 1
        return results

    def _known(
        self, snap: _Snapshot, phrases: list[str], tags: list[str]
    ) -> tuple[dict[str, tuple[Positions, Counts]], dict[str, Positions]]:
        """The postings this snapshot already holds (marked recently used)."""
        with self._lock:
            terms = {}
            for p in phrases:
                entry = snap.terms.get(p)
                if entry is not None:
                    snap.terms.move_to_end(p)
                    terms[p] = entry
            return terms, {t: snap.tags[t] for t in tags if t in snap.tags}

    def _install(
        self,
        snap: _Snapshot,
        terms: dict[str, tuple[Positions, Counts]],
        tags: dict[str, Positions],
    ) -> None:
        with self._lock:
            for token, entry in terms.items():
                if token not in snap.terms:
                    snap.terms[token] = entry
                    snap.postings += int(entry[0].size)
            snap.tags.update(tags)
            while snap.postings > self._budget and len(snap.terms) > 1:
                _, (pos, _) = snap.terms.popitem(last=False)
                snap.postings -= int(pos.size)

    def _versions(self, tables: Sequence[str]) -> list[Version]:
        """FTS5's averages and structure records of each table (one statement)."""
        columns = ", ".join(
            f"(SELECT block FROM {t}_data WHERE id = 1) AS a{i}, "
            f"(SELECT block FROM {t}_data WHERE id = 10) AS s{i}"
            for i, t in enumerate(tables)
        )
        row = self._conn.fetch_one(f"SELECT {columns}") or {}
        return [(_bytes(row.get(f"a{i}")), _bytes(row.get(f"s{i}"))) for i in range(len(tables))]

    # -- snapshots -----------------------------------------------------------------------

    def after_search(self) -> None:
        """Start the build a stale search asked for, once that search has its answer.

        Not during it, nor right at its end: the build's statements would take the GIL from
        the search that noticed and from its caller (the first search after open at 100k
        segments went from 1.1 to 1.4-1.7 s), so the build starts a moment later."""
        if self._wanted:
            self._wanted = False
            self.refresh(delay=_AFTER_SEARCH_DELAY_S)

    def refresh(self, *, delay: float = 0.0) -> None:
        """Start building snapshots of the tables' current state (if no build is running)."""
        with self._lock:
            if self._stop.is_set() or (self._builder is not None and self._builder.is_alive()):
                return
            # Not a daemon: interpreter exit waits for the statement in flight (< a second)
            # instead of tearing the driver down under it.
            self._builder = threading.Thread(
                target=self._build_quietly,
                args=(delay,),
                name="aico-bm25-postings",
                daemon=False,
            )
            self._builder.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Build the current state's snapshot now if there is none, and wait for it (and
        its warming); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            builder = self._builder
            if builder is None or not builder.is_alive():
                if self._current():
                    return True
                self.refresh()
                builder = self._builder
            if builder is None:
                return True
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            builder.join(left)
            if builder.is_alive():
                return False
        return True

    def _current(self) -> bool:
        versions = self._versions(self._tables)
        return all(
            (s := self._snaps.get(t)) is not None and s.version == v
            for t, v in zip(self._tables, versions, strict=True)
        )

    def _build_quietly(self, delay: float = 0.0) -> None:
        """Build until a snapshot of the state at the end is in place (a write during a
        build or its warming starts the next one), a few times at most."""
        if delay and self._stop.wait(delay):
            return
        try:
            for _ in range(_BUILD_ATTEMPTS):
                if self._stop.is_set() or self._is_closed():
                    return
                with contextlib.suppress(_Stale):
                    self._build()
                if self._stop.is_set() or self._is_closed() or self._current():
                    return
        except Exception as exc:  # a derived cache: FTS5 keeps answering
            if not (self._stop.is_set() or self._is_closed()):
                _LOG.warning("in-memory BM25 not built (%s); FTS5 answers", type(exc).__name__)

    def _build(self) -> None:
        """Serve the current state as soon as its lengths are read, then warm it.

        The lengths (one statement per table; ~50 ms at 100k segments) make a snapshot
        that answers at once: a term it lacks is read by the search that needs it. Then the
        hot terms are read in small batches, each kept only if the state is still the same.
        """
        versions = self._versions(self._tables)
        old = {t: self._snaps.get(t) for t in self._tables}
        fresh = {
            table: self._read_snapshot(table, version)
            for table, version in zip(self._tables, versions, strict=True)
        }
        if self._versions(self._tables) != versions:
            raise _Stale
        with self._lock:
            self._snaps.update(fresh)
            self._built += 1
        for table, snap in fresh.items():
            previous = old[table]
            tags = list(previous.tags) if previous is not None else []
            if tags:
                self._warm(snap, [], tags)
            hot = self._hot_terms(previous, snap)
            for start in range(0, len(hot), _WARM_BATCH):
                if not self._warm(snap, hot[start : start + _WARM_BATCH], []):
                    return

    def _warm(self, snap: _Snapshot, tokens: list[str], tags: list[str]) -> bool:
        """Read ``tokens`` and ``tags`` into ``snap``; False once its state is gone."""
        if self._stop.is_set() or self._snaps.get(snap.table) is not snap:
            return False
        terms = {t: _read_postings(self._conn, snap, t) for t in tokens if t not in snap.terms}
        tag_rows = {t: _read_tag(self._conn, snap, t) for t in tags if t not in snap.tags}
        if self._versions((snap.table,))[0] != snap.version:
            return False
        self._install(snap, terms, tag_rows)
        return True

    def _read_snapshot(self, table: str, version: Version) -> _Snapshot:
        averages = _varints(version[0] or b"")
        n_row = averages[0] if averages else 0
        n_token = sum(averages[1:])
        row = self._conn.fetch_one(
            "SELECT count(*) AS n, group_concat(id) AS ids, group_concat(hex(sz), '') AS sz "
            f"FROM (SELECT id, sz FROM {table}_docsize ORDER BY id)"
        ) or {"n": 0, "ids": None, "sz": None}
        # N and the token total are the averages record's, as FTS5 reads them: a contentless
        # delete leaves both as they were (measured), while the row leaves ``docsize``.
        ids = _ints(row["ids"])
        columns = max(1, len(averages) - 1)
        sizes = decode_varints(bytes.fromhex(row["sz"] or ""))
        if ids.size != int(row["n"]) or sizes.size != ids.size * columns:
            raise _Stale
        lengths = sizes.reshape(ids.size, columns).sum(axis=1).astype(np.float64)
        avgdl = float(n_token) / float(n_row) if n_row else 1.0
        norm = K1 * ((1 - B) + (B * lengths) / avgdl)
        return _Snapshot(table, version, self._tokenizer(table), n_row, avgdl, ids, norm)

    def _tokenizer(self, table: str) -> FtsTokenizer:
        sql = str(
            self._conn.fetch_value(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            )
            or ""
        )
        found = _TOKENIZE.search(sql)
        spec = found.group(1) if found else "unicode61"
        with self._lock:
            tokenizer = self._tokenizers.get(spec)
            if tokenizer is None:
                tokenizer = self._tokenizers[spec] = FtsTokenizer(spec)
        return tokenizer

    def _hot_terms(self, old: _Snapshot | None, snap: _Snapshot) -> list[str]:
        """What to read before the snapshot serves: the old snapshot's terms, most recently
        used first, or (on the first build) the most frequent non-stopword terms, each up to
        half the budget; rare terms are cheap to read on demand."""
        share = self._budget // 2
        if old is not None:
            chosen, total = [], 0
            for token, (pos, _) in reversed(old.terms.items()):
                total += int(pos.size)
                if total > share:
                    break
                chosen.append(token)
            return chosen
        stop = {tok for word in ENGLISH_STOPWORDS for tok in snap.tokenizer.tokens(word)}
        rows = self._conn.fetch_all(
            f"SELECT term, doc FROM {snap.table}_terms WHERE doc >= ? ORDER BY doc DESC",
            (max(_PREFETCH_MIN_DF, snap.n_row // 200),),
        )
        chosen, total = [], 0
        for r in rows:
            term, df = str(r["term"]), int(r["doc"])
            if term in stop or _TAG_LIKE.fullmatch(term):
                continue
            if total + df > share:
                break
            total += df
            chosen.append(term)
        return chosen

    # -- lifecycle -----------------------------------------------------------------------

    def stats(self) -> PostingsStats:
        builder = self._builder
        return PostingsStats(
            answered=self._answered,
            fell_back=self._fell_back,
            snapshots_built=self._built,
            cached_postings=sum(s.postings for s in self._snaps.values()),
            building=builder is not None and builder.is_alive(),
        )

    def close(self) -> None:
        """Stop the builder (it finishes the statement in flight) and drop the snapshots."""
        self._stop.set()
        builder = self._builder
        if builder is not None and builder is not threading.current_thread():
            builder.join()
        with self._lock:
            self._snaps.clear()
            tokenizers = list(self._tokenizers.values())
            self._tokenizers.clear()
        for tokenizer in tokenizers:
            tokenizer.close()


# -- reading FTS5 -----------------------------------------------------------------------


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _one_token(tokenizer: FtsTokenizer, text: str) -> str:
    try:
        tokens = tokenizer.tokens(text)
    except Exception:  # the private driver refused it: FTS5 answers, with typed errors
        raise _Decline from None
    if len(tokens) != 1:
        raise _Decline  # a phrase (positions) or nothing: FTS5 answers
    return tokens[0]


def _read_postings(conn: Connection, snap: _Snapshot, token: str) -> tuple[Positions, Counts]:
    """Rows holding ``token`` in ``body`` (as positions in ``snap.ids``) and its count in each."""
    row = conn.fetch_one(
        "SELECT group_concat(doc) AS d, group_concat(tf) AS f FROM (SELECT doc, count(*) AS tf "
        f"FROM {snap.table}_instances WHERE term = ? AND col = 'body' GROUP BY doc)",
        (token,),
    ) or {"d": None, "f": None}
    return _positions(snap, _ints(row["d"])), _ints(row["f"]).astype(np.float32)


def _read_tag(conn: Connection, snap: _Snapshot, token: str) -> Positions:
    row = conn.fetch_one(
        "SELECT group_concat(doc) AS d FROM (SELECT DISTINCT doc "
        f"FROM {snap.table}_instances WHERE term = ? AND col = 'tags')",
        (token,),
    ) or {"d": None}
    return _positions(snap, _ints(row["d"]))


def _positions(snap: _Snapshot, docs: Ints) -> Positions:
    pos = np.searchsorted(snap.ids, docs)
    if docs.size and (int(pos.max()) >= snap.ids.size or not np.array_equal(snap.ids[pos], docs)):
        raise _Stale  # a row the snapshot does not know: the table changed
    return pos.astype(np.int32)


def _rank(
    snap: _Snapshot,
    phrases: list[tuple[Positions, Counts]],
    tags: list[Positions],
    n: int,
) -> Ranked:
    """fts5_aux.c's bm25 over the matching rows, top ``n`` by (-score, rowid)."""
    if snap.n_row == 0:
        return []
    scores = np.zeros(snap.ids.size, dtype=np.float64)
    hit = np.zeros(snap.ids.size, dtype=bool)
    for pos, counts in phrases:
        if pos.size == 0:
            continue
        n_hit = int(pos.size)
        idf = math.log((snap.n_row - n_hit + 0.5) / (n_hit + 0.5))  # C's log, not numpy's
        if idf <= 0.0:
            idf = _IDF_FLOOR
        tf = counts.astype(np.float64)
        scores[pos] += idf * ((tf * (K1 + 1.0)) / (tf + snap.norm[pos]))
        hit[pos] = True
    for pos in tags:
        inside = np.zeros(snap.ids.size, dtype=bool)
        inside[pos] = True
        hit &= inside
    found = np.flatnonzero(hit)
    if found.size > n:
        cut = found[np.argpartition(-scores[found], n - 1)[:n]]
        floor = scores[cut].min()
        found = found[scores[found] >= floor]  # every tie of the n-th, so rowid decides
    order = np.lexsort((snap.ids[found], -scores[found]))[:n]
    best = found[order]
    return [(int(i), float(s)) for i, s in zip(snap.ids[best], scores[best], strict=True)]
