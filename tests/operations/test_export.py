"""``export_user`` / ``import_user``: one user's memory, portable, exact on the way back.

Real data dirs (``backup_support``): every exported row comes back with the same ids and
values, search answers the same, the encrypted file shows nothing and detects any change,
the plaintext variant has the documented shape, and an import that would collide writes
nothing.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from backup_support import (
    ALICE,
    BOB,
    PASSPHRASE,
    config,
    fill,
    flip_byte,
    hits,
    lexical,
    new_manager,
    open_manager,
)

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.data.repositories import FeedbackRepository
from aico.errors import IntegrityError, InvalidInput, NotFound, WrongPassphrase
from aico.operations.export import EXPORT_FORMAT, export_user, import_user, read_export
from aico.security import KdfParams

CHOSEN = "the passphrase alice chose"
QUERIES = ("harbour", "zqalicec0m1", "zqalicec1m3 harbour", "title")


def rows_of(m: MemoryManager, user: str) -> dict[str, list[dict]]:
    """Every row of ``user`` the export covers, without the internal segment ids."""
    core, log, sessions = (m.store.connection(n) for n in ("core", "conversations", "sessions"))

    def rows(conn, sql, *params):
        return sorted(
            json.dumps(r, sort_keys=True, default=lambda b: b.hex())
            for r in conn.fetch_all(sql, params)
        )

    return {
        "users": rows(core, "SELECT * FROM users WHERE user_id = ?", user),
        "facts": rows(core, "SELECT * FROM facts WHERE user_id = ?", user),
        "feedback": rows(core, "SELECT * FROM feedback_events WHERE user_id = ?", user),
        "segments": rows(
            core,
            "SELECT segment_id, user_id, conversation_id, session_id, roles, start_ts, end_ts, "
            "text, fts_text, embed_text, vector, vector_fingerprint, created_at "
            "FROM semantic_segments WHERE user_id = ?",
            user,
        ),
        "sources": rows(
            core,
            "SELECT s.segment_id, m.message_id FROM semantic_segment_messages m "
            "JOIN semantic_segments s ON s.id = m.segment_rowid WHERE s.user_id = ?",
            user,
        ),
        "conversations": rows(log, "SELECT * FROM conversations WHERE user_id = ?", user),
        "messages": rows(log, "SELECT * FROM messages WHERE user_id = ?", user),
        "attachments": rows(
            log,
            "SELECT * FROM message_attachments WHERE message_id IN "
            "(SELECT id FROM messages WHERE user_id = ?)",
            user,
        ),
        "compactions": rows(log, "SELECT * FROM compaction_history WHERE user_id = ?", user),
        "sessions": rows(log, "SELECT * FROM session_metadata WHERE user_id = ?", user),
        "preferences": rows(sessions, "SELECT * FROM user_preferences WHERE user_id = ?", user),
    }


@pytest.fixture
def source(tmp_path):
    m = new_manager(tmp_path / "source")
    fill(m, ALICE, "alice")
    fill(m, BOB, "bob")
    FeedbackRepository(m.store.connection("core")).record(ALICE, "thumbs_up", comment="zqliked")
    m.store.connection("sessions").execute(
        "INSERT INTO user_preferences (id, user_id, preference_key, preference_value) "
        "VALUES ('p1', ?, 'tone', '\"warm\"')",
        (ALICE,),
    )
    m.store_message(ALICE, "open-session", "user", "zqstill open, in working memory")
    m.close()
    m = open_manager(tmp_path / "source")
    yield m
    m.close()


def answers(m: MemoryManager) -> dict[str, tuple[object, set[str]]]:
    """Per query: the BM25 hits (exact) and which memories hybrid search finds.

    Another data dir rotates the dense vectors under another key: cosine is preserved up to
    float32 rounding, so near-ties among the fake encoder's vectors may swap, and z-score
    fusion magnifies that into the fused scores. The same data dir answers exactly.
    """
    return {
        q: (
            sorted((h.segment_id, round(h.score, 6)) for h in m.search(ALICE, q, 50, mode="bm25")),
            set(hits(m, ALICE, q).scores),
        )
        for q in QUERIES
    }


def expected(m: MemoryManager) -> tuple[dict, dict]:
    return rows_of(m, ALICE), answers(m)


def test_round_trip_into_another_data_dir_is_exact(source, tmp_path):
    """Both users exported and imported into an empty data dir: the same corpus, so search
    answers exactly as before (BM25's statistics are the whole index's)."""
    rows, found = expected(source)
    bob_rows = rows_of(source, BOB)
    report = export_user(
        source.store, ALICE, tmp_path / "alice.aicoexp", config=config(), passphrase=CHOSEN
    )
    assert report.encrypted and report.rows["messages"] == 9 and report.rows["feedback_events"] == 1
    export_user(source.store, BOB, tmp_path / "bob.json", config=config(), plaintext=True)
    target = new_manager(tmp_path / "target", users=())
    try:
        result = import_user(target, tmp_path / "alice.aicoexp", passphrase=CHOSEN)
        assert result.user_id == ALICE and not result.reembedded
        assert result.indexed == report.rows["semantic_segments"]
        import_user(target, tmp_path / "bob.json")
    finally:
        target.close()
    target = open_manager(tmp_path / "target")
    try:
        assert rows_of(target, ALICE) == rows
        assert rows_of(target, BOB) == bob_rows
        assert answers(target) == found
        # The open session's message is back in working memory too.
        assert [w.content for w in target.recent(ALICE, "open-session", 5)] == [
            "zqstill open, in working memory"
        ]
    finally:
        target.close()


def test_into_a_data_dir_with_other_users_the_same_memories_are_found(source, tmp_path):
    """BM25's statistics are the whole index's, so scores move with the other users' words;
    which memories are found does not."""
    everything = {q: set(hits(source, ALICE, q).scores) for q in QUERIES}
    path = tmp_path / "alice.aicoexp"
    export_user(source.store, ALICE, path, config=config(), passphrase=CHOSEN)
    target = new_manager(tmp_path / "target", users=(BOB,))
    try:
        fill(target, BOB, "bob2")
        import_user(target, path, passphrase=CHOSEN)
        assert {q: set(hits(target, ALICE, q).scores) for q in QUERIES} == everything
    finally:
        target.close()


def test_round_trip_into_the_same_data_dir_after_a_forget(source, tmp_path):
    rows = rows_of(source, ALICE)
    found = {q: hits(source, ALICE, q) for q in QUERIES}
    path = tmp_path / "alice.json"
    export_user(source.store, ALICE, path, config=config(), plaintext=True)
    source.forget(ALICE)
    assert lexical(source, ALICE, "zqalicec0m1") == []
    import_user(source, path)
    assert rows_of(source, ALICE) == rows
    assert {q: hits(source, ALICE, q) for q in QUERIES} == found  # fused scores too


def test_the_plaintext_document_has_the_documented_shape(source, tmp_path):
    path = tmp_path / "alice.json"
    export_user(source.store, ALICE, path, config=config(), plaintext=True)
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert doc["format"] == EXPORT_FORMAT and doc["version"] == 1 and doc["user_id"] == ALICE
    assert doc["embedding_model"]["name"] == "aico/hashing-384"
    assert set(doc["tables"]) == {
        "users", "facts", "feedback_events", "semantic_segments", "semantic_segment_messages",
        "conversations", "messages", "message_attachments", "compaction_history",
        "session_metadata", "user_preferences",
    }  # fmt: skip
    segment = doc["tables"]["semantic_segments"][0]
    assert "id" not in segment and "chroma_id" not in segment  # internal ids stay home
    vector = np.frombuffer(base64.b64decode(segment["vector"]["base64"]), dtype="<f4")
    assert vector.shape == (384,)
    attachment = doc["tables"]["message_attachments"][0]
    assert base64.b64decode(attachment["content"]["base64"]).startswith(b"bytes zqalice")
    assert all(r["user_id"] == ALICE for r in doc["tables"]["messages"])
    assert "zqbob" not in path.read_text()  # only this user
    assert read_export(path) == doc


def test_the_encrypted_file_shows_nothing_and_detects_any_change(source, tmp_path):
    path = tmp_path / "alice.aicoexp"
    export_user(source.store, ALICE, path, config=config(), passphrase=CHOSEN)
    raw = path.read_bytes()
    for needle in (b"zqalice", b"harbour", b"alice", b"messages", b"semantic"):
        assert needle not in raw
    with pytest.raises(WrongPassphrase):
        read_export(path, "not it")
    with pytest.raises(InvalidInput, match="encrypted"):
        read_export(path)
    for offset in (len(raw) // 2, len(raw) - 1, 60):
        damaged = tmp_path / f"damaged-{offset}"
        damaged.write_bytes(raw)
        flip_byte(damaged, offset)
        with pytest.raises(IntegrityError):
            read_export(damaged, CHOSEN)


def test_export_costs_the_configured_argon2(source, tmp_path):
    path = tmp_path / "alice.aicoexp"
    export_user(
        source.store, ALICE, path, config=config(), passphrase=CHOSEN, kdf=KdfParams.for_tests()
    )
    header = json.loads(path.read_bytes()[12 : 12 + int.from_bytes(path.read_bytes()[8:12])])
    assert header["kind"] == "export"
    assert header["source"]["kdf"] == {"name": "argon2id", **KdfParams.for_tests().to_dict()}


def test_an_import_that_would_collide_writes_nothing(source, tmp_path):
    path = tmp_path / "alice.json"
    export_user(source.store, ALICE, path, config=config(), plaintext=True)
    before = rows_of(source, ALICE)
    with pytest.raises(InvalidInput, match="already holds"):
        import_user(source, path)  # alice is still here
    # Only one record colliding is enough: a conversation id taken by another user.
    target = new_manager(tmp_path / "target", users=(BOB,))
    try:
        target.store_message(BOB, "s", "user", "hello", conversation_id="alice-conv1")
        with pytest.raises(InvalidInput, match="conversations"):
            import_user(target, path)
        assert (
            target.store.connection("core").fetch_value(
                "SELECT count(*) FROM users WHERE user_id = ?", (ALICE,)
            )
            == 0
        )
    finally:
        target.close()
    assert rows_of(source, ALICE) == before


def test_a_tampered_plaintext_export_is_refused(source, tmp_path):
    path = tmp_path / "alice.json"
    export_user(source.store, ALICE, path, config=config(), plaintext=True)
    doc = json.loads(path.read_text())
    doc["tables"]["messages"][0]["user_id"] = BOB
    (tmp_path / "mixed.json").write_text(json.dumps(doc))
    doc = json.loads(path.read_text())
    doc["tables"]["facts"][0]["evil; DROP TABLE users"] = 1
    (tmp_path / "column.json").write_text(json.dumps(doc))
    doc = json.loads(path.read_text())
    doc["tables"]["facts"][0]["content"] = {"not": "a value"}
    (tmp_path / "value.json").write_text(json.dumps(doc))
    target = new_manager(tmp_path / "target", users=(BOB,))
    try:
        with pytest.raises(InvalidInput, match="another user"):
            import_user(target, tmp_path / "mixed.json")
        with pytest.raises(InvalidInput, match="columns this data dir lacks"):
            import_user(target, tmp_path / "column.json")
        with pytest.raises(InvalidInput, match="not a column value"):
            import_user(target, tmp_path / "value.json")
        (tmp_path / "junk.json").write_text('{"format": "something else"}')
        with pytest.raises(InvalidInput, match="not an aico user export"):
            import_user(target, tmp_path / "junk.json")
        assert target.store.connection("core").fetch_value("SELECT count(*) FROM facts") == 0
    finally:
        target.close()


def test_another_embedding_model_is_re_embedded_on_import(source, tmp_path):
    path = tmp_path / "alice.aicoexp"
    export_user(source.store, ALICE, path, config=config(), passphrase=CHOSEN)
    other = MemoryManager.initialize(
        tmp_path / "other", PASSPHRASE, config=config(), encoder=HashingEncoder(256)
    )
    try:
        report = import_user(other, path, passphrase=CHOSEN)
        assert report.reembedded
        dims = other.store.connection("core").fetch_all(
            "SELECT length(vector) AS n FROM semantic_segments"
        )
        assert {d["n"] for d in dims} == {256 * 4}
        assert lexical(other, ALICE, "zqalicec0m1")
        segments = report.rows["semantic_segments"]
        assert len(other.search(ALICE, "harbour", 50, mode="dense")) == segments
    finally:
        other.close()


def test_export_refusals(source, tmp_path):
    with pytest.raises(NotFound):
        export_user(source.store, "nobody", tmp_path / "x", config=config(), plaintext=True)
    with pytest.raises(InvalidInput, match="passphrase"):
        export_user(source.store, ALICE, tmp_path / "x", config=config())
    with pytest.raises(InvalidInput, match="passphrase"):
        export_user(
            source.store, ALICE, tmp_path / "x", config=config(), passphrase=CHOSEN, plaintext=True
        )
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(InvalidInput, match="already exists"):
        export_user(source.store, ALICE, tmp_path / "taken", config=config(), plaintext=True)
    assert (tmp_path / "taken").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("x")) == []


def test_export_from_a_read_only_store(source, tmp_path):
    source.close()
    reader = open_manager(source.store.layout.root, read_only=True)
    try:
        report = export_user(
            reader.store, ALICE, tmp_path / "ro.json", config=config(), plaintext=True
        )
        assert report.rows["messages"] == 9
    finally:
        reader.close()
