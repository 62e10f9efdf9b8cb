"""The write path of the semantic store: segments into libSQL, then the outbox into Chroma.

``add_segments`` inserts rows in one transaction (triggers add the FTS rows and an "index"
outbox row each); ``process_outbox`` embeds in batches, stores the vector blobs, upserts
into Chroma and deletes the outbox rows. Deletes (``delete_segments``, ``delete_user``) go
the same way: the delete trigger queues a "delete" row, and the outbox applies it. Every
step is idempotent, so replaying the outbox after a crash anywhere repairs the index.

This is the only part that turns libSQL rows into Chroma entries (``store_vectors``,
``upsert`` and ``drain`` are shared with ``maintenance``), which is why it is kept apart from
the read path: search never writes, and nothing here ranks. In a read-only store every
method here except ``pending_outbox`` raises ``ReadOnly`` before doing anything.

A damaged, rebuilding or unavailable index (``_holder``) never fails a write: the segments
commit to libSQL, ``process_outbox`` gives them their vectors in libSQL (so the exact scan
finds them) and leaves every outbox row queued for the rebuild or the server's return, and
returns normally (``OutboxResult.remaining``). A Chroma failure part way through a batch
degrades the store the same way (the batch's rows record the error class). Failures that
are not Chroma's (the encoder, libSQL) still raise.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from aico.ai.memory._faults import fault
from aico.ai.memory.semantic._chroma import ChromaIndex
from aico.ai.memory.semantic._core import StoreCore
from aico.ai.memory.semantic._sql import SQL_IN_CHUNK, FloatArray, from_blob, to_blob
from aico.ai.memory.semantic.language import analyze, detect_language
from aico.ai.memory.semantic.models import has_languages
from aico.ai.memory.semantic.schema import FTS_TABLE
from aico.ai.memory.semantic.segmenting import SegmentationConfig, segment_messages
from aico.ai.memory.semantic.types import Message, OutboxResult, Segment, check_id
from aico.data.repositories._base import chunks
from aico.errors import AicoError, InvalidInput, SemanticMemoryError, StoreClosed

__all__ = ["Writer"]

_LOCK_POLL_S = 0.05
# "user: " at a line start: segmenting's labels, English words that would sway detection.
_ROLE_LABEL = re.compile(r"^[a-z0-9_]{1,32}: ", re.MULTILINE)


class _IndexFailed(Exception):
    """Internal: a Chroma call of the outbox failed (never leaves this module)."""

    def __init__(self, cause: AicoError) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


@contextlib.contextmanager
def _chroma_call(core: StoreCore) -> Iterator[None]:
    """Tell a failure of Chroma apart from one of the encoder or libSQL around it."""
    try:
        yield
    except (SemanticMemoryError, StoreClosed) as exc:
        if core.closed:
            raise
        raise _IndexFailed(exc) from exc


_SEGMENT_COLUMNS = (
    "segment_id, user_id, conversation_id, session_id, roles, start_ts, end_ts, text, "
    "fts_text, embed_text, chroma_id"
)
_INSERT = (
    f"INSERT INTO semantic_segments ({_SEGMENT_COLUMNS}, source, source_ref) "
    f"VALUES ({', '.join('?' * 13)})"
)
#: Schema version 5: with the language analysis BM25 indexes (``language``).
_INSERT_WITH_LANGUAGE = (
    f"INSERT INTO semantic_segments ({_SEGMENT_COLUMNS}, source, source_ref, "
    f"lang, fts_lex, full_lex) VALUES ({', '.join('?' * 16)})"
)
#: A database before schema version 4 (a store opened over it by an older migration).
_INSERT_BEFORE_SOURCES = (
    f"INSERT INTO semantic_segments ({_SEGMENT_COLUMNS}) VALUES ({', '.join('?' * 11)})"
)


def _analysis(segment: Segment) -> tuple[str, str | None, str | None]:
    """(lang, fts_lex, full_lex) of a segment: its language is detected on the whole text,
    and each BM25 table gets the analysis of the words it indexes (None: the words as
    they are, see ``language.analyze``)."""
    return _analysis_of(segment.text, segment.fts_text)


def _analysis_of(text: str, fts_text: str | None) -> tuple[str, str | None, str | None]:
    language = detect_language(_ROLE_LABEL.sub("", text))
    fts = analyze(fts_text if fts_text is not None else text, language)
    full = None if fts_text is None else analyze(text, language).body
    return language, fts.body, full


class Writer:
    """Writes of one store: segments, deletions, and the outbox that carries them to Chroma."""

    def __init__(self, core: StoreCore) -> None:
        self._core = core
        self._languages: bool | None = None

    def _has_languages(self) -> bool:
        """Whether the schema has the analysis columns (version 5), asked once per store."""
        if self._languages is None:
            self._languages = has_languages(self._core.conn)
        return self._languages

    # -- segments ------------------------------------------------------------------------

    def add_segments(
        self, segments: Sequence[Segment], *, index: bool = True, skip_existing: bool = False
    ) -> list[str]:
        """See ``SemanticMemoryStore.add_segments``."""
        core = self._core
        core.check_open()
        core.require_writable("add_segments")
        items = list(segments)
        for item in items:
            if not isinstance(item, Segment):
                raise InvalidInput("add_segments() takes Segment objects")
        if not core.sources and any(s.source != "conversation" for s in items):
            raise SemanticMemoryError(
                "the semantic schema is behind this code (no segment sources); "
                "run `aico db upgrade`"
            )
        ids = [s.segment_id or uuid.uuid4().hex for s in items]
        if len(set(ids)) != len(ids):
            raise InvalidInput("segment ids must be unique")
        rows = [
            (
                segment_id,
                s.user_id,
                s.conversation_id,
                s.session_id,
                ",".join(s.roles),
                s.start_ts,
                s.end_ts,
                s.text,
                s.fts_text,
                s.embed_text,
                secrets.token_hex(16),
                s.source,
                s.source_ref,
            )
            for segment_id, s in zip(ids, items, strict=True)
        ]
        inserted: list[str] = []
        # Before the transaction: the first detection loads the detector (about a second).
        analyze = bool(rows) and core.config.language_analysis and self._has_languages()
        analyses = [_analysis(s) for s in items] if analyze else []
        if rows:
            with core.conn.transaction():
                pairs = list(zip(rows, items, strict=True))
                extra = dict(zip(ids, analyses, strict=False))
                if skip_existing:
                    # Inside the write transaction: no other writer can add one meanwhile.
                    existing = {
                        str(r["segment_id"])
                        for chunk in chunks(ids, SQL_IN_CHUNK)
                        for r in core.conn.fetch_all(
                            "SELECT segment_id FROM semantic_segments WHERE segment_id IN "
                            f"({','.join('?' * len(chunk))})",
                            chunk,
                        )
                    }
                    pairs = [(r, seg) for r, seg in pairs if r[0] not in existing]
                # One statement per row, inside the transaction: ``execute_many`` would
                # add a savepoint per call (two more round trips per segment).
                insert = _INSERT if core.sources else _INSERT_BEFORE_SOURCES
                for row, _ in pairs:
                    if analyze:
                        core.conn.execute(_INSERT_WITH_LANGUAGE, (*row, *extra[row[0]]))
                    else:
                        core.conn.execute(insert, row if core.sources else row[:-2])
                sources = [
                    [message_id, row[0]]
                    for row, segment in pairs
                    for message_id in dict.fromkeys(segment.message_ids)
                ]
                if sources:  # every source row in one statement
                    core.conn.execute(
                        "INSERT OR IGNORE INTO semantic_segment_messages "
                        "(message_id, segment_rowid) "
                        "SELECT j.value ->> 0, s.id FROM json_each(?) AS j "
                        "JOIN semantic_segments AS s ON s.segment_id = j.value ->> 1",
                        (json.dumps(sources),),
                    )
                inserted = [r[0] for r, _ in pairs]
        if index and inserted and core.mismatch is None:
            self.process_outbox()
        return inserted if skip_existing else ids

    def add_messages(
        self,
        user_id: str,
        messages: Sequence[Message],
        *,
        conversation_id: str | None = None,
        session_id: str | None = None,
        segmentation: SegmentationConfig | None = None,
        index: bool = True,
    ) -> list[str]:
        """See ``SemanticMemoryStore.add_messages``."""
        self._core.require_writable("add_messages")
        segments = segment_messages(
            user_id,
            messages,
            conversation_id=conversation_id,
            session_id=session_id,
            config=segmentation or self._core.config.segmentation,
        )
        return self.add_segments(segments, index=index)

    def analyze_pending(self, *, limit: int = 1000) -> int:
        """Give segments stored before the language analysis (schema version 5, or with
        ``language_analysis`` off) their analysis; returns how many were analyzed.

        Oldest first, at most ``limit`` per call, each batch in one transaction. A
        segment whose analysis adds nothing (English) gets only its ``lang``, so its FTS
        rows stay as they are; the others get ``fts_lex``/``full_lex``, and the version-5
        trigger re-indexes their FTS rows from them. Idempotent: a segment is picked once.
        """
        core = self._core
        core.check_open()
        core.require_writable("analyze_pending")
        if not core.config.language_analysis or not self._has_languages():
            return 0
        rows = core.conn.fetch_all(
            "SELECT id, text, fts_text FROM semantic_segments WHERE lang IS NULL "
            "ORDER BY id LIMIT ?",
            (limit,),
        )
        if not rows:
            return 0
        # Before the transaction, like add_segments: the first detection loads the detector.
        done = [(int(r["id"]), *_analysis_of(str(r["text"]), r["fts_text"])) for r in rows]
        with core.conn.transaction():
            for rowid, lang, fts_lex, full_lex in done:
                if fts_lex is None and full_lex is None:
                    core.conn.execute(
                        "UPDATE semantic_segments SET lang = ? WHERE id = ? AND lang IS NULL",
                        (lang, rowid),
                    )
                else:
                    core.conn.execute(
                        "UPDATE semantic_segments SET lang = ?, fts_lex = ?, full_lex = ? "
                        "WHERE id = ? AND lang IS NULL",
                        (lang, fts_lex, full_lex, rowid),
                    )
        return len(done)

    def delete_segments(self, segment_ids: Sequence[str], *, user_id: str | None = None) -> int:
        """See ``SemanticMemoryStore.delete_segments``."""
        core = self._core
        core.check_open()
        core.require_writable("delete_segments")
        ids = [check_id(s, "segment_id") for s in segment_ids]
        if user_id is not None:
            check_id(user_id, "user_id")
        total = 0
        with core.conn.transaction():
            for chunk in chunks(ids, SQL_IN_CHUNK):
                marks = ",".join("?" * len(chunk))
                sql = f"DELETE FROM semantic_segments WHERE segment_id IN ({marks})"
                params: tuple[Any, ...] = tuple(chunk)
                if user_id is not None:
                    sql += " AND user_id = ?"
                    params = (*params, user_id)
                total += max(core.conn.execute(sql, params).rowcount, 0)
        self.process_outbox()
        return total

    def delete_user(self, user_id: str) -> int:
        """See ``SemanticMemoryStore.delete_user``."""
        core = self._core
        core.check_open()
        core.require_writable("delete_user")
        check_id(user_id, "user_id")
        with core.conn.transaction():
            deleted = core.conn.execute(
                "DELETE FROM semantic_segments WHERE user_id = ?", (user_id,)
            ).rowcount
        index = core.index_for_writes()
        if index is not None:
            # Degraded: the queued deletes stay for the rebuild, which a forget runs.
            try:
                index.drop(core.collection_name(user_id))
            except (SemanticMemoryError, StoreClosed) as exc:
                if core.closed:
                    raise
                core.index_failed(index, exc)
        self.process_outbox()
        return max(deleted, 0)

    def requeue_unindexed(self) -> int:
        """See ``SemanticMemoryStore.requeue_unindexed``."""
        core = self._core
        core.check_open()
        core.require_writable("requeue_unindexed")
        with core.conn.transaction():
            return max(
                core.conn.execute(
                    "INSERT INTO semantic_outbox (op, segment_rowid, chroma_id) "
                    "SELECT 'index', s.id, s.chroma_id FROM semantic_segments s "
                    "WHERE s.vector IS NULL AND NOT EXISTS (SELECT 1 FROM semantic_outbox o "
                    "WHERE o.op = 'index' AND o.segment_rowid = s.id)"
                ).rowcount,
                0,
            )

    def optimize_fts(self) -> None:
        """See ``SemanticMemoryStore.optimize_fts``."""
        core = self._core
        core.check_open()
        core.require_writable("optimize_fts")
        with core.conn.transaction():
            core.conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('optimize')")

    # -- the outbox ----------------------------------------------------------------------

    def process_outbox(self, *, limit: int | None = None) -> OutboxResult:
        """See ``SemanticMemoryStore.process_outbox``."""
        core = self._core
        core.check_open()
        core.require_writable("process_outbox")
        if core.index_for_writes() is None or not self._acquire():
            core.maybe_heal()
            return self._embed_pending(limit)
        try:
            index = core.index_if_ready()  # again under the lock: a rebuild may have run
            result = None if index is None else self.drain(index, limit)
        finally:
            core.outbox_lock.release()
        if result is None or result.failed:
            core.maybe_heal()
            rest = self._embed_pending(limit)
            if result is None:
                return rest
            return OutboxResult(
                indexed=result.indexed,
                deleted=result.deleted,
                failed=result.failed,
                remaining=rest.remaining,
                embedded=rest.embedded,
            )
        return result

    def _acquire(self) -> bool:
        """Take the outbox lock, unless the index stops serving while waiting (a background
        rebuild holds the lock for its whole run: a write must not wait that long)."""
        core = self._core
        while not core.outbox_lock.acquire(timeout=_LOCK_POLL_S):
            if core.index_state != "ok" or core.closed:
                return False
        if core.index_state != "ok":
            core.outbox_lock.release()
            return False
        return True

    def drain(self, index: ChromaIndex, limit: int | None = None) -> OutboxResult:
        """Apply queued work to ``index``, oldest first (the caller holds the outbox lock).

        A Chroma failure stops the pass: the batch's rows stay queued with the error class
        recorded, the store is told (``index_failed``) and the result counts them as
        ``failed``. Any other failure is recorded the same way and raised.
        """
        core = self._core
        indexed = deleted = failed = 0
        last_id = 0
        while limit is None or indexed + deleted < limit:
            batch = core.config.outbox_batch_size
            if limit is not None:
                batch = min(batch, limit - indexed - deleted)
            where = "id > ?" + (" AND op = 'delete'" if core.mismatch else "")
            rows = core.conn.fetch_all(
                f"SELECT id, op, segment_rowid, chroma_id FROM semantic_outbox "
                f"WHERE {where} ORDER BY id LIMIT ?",
                (last_id, batch),
            )
            if not rows:
                break
            last_id = int(rows[-1]["id"])
            try:
                deleted += self._apply_deletes([r for r in rows if r["op"] == "delete"], index)
                indexed += self._apply_indexes([r for r in rows if r["op"] == "index"], index)
            except _IndexFailed as failure:
                self._record_failure([int(r["id"]) for r in rows], failure.cause)
                core.index_failed(index, failure.cause)
                failed = len(rows)
                break
            except AicoError as exc:
                self._record_failure([int(r["id"]) for r in rows], exc)
                raise
            self._delete_outbox_rows(rows)
        return OutboxResult(
            indexed=indexed, deleted=deleted, failed=failed, remaining=self.pending_outbox()
        )

    def _embed_pending(self, limit: int | None) -> OutboxResult:
        """While Chroma does not serve: vectors for queued segments, into libSQL only.

        The exact scan then finds them; their outbox rows stay for the rebuild (which reads
        the stored vectors, so nothing is embedded twice). No lock: ``store_vectors`` is
        idempotent, and it skips a segment whose text changed meanwhile.
        """
        core = self._core
        embedded = 0
        if core.mismatch is None:
            fingerprint = core.model.fingerprint
            last_id = 0
            while limit is None or embedded < limit:
                batch = core.config.outbox_batch_size
                if limit is not None:
                    batch = min(batch, limit - embedded)
                rows = core.conn.fetch_all(
                    "SELECT s.id AS id, coalesce(s.embed_text, s.text) AS embed_text "
                    "FROM semantic_segments AS s WHERE s.id > ? AND s.id IN "
                    "(SELECT segment_rowid FROM semantic_outbox WHERE op = 'index') "
                    "AND (s.vector_fingerprint IS NULL OR s.vector_fingerprint != ?) "
                    "ORDER BY s.id LIMIT ?",
                    (last_id, fingerprint, batch),
                )
                if not rows:
                    break
                last_id = int(rows[-1]["id"])
                self.store_vectors(rows, self._encode([r["embed_text"] for r in rows]), fingerprint)
                embedded += len(rows)
        return OutboxResult(remaining=self.pending_outbox(), embedded=embedded)

    def pending_outbox(self) -> int:
        """Outbox rows not applied yet."""
        return int(self._core.conn.fetch_value("SELECT count(*) FROM semantic_outbox") or 0)

    def _apply_deletes(self, rows: list[dict[str, Any]], index: ChromaIndex) -> int:
        if not rows:
            return 0
        dead = [str(r["chroma_id"]) for r in rows]
        with _chroma_call(self._core):
            # The segment is gone, so its owner is unknown: try every collection of the store.
            for name in index.collection_names():
                index.delete(name, dead)
        return len(rows)

    def _apply_indexes(self, rows: list[dict[str, Any]], index: ChromaIndex) -> int:
        if not rows:
            return 0
        rowids = sorted({int(r["segment_rowid"]) for r in rows})
        segments = self._core.fetch_in(
            "SELECT id, chroma_id, user_id, start_ts, end_ts, vector, vector_fingerprint, "
            "coalesce(embed_text, text) AS embed_text FROM semantic_segments WHERE id IN ({})",
            rowids,
        )
        fingerprint = self._core.model.fingerprint
        todo = [s for s in segments if s["vector_fingerprint"] != fingerprint]
        if todo:
            vectors = self._encode([s["embed_text"] for s in todo])
            self.store_vectors(todo, vectors, fingerprint)
            fault("mid_outbox")  # vectors in libSQL, not yet in Chroma
            for segment, vector in zip(todo, vectors, strict=True):
                segment["vector"] = vector
        by_user: dict[str, list[dict[str, Any]]] = {}
        for segment in segments:
            by_user.setdefault(segment["user_id"], []).append(segment)
        with _chroma_call(self._core):
            for user_id, items in by_user.items():
                self.upsert(user_id, items, index)
        return len(rows)

    def _encode(self, texts: list[str]) -> FloatArray:
        core = self._core
        vectors = np.asarray(
            core.encoder.encode(texts, batch_size=core.config.embed_batch_size),
            dtype=np.float32,
        )
        if vectors.shape != (len(texts), core.model.dimension):
            raise SemanticMemoryError(
                f"the encoder returned vectors of shape {vectors.shape}, "
                f"expected ({len(texts)}, {core.model.dimension})"
            )
        return vectors

    def store_vectors(
        self, segments: list[dict[str, Any]], vectors: FloatArray, fingerprint: str
    ) -> None:
        """Save vectors as blobs with the fingerprint of the model that made them."""
        # The text check skips a segment whose text changed while it was being embedded:
        # its update trigger queued a fresh "index" that will embed the new text.
        self._core.conn.execute_many(
            "UPDATE semantic_segments SET vector = ?, vector_fingerprint = ? "
            "WHERE id = ? AND coalesce(embed_text, text) = ?",
            [
                (to_blob(vector), fingerprint, int(s["id"]), s["embed_text"])
                for s, vector in zip(segments, vectors, strict=True)
            ],
        )

    def upsert(self, user_id: str, segments: list[dict[str, Any]], index: ChromaIndex) -> None:
        """Put segments' vectors (rotated) into the user's collection in ``index``, by their
        Chroma id."""
        core = self._core
        dimension = core.model.dimension
        vectors = np.stack(
            [
                v if isinstance(v, np.ndarray) else from_blob(v, dimension)
                for v in (s["vector"] for s in segments)
            ]
        )
        metadatas: list[dict[str, str | int | float | bool]] = [
            {
                "u": core.keys.user_tag(user_id),
                "t0": float(s["start_ts"]),
                "t1": float(s["end_ts"]),
            }
            for s in segments
        ]
        index.upsert(
            core.collection_name(user_id),
            [str(s["chroma_id"]) for s in segments],
            core.rotation.rotate(vectors),
            metadatas,
        )

    def _record_failure(self, outbox_ids: list[int], exc: AicoError) -> None:
        # Only the error class: messages could one day carry something we do not want stored.
        with contextlib.suppress(AicoError):
            self._core.execute_in(
                "UPDATE semantic_outbox SET attempts = attempts + 1, last_error = ? "
                "WHERE id IN ({})",
                outbox_ids,
                prefix=(type(exc).__name__,),
            )

    def _delete_outbox_rows(self, rows: list[dict[str, Any]]) -> None:
        """Delete exactly the work items applied, matched on every column, not the id alone.

        ``semantic_outbox.id`` is a plain rowid: once another process emptied the table,
        SQLite hands the same ids to new rows. Deleting by id alone removed rows queued
        while this batch was being embedded, which then never reached Chroma.
        """
        conn = self._core.conn
        with conn.transaction():
            conn.execute_many(
                "DELETE FROM semantic_outbox WHERE id = ? AND op = ? AND chroma_id = ? "
                "AND segment_rowid IS ?",
                [(int(r["id"]), r["op"], r["chroma_id"], r["segment_rowid"]) for r in rows],
            )
