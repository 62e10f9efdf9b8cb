"""``[storage.lifecycle]``, ``[storage.monitoring]``, ``[storage.performance]``: every key of the
specification honoured or refused with the reason; durations as the specification writes them."""

from __future__ import annotations

import pytest

from aico.config import load_config
from aico.errors import ConfigError
from aico.operations._durations import parse_duration
from aico.operations.settings import LifecycleSettings, MonitoringSettings, PerformanceSettings


def test_the_shipped_defaults_are_the_specifications():
    config = load_config(env={})
    lifecycle = LifecycleSettings.from_config(config)
    assert (lifecycle.conversation_archive_days, lifecycle.conversation_max_per_project) == (
        365,
        1000,
    )
    assert (lifecycle.file_version_retention_days, lifecycle.file_version_max_count) == (90, 50)
    monitoring = MonitoringSettings.from_config(config)
    assert monitoring.health_check_interval_s == 300.0
    assert monitoring.slow_query_threshold_s == 1.0
    assert monitoring.disk_usage_alert_threshold == 0.85 and monitoring.query_performance_logging
    assert PerformanceSettings.from_config(config).index_rebuild_threshold == 10_000


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("storage.lifecycle.pattern_learning_min_samples", "learns no patterns"),
        ("storage.lifecycle.success_correlation_decay_rate", "learns no patterns"),
        ("storage.performance.concurrent_reads", "reader_pool_size"),
        ("storage.performance.connection_pool_size", "reader_pool_size"),
        ("storage.performance.batch_insert_size", "batch"),
        ("storage.performance.query_timeout", "busy_timeout_ms"),
    ],
)
def test_keys_aico_does_not_honour_are_refused_with_the_reason(key, why):
    section, name = key.rsplit(".", 1)
    env_name = "AICO_" + "__".join(key.upper().split("."))
    with pytest.raises(ConfigError, match=f"{key}.*not supported.*{why}"):
        load_config(env={env_name: "1"})
    tree: dict = {}
    node = tree
    for part in section.split("."):
        node = node.setdefault(part, {})
    node[name] = 1
    with pytest.raises(ConfigError, match="not supported"):
        load_config(env={}, overrides=tree)


def test_an_unknown_key_is_still_refused_and_the_reasons_cannot_be_set():
    with pytest.raises(ConfigError, match=r"unknown config key 'storage\.lifecycle\.typo'"):
        load_config(env={}, overrides={"storage": {"lifecycle": {"typo": 1}}})
    with pytest.raises(ConfigError, match="unknown config key 'refused'"):
        load_config(env={}, overrides={"refused": {}})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5m", 300.0), ("1s", 1.0), ("250ms", 0.25), ("24h", 86_400.0), ("7d", 604_800.0), (3, 3.0)],
)
def test_durations(value, seconds):
    assert parse_duration(value, "k") == seconds


@pytest.mark.parametrize("value", ["5", "five minutes", "-1s", True, "1y"])
def test_bad_durations_name_the_key(value):
    overrides = {"storage": {"monitoring": {"slow_query_threshold": value}}}
    with pytest.raises(ConfigError, match=r"storage\.monitoring\.slow_query_threshold"):
        MonitoringSettings.from_config(load_config(env={}, overrides=overrides))


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("lifecycle", "conversation_archive_days", -1),
        ("monitoring", "disk_usage_alert_threshold", 1.5),
        ("performance", "index_rebuild_threshold", -5),
    ],
)
def test_values_out_of_range_are_refused(section, key, value):
    config = load_config(env={}, overrides={"storage": {section: {key: value}}})
    settings = {
        "lifecycle": LifecycleSettings,
        "monitoring": MonitoringSettings,
        "performance": PerformanceSettings,
    }[section]
    with pytest.raises(ConfigError, match=key):
        settings.from_config(config)
