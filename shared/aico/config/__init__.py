"""Configuration: shipped TOML defaults, a user file, and ``AICO_*`` environment variables."""

from aico.config.loader import Config, load_config, resolve_data_dir

__all__ = ["Config", "load_config", "resolve_data_dir"]
