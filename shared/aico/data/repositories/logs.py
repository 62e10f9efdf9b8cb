"""``LogRepository``: structured log rows in the encrypted core database.

Logs may mention what a user said, so they live inside the encrypted file, never in a
plaintext log file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aico.data.repositories._base import Clock, Connection, dump_json, load_json, now, require_text
from aico.errors import InvalidInput

__all__ = ["LOG_LEVELS", "LogEntry", "LogRepository"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class LogEntry:
    id: int
    timestamp: float
    level: str
    subsystem: str
    module: str | None
    message: str
    user_id: str | None
    extra: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LogEntry:
        return cls(
            id=row["id"],
            timestamp=row["timestamp"],
            level=row["level"],
            subsystem=row["subsystem"],
            module=row["module"],
            message=row["message"],
            user_id=row["user_id"],
            extra=load_json(row["extra"]),
        )


class LogRepository:
    """Insert and read log rows; takes an open connection, never opens a database."""

    def __init__(self, conn: Connection, *, clock: Clock | None = None) -> None:
        self.conn = conn
        self.clock = clock

    def insert_log(
        self,
        *,
        level: str,
        message: str,
        subsystem: str = "aico",
        module: str | None = None,
        user_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Write one row and return its id."""
        level = level.upper() if isinstance(level, str) else level
        if level not in LOG_LEVELS:
            raise InvalidInput(f"level must be one of {', '.join(LOG_LEVELS)}")
        require_text("message", message, max_len=100_000)
        require_text("subsystem", subsystem, max_len=100)
        result = self.conn.execute(
            "INSERT INTO logs (timestamp, level, subsystem, module, message, user_id, extra) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                now(self.clock),
                level,
                subsystem,
                module,
                message,
                user_id,
                None if extra is None else dump_json("extra", extra),
            ),
        )
        return int(result.lastrowid)

    def recent(self, *, limit: int = 100, level: str | None = None) -> list[LogEntry]:
        """Newest first, optionally only rows at ``level`` or above."""
        if not isinstance(limit, int) or limit < 1:
            raise InvalidInput("limit must be a positive integer")
        if level is None:
            rows = self.conn.fetch_all(
                "SELECT * FROM logs ORDER BY timestamp DESC, id DESC LIMIT ?", (limit,)
            )
        else:
            level = level.upper()
            if level not in LOG_LEVELS:
                raise InvalidInput(f"level must be one of {', '.join(LOG_LEVELS)}")
            allowed = LOG_LEVELS[LOG_LEVELS.index(level) :]
            marks = ", ".join("?" for _ in allowed)
            rows = self.conn.fetch_all(
                f"SELECT * FROM logs WHERE level IN ({marks}) "
                "ORDER BY timestamp DESC, id DESC LIMIT ?",
                (*allowed, limit),
            )
        return [LogEntry.from_row(r) for r in rows]

    def purge(self, *, older_than: float) -> int:
        """Delete rows older than a unix timestamp; returns how many went."""
        return int(
            self.conn.execute("DELETE FROM logs WHERE timestamp < ?", (older_than,)).rowcount
        )

    def delete_for_user(self, user_id: str) -> int:
        """Forget path: logs are not foreign-keyed to users (they outlive them), so delete here."""
        return int(self.conn.execute("DELETE FROM logs WHERE user_id = ?", (user_id,)).rowcount)
