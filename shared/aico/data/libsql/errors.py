"""The one seam where libSQL driver exceptions become ``aico.errors``.

libsql-experimental raises plain ``ValueError`` for every SQLite failure and, on a garbled
TEXT value, ``pyo3_runtime.PanicException`` (a ``BaseException``). Callers must never see
either. The driver message is kept for diagnosis but redacted first: SQLite echoes query
text after ``near`` and FTS5 echoes the user's search terms, so quoted literals and those
tails are removed. The original exception is dropped (``from None``) because its message
and traceback would carry the unredacted text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from aico.errors import (
    AicoError,
    ConstraintViolation,
    DatabaseBusy,
    DatabaseCorrupted,
    QueryError,
    StorageError,
)

__all__ = ["redact_driver_message", "translate_errors"]

_MAX_MESSAGE = 160
_QUOTED = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|`[^`]*`?|\[[^\]]*\]?")
_NEAR = re.compile(r"\bnear\b.*?(?=: syntax error$|$)", re.DOTALL)
# Messages whose tail can come from an FTS5 MATCH string (user text), not from our SQL.
_TAIL_FROM_INPUT = re.compile(
    r"(no such column|unknown special query|no such fts5 column|expected integer, got)\s*:?.*$",
    re.DOTALL,
)
_CORRUPT = ("file is not a database", "malformed", "corrupt")
_BUSY = ("locked", "busy")


def redact_driver_message(message: str) -> str:
    """Strip anything that may be user content from a driver message."""
    text = _QUOTED.sub("?", message)
    text = _NEAR.sub("near <redacted>", text)
    text = _TAIL_FROM_INPUT.sub(lambda m: f"{m.group(1)}: <redacted>", text)
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "..."
    return text


def classify(exc: BaseException) -> StorageError | None:
    """Return the ``aico`` error for a driver exception, or None if it must propagate."""
    if type(exc).__name__ == "PanicException":
        # The driver panics when a TEXT value is not UTF-8: garbled ciphertext.
        return DatabaseCorrupted("database corrupted: a stored value could not be decoded")
    if isinstance(exc, AicoError) or not isinstance(exc, Exception):
        # Ours already, or KeyboardInterrupt / SystemExit / GeneratorExit: never swallow.
        return None
    raw = str(exc)
    lowered = raw.lower()
    text = redact_driver_message(raw)
    if any(word in lowered for word in _CORRUPT):
        return DatabaseCorrupted(f"database corrupted: {text}")
    if any(word in lowered for word in _BUSY):
        return DatabaseBusy(f"database is busy: {text}")
    if "constraint failed" in lowered:
        return ConstraintViolation(f"constraint violated: {text}")
    return QueryError(f"query failed: {text}")


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise driver exceptions raised inside the block as ``aico.errors`` (``from None``)."""
    try:
        yield
    except BaseException as exc:
        translated = classify(exc)
        if translated is None:
            raise
        raise translated from None
