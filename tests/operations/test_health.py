"""``health_report``: every part measured from real stores; read-only writes nothing.

Slow statements are logged with their shape only (literals replaced, parameters never
seen), error counts and backlog come from the stores, growth from the health job's runs.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ops_support import ALICE, Clock, config, create, open_manager, tree_hashes

from aico.operations.health import health_report
from aico.operations.jobs import run_recorded
from aico.operations.monitoring import (
    monitoring_snapshot,
    start_monitoring,
    statement_shape,
    stop_monitoring,
)
from aico.operations.settings import MonitoringSettings

SECRET = "zqsecretmarmalade"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    create(root)
    return root


@pytest.fixture
def monitoring():
    yield
    stop_monitoring()


def test_a_read_only_health_report_reads_everything_and_writes_nothing(data):
    before = tree_hashes(data)
    with open_manager(data, read_only=True) as manager:
        report = health_report(manager)
    assert tree_hashes(data) == before
    assert report.read_only
    json.dumps(report.to_dict())  # JSON-able as it is
    sizes = {s.name: s for s in report.stores}
    assert set(sizes) >= {"core", "conversations", "working_memory", "chroma", "backups"}
    assert sizes["core"].bytes > 0 and sizes["core"].growth_bytes_per_day is None
    drift = report.drift
    assert drift is not None and drift.ok
    assert drift.messages == 13 and drift.segments == drift.fts_rows == drift.vectors
    assert drift.chroma_source == "catalog" and drift.chroma_ids == drift.vectors
    # Every session's recent turns stay in working memory for the TTL, ended or not.
    assert report.cache.working_expected == 13 and report.cache.working_coverage == 1.0
    assert report.backlog.semantic_outbox == 0 and report.index["state"] == "ok"
    assert report.disk.total_bytes > 0 and not report.disk.alert


def test_a_writable_manager_compares_chroma_through_its_index(data):
    with open_manager(data) as manager:
        manager.semantic.wait_ready()
        report = health_report(manager)
    assert report.drift is not None and report.drift.chroma_source == "index"
    assert report.drift.chroma_missing == 0


def test_drift_and_backlog_show_what_is_queued(data):
    from aico.ai.memory.semantic import Message

    with open_manager(data) as manager:
        manager.semantic.add_messages(
            ALICE, [Message("user", "zqnew note about harbours", time.time())], index=False
        )
        report = health_report(manager)
        assert report.backlog.semantic_outbox == 1
        assert report.drift is not None and report.drift.unindexed == 0  # queued, not lost
        assert health_report(manager, drift=False).drift is None


def test_disk_usage_over_the_threshold_is_an_alert(data):
    cfg = config({"storage": {"monitoring": {"disk_usage_alert_threshold": 0.000001}}})
    with open_manager(data, cfg, read_only=True) as manager:
        report = health_report(manager)
    assert report.disk.alert and report.status in ("warning", "critical")
    assert any(a.startswith("disk") for a in report.alerts)


def test_growth_is_measured_against_the_health_jobs_records(data):
    clock = Clock(time.time())
    with open_manager(data, clock=clock) as manager:
        first = run_recorded(manager, "health-check")
        assert first.done["bytes.core"] > 0 and "status" in first.done
        manager.store.connection("core").execute_many(
            "INSERT INTO logs (level, message) VALUES ('INFO', ?)",
            [("x" * 2000,) for _ in range(200)],
        )
        clock.now += 3600
        report = health_report(manager)
    core = next(s for s in report.stores if s.name == "core")
    assert core.growth_bytes_per_day is not None and core.growth_bytes_per_day > 0
    assert any(j.name == "health-check" for j in report.maintenance)


def test_slow_statements_are_kept_as_shapes_without_values(data, monitoring, caplog):
    start_monitoring(MonitoringSettings(slow_query_threshold_s=0.000001))
    with open_manager(data) as manager, caplog.at_level(logging.WARNING):
        core = manager.store.connection("core")
        core.fetch_all(f"SELECT count(*) FROM logs WHERE message != '{SECRET}' AND id > 42")
        core.fetch_all("SELECT count(*) FROM logs WHERE message = ?", (SECRET + "param",))
        report = health_report(manager, drift=False)
    slow = report.slow_queries
    assert slow.active and slow.total >= 2
    shapes = [q.shape for q in slow.slowest]
    assert "SELECT count(*) FROM logs WHERE message != ? AND id > ?" in shapes
    text = json.dumps(report.to_dict()) + caplog.text
    assert SECRET not in text and "42" not in shapes[0]


def test_the_shape_of_a_statement_keeps_no_literal():
    sql = "UPDATE t SET a = 'it''s me', b = x'00ff', c = -1.5e3 WHERE d IN (1, 2, 3) AND e = \"q\""
    assert statement_shape(sql) == "UPDATE t SET a = ?, b = ?, c = ? WHERE d IN (?, …) AND e = ?"
    assert statement_shape("SELECT t1.c2 FROM t1") == "SELECT t1.c2 FROM t1"


def test_monitoring_off_observes_nothing(data, monitoring):
    start_monitoring(MonitoringSettings(query_performance_logging=False))
    slow, errors = monitoring_snapshot()
    assert not slow.active and errors.active


def test_errors_logged_by_aico_are_counted_by_logger(data, monitoring):
    start_monitoring(MonitoringSettings())
    logging.getLogger("aico.test.health").error("something failed")
    with open_manager(data, read_only=True) as manager:
        report = health_report(manager, drift=False)
    assert report.errors.process.errors >= 1
    assert report.errors.process.by_logger.get("aico.test.health") == 1
    assert any("errors logged" in a for a in report.alerts)


def test_the_newest_backup_and_its_age(data):
    backup = pytest.importorskip("aico.operations.backup")
    with open_manager(data) as manager:
        backup.create_backup(manager.store, config=config())
    with open_manager(data, read_only=True) as manager:
        report = health_report(manager, drift=False)
    assert report.backup.count == 1 and not report.backup.alert
    assert report.backup.age_s is not None and report.backup.age_s < 600
    assert "no recent backup" not in report.alerts
