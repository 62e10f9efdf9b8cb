"""Forget at every grain, proven by scanning what is really on disk.

Two users' markers go into every store (log, titles, attachments, segments, FTS5, Chroma,
LMDB, facts, feedback, logs). After one forget, three scans must find none of the forgotten
markers and all of the kept ones:

(a) raw bytes of every file of the data dir (encrypted files cannot show plaintext, so this
    scan alone proves little: it guards the unencrypted files, e.g. Chroma's and LMDB's);
(b) every **decrypted** page of every database (``sqlite_dbpage`` with the key: live pages,
    free pages and FTS5 index pages alike);
(c) Chroma's files, for the forgotten segments' opaque ids, rotated vectors and user tag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from coordinator_support import OTHER, USER, create, open_manager

from aico.ai.memory import MemoryManager
from aico.ai.memory.semantic.fts import tag_token
from aico.data.repositories import FactRepository, FeedbackRepository, LogRepository
from aico.data.repositories.conversations import Attachment
from aico.errors import NotFound

pytestmark = pytest.mark.slow

GONE, KEPT = USER, OTHER


def _fill(memory: MemoryManager, user: str, tag: str) -> dict[str, list[str]]:
    """Markers of ``user`` in every store, grouped by the conversation they belong to."""
    core = memory.store.connection("core")
    made: dict[str, list[str]] = {}
    for c in range(2):
        conv = f"{tag}-conv{c}"
        markers = made.setdefault(conv, [])
        for s in range(2):
            session = f"{tag}-c{c}-s{s}"
            for i in range(4):
                marker = f"zq{tag}c{c}s{s}m{i}"
                markers.append(marker)
                memory.store_message(
                    user,
                    session,
                    "user" if i % 2 == 0 else "assistant",
                    f"about {marker} and the weather",
                    conversation_id=conv,
                    title=f"title zq{tag}title{c}",
                    attachments=[Attachment("file", f"bytes zq{tag}att{c}{s}{i}".encode())]
                    if i == 0
                    else (),
                    metadata={"note": f"zq{tag}meta{c}{s}{i}"},
                )
            if s == 0:
                memory.end_session(session)  # segments, FTS5
                memory.semantic.process_outbox()  # and Chroma (end_session defers small batches)
            # s == 1 stays open: LMDB and the log only
        fact = FactRepository(core).remember(
            user, f"fact zq{tag}fact{c}", conversation_id=conv
        )
        FeedbackRepository(core).record(
            user, "comment", comment=f"feedback zq{tag}fb{c}", conversation_id=conv
        )
        assert fact
    LogRepository(core).insert_log(level="INFO", message=f"log zq{tag}log", user_id=user)
    return made


def _decrypted_pages(memory: MemoryManager) -> bytes:
    out = bytearray()
    for name in memory.store.databases:
        if not memory.store.path_of(name).exists():
            continue
        conn = memory.store.connection(name)
        for row in conn.fetch_all("SELECT data FROM sqlite_dbpage"):
            out += row["data"]
    return bytes(out)


def _raw_files(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _chroma_files(root: Path) -> bytes:
    files = sorted((root / "memory" / "semantic").rglob("*"))
    return b"".join(p.read_bytes() for p in files if p.is_file())


def contains_vector(data: bytes, vector: np.ndarray, tol: float = 1e-5) -> bool:
    """True if ``data`` holds ``vector`` as float32 at any byte offset (within ``tol``).

    A tolerance, not a byte match: Chroma computes the same rotated vector with another
    summation order, so its copy differs from ours in the last bit.
    """
    v = np.asarray(vector, dtype=np.float32).ravel()
    for shift in range(4):
        usable = (len(data) - shift) // 4 * 4
        if usable < 4 * len(v):
            continue
        floats = np.frombuffer(data[shift : shift + usable], dtype="<f4")
        with np.errstate(invalid="ignore"):
            starts = np.flatnonzero(np.abs(floats[: len(floats) - len(v) + 1] - v[0]) <= tol)
        for start in starts[:10_000]:
            window = floats[start : start + len(v)]
            with np.errstate(invalid="ignore", over="ignore"):
                if np.all(np.abs(window - v) <= tol):
                    return True
    return False


def _index_vectors(memory: MemoryManager, where: str, params: tuple[str, ...]) -> list[np.ndarray]:
    """The rotated unit vectors Chroma was given for the segments matching ``where``."""
    rows = memory.store.connection("core").fetch_all(
        f"SELECT vector FROM semantic_segments WHERE vector IS NOT NULL AND {where}", params
    )
    out = []
    for row in rows:
        vector = np.frombuffer(row["vector"], dtype="<f4")[None, :]
        rotated = np.asarray(memory.semantic._rotation.rotate(vector), dtype=np.float32)[0]
        out.append(rotated / np.linalg.norm(rotated))
    return out


def test_the_vector_scan_sees_what_chroma_holds(tmp_path: Path) -> None:
    """Control: before a forget, the scan finds every indexed vector in Chroma's files."""
    data_dir = tmp_path / "data"
    create(data_dir)
    with open_manager(data_dir) as memory:
        _fill(memory, GONE, "gone")
        vectors = _index_vectors(memory, "user_id = ?", (GONE,))
        chroma = _chroma_files(data_dir)
        assert vectors and all(contains_vector(chroma, v) for v in vectors)


def _index_traces(memory: MemoryManager, user: str) -> list[bytes]:
    """What Chroma holds of a user: its opaque ids and its user tag."""
    core = memory.store.connection("core")
    rows = core.fetch_all(
        "SELECT chroma_id FROM semantic_segments WHERE user_id = ? AND vector IS NOT NULL",
        (user,),
    )
    return [memory.semantic._keys.user_tag(user).encode()] + [
        str(row["chroma_id"]).encode() for row in rows
    ]


@pytest.mark.parametrize("grain", ["user", "conversation", "message"])
def test_forget_leaves_nothing_in_any_file(tmp_path: Path, grain: str) -> None:
    data_dir = tmp_path / "data"
    create(data_dir)
    with open_manager(data_dir) as memory:
        gone = _fill(memory, GONE, "gone")
        kept = _fill(memory, KEPT, "kept")
        log = memory.store.connection("conversations")
        if grain == "user":
            forgotten = [m for ms in gone.values() for m in ms]
            forgotten += [
                f"zqgone{x}" for x in ("title0", "title1", "fact0", "fact1", "fb0", "fb1", "log")
            ]
            forgotten += [f"zqgoneatt{c}{s}0" for c in range(2) for s in range(2)]
            traces = _index_traces(memory, GONE)
            vectors = _index_vectors(memory, "user_id = ?", (GONE,))
            report = memory.forget(GONE)
            assert report.messages == 16 and report.conversations == 2
            assert report.attachments == 4 and report.facts == 2 and report.feedback == 1 + 1
            assert report.logs == 1 and report.working_entries == 4  # four sessions
            kept_markers = [m for ms in kept.values() for m in ms] + ["zqkepttitle0", "zqkeptfact0"]
        elif grain == "conversation":
            forgotten = gone["gone-conv0"] + ["zqgonetitle0", "zqgonefact0", "zqgonefb0"]
            forgotten += ["zqgoneatt000", "zqgoneatt010"]
            traces_all = _index_traces(memory, GONE)
            rows = memory.store.connection("core").fetch_all(
                "SELECT chroma_id FROM semantic_segments WHERE user_id = ? AND conversation_id = ?",
                (GONE, "gone-conv0"),
            )
            traces = [str(r["chroma_id"]).encode() for r in rows]
            assert traces and len(traces_all) > len(traces)
            vectors = _index_vectors(
                memory, "user_id = ? AND conversation_id = ?", (GONE, "gone-conv0")
            )
            report = memory.forget(GONE, conversation_id="gone-conv0")
            assert report.messages == 8 and report.conversations == 1 and report.facts == 1
            kept_markers = gone["gone-conv1"] + [m for ms in kept.values() for m in ms]
        else:
            # The first message of the consolidated session of conversation 0.
            victim_marker = gone["gone-conv0"][0]
            victim = log.fetch_value(
                "SELECT id FROM messages WHERE content LIKE ?", (f"%{victim_marker}%",)
            )
            rows = memory.store.connection("core").fetch_all(
                "SELECT s.chroma_id FROM semantic_segments s JOIN semantic_segment_messages m "
                "ON m.segment_rowid = s.id WHERE m.message_id = ?",
                (victim,),
            )
            traces = [str(r["chroma_id"]).encode() for r in rows]
            assert traces
            vectors = _index_vectors(
                memory,
                "id IN (SELECT segment_rowid FROM semantic_segment_messages WHERE message_id = ?)",
                (victim,),
            )
            forgotten = [victim_marker, "zqgoneatt000", "zqgonemeta000"]
            report = memory.forget(GONE, message_id=victim)
            assert report.messages == 1 and report.segments == 1 and report.attachments == 1
            # Its neighbours stay, re-consolidated without it.
            kept_markers = gone["gone-conv0"][1:] + [m for ms in kept.values() for m in ms]
            sibling = gone["gone-conv0"][1]
            hits = memory.search(GONE, sibling, 5, mode="bm25")
            assert hits and victim_marker not in hits[0].text and sibling in hits[0].text
        still_gone_user = [] if grain != "user" else [tag_token("u", GONE).encode()]

        pages = _decrypted_pages(memory)
        for marker in forgotten:
            assert marker.encode() not in pages, f"decrypted pages keep {marker}"
        for token in still_gone_user:
            assert token not in pages, "the user's FTS tag is still in an index page"
        for marker in kept_markers:
            assert marker.encode() in pages, f"{marker} of what was kept is gone"
        chroma = _chroma_files(data_dir)
        for trace in traces:
            assert trace not in chroma, "Chroma's files keep a forgotten id or tag"
        assert vectors
        for vector in vectors:
            assert not contains_vector(chroma, vector), "Chroma's files keep a forgotten vector"
        for marker in forgotten:
            assert memory.search(GONE, marker, 5, mode="bm25") == [] or all(
                marker not in h.text for h in memory.search(GONE, marker, 5)
            )
        assert all(marker not in m.content for s in ("gone-c0-s1", "gone-c1-s1")
                   for m in memory.working.recent(s, 50) for marker in forgotten)
        verify = memory.semantic.verify_index()
        assert verify.ok, verify
    raw = _raw_files(data_dir)
    for marker in forgotten + kept_markers:
        assert marker.encode() not in raw, "plaintext in a raw file"


def test_forget_of_another_users_message_touches_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    create(data_dir)
    with open_manager(data_dir) as memory:
        mid = memory.store_message(
            KEPT, "k", "user", "zqkeptonly words", conversation_id="kept-conversation"
        )
        conversation = "kept-conversation"
        # Another user's id answers exactly as a missing one: NotFound, nothing touched.
        for kwargs in ({"message_id": mid}, {"conversation_id": conversation}):
            with pytest.raises(NotFound) as info:
                memory.forget(GONE, **kwargs)
            assert mid not in str(info.value) and KEPT not in str(info.value)
        with pytest.raises(NotFound):
            memory.forget(KEPT, message_id="no-such-message")
        assert memory.store.connection("conversations").fetch_value(
            "SELECT count(*) FROM messages WHERE id = ?", (mid,)
        ) == 1
