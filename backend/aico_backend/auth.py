"""Who is asking: bearer tokens, the principal they stand for, and the failed-auth limit.

Every ``/v1`` and mem0 request carries ``Authorization: Bearer <token>`` (``Token <token>``
is accepted too: the mem0 client sends that). The memory page sends the same token in its
``HttpOnly`` cookie. A token is checked against its keyed hash (``TokenRepository``); the
token itself is never logged, stored or echoed.

A user token acts for its user only: ``Principal.user`` turns another user's id into the
same ``NotFound`` a missing id gets, and ``Principal.owns`` is how every endpoint checks a
record it looked up, so B's ids answer 404 exactly as ids nobody has. The admin token acts
for anyone but must say for whom (``user_id``).

Failed checks are counted per client address in a sliding minute; past the limit the
address gets 429 until the window clears, whatever it sends (a valid token included: an
attacker holding one token must not reset the count while guessing another).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

from aico.errors import InvalidInput, NotFound
from aico.validation import check_id
from aico_backend.errors import Forbidden, RateLimited, Unauthorized

__all__ = ["FailedAuthLimiter", "Principal", "parse_authorization"]

_WINDOW_S = 60.0
_MAX_CLIENTS = 10_000


@dataclass(frozen=True)
class Principal:
    """The holder of a verified token: one user, or the admin (``user_id`` None)."""

    token_id: str
    user_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.user_id is None

    def user(self, requested: str | None = None) -> str:
        """The user this request acts for (``requested``: the id the request named)."""
        if self.user_id is None:
            if requested is None:
                raise InvalidInput("user_id is required with the admin token")
            return check_id(requested, "user_id")
        if requested is not None and requested != self.user_id:
            raise NotFound("no user with this user_id")
        return self.user_id

    def owns(self, owner: str | None) -> bool:
        """Whether a record of ``owner`` (None: no such record) is visible to this token."""
        return owner is not None and (self.user_id is None or owner == self.user_id)

    def require_admin(self) -> None:
        if self.user_id is not None:
            raise Forbidden("this endpoint needs the admin token")


def parse_authorization(header: str | None) -> str:
    """The token of an ``Authorization`` header; ``Unauthorized`` when there is none."""
    if not header:
        raise Unauthorized("a bearer token is required")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        raise Unauthorized("a bearer token is required")
    return token.strip()


class FailedAuthLimiter:
    """At most ``limit`` failed token checks per client address per minute."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def _recent(self, client: str, now: float) -> collections.deque[float]:
        times = self._failures.get(client)
        if times is None:
            return collections.deque()
        while times and times[0] <= now - _WINDOW_S:
            times.popleft()
        if not times:
            del self._failures[client]
        return times

    def check(self, client: str) -> None:
        """Raise ``RateLimited`` while ``client`` is over the limit."""
        now = self.clock()
        times = self._recent(client, now)
        if len(times) >= self.limit:
            raise RateLimited(
                "too many failed authentication attempts; wait and retry",
                retry_after=int(times[0] + _WINDOW_S - now) + 1,
            )

    def failed(self, client: str) -> None:
        now = self.clock()
        times = self._failures.setdefault(client, collections.deque())
        self._failures.move_to_end(client)
        times.append(now)
        while len(times) > self.limit:
            times.popleft()
        while len(self._failures) > _MAX_CLIENTS:
            self._failures.popitem(last=False)
