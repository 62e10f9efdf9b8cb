"""Hostile arguments to every add verb: only ``InvalidInput`` / ``NotFound`` come out, and a
refused call stores nothing (an accepted one stores exactly one row, read back exactly)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aico.errors import InvalidInput, NotFound

TABLES = (
    "project_components",
    "documentation_files",
    "project_decisions",
    "success_patterns",
    "conversation_effectiveness",
    "context_relevance_feedback",
)

# Any code point, lone surrogates and NUL included; sometimes long.
any_char = st.characters(codec=None, exclude_categories=())
texts = st.text(any_char, max_size=40) | st.text(any_char, min_size=4000, max_size=4200)
numbers = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
)
json_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(any_char, max_size=8)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(any_char, max_size=5) | st.integers(), inner, max_size=3)
    ),
    max_leaves=8,
)
anything = st.none() | texts | numbers | json_values | st.just(object())
plain = st.text(st.characters(categories=("L", "N", "Zs")), min_size=1, max_size=20)
users = st.one_of(st.just("maya"), st.just("maya"), st.just("ghost"), texts)


def component(k, user, a, b, n, j):
    return k.add_component(user, a, b, confidence=n, evidence=j)


def documentation(k, user, a, b, n, j):
    return k.add_documentation(user, a, title=b, sections=j, last_analyzed=n)


def decision(k, user, a, b, n, j):
    return k.add_decision(user, a, b, alternatives_considered=j, tags=n)


def pattern(k, user, a, b, n, j):
    return k.add_pattern(user, a, description=b, confidence_score=n, context=j)


def effectiveness(k, user, a, b, n, j):
    return k.record_effectiveness(user, a, user_satisfaction=n, task_type=b, key_factors=j)


def feedback(k, user, a, b, n, j):
    return k.record_context_feedback(user, a, bool(j) if j is None else j, usefulness=n, source=b)


VERB_LIST = [component, documentation, decision, pattern, effectiveness, feedback]
VERBS = st.sampled_from(VERB_LIST)


def test_hostile_arguments_are_typed_errors_and_store_nothing(manager, knowledge, maya):
    manager.store_message(maya, "s1", "user", "hello", conversation_id="c1")
    conn = manager.store.connection("knowledge")

    def total() -> int:
        return sum(int(conn.fetch_value(f"SELECT count(*) FROM {t}")) for t in TABLES)

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,  # the same examples every run: the coverage assertion is stable
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        verb=VERBS,
        user=users,
        a=st.one_of(plain, st.sampled_from(["c1", "file:notes.md", "README.md"]), anything),
        b=st.one_of(plain, st.sampled_from(["module", "explicit", "implicit"]), anything),
        n=st.one_of(st.none(), st.sampled_from([0.5, 3, 1]), numbers),
        j=st.one_of(st.none(), st.lists(plain, max_size=3), json_values, anything),
    )
    # One accepted call per verb for certain, with the odd values they allow.
    @example(component, "maya", "sto\u0301re \U0001f600", "module", 1, [None, "x"])
    @example(documentation, "maya", "docs/\u00e9t\u00e9.md", None, None, {"": [1.5]})
    @example(decision, "maya", "  leading space", "d", None, None)
    @example(pattern, "maya", "p", "\u200b", 0.5, {"k": {"nested": []}})
    @example(effectiveness, "maya", "c1", "module", 3, ["fast"])
    @example(feedback, "maya", "file:notes.md", "implicit", None, True)
    def check(verb, user, a, b, n, j):
        before = total()
        had_record = _has_effectiveness(conn)
        try:
            row = verb(knowledge, user, a, b, n, j)
        except (InvalidInput, NotFound) as exc:
            assert total() == before, "a refused call stored something"
            assert "\x00" not in str(exc)
            return
        grew = total() - before
        # Re-recording a conversation's effectiveness replaces its one row.
        assert grew == (0 if verb is effectiveness and had_record else 1)
        accepted[verb.__name__] = accepted.get(verb.__name__, 0) + 1
        assert row.user_id == "maya"
        if verb is component:
            assert (row.component, row.type) == (a, b)
            assert row.confidence is None or (0.0 <= row.confidence <= 1.0)
        elif verb is decision:
            assert (row.title, row.decision_type, row.status) == (a, b, "active")
        elif verb is documentation:
            assert row.file_path == a
            assert row.last_analyzed is None or math.isfinite(row.last_analyzed)
        conn.execute("DELETE FROM documentation_files")  # so a path may come again

    accepted: dict[str, int] = {}
    check()
    # The run exercised the accepting path of every verb too, not only refusals.
    assert set(accepted) == {v.__name__ for v in VERB_LIST}, accepted


def _has_effectiveness(conn) -> bool:
    return bool(conn.fetch_value("SELECT count(*) FROM conversation_effectiveness"))
