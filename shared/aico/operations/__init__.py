"""Operations on a whole data dir: encrypted backup and restore, one user's export and import,
retention and maintenance jobs, health and ``doctor``.

Every function here is what an ``aico`` command calls; the commands only parse and format.
"""

from __future__ import annotations

from aico.operations.backup import (
    BackupInfo,
    BackupReport,
    BackupSettings,
    VerifyReport,
    backup_directory,
    backup_due,
    create_backup,
    find_backup,
    list_backups,
    prune_backups,
    run_scheduled_backup,
    verify_backup,
)
from aico.operations.compaction import compact_working_memory
from aico.operations.doctor import DoctorReport, Finding, RepairAction, doctor
from aico.operations.drift import IndexDrift, measure_drift
from aico.operations.export import ExportReport, ImportReport, export_user, import_user
from aico.operations.health import HealthReport, health_report
from aico.operations.jobs import (
    JOBS,
    SERVICE_JOBS,
    JobReport,
    JobSpec,
    job_interval,
    run_job,
    run_recorded,
)
from aico.operations.monitoring import monitoring_snapshot, start_monitoring, stop_monitoring
from aico.operations.restore import RestoreReport, restore_backup
from aico.operations.settings import LifecycleSettings, MonitoringSettings, PerformanceSettings

__all__ = [
    "JOBS",
    "SERVICE_JOBS",
    "BackupInfo",
    "BackupReport",
    "BackupSettings",
    "DoctorReport",
    "ExportReport",
    "Finding",
    "HealthReport",
    "ImportReport",
    "IndexDrift",
    "JobReport",
    "JobSpec",
    "LifecycleSettings",
    "MonitoringSettings",
    "PerformanceSettings",
    "RepairAction",
    "RestoreReport",
    "VerifyReport",
    "backup_directory",
    "backup_due",
    "compact_working_memory",
    "create_backup",
    "doctor",
    "export_user",
    "find_backup",
    "health_report",
    "import_user",
    "job_interval",
    "list_backups",
    "measure_drift",
    "monitoring_snapshot",
    "prune_backups",
    "restore_backup",
    "run_job",
    "run_recorded",
    "run_scheduled_backup",
    "start_monitoring",
    "stop_monitoring",
    "verify_backup",
]
