"""FTS5 pieces that need no database: the MATCH expression builder and tokenizer checks.

A search query is user input, and FTS5's query language gives meaning to ``"``, ``*``,
``NEAR``, ``AND``/``OR``/``NOT``, ``^``, ``:`` and parentheses; passing the text through would
turn "what about (cats" into a syntax error and "-x" into a column filter. So the query is
split into word tokens here, stopwords are dropped (measured: better BM25 on LongMemEval, and
fewer posting lists to merge), and each token becomes a double-quoted FTS5 string literal
(embedded ``"`` doubled), OR-joined. Inside a string literal nothing is an operator, and the
FTS5 tokenizer still stems and case-folds the token like the indexed text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from aico.errors import ConfigError

__all__ = [
    "DEFAULT_FTS_TOKENIZER",
    "ENGLISH_STOPWORDS",
    "build_match_expression",
    "check_tokenizer",
    "fts_create_statement",
    "match_expression",
    "query_terms",
    "scope_tags",
    "scoped_expression",
    "tag_token",
    "tags_sql",
]

#: Measured best on LongMemEval (porter stemming over unicode61, diacritics folded).
DEFAULT_FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"

# Words, numbers and marks; "_" splits like unicode61 does. Emoji and punctuation never match.
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_TOKENIZER_RE = re.compile(r"[a-z][a-z0-9_]*(?: [a-z0-9_]+)*")
_TOKENIZER_BASES = ("unicode61", "ascii", "trigram")
_MAX_TERMS = 64
_MAX_TERM_CHARS = 64

# A common English list (the classic IR list, contractions split the way the regex splits them).
ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "cannot",
        "could",
        "couldn",
        "d",
        "did",
        "didn",
        "do",
        "does",
        "doesn",
        "doing",
        "don",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn",
        "has",
        "hasn",
        "have",
        "haven",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "isn",
        "it",
        "its",
        "itself",
        "just",
        "ll",
        "m",
        "me",
        "more",
        "most",
        "mustn",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "o",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "re",
        "s",
        "same",
        "shan",
        "she",
        "should",
        "shouldn",
        "so",
        "some",
        "such",
        "t",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "ve",
        "very",
        "was",
        "wasn",
        "we",
        "were",
        "weren",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "won",
        "would",
        "wouldn",
        "y",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)


def query_terms(query: str, *, drop_stopwords: bool = True) -> list[str]:
    """The distinct, lower-cased word tokens of ``query``, in order, stopwords removed."""
    if not isinstance(query, str):
        return []
    text = unicodedata.normalize("NFKC", query).casefold()
    seen: set[str] = set()
    terms: list[str] = []
    for token in _TOKEN.findall(text):
        token = token[:_MAX_TERM_CHARS]
        if token in seen or (drop_stopwords and token in ENGLISH_STOPWORDS):
            continue
        seen.add(token)
        terms.append(token)
        if len(terms) == _MAX_TERMS:
            break
    return terms


def build_match_expression(query: str, *, drop_stopwords: bool = True) -> str | None:
    """An FTS5 MATCH expression that cannot be a syntax error, or None if nothing is left.

    ``'tell me about "NEAR(cats*'`` becomes ``'"tell" OR "cats"'``.
    """
    return match_expression(query_terms(query, drop_stopwords=drop_stopwords))


def _literal(term: str) -> str:
    # The token regex admits no quote, but escaping is what makes this safe, not the regex.
    return '"' + term.replace('"', '""') + '"'


def check_tokenizer(spec: str) -> str:
    """Validate an FTS5 ``tokenize`` spec such as ``"porter unicode61 remove_diacritics 2"``.

    Only bare words are allowed (no quotes), so the spec can be placed in DDL safely.
    """
    if not isinstance(spec, str):
        raise ConfigError("semantic.fts_tokenizer must be a string")
    normalized = " ".join(spec.split())
    if len(normalized) > 200 or not _TOKENIZER_RE.fullmatch(normalized):
        raise ConfigError(
            "semantic.fts_tokenizer must be lowercase words, e.g. "
            f"'{DEFAULT_FTS_TOKENIZER}' or 'unicode61'"
        )
    words = normalized.split()
    base = words[1] if words[0] == "porter" and len(words) > 1 else words[0]
    if base not in _TOKENIZER_BASES:
        raise ConfigError(
            f"semantic.fts_tokenizer must use one of {_TOKENIZER_BASES}, optionally with porter"
        )
    return normalized


def fts_create_statement(table: str, tokenizer: str) -> str:
    """DDL of the contentless FTS5 table (see ``aico.ai.memory.semantic.schema`` for why).

    ``tags`` holds tokens naming the segment's user, conversation and roles (``tag_token``),
    so those filters are part of the MATCH instead of a join over every matching row.
    """
    spec = check_tokenizer(tokenizer)
    return (
        f"CREATE VIRTUAL TABLE {table} USING fts5("
        f"body, tags, content='', contentless_delete=1, tokenize='{spec}')"
    )


def tags_sql(row: str = "") -> str:
    """SQL for a segment's ``tags`` text; ``row`` is a prefix such as ``"new."``.

    ``roles`` is stored comma-separated and role names are ASCII ``[a-z0-9_]``, whose hex
    pairs never start with ``C``, so replacing the comma's ``2C`` splits exactly at commas.
    """
    return (
        f"'u' || hex({row}user_id) || '0'"
        f" || CASE WHEN {row}conversation_id IS NULL THEN ''"
        f" ELSE ' c' || hex({row}conversation_id) || '0' END"
        f" || CASE WHEN {row}roles = '' THEN ''"
        f" ELSE ' r' || replace(hex({row}roles), '2C', '0 r') || '0' END"
    )


def tag_token(kind: str, value: str) -> str:
    """``kind`` (u/c/r) + hex of the UTF-8 value + ``0``: one token for every tokenizer.

    Only hex digits after the kind letter, so unicode61 keeps it whole, and it ends in a
    digit, so no porter suffix rule applies: it is never stemmed into another value's token.
    """
    return kind + value.encode("utf-8").hex() + "0"


def match_expression(terms: Sequence[str]) -> str | None:
    """OR of the terms as FTS5 string literals, or None for no terms."""
    return " OR ".join(_literal(term) for term in terms) if terms else None


def scope_tags(
    user_id: str | None, *, conversation_id: str | None = None, role: str | None = None
) -> list[str]:
    """The tag tokens a search is restricted to (user, conversation, role; each optional)."""
    tags = [] if user_id is None else [tag_token("u", user_id)]
    if conversation_id is not None:
        tags.append(tag_token("c", conversation_id))
    if role is not None:
        tags.append(tag_token("r", role))
    return tags


def scoped_expression(
    expression: str,
    user_id: str | None,
    *,
    conversation_id: str | None = None,
    role: str | None = None,
) -> str:
    """Restrict a term expression to the ``body`` column and to the given tags.

    ``user_id=None`` leaves the user tag out: only for a caller that knows every row is
    that user's (see ``SemanticMemoryStore._bm25``).
    """
    tags = scope_tags(user_id, conversation_id=conversation_id, role=role)
    body = f"{{body}} : ({expression})"
    if not tags:
        return body
    scope = " AND ".join(f"{{tags}} : {_literal(tag)}" for tag in tags)
    return f"{body} AND {scope}"
