"""Layered TOML configuration: shipped defaults, then a user file, then ``AICO_*`` variables.

The shipped defaults list every key a user may set, with its type. Anything else, or a
value of the wrong type, is a ``ConfigError`` naming the dotted key: a typo must never be
silently ignored in a program that guards someone's diary.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs

from aico.errors import ConfigError

__all__ = ["Config", "load_config", "resolve_data_dir"]

ENV_PREFIX = "AICO_"
# Environment variables that are not configuration keys.
_RESERVED_ENV = {
    "DATA_DIR",
    "CONFIG",
    "PASSPHRASE",
    "PASSPHRASE_FILE",
    "NEW_PASSPHRASE",
    "CURRENT_PASSPHRASE",  # aico backup restore: the replaced data dir's, if it differs
    "EXPORT_PASSPHRASE",  # aico export / import: the passphrase chosen for an export
}


def _load_defaults() -> dict[str, Any]:
    text = resources.files("aico.config").joinpath("defaults.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")


def _coerce(key: str, default: Any, value: Any) -> Any:
    """Check ``value`` against the default's type; ints are accepted where floats are."""
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a table")
        return value
    if isinstance(default, float) and type(value) is int:
        return float(value)
    if type(value) is type(default):
        return value
    raise ConfigError(f"config key {key!r} must be {_type_name(default)}, got {_type_name(value)}")


def _merge(
    base: dict[str, Any],
    override: Mapping[str, Any],
    prefix: str = "",
    refused: Mapping[str, str] | None = None,
) -> None:
    """``refused``: dotted keys aico deliberately does not honour -> why (``[refused]``)."""
    for name, value in override.items():
        key = f"{prefix}{name}"
        if name not in base:
            why = (refused or {}).get(key)
            if why:
                raise ConfigError(f"config key {key!r} is not supported: {why}")
            raise ConfigError(f"unknown config key {key!r}")
        if isinstance(base[name], dict):
            _merge(base[name], _coerce(key, base[name], value), f"{key}.", refused)
        else:
            base[name] = _coerce(key, base[name], value)


def _parse_env_value(raw: str) -> Any:
    """Environment values are TOML literals when they parse as one, else plain strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name[len(ENV_PREFIX) :] in _RESERVED_ENV:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            raise ConfigError(f"malformed config variable {name!r}")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config variable {name!r} conflicts with another")
        node[parts[-1]] = _parse_env_value(raw)
    return tree


class Config:
    """Validated configuration; read values with ``section("storage.sqlite")`` or ``get``."""

    def __init__(self, values: dict[str, Any], source_files: tuple[Path, ...] = ()) -> None:
        self._values = values
        self.source_files = source_files

    def section(self, dotted: str) -> dict[str, Any]:
        node: Any = self._values
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"unknown config section {dotted!r}")
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"config key {dotted!r} is not a section")
        return {k: v for k, v in node.items() if not isinstance(v, dict)}

    def get(self, dotted: str) -> Any:
        section, _, key = dotted.rpartition(".")
        values = self.section(section) if section else self._values
        if key not in values:
            raise ConfigError(f"unknown config key {dotted!r}")
        return values[key]

    def as_dict(self) -> dict[str, Any]:
        import copy

        return copy.deepcopy(self._values)


def _user_config_path(env: Mapping[str, str]) -> Path | None:
    if env.get("AICO_CONFIG"):
        path = Path(env["AICO_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"AICO_CONFIG points to {path}, which is not a file")
        return path
    path = Path(platformdirs.user_config_dir("aico")) / "aico.toml"
    return path if path.is_file() else None


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge defaults ← user file (``path`` / ``AICO_CONFIG`` / platform dir) ← env ← overrides."""
    env = os.environ if env is None else env
    values = _load_defaults()
    refused = {str(k): str(v) for k, v in values.pop("refused", {}).items()}
    sources: list[Path] = []
    user_path = Path(path) if path is not None else _user_config_path(env)
    if user_path is not None:
        try:
            with open(user_path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {user_path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {user_path} is not valid TOML: {exc}") from None
        _merge(values, data, refused=refused)
        sources.append(user_path)
    _merge(values, _env_overrides(env), refused=refused)
    if overrides:
        _merge(values, overrides, refused=refused)
    return Config(values, tuple(sources))


def resolve_data_dir(config: Config | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``AICO_DATA_DIR``, else ``storage.data_dir``, else platformdirs' user data dir."""
    env = os.environ if env is None else env
    if env.get("AICO_DATA_DIR"):
        return Path(env["AICO_DATA_DIR"]).expanduser()
    configured = config.get("storage.data_dir") if config is not None else ""
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("aico"))
