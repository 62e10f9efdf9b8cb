"""Layered configuration: defaults, user file, AICO_* environment, typed errors."""

from __future__ import annotations

import re

import pytest

from aico.config import load_config, resolve_data_dir
from aico.data.libsql import SQLiteSettings
from aico.errors import ConfigError


def test_defaults_are_complete_and_valid():
    config = load_config(env={})
    settings = SQLiteSettings.from_mapping(config.section("storage.sqlite"))
    assert settings.journal_mode == "WAL" and settings.secure_delete
    assert config.get("memory.working.ttl_hours") == 24.0


def test_user_file_and_env_layering(tmp_path):
    user = tmp_path / "aico.toml"
    user.write_text('[storage.sqlite]\nsynchronous = "FULL"\nbusy_timeout_ms = 100\n')
    env = {"AICO_STORAGE__SQLITE__BUSY_TIMEOUT_MS": "250", "AICO_MEMORY__WORKING__TTL_HOURS": "12"}
    config = load_config(user, env=env)
    assert config.get("storage.sqlite.synchronous") == "FULL"
    assert config.get("storage.sqlite.busy_timeout_ms") == 250
    assert config.get("memory.working.ttl_hours") == 12.0
    assert config.source_files == (user,)


def test_aico_config_env_points_to_the_file(tmp_path):
    user = tmp_path / "c.toml"
    user.write_text("[security]\nuse_keyring = false\n")
    assert load_config(env={"AICO_CONFIG": str(user)}).get("security.use_keyring") is False
    with pytest.raises(ConfigError, match="not a file"):
        load_config(env={"AICO_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "[storage.sqlite]\nsynchronus = 'FULL'\n",
            "unknown config key 'storage.sqlite.synchronus'",
        ),
        ("[storage]\nintegrity_seal = 'yes'\n", "'storage.integrity_seal' must be a boolean"),
        ("[nope]\nx = 1\n", "unknown config key 'nope'"),
        ("[storage\n", "not valid TOML"),
    ],
)
def test_bad_user_file_names_the_key(tmp_path, text, match):
    user = tmp_path / "aico.toml"
    user.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(match)):
        load_config(user, env={})


def test_bad_env_value_and_bad_pragma_value():
    with pytest.raises(ConfigError, match="busy_timeout_ms"):
        load_config(env={"AICO_STORAGE__SQLITE__BUSY_TIMEOUT_MS": "soon"})
    config = load_config(env={"AICO_STORAGE__SQLITE__SYNCHRONOUS": "SOMETIMES"})
    with pytest.raises(ConfigError, match=r"storage\.sqlite\.synchronous"):
        SQLiteSettings.from_mapping(config.section("storage.sqlite"))


def test_data_dir_resolution(tmp_path):
    assert resolve_data_dir(load_config(env={}), {"AICO_DATA_DIR": str(tmp_path)}) == tmp_path
    config = load_config(env={}, overrides={"storage": {"data_dir": str(tmp_path / "x")}})
    assert resolve_data_dir(config, {}) == tmp_path / "x"
    assert resolve_data_dir(load_config(env={}), {}).name == "aico"


def test_semantic_retrieval_settings_reach_the_store_config() -> None:
    from aico.ai.memory.semantic import SemanticConfig
    from aico.ai.memory.stores import semantic_config

    assert semantic_config(load_config(env={})) == SemanticConfig()
    tuned = semantic_config(
        load_config(
            env={
                "AICO_MEMORY__SEMANTIC__SEGMENT_UNIT": "session",
                "AICO_MEMORY__SEMANTIC__EMBED_ROLES": '["user"]',
                "AICO_MEMORY__SEMANTIC__FUSION_BM25_WEIGHT": "0.8",
            }
        )
    )
    assert tuned.segmentation.unit == "session"
    assert tuned.segmentation.embed_roles == ("user",)
    assert tuned.fusion.bm25_weight == 0.8
    with pytest.raises(ConfigError):
        semantic_config(load_config(env={"AICO_MEMORY__SEMANTIC__SEGMENT_UNIT": "paragraph"}))
    with pytest.raises(ConfigError):
        load_config(env={"AICO_MEMORY__SEMANTIC__FTS_ROLES": "user"})  # not a list
