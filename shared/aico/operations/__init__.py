"""Operations on a whole data dir: encrypted backup and restore, one user's export and import.

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
from aico.operations.restore import RestoreReport, restore_backup

__all__ = [
    "BackupInfo",
    "BackupReport",
    "BackupSettings",
    "RestoreReport",
    "VerifyReport",
    "backup_directory",
    "backup_due",
    "create_backup",
    "find_backup",
    "list_backups",
    "prune_backups",
    "restore_backup",
    "run_scheduled_backup",
    "verify_backup",
]
