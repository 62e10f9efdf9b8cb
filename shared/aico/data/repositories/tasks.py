"""``TaskRepository``: scheduled jobs and their run history, in the core ``tasks`` table.

Two kinds of rows share the table:

- a **job** (``schedule`` set, e.g. ``every 300s``; ``task_id`` is the job's name): its
  status, consecutive ``attempts``, ``last_error``, ``last_run_at`` and ``next_run_at``.
  It survives a restart, so a job keeps its place in the schedule;
- a **run** (``schedule`` NULL, ``task_id`` ``<job>@<id>``): one finished execution, kept
  for ``aico tasks list --history`` and pruned to the newest few per job.

``start`` claims a job in one ``UPDATE … RETURNING`` (status ``running``), so a job never
runs twice at once; a job still ``running`` when its process died is found by ``recover``
on the next start and retried. Errors are stored as given: callers pass an error's type and
aico's message, which never holds user content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aico.data.repositories._base import Clock, Connection, dump_json, load_json, new_id, now
from aico.errors import InvalidInput, NotFound
from aico.validation import check_id, check_number, check_text

__all__ = ["TASK_STATUSES", "Task", "TaskRepository"]

TASK_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
_RUNNABLE = ("pending", "completed", "failed")
_MAX_ERROR = 500
_MAX_INTERVAL_S = 366 * 86_400.0


@dataclass(frozen=True)
class Task:
    task_id: str
    task_type: str
    status: str
    schedule: str | None
    payload: dict[str, Any]
    attempts: int
    last_error: str | None
    next_run_at: float | None
    last_run_at: float | None
    created_at: float
    updated_at: float

    @property
    def is_job(self) -> bool:
        """A scheduled job (as opposed to the record of one run)."""
        return self.schedule is not None

    @property
    def interval_s(self) -> float | None:
        """The job's period in seconds (``schedule`` is ``every <seconds>s``)."""
        if self.schedule is None or not self.schedule.startswith("every "):
            return None
        return float(self.schedule[len("every ") : -1])

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        return cls(
            task_id=str(row["task_id"]),
            task_type=str(row["task_type"]),
            status=str(row["status"]),
            schedule=row["schedule"],
            payload=load_json(row["payload"]),
            attempts=int(row["attempts"]),
            last_error=row["last_error"],
            next_run_at=row["next_run_at"],
            last_run_at=row["last_run_at"],
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
        )


def _schedule_text(every: float) -> str:
    seconds = check_number(every, "every", low=0.001, high=_MAX_INTERVAL_S)
    return f"every {seconds:g}s"


def _error_text(error: str) -> str:
    text = check_text(error, "error", required=True, limit=10_000)
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


class TaskRepository:
    """Scheduled jobs and their runs; takes an open core-database connection."""

    def __init__(self, conn: Connection, *, clock: Clock | None = None) -> None:
        self.conn = conn
        self.clock = clock

    # -- jobs ------------------------------------------------------------------------

    def schedule(self, task_id: str, task_type: str, *, every: float) -> Task:
        """Create the job, or update its period, keeping its state and place in time.

        A new job is due at once. An existing one keeps its ``next_run_at`` unless the new
        period would have it run sooner (then it runs one new period after its last run).
        """
        check_id(task_id, "task_id")
        check_id(task_type, "task_type")
        schedule = _schedule_text(every)
        ts = now(self.clock)
        with self.conn.transaction():
            row = self.conn.fetch_one("SELECT * FROM tasks WHERE task_id = ?", (task_id,))
            if row is None:
                self.conn.execute(
                    "INSERT INTO tasks (task_id, task_type, status, schedule, next_run_at, "
                    "created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?, ?)",
                    (task_id, task_type, schedule, ts, ts, ts),
                )
            else:
                current = Task.from_row(row)
                if not current.is_job:
                    raise InvalidInput("this task_id is the record of a run, not a job")
                next_run = current.next_run_at if current.next_run_at is not None else ts
                if current.last_run_at is not None:
                    next_run = min(next_run, current.last_run_at + float(every))
                self.conn.execute(
                    "UPDATE tasks SET task_type = ?, schedule = ?, next_run_at = ?, "
                    "updated_at = ? WHERE task_id = ?",
                    (task_type, schedule, next_run, ts, task_id),
                )
        return self.get(task_id)

    def get(self, task_id: str) -> Task:
        row = self.conn.fetch_one(
            "SELECT * FROM tasks WHERE task_id = ?", (check_id(task_id, "task_id"),)
        )
        if row is None:
            raise NotFound("no task with this task_id")
        return Task.from_row(row)

    def jobs(self) -> list[Task]:
        """Every scheduled job, soonest first."""
        rows = self.conn.fetch_all(
            "SELECT * FROM tasks WHERE schedule IS NOT NULL ORDER BY next_run_at, task_id"
        )
        return [Task.from_row(r) for r in rows]

    def due(self, at: float) -> list[Task]:
        """Jobs whose ``next_run_at`` has come and that are not running, soonest first."""
        marks = ", ".join("?" * len(_RUNNABLE))
        rows = self.conn.fetch_all(
            f"SELECT * FROM tasks WHERE schedule IS NOT NULL AND status IN ({marks}) "
            "AND next_run_at <= ? ORDER BY next_run_at, task_id",
            (*_RUNNABLE, at),
        )
        return [Task.from_row(r) for r in rows]

    def start(self, task_id: str) -> Task | None:
        """Claim the job (``running``, one more attempt); None if it is running already."""
        ts = now(self.clock)
        marks = ", ".join("?" * len(_RUNNABLE))
        with self.conn.transaction():  # UPDATE ... RETURNING runs on the writer
            row = self.conn.fetch_one(
                "UPDATE tasks SET status = 'running', attempts = attempts + 1, last_run_at = ?, "
                "updated_at = ? WHERE task_id = ? AND schedule IS NOT NULL "
                f"AND status IN ({marks}) RETURNING *",
                (ts, ts, check_id(task_id, "task_id"), *_RUNNABLE),
            )
        return None if row is None else Task.from_row(row)

    def complete(
        self, task_id: str, *, next_run_at: float, result: Mapping[str, Any] | None = None
    ) -> Task:
        """The run succeeded: ``completed``, attempts back to 0, the result kept (counts)."""
        return self._finish(task_id, "completed", next_run_at, None, result)

    def fail(self, task_id: str, error: str, *, next_run_at: float) -> Task:
        """The run failed: ``failed`` with its error; retried at ``next_run_at``."""
        return self._finish(task_id, "failed", next_run_at, _error_text(error), None)

    def _finish(
        self,
        task_id: str,
        status: str,
        next_run_at: float,
        error: str | None,
        result: Mapping[str, Any] | None,
    ) -> Task:
        check_id(task_id, "task_id")
        check_number(next_run_at, "next_run_at", low=0.0, high=1e12)
        ts = now(self.clock)
        payload = None if result is None else dump_json("result", {"last_result": dict(result)})
        updated = self.conn.execute(
            "UPDATE tasks SET status = ?, "
            "attempts = CASE WHEN ? = 'completed' THEN 0 ELSE attempts END, last_error = ?, "
            "next_run_at = ?, updated_at = ?, payload = coalesce(?, payload) "
            "WHERE task_id = ? AND status = 'running'",
            (status, status, error, next_run_at, ts, payload, task_id),
        )
        if updated.rowcount == 0:
            raise NotFound("no running task with this task_id")
        return self.get(task_id)

    def recover(self) -> list[str]:
        """Jobs left ``running`` by a process that died: failed, due now (retried)."""
        ts = now(self.clock)
        with self.conn.transaction():
            rows = self.conn.fetch_all(
                "UPDATE tasks SET status = 'failed', next_run_at = ?, updated_at = ?, "
                "last_error = 'interrupted: the process stopped while the job ran' "
                "WHERE schedule IS NOT NULL AND status = 'running' RETURNING task_id",
                (ts, ts),
            )
        return sorted(str(r["task_id"]) for r in rows)

    # -- run history -----------------------------------------------------------------

    def record_run(
        self,
        job: Task,
        *,
        status: str,
        started_at: float,
        finished_at: float,
        error: str | None = None,
        result: Mapping[str, Any] | None = None,
        keep: int = 50,
    ) -> Task:
        """Keep one finished run of ``job``; only its newest ``keep`` runs are kept."""
        if status not in ("completed", "failed"):
            raise InvalidInput("a run's status is completed or failed")
        run_id = f"{job.task_id}@{new_id()}"
        payload: dict[str, Any] = {
            "duration_s": round(finished_at - started_at, 6),
            "attempt": job.attempts,
        }
        if result:
            payload["result"] = dict(result)
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO tasks (task_id, task_type, status, schedule, payload, attempts, "
                "last_error, next_run_at, last_run_at, created_at, updated_at) "
                "VALUES (?, ?, ?, NULL, ?, ?, ?, NULL, ?, ?, ?)",
                (
                    run_id,
                    job.task_type,
                    status,
                    dump_json("result", payload),
                    job.attempts,
                    None if error is None else _error_text(error),
                    started_at,
                    finished_at,
                    finished_at,
                ),
            )
            self.conn.execute(
                "DELETE FROM tasks WHERE schedule IS NULL AND task_id LIKE ? ESCAPE '\\' "
                "AND task_id NOT IN (SELECT task_id FROM tasks WHERE schedule IS NULL "
                "AND task_id LIKE ? ESCAPE '\\' ORDER BY last_run_at DESC, task_id LIMIT ?)",
                (_like_prefix(job.task_id), _like_prefix(job.task_id), keep),
            )
        return self.get(run_id)

    def history(self, task_id: str | None = None, *, limit: int = 20) -> list[Task]:
        """Finished runs, newest first (of one job when ``task_id`` is given)."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be an integer between 1 and 10000")
        if task_id is None:
            rows = self.conn.fetch_all(
                "SELECT * FROM tasks WHERE schedule IS NULL "
                "ORDER BY last_run_at DESC, task_id LIMIT ?",
                (limit,),
            )
        else:
            rows = self.conn.fetch_all(
                "SELECT * FROM tasks WHERE schedule IS NULL AND task_id LIKE ? ESCAPE '\\' "
                "ORDER BY last_run_at DESC, task_id LIMIT ?",
                (_like_prefix(check_id(task_id, "task_id")), limit),
            )
        return [Task.from_row(r) for r in rows]


def _like_prefix(task_id: str) -> str:
    escaped = task_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}@%"
