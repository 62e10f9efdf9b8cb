"""``Analytics``: the encrypted DuckDB copy of one data dir, its export, views and SQL.

The copy lives in ``<data dir>/analytics/copy-<key id>.duckdb``, an AES-GCM DuckDB file
under ``HKDF(master, "aico/v1/analytics/duckdb")``; DuckDB's WAL is encrypted with it and
its spill files (``analytics/tmp``) with ``temp_file_encryption``. It is derived: deleting
it loses nothing an export does not rebuild, and a master-key rotation simply leaves it
behind (the next export removes the file of the old key and starts afresh).

The file is held only while a verb runs (DuckDB locks it against other processes), so the
backend and a CLI command can take turns. Read verbs (views, SQL, the report) attach it
read-only and write nothing; ``export`` and ``purge_user`` write it, and rebuild it whole
whenever rows were removed, so a forgotten user's rows leave no block behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import duckdb

from aico.analytics import _duck
from aico.analytics._duck import ANALYTICS_PURPOSE, CATALOG, translate
from aico.analytics.export import Exporter, ExportReport
from aico.analytics.recording import ensure_schema, record_context
from aico.analytics.views import VIEW_NAMES, VIEWS, create_views
from aico.errors import AicoError, InvalidInput, NotFound, ReadOnly, StoreBusy
from aico.validation import check_id, check_text

if TYPE_CHECKING:
    from aico.ai.memory.context import ContextBundle
    from aico.ai.memory.manager import MemoryManager

__all__ = ["Analytics", "Rows"]

log = logging.getLogger(__name__)

MAX_SQL: Final = 20_000
MAX_ROWS: Final = 100_000
_BUSY_WAIT_S: Final = 10.0


@dataclass(frozen=True)
class Rows:
    """A query's result: column names and rows (tuples), at most ``limit`` of them."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool = False

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


def _fetch(cursor: duckdb.DuckDBPyConnection, limit: int) -> Rows:
    columns = tuple(d[0] for d in cursor.description or ())
    rows = cursor.fetchmany(limit + 1)
    return Rows(columns, [tuple(r) for r in rows[:limit]], truncated=len(rows) > limit)


class Analytics:
    """The analytical side of one manager's data dir (see the module docstring)."""

    def __init__(
        self,
        manager: MemoryManager,
        *,
        batch: int = 2_000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._manager = manager
        self._batch = batch
        self._clock = clock or manager.clock
        self._lock = threading.RLock()
        self._schema_ready = False
        self._writer: duckdb.DuckDBPyConnection | None = None

    # -- where ---------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """``<data dir>/analytics``: the copy and DuckDB's (encrypted) spill files."""
        return self._manager.store.layout.analytics

    @property
    def path(self) -> Path:
        """The copy of the current master key (its key id is in the name, not a secret)."""
        return self.directory / f"copy-{self._manager.store.master_key.key_id}.duckdb"

    def _key(self) -> bytes:
        return self._manager.store.master_key.subkey(ANALYTICS_PURPOSE)

    def _prepare_dirs(self) -> Path:
        tmp = self.directory / "tmp"
        for d in (self.directory, tmp):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        return tmp

    @contextlib.contextmanager
    def _session(self, *, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection with the copy attached; the file is released after.

        Writers reuse one in-memory instance (httpfs loaded once: ~0.1 s saved per
        export), attaching the file for the verb and detaching it after. Readers get a
        fresh instance each time, because they lock its configuration for good.
        """
        if write and self._manager.read_only:
            raise ReadOnly("analytics cannot export from a data dir opened read-only")
        if not write and not self.path.exists():
            raise NotFound("no analytics export yet; run `aico analytics export`")
        tmp = self._prepare_dirs() if write else self.directory / "tmp"
        with self._lock:
            if write:
                if self._writer is None:
                    self._writer = _duck.connect(tmp)
                con = self._writer
            else:
                con = _duck.connect(tmp if tmp.is_dir() else self.directory)
            try:
                self._attach(con, read_only=not write)
                yield con
            except BaseException:
                if write:  # a failed verb may leave the instance in any state: start anew
                    self._writer = None
                    with contextlib.suppress(duckdb.Error):
                        con.close()
                raise
            finally:
                if write and self._writer is con:
                    for alias in ("fresh", CATALOG):
                        with contextlib.suppress(duckdb.Error):
                            con.execute(f"DETACH DATABASE IF EXISTS {alias}")
                elif not write:
                    with contextlib.suppress(duckdb.Error):
                        con.close()

    def _attach(self, con: duckdb.DuckDBPyConnection, *, read_only: bool) -> None:
        """Attach the copy; another process holding it is ``StoreBusy`` after 10 s of retries."""
        deadline = time.monotonic() + _BUSY_WAIT_S
        while True:
            try:
                _duck.attach(con, self.path, self._key(), read_only=read_only)
                return
            except AicoError as exc:
                if "lock" not in str(exc.__cause__ or exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        "the analytics file is in use by another process; retry"
                    ) from exc
                time.sleep(0.05)

    def close(self) -> None:
        """Close the writers' DuckDB instance (it holds no file between verbs)."""
        with self._lock:
            if self._writer is not None:
                with contextlib.suppress(duckdb.Error):
                    self._writer.close()
                self._writer = None

    # -- writing the copy ------------------------------------------------------------------

    def _exporter(self, con: duckdb.DuckDBPyConnection) -> Exporter:
        store = self._manager.store

        def has_table(database: str, table: str) -> bool:
            return bool(
                store.connection(database).fetch_value(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
                )
            )

        return Exporter(
            con,
            store.connection,
            data_root=store.layout.root,
            backups_dir=store.layout.backups,
            batch=self._batch,
            clock=self._clock,
            has_table=has_table,
        )

    def export(self) -> ExportReport:
        """Bring the copy up to date: rows changed since the last export, deletes included.

        Reads libSQL through the read pools only (never the writer lock). When any row
        was removed (a forget, retention), the file is rebuilt so none stays in a block.
        """
        self._manager._check_open()
        with self._lock:
            self._remove_stale_files()
            with self._session(write=True) as con:
                report = self._exporter(con).run()
                if report.rows_removed:
                    self._compact(con)
            return report

    def after_retention(self) -> ExportReport:
        """The retention hook: retention deleted rows in libSQL; the copy follows at once."""
        return self.export()

    def purge_user(self, user_id: str) -> int:
        """Remove every row of ``user_id`` from the copy and rebuild the file; rows removed.

        The forget hook (``MemoryManager.forget`` calls it after the log's rows are gone).
        Without a copy there is nothing to remove: 0.
        """
        check_id(user_id, "user_id")
        if self._manager.read_only or not self.path.exists():
            return 0
        with self._lock, self._session(write=True) as con:
            removed = self._exporter(con).purge_user(user_id)
            self._compact(con)
            return removed

    def _compact(self, con: duckdb.DuckDBPyConnection) -> None:
        """Copy the live rows into a fresh file under the same key and swap it in."""
        fresh = self.path.with_name(self.path.name + ".new")
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)
        with translate():
            _duck.attach(con, fresh, self._key(), alias="fresh")
            con.execute(f"COPY FROM DATABASE {CATALOG} TO fresh")
            con.execute("DETACH fresh")
            con.execute(f"DETACH {CATALOG}")
        os.replace(fresh, self.path)
        self.path.with_name(self.path.name + ".wal").unlink(missing_ok=True)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _duck.attach(con, self.path, self._key())

    def _remove_stale_files(self) -> None:
        """Copies under an older master key (after a rotation) and half-written rebuilds.

        Spill files in ``tmp/`` are left to DuckDB, which removes its own (another
        process may be using them); they are encrypted (``temp_file_encryption``).
        """
        if not self.directory.is_dir():
            return
        keep = {self.path.name, self.path.name + ".wal"}
        for p in self.directory.glob("copy-*"):
            if p.name not in keep and p.is_file():
                p.unlink(missing_ok=True)

    # -- recording -------------------------------------------------------------------------

    def record_context(self, user_id: str, bundle: ContextBundle, seconds: float) -> None:
        """Record which segments and facts ``bundle`` holds and how long it took.

        Called by ``assemble_context``; never fails it: on a read-only manager nothing is
        recorded, and a failed write is logged (without ids) and dropped.
        """
        if self._manager.read_only:
            return
        try:
            core = self._manager.store.connection("core")
            if not self._schema_ready:
                ensure_schema(self._manager.store)
                self._schema_ready = True
            record_context(core, user_id, bundle, seconds, self._clock())
        except Exception as exc:  # analytics must never take a context away
            log.warning("context retrieval not recorded (%s)", type(exc).__name__)

    # -- reading ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._session(write=False) as con:
            ensure_read(con)
            create_views(con)
            _duck.lock(con)
            yield con

    def view(
        self,
        name: str,
        *,
        user_id: str | None = None,
        limit: int = 10_000,
        order_by: Sequence[str] = (),
    ) -> Rows:
        """The rows of one documented view (``VIEWS``), of one user when ``user_id`` is set."""
        if name not in VIEW_NAMES:
            raise InvalidInput("unknown analytics view; see docs/analytics.md")
        with self._reader() as con:
            return self._view(con, name, user_id=user_id, limit=limit, order_by=order_by)

    def views(self, names: Sequence[str], *, user_id: str | None = None) -> dict[str, Rows]:
        """Several views in one session (the report reads them all at once)."""
        for name in names:
            if name not in VIEW_NAMES:
                raise InvalidInput("unknown analytics view; see docs/analytics.md")
        with self._reader() as con:
            return {n: self._view(con, n, user_id=user_id) for n in names}

    def _view(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        *,
        user_id: str | None,
        limit: int = MAX_ROWS,
        order_by: Sequence[str] = (),
    ) -> Rows:
        view = next(v for v in VIEWS if v.name == name)
        if not 1 <= limit <= MAX_ROWS:
            raise InvalidInput(f"limit must be between 1 and {MAX_ROWS}")
        sql = f"SELECT * FROM main.{name}"
        params: list[Any] = []
        if user_id is not None and view.per_user:
            check_id(user_id, "user_id")
            sql += " WHERE user_id = ?"
            params.append(user_id)
        with translate():
            cur = con.execute(f"{sql} LIMIT 0", params)
            cols = [d[0] for d in cur.description or ()]
            keys = [c for c in order_by if c in cols] or [c for c in cols if c not in ("user_id",)][
                :3
            ]
            if keys:
                sql += " ORDER BY " + ", ".join(f'"{k}"' for k in keys)
            return _fetch(con.execute(sql, params), limit)

    def sql(self, query: str, *, limit: int = 1000) -> Rows:
        """One read-only ``SELECT`` over the views (and the copy's tables), for an admin.

        Refused unless DuckDB's own parser says it is exactly one SELECT statement; it
        runs on a read-only attach with file access off and settings locked.
        """
        check_text(query, "query", required=True, limit=MAX_SQL)
        if not 1 <= limit <= MAX_ROWS:
            raise InvalidInput(f"limit must be between 1 and {MAX_ROWS}")
        with self._reader() as con:
            with translate():
                statements = con.extract_statements(query)
            if len(statements) != 1 or statements[0].type.name != "SELECT":
                raise ReadOnly("analytics SQL must be exactly one SELECT statement")
            with translate():
                return _fetch(con.execute(statements[0].query), limit)

    def report(self, out_dir: str | os.PathLike[str], *, user_id: str | None = None) -> Path:
        """Write the HTML report (charts inline, nothing fetched) into ``out_dir``."""
        from aico.analytics.report import write_report

        if user_id is not None:
            check_id(user_id, "user_id")
        started = time.perf_counter()
        path = write_report(self, Path(out_dir), user_id=user_id)
        log.info("analytics report written in %.2f s", time.perf_counter() - started)
        return path

    def report_html(self, *, user_id: str | None = None, stylesheet: str | None = None) -> str:
        """The report as a string (the backend serves it; nothing is written to disk)."""
        from aico.analytics.report import render_report

        if user_id is not None:
            check_id(user_id, "user_id")
        return render_report(self, user_id=user_id, stylesheet=stylesheet)


def ensure_read(con: duckdb.DuckDBPyConnection) -> None:
    """A read-only copy of an older format cannot be read: ask for an export."""
    with translate():
        try:
            row = con.execute(f"SELECT value FROM {CATALOG}._meta WHERE key = 'format'").fetchone()
        except duckdb.CatalogException:
            row = None
    from aico.analytics.tables import FORMAT

    if row is None or row[0] != str(FORMAT):
        raise NotFound("the analytics copy is missing or outdated; run `aico analytics export`")
