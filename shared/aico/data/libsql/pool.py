"""A small, lazily filled pool of read-only libSQL connections.

Readers are separate connections so that, under WAL, reads on other threads see the last
committed state without waiting for the writer lock. The pool can be drained (every reader
returned and closed) for operations that need the file to themselves, such as rekey.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from aico.data.libsql.errors import translate_errors
from aico.errors import AicoError, StoreClosed

__all__ = ["ReaderPool"]


class ReaderPool:
    """At most ``size`` reader connections, created on first need, reused LIFO."""

    def __init__(self, factory: Callable[[], Any], size: int, name: str) -> None:
        self._factory = factory
        self._size = size
        self._name = name
        self._cond = threading.Condition()
        self._idle: list[Any] = []
        self._created = 0
        self._out = 0
        self._paused = False
        self._closed = False

    @contextlib.contextmanager
    def reader(self) -> Iterator[Any]:
        """Check a reader out for the duration of the block."""
        conn = self._checkout()
        try:
            if conn is None:
                conn = self._factory()
        except BaseException:
            with self._cond:
                self._created -= 1
                self._out -= 1
                self._cond.notify_all()
            raise
        try:
            yield conn
        finally:
            self._checkin(conn)

    def drain(self) -> None:
        """Block new checkouts, wait for readers in use, close them all."""
        with self._cond:
            self._paused = True
            self._wait_idle()

    def resume(self, factory: Callable[[], Any] | None = None) -> None:
        """Allow checkouts again (optionally with a new factory, e.g. after rekey)."""
        with self._cond:
            if factory is not None:
                self._factory = factory
            self._paused = False
            self._cond.notify_all()

    def close(self) -> None:
        """Refuse new checkouts for good, wait for readers in use, close every reader."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._wait_idle()

    def _checkout(self) -> Any | None:
        with self._cond:
            while True:
                if self._closed:
                    raise StoreClosed(f"database {self._name} is closed")
                if not self._paused:
                    if self._idle:
                        self._out += 1
                        return self._idle.pop()
                    if self._created < self._size:
                        self._created += 1
                        self._out += 1
                        return None  # caller creates it outside the lock
                self._cond.wait()

    def _checkin(self, conn: Any) -> None:
        with self._cond:
            self._out -= 1
            if self._closed or self._paused:
                self._created -= 1
                _close_quietly(conn)
            else:
                self._idle.append(conn)
            self._cond.notify_all()

    def _wait_idle(self) -> None:
        while self._out:
            self._cond.wait()
        while self._idle:
            _close_quietly(self._idle.pop())
            self._created -= 1


def _close_quietly(conn: Any) -> None:
    # A reader that fails to close holds nothing we could still save.
    with contextlib.suppress(AicoError), translate_errors():
        conn.close()
