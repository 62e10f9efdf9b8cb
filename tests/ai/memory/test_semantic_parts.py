"""The pure parts of semantic memory: rotation, tags, segmenting, config, schema, exports."""

from __future__ import annotations

import numpy as np
import pytest
from semantic_support import T0

import aico.ai.memory.semantic as semantic
from aico.ai.memory.semantic import (
    Message,
    SegmentationConfig,
    SemanticConfig,
    SemanticKeys,
    VectorRotation,
    segment_messages,
)
from aico.ai.memory.semantic.rotation import _matrix
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.schema import Migrator, default_registry
from aico.errors import ConfigError, InvalidInput
from aico.security import MasterKey, Purpose

# -- rotation ------------------------------------------------------------------------------


def test_rotation_is_orthogonal_and_deterministic() -> None:
    key = bytes(range(32))
    q = _matrix(key, 384).astype(np.float64)
    assert np.allclose(q @ q.T, np.eye(384), atol=1e-5)
    _matrix.cache_clear()
    assert np.array_equal(_matrix(key, 384), q.astype(np.float32))  # same key, same matrix
    assert not np.allclose(_matrix(bytes(32), 384), q, atol=1e-2)  # other key, other matrix


def test_rotation_preserves_cosine_and_moves_vectors() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rotation = VectorRotation(b"k" * 32, 384)
    rotated = rotation.rotate(vectors)
    assert rotated.dtype == np.float32 and rotated.shape == (50, 384)
    assert np.allclose(rotated @ rotated.T, vectors @ vectors.T, atol=1e-5)
    # No coordinate survives: the rotated vectors are unrelated to the originals.
    assert abs(float(np.mean(np.sum(rotated * vectors, axis=1)))) < 0.2
    assert np.allclose(rotation.rotate(vectors[0]), rotated[0], atol=1e-6)
    assert "k" not in repr(rotation)


def test_rotation_validation() -> None:
    with pytest.raises(InvalidInput):
        VectorRotation(b"short", 384)
    with pytest.raises(InvalidInput):
        VectorRotation(b"k" * 32, 1)
    with pytest.raises(InvalidInput):
        VectorRotation(b"k" * 32, 8).rotate(np.zeros(9))


# -- keys ----------------------------------------------------------------------------------


def test_keys_come_from_their_own_purposes() -> None:
    master = MasterKey.generate()
    keys = SemanticKeys.from_master_key(master)
    assert keys.rotation_key == master.subkey(Purpose.VECTOR_ROTATION)
    assert keys.id_key == master.subkey("semantic/id-hash")
    assert keys.id_key != master.subkey(Purpose.LMDB_KEY_HASH)
    assert "rotation_key" not in repr(keys) or keys.rotation_key.hex() not in repr(keys)


def test_tags_are_keyed_and_domain_separated() -> None:
    a = SemanticKeys(rotation_key=b"r" * 32, id_key=b"i" * 32)
    b = SemanticKeys(rotation_key=b"r" * 32, id_key=b"j" * 32)
    assert a.user_tag("alice") == a.user_tag("alice")
    assert a.user_tag("alice") != b.user_tag("alice")
    assert a.user_tag("x") != a.conversation_tag("x")
    assert len(a.user_tag("alice")) == 32 and "alice" not in a.user_tag("alice")
    assert a.role_field("user").startswith("r") and "user" not in a.role_field("user")[1:]
    with pytest.raises(InvalidInput):
        SemanticKeys(rotation_key=b"r" * 31, id_key=b"i" * 32)


# -- segmentation --------------------------------------------------------------------------

CHAT = [
    Message("user", "hi, I moved to Oslo", T0),
    Message("assistant", "Welcome to Norway!", T0 + 1),
    Message("user", "I miss the sun", T0 + 2),
    Message("assistant", "Try a light lamp.", T0 + 3),
    Message("assistant", "", T0 + 4),
    Message("user", "thanks", T0 + 5),
]


def test_exchange_segments() -> None:
    segments = segment_messages("alice", CHAT, conversation_id="c", session_id="s")
    assert [s.roles for s in segments] == [("assistant", "user"), ("assistant", "user"), ("user",)]
    first = segments[0]
    assert first.text == "user: hi, I moved to Oslo\nassistant: Welcome to Norway!"
    assert first.fts_text == "hi, I moved to Oslo"  # BM25 over the user's words
    assert first.embed_text == "hi, I moved to Oslo\nWelcome to Norway!"
    assert (first.start_ts, first.end_ts) == (T0, T0 + 1)
    assert segments[2].text == "thanks" and segments[2].fts_text is None
    assert first.conversation_id == "c" and first.session_id == "s"


def test_turn_window_and_session_units() -> None:
    turns = segment_messages("alice", CHAT, config=SegmentationConfig(unit="turn"))
    assert len(turns) == 5  # the empty message is skipped
    assert turns[1].fts_text == ""  # an assistant turn gives BM25 nothing by default
    everyone = SegmentationConfig(unit="turn", fts_roles=None)
    assert segment_messages("alice", CHAT, config=everyone)[1].fts_text is None
    windows = segment_messages(
        "alice", CHAT, config=SegmentationConfig(unit="window", window=2, stride=2)
    )
    assert [len(w.text.splitlines()) for w in windows] == [2, 2, 2]
    assert windows[-1].end_ts == T0 + 5  # the tail is never dropped
    (session,) = segment_messages("alice", CHAT, config=SegmentationConfig(unit="session"))
    assert len(session.text.splitlines()) == 5
    assert segment_messages("alice", [], config=SegmentationConfig(unit="session")) == []


def test_leading_assistant_message_forms_its_own_exchange() -> None:
    chat = [Message("assistant", "Good morning!", T0), Message("user", "morning", T0 + 1)]
    segments = segment_messages("alice", chat)
    assert [s.roles for s in segments] == [("assistant",), ("user",)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"unit": "paragraph"},
        {"window": 0},
        {"stride": True},
        {"fts_roles": "user"},
        {"embed_roles": ("Bad Role",)},
    ],
)
def test_segmentation_config_validation(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        SegmentationConfig(**kwargs)


# -- config --------------------------------------------------------------------------------


def test_config_from_mapping() -> None:
    config = SemanticConfig.from_mapping(
        {
            "fusion_method": "rrf",
            "fusion_bm25_weight": 0.5,
            "fusion_rrf_k": 30,
            "segment_unit": "turn",
            "fts_roles": ["user", "assistant"],
            "fts_tokenizer": "unicode61",
            "candidates": 80,
        }
    )
    assert config.fusion.method == "rrf" and config.fusion.rrf_k == 30
    assert config.segmentation.unit == "turn"
    assert config.segmentation.fts_roles == ("user", "assistant")
    assert config.fts_tokenizer == "unicode61" and config.candidates == 80
    with pytest.raises(ConfigError, match=r"memory\.semantic\.nope"):
        SemanticConfig.from_mapping({"nope": 1})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"candidates": 0},
        {"overfetch": -1},
        {"bm25_max_df": 0},
        {"bm25_max_df": 1.5},
        {"bm25_prune_min_segments": 0},
        {"fts_tokenizer": "icu"},
        {"drop_stopwords": "yes"},
        {"collection_prefix": "Bad Prefix"},
        {"fusion": "rrf"},
    ],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        SemanticConfig(**kwargs)


# -- schema --------------------------------------------------------------------------------


def test_schema_is_registered_for_core_after_core(sem_core: EncryptedLibSQLConnection) -> None:
    schema = default_registry.get("semantic")
    assert schema.database == "core" and schema.priority == 20
    assert all(v.reversible for v in schema.versions)
    order = [s.name for s in default_registry.schemas("core")]
    assert order.index("core") < order.index("semantic")
    status = {s.schema: s for s in Migrator(sem_core, "core").status()}
    assert status["semantic"].at_head


def test_schema_rolls_back_and_reapplies(sem_core: EncryptedLibSQLConnection) -> None:
    migrator = Migrator(sem_core, "core")
    steps = migrator.downgrade(schema="semantic", to=0)
    assert [(s.schema, s.version, s.direction) for s in steps] == [
        ("semantic", 6, "down"),
        ("semantic", 5, "down"),
        ("semantic", 4, "down"),
        ("semantic", 3, "down"),
        ("semantic", 2, "down"),
        ("semantic", 1, "down"),
    ]
    tables = {
        r["name"]
        for r in sem_core.fetch_all("SELECT name FROM sqlite_master WHERE name LIKE 'semantic%'")
    }
    assert tables == set()
    assert [(s.schema, s.version) for s in migrator.upgrade()] == [
        ("semantic", 1),
        ("semantic", 2),
        ("semantic", 3),
        ("semantic", 4),
        ("semantic", 5),
        ("semantic", 6),
    ]
    assert sem_core.fetch_value("SELECT value FROM semantic_settings") is not None


# -- exports -------------------------------------------------------------------------------


def test_all_matches_public_names() -> None:
    public = {
        name
        for name, value in vars(semantic).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("aico.")
    }
    public |= {n for n in vars(semantic) if n.isupper() and not n.startswith("_")}
    # Typing aliases have no module.
    public |= {"FusionMethod", "SearchMode", "SegmentSource", "SegmentUnit"}
    assert semantic.__all__ == sorted(semantic.__all__)
    assert set(semantic.__all__) == public
