"""Hostile arguments at the public boundary (hypothesis).

Whatever a caller passes to ``store_message``, ``search``, ``assemble_context``, ``recent``,
``forget``, the fact repository or the user service, only the documented errors come out
(``InvalidInput``, ``NotFound``), no message echoes what was passed, and every message stored
before the case is still in the log, exactly, and still in working memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.data.repositories import FactRepository, UserService
from aico.errors import AicoError, InvalidInput, NotFound
from aico.validation import MAX_CONTENT

KEEPER = "keeper"
SESSION = "keeper-session"
DOCUMENTED = (InvalidInput, NotFound)


class _Long(str):
    """A long string with a short repr, so failing examples stay readable."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} characters>"


# Every code point, lone surrogates and NUL included.
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
HOSTILE_TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.text(st.sampled_from("a\x00\ud800\udfff\u202e\n\t' \"%_*()-:^"), max_size=20),
    st.just(_Long("x" * (MAX_CONTENT + 1))),
    st.just(_Long("word " * 2000)),
    st.just(""),
    st.just("   "),
)
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 10**6, 2**63, float("inf"), float("-inf"), float("nan")]),
)
ANY_VALUE = st.one_of(
    NUMBERS, HOSTILE_TEXT, st.none(), st.booleans(), st.lists(st.integers(), max_size=2)
)
IDS = st.one_of(
    st.text(ANY_CHAR, max_size=140),
    st.sampled_from(["", " ", "a\x00b", "\ud800", "x" * 129, "other", "ghost"]),
    st.none(),
    st.integers(),
)
ROLES = st.one_of(st.sampled_from(["user", "assistant", "system", "tool"]), HOSTILE_TEXT)


@pytest.fixture(scope="module")
def manager(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[MemoryManager]:
    from aico.config import load_config
    from aico.security import KdfParams

    params = KdfParams.for_tests()
    config = load_config(
        env={},
        overrides={
            "security": {
                "use_keyring": False,
                "kdf_time_cost": params.time_cost,
                "kdf_memory_cost_kib": params.memory_cost_kib,
                "kdf_parallelism": params.parallelism,
            }
        },
    )
    directory: Path = tmp_path_factory.mktemp("hostile") / "data"
    m = MemoryManager.initialize(directory, "pw", config=config, encoder=HashingEncoder())
    users = UserService(m.store.connection("core"))
    users.create_user("Keeper", user_id=KEEPER)
    users.create_user("Other", user_id="other")
    yield m
    m.close()


class Book:
    """What the keeper stored and must still be there after every case."""

    messages: dict[str, str] = {}  # noqa: RUF012 - one book per test module run


def _check_error(exc: BaseException, args: tuple[Any, ...]) -> None:
    assert isinstance(exc, DOCUMENTED), f"undocumented {type(exc).__name__}: {exc}"
    text = str(exc)
    for value in args:
        # Long enough that it cannot be a word of the message itself (canaries: below).
        if isinstance(value, str) and len(value.strip()) >= 12:
            assert value not in text, "an error message echoed a caller's value"


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except AicoError as exc:
        _check_error(exc, args + tuple(kwargs.values()))
    except Exception as exc:  # pragma: no cover - the failure this test exists for
        raise AssertionError(f"raw {type(exc).__name__} escaped: {exc!r}") from None
    return None


def _still_there(m: MemoryManager) -> None:
    kept = {msg.id: msg.content for msg in m.log.messages_of_user(KEEPER)}
    for message_id, content in Book.messages.items():
        assert kept.get(message_id) == content, "an acknowledged message changed or vanished"
    working = {w.id: w.content for w in m.working.recent(SESSION, 10_000)}
    for message_id, content in Book.messages.items():
        assert working.get(message_id) == content, "working memory lost a stored message"


def _store_keeper(m: MemoryManager, n: int) -> None:
    content = f"keeper note {n} marmalade{n}"
    Book.messages[m.store_message(KEEPER, SESSION, "user", content)] = content


SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@SETTINGS
@given(
    user=IDS,
    session=IDS,
    role=ROLES,
    content=HOSTILE_TEXT,
    timestamp=st.one_of(st.none(), NUMBERS, HOSTILE_TEXT),
    tokens=st.one_of(st.none(), NUMBERS),
    cost=NUMBERS,
    metadata=st.one_of(
        st.none(), st.dictionaries(st.text(ANY_CHAR, max_size=5), ANY_VALUE, max_size=3)
    ),
    conversation=st.one_of(st.none(), IDS),
)
def test_store_message(
    manager, user, session, role, content, timestamp, tokens, cost, metadata, conversation
):
    _store_keeper(manager, len(Book.messages))
    message_id = _call(
        manager.store_message,
        user,
        session,
        role,
        content,
        timestamp=timestamp,
        tokens=tokens,
        cost=cost,
        metadata=metadata,
        conversation_id=conversation,
    )
    if message_id is not None:
        stored = manager.log.message(message_id)
        assert stored is not None and stored.content == content  # kept exactly, or refused
        assert math.isfinite(stored.timestamp)
    _still_there(manager)


@SETTINGS
@given(
    user=IDS,
    query=HOSTILE_TEXT,
    k=st.one_of(NUMBERS, st.none()),
    mode=st.one_of(st.sampled_from(["hybrid", "bm25", "dense"]), HOSTILE_TEXT),
    start=st.one_of(st.none(), NUMBERS),
    end=st.one_of(st.none(), NUMBERS),
    min_score=st.one_of(st.none(), NUMBERS),
)
def test_search(manager, user, query, k, mode, start, end, min_score):
    kwargs: dict[str, Any] = {"mode": mode, "start": start, "end": end, "min_score": min_score}
    if k is not None:
        kwargs["k"] = k
    hits = _call(manager.search, user, query, **kwargs)
    if hits is not None:
        assert all(h.user_id == user for h in hits)
    _still_there(manager)


@SETTINGS
@given(
    user=IDS,
    session=IDS,
    query=HOSTILE_TEXT,
    max_tokens=st.one_of(st.none(), NUMBERS),
    recent=st.one_of(st.none(), NUMBERS),
    k=st.one_of(st.none(), NUMBERS),
    limit=NUMBERS,
)
def test_context_and_recent(manager, user, session, query, max_tokens, recent, k, limit):
    _call(manager.assemble_context, user, session, query, max_tokens=max_tokens, recent=recent, k=k)
    _call(manager.recent, user, session, limit)
    _still_there(manager)


@SETTINGS
@given(user=IDS, conversation=st.one_of(st.none(), IDS), message=st.one_of(st.none(), IDS))
def test_forget(manager, user, conversation, message):
    if user == KEEPER:
        return  # forgetting the keeper is not hostile input, it is the keeper's wish
    _call(manager.forget, user, conversation_id=conversation, message_id=message)
    _still_there(manager)


@SETTINGS
@given(
    user=IDS,
    content=HOSTILE_TEXT,
    category=st.one_of(st.just("general"), HOSTILE_TEXT),
    confidence=NUMBERS,
    fact_id=IDS,
    limit=NUMBERS,
)
def test_facts(manager, user, content, category, confidence, fact_id, limit):
    facts = FactRepository(manager.store.connection("core"))
    fact = _call(facts.remember, user, content, category=category, confidence=confidence)
    _call(facts.list, user, limit=limit)
    _call(facts.get, fact_id)
    _call(facts.update, fact_id, content=content)
    _call(facts.revisit, fact_id)
    _call(facts.delete, fact_id)
    if fact is not None:
        assert facts.get(fact.fact_id).content == content
        facts.delete(fact.fact_id)
    _still_there(manager)


@SETTINGS
@given(
    user=IDS,
    name=HOSTILE_TEXT,
    nickname=st.one_of(st.none(), HOSTILE_TEXT),
    user_type=st.one_of(st.just("person"), HOSTILE_TEXT),
    preferences=st.one_of(
        st.none(), st.dictionaries(st.text(ANY_CHAR, max_size=5), ANY_VALUE, max_size=3)
    ),
)
def test_users(manager, user, name, nickname, user_type, preferences):
    if user == KEEPER:
        return
    users = UserService(manager.store.connection("core"))
    made = _call(
        users.create_user,
        name,
        user_id=user,
        nickname=nickname,
        user_type=user_type,
        preferences=preferences,
    )
    _call(users.get_profile, user)
    _call(users.update_user, user, display_name=name)
    _call(users.exists, user)
    if made is not None:
        assert users.get_profile(made.user_id).display_name == name
        _call(users.delete_user, made.user_id)
    _still_there(manager)


def test_everything_kept_is_still_searchable(manager):
    """Runs last in this module: what survived the cases is consolidated and found."""
    if not Book.messages:
        _store_keeper(manager, 0)
    manager.end_session(SESSION)
    manager.maintenance()
    for content in list(Book.messages.values())[:20]:
        token = content.split()[-1]
        hits = manager.search(KEEPER, token, 5, mode="bm25")
        assert any(token in h.text for h in hits), "a stored message is no longer found"


CANARY = "canary-7f3a-SECRET"


def test_errors_never_echo_ids(manager):
    """Unknown or unusable ids are refused without repeating them."""
    facts = FactRepository(manager.store.connection("core"))
    users = UserService(manager.store.connection("core"))
    calls = [
        lambda: users.get_profile(CANARY),
        lambda: users.update_user(CANARY, display_name="x"),
        lambda: users.delete_user(CANARY),
        lambda: users.create_user("K", user_id=KEEPER),
        lambda: facts.remember(CANARY, "a fact"),
        lambda: facts.get(CANARY),
        lambda: facts.delete(CANARY),
        lambda: manager.store_message(CANARY, "s", "user", "hi"),
        lambda: manager.store_message(KEEPER, CANARY + "\x00", "user", "hi"),
        lambda: manager.search(KEEPER, CANARY + "\ud800"),
        lambda: manager.assemble_context(KEEPER, CANARY + "\ud800", "q"),
    ]
    for call in calls:
        with pytest.raises(DOCUMENTED) as info:
            call()
        assert CANARY not in str(info.value)
        assert KEEPER not in str(info.value)
