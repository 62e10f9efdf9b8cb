"""The error seam: driver exceptions become aico errors whose messages carry no user content."""

from __future__ import annotations

import libsql_experimental as libsql
import pytest

from aico.data.libsql import translate_errors
from aico.data.libsql.errors import redact_driver_message
from aico.errors import (
    ConstraintViolation,
    DatabaseBusy,
    DatabaseCorrupted,
    QueryError,
)

SECRET = "hushhush"


def translated(exc: BaseException) -> BaseException:
    with pytest.raises(BaseException) as info, translate_errors():
        raise exc
    return info.value


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("file is not a database", DatabaseCorrupted),
        ("database disk image is malformed", DatabaseCorrupted),
        ("database corrupt at page 3", DatabaseCorrupted),
        ("database is locked", DatabaseBusy),
        ("database table is busy", DatabaseBusy),
        ("UNIQUE constraint failed: t.v", ConstraintViolation),
        ("no such table: foo", QueryError),
        ("Unsupported parameter type", QueryError),
    ],
)
def test_driver_messages_map_to_the_right_error(message, kind):
    err = translated(ValueError(message))
    assert type(err) is kind
    assert err.__cause__ is None and err.__suppress_context__


def test_message_keeps_the_redacted_driver_text():
    assert str(translated(ValueError("no such table: foo"))) == "query failed: no such table: foo"


@pytest.mark.parametrize(
    "message",
    [
        f'near "{SECRET}": syntax error',
        f'fts5: syntax error near "{SECRET}"',
        f"no such column: {SECRET}",
        f"unknown special query: {SECRET}",
        f'expected integer, got "{SECRET}"',
        f"CHECK constraint failed: v <> '{SECRET}'",
        f'unrecognized token: "\'{SECRET}"',
        f"near {SECRET}: syntax error",
    ],
)
def test_redaction_removes_user_text(message):
    assert SECRET not in redact_driver_message(message)
    assert SECRET not in str(translated(ValueError(message)))


def test_redaction_keeps_syntax_error_hint():
    assert redact_driver_message('near "selec": syntax error') == "near <redacted>: syntax error"


def test_panic_becomes_database_corrupted():
    raw = libsql.connect(":memory:")
    raw.close()
    with pytest.raises(DatabaseCorrupted), translate_errors():
        raw.execute("SELECT 1")  # the driver panics on a closed connection


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3), GeneratorExit()])
def test_interpreter_exits_pass_through(exc):
    assert translated(exc) is exc


def test_aico_errors_pass_through():
    err = ConstraintViolation("already ours")
    assert translated(err) is err


def test_real_statements_through_the_connection(open_db):
    conn = open_db()
    conn.execute("CREATE TABLE t (v TEXT UNIQUE CHECK (length(v) < 20))")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(body)")
    conn.execute("INSERT INTO t VALUES (?)", (SECRET,))
    with pytest.raises(ConstraintViolation) as info:
        conn.execute("INSERT INTO t VALUES (?)", (SECRET,))
    assert SECRET not in str(info.value)
    with pytest.raises(QueryError) as info:
        conn.execute(f"SELEC '{SECRET}'")
    assert SECRET not in str(info.value)
    for query in (f"{SECRET}:word", f"AND {SECRET}", f"*{SECRET}", f'"{SECRET}'):
        with pytest.raises(QueryError) as info:
            conn.fetch_all("SELECT * FROM f WHERE f MATCH ?", (query,))
        assert SECRET not in str(info.value), query
    with pytest.raises(QueryError, match="no such table: missing"):
        conn.fetch_all("SELECT * FROM missing")
