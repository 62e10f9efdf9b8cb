"""Ad-hoc SQL is one read-only SELECT: DuckDB's parser decides, not a regex."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from history import open_test_manager, write_history

from aico.ai.memory import MemoryManager
from aico.errors import AicoError, InvalidInput, ReadOnly


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemoryManager]:
    """One exported data dir for the module (every test here only reads it)."""
    memory = open_test_manager(tmp_path_factory.mktemp("sql") / "data")
    write_history(memory, ["ana", "ben"], messages=60, per_session=6)
    memory.analytics.export()
    yield memory
    memory.close()


def test_selects_over_views_and_tables(exported: MemoryManager) -> None:
    a = exported.analytics
    rows = a.sql("SELECT user_id, sum(messages) AS n FROM activity_daily GROUP BY 1 ORDER BY 1")
    assert rows.columns == ("user_id", "n")
    assert rows.rows == [("ana", 30), ("ben", 30)]
    with_cte = a.sql("WITH x AS (SELECT count(*) AS n FROM a.messages) SELECT n FROM x")
    assert with_cte.rows == [(60,)]
    limited = a.sql("SELECT * FROM a.messages", limit=7)
    assert len(limited.rows) == 7 and limited.truncated


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO a.messages (id) VALUES ('x')",
        "DELETE FROM a.messages",
        "UPDATE a.users SET user_type = 'admin'",
        "CREATE TABLE main.t AS SELECT 1",
        "DROP VIEW activity_daily",
        "COPY a.messages TO 'out.csv'",
        "ATTACH 'other.duckdb' AS o",
        "SET enable_external_access = true",
        "PRAGMA enable_profiling",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CHECKPOINT",
        "EXPORT DATABASE 'dump'",
        "SELECT 1; DELETE FROM a.messages",
        "CALL pragma_version()",
    ],
)
def test_anything_but_one_select_is_refused(exported: MemoryManager, query: str) -> None:
    with pytest.raises(ReadOnly):
        exported.analytics.sql(query)
    assert exported.analytics.sql("SELECT count(*) FROM a.messages").rows == [(60,)]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM 'data.parquet'",
    ],
)
def test_a_select_cannot_reach_files(exported: MemoryManager, query: str) -> None:
    with pytest.raises(AicoError):
        exported.analytics.sql(query)


def test_bad_sql_is_a_typed_error_without_the_text(exported: MemoryManager) -> None:
    with pytest.raises(InvalidInput) as info:
        exported.analytics.sql("SELEC secretword FROM nowhere")
    assert "secretword" not in str(info.value)
    with pytest.raises(InvalidInput):
        exported.analytics.sql("SELECT * FROM secret_table_name")
