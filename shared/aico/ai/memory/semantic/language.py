"""Language-aware lexical analysis: what BM25 indexes for a segment, and the query's terms.

FTS5 runs one tokenizer (``porter unicode61``) over every row, and libSQL cannot call Python
from a trigger, so the language-specific part happens here, in Python, and its result is
text that the unchanged tokenizer indexes (the writer stores it next to the segment):

- **English** (and any text this module cannot improve on): nothing; the row is indexed
  from its own text exactly as before, so English results do not change.
- **Other languages with a Snowball stemmer** (German, Spanish, French, ... ``STEMMED``):
  the text itself, then the Snowball stems of the words whose stem differs. The raw words
  stay so a query that is not stemmed the same way (a misdetected short query) still finds
  exact words; the stems let "Schwestern" meet "Schwester". Porter then runs over both, on
  the query the same way, so the two sides stay comparable.
- **Scripts written without spaces** (Han, kana, Hangul, Thai): unicode61 keeps a whole run
  of such characters as one token, which no query ever repeats. Each run becomes its single
  characters and its character bigrams (the CJK analysis of Lucene's ``CJKBigramFilter``),
  so "妹はいつ来ますか" and "...遊びに来ます" share "来ま" and "ます".

A query is analyzed the same way, with its raw words always kept: query terms are the
product's English terms, plus the stems under the query's detected language, plus the
bigrams of its no-space runs (a single-character run is kept as that character). A short
query's language is often misdetected (measured in ``docs/multilingual.md``); keeping the
raw words means a wrong guess only adds terms, it never loses the words.

Detection: ``py3langid`` restricted to ``DETECTED`` languages (ships its model; measured best
of the maintained detectors for short texts at this size, see ``docs/multilingual.md``). It
loads on first use, on the caller's thread (about a second), never at import or store open.
"""

from __future__ import annotations

import itertools
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aico.ai.memory.semantic.fts import query_terms

__all__ = [
    "ANALYZER_VERSION",
    "DETECTED",
    "STEMMED",
    "Analysis",
    "analyze",
    "detect_language",
    "multilingual_query_terms",
]

#: Recorded with the analyzed rows: a change of the analysis means re-analyzing them.
ANALYZER_VERSION = "aico-lex/1"

#: ISO 639-1 code -> pystemmer (Snowball) algorithm. English is absent on purpose: its
#: segments keep FTS5's porter stemming over their own text (today's behaviour).
STEMMED: dict[str, str] = {
    "ar": "arabic",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "es": "spanish",
    "eu": "basque",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}

#: What the detector may answer: the stemmed languages, English, and common languages
#: without a stemmer (answering one of those means "no stems", which is right for them;
#: leaving them out would force their texts onto a wrong stemmer). Measured: restricting
#: the set made short queries more accurate (82 -> 86 of 90, see docs/multilingual.md).
DETECTED: tuple[str, ...] = (
    *sorted(STEMMED),
    "af",
    "bg",
    "en",
    "et",
    "he",
    "hr",
    "ja",
    "ko",
    "lv",
    "ms",
    "pl",
    "sk",
    "sl",
    "sq",
    "th",
    "uk",
    "vi",
    "zh",
)

# Characters of scripts written without spaces between words.
_NO_SPACE_RANGES = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x2FA1F),  # CJK extensions B-F, compatibility supplement
)
_MAX_ANALYZED_CHARS = 200_000  # a segment longer than this is analyzed on its head only
# The detector reads this much: its cost is linear in the text (11 ms for 2,000 characters
# here, on the ingest path of every segment), and a few sentences tell a language.
_DETECT_CHARS = 400
_MAX_QUERY_GRAMS = 64
_MAX_TERM_CHARS = 64  # as ``fts.query_terms`` cuts a query's words
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)  # ``fts``'s word pattern


_NO_SPACE_CLASS = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in _NO_SPACE_RANGES)
#: One no-space character, and a run of them: the regex engine scans a text in C, where a
#: per-character Python loop cost milliseconds per segment (the ingest path runs this).
_NO_SPACE = re.compile(f"[{_NO_SPACE_CLASS}]")
_NO_SPACE_RUN = re.compile(f"([{_NO_SPACE_CLASS}]+)")


def _no_space(char: str) -> bool:
    return _NO_SPACE.match(char) is not None


def _script_language(text: str) -> str | None:
    """The language a text's no-space script says, when such characters dominate it."""
    if _NO_SPACE.search(text, 0, _DETECT_CHARS) is None:
        return None  # the usual case, told without a loop over the characters
    counts = {"kana": 0, "hangul": 0, "han": 0, "thai": 0, "other": 0}
    letters = 0
    for char in text[:_DETECT_CHARS]:
        if not char.isalpha():
            continue
        letters += 1
        code = ord(char)
        if 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9F:
            counts["kana"] += 1
        elif 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
            counts["hangul"] += 1
        elif _no_space(char) and 0x0E00 <= code <= 0x0EFF:
            counts["thai"] += 1
        elif _no_space(char):
            counts["han"] += 1
    cjk = counts["kana"] + counts["hangul"] + counts["han"] + counts["thai"]
    if letters == 0 or cjk * 2 < letters:
        return None
    if counts["thai"] * 2 >= cjk:
        return "th"
    if counts["hangul"] * 2 >= cjk:
        return "ko"
    if counts["kana"]:
        return "ja"
    return "zh"


class _Detector:
    """The language identifier, loaded on first use (thread-safe, once per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._classify: Callable[[str], tuple[str, float]] | None = None

    def __call__(self, text: str) -> str:
        classify = self._classify
        if classify is None:
            with self._lock:
                classify = self._classify
                if classify is None:
                    classify = self._classify = _load_identifier()
        return classify(text)[0]


def _load_identifier() -> Callable[[str], tuple[str, float]]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier: Any = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
    identifier.set_languages(list(DETECTED))
    classify: Callable[[str], tuple[str, float]] = identifier.classify
    return classify


_detector = _Detector()


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language (``"en"`` when there is nothing to tell by).

    A text mostly in a no-space script is told by its script (kana: ``ja``, Hangul: ``ko``,
    Thai: ``th``, Han alone: ``zh``); any other goes to the detector.
    """
    if not isinstance(text, str):
        return "en"
    head = text[:_DETECT_CHARS]
    by_script = _script_language(head)
    if by_script is not None:
        return by_script
    if not any(char.isalpha() for char in head):
        return "en"
    return _detector(head)


@dataclass(frozen=True)
class Analysis:
    """A text's language and the text BM25 should index for it (None: the text itself)."""

    language: str
    body: str | None


class _Stemmers:
    """One pystemmer ``Stemmer`` per language and thread (they are not thread-safe)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def stem(self, language: str, words: list[str]) -> list[str]:
        cache: dict[str, Any] | None = getattr(self._local, "stemmers", None)
        if cache is None:
            cache = self._local.stemmers = {}
        stemmer = cache.get(language)
        if stemmer is None:
            import Stemmer

            stemmer = cache[language] = Stemmer.Stemmer(STEMMED[language])
        result: list[str] = stemmer.stemWords(words)
        return result


_stemmers = _Stemmers()


def _words(text: str) -> list[str]:
    """Case-folded word tokens, split like ``fts.query_terms`` (stopwords kept, no cap)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [token[:_MAX_TERM_CHARS] for token in _TOKEN.findall(folded)]


def _runs(text: str) -> Iterable[tuple[bool, str]]:
    """``text`` as alternating (is_no_space_run, piece) parts."""
    # With one capturing group, re.split alternates: other text, a run, other text, ...
    for index, piece in enumerate(_NO_SPACE_RUN.split(text)):
        if piece:
            yield index % 2 == 1, piece


def _characters(run: str) -> list[str]:
    """A no-space run's letters and digits, each with the combining marks that follow it
    (Thai vowel and tone marks belong to their consonant), case-folded."""
    chars: list[str] = []
    for char in unicodedata.normalize("NFKC", run).casefold():
        if unicodedata.category(char) in ("Mn", "Mc"):
            if chars:
                chars[-1] += char
        elif char.isalnum():
            chars.append(char)
    return chars


def _bigrams(chars: list[str]) -> list[str]:
    return [a + b for a, b in itertools.pairwise(chars)]


def _grams(run: str) -> list[str]:
    """The characters and the character bigrams of a no-space run."""
    chars = _characters(run)
    return chars + _bigrams(chars)


def _segmented(text: str) -> tuple[str, bool]:
    """``text`` with every no-space run replaced by its grams; True if anything was."""
    if _NO_SPACE.search(text) is None:
        return text, False
    parts: list[str] = []
    changed = False
    for no_space, piece in _runs(text):
        if no_space:
            parts.append(" " + " ".join(_grams(piece)) + " ")
            changed = True
        else:
            parts.append(piece)
    return "".join(parts), changed


def _extra_stems(language: str, text: str) -> list[str]:
    """The Snowball stems of ``text``'s words that differ from the words, each once."""
    if language not in STEMMED:
        return []
    words = list(dict.fromkeys(_words(text)))
    return [s for w, s in zip(words, _stemmers.stem(language, words), strict=True) if s and s != w]


def analyze(text: str, language: str | None = None) -> Analysis:
    """What BM25 should index for ``text`` (detected unless ``language`` is given).

    ``body`` is None when the text itself is right (English, or nothing to add), so such a
    row is indexed exactly as before this module existed.
    """
    head = text[:_MAX_ANALYZED_CHARS]
    lang = language or detect_language(head)
    segmented, changed = _segmented(head)
    stems = _extra_stems(lang, head)
    if not changed and not stems:
        return Analysis(lang, None)
    if stems:
        segmented = segmented + "\n" + " ".join(stems)
    return Analysis(lang, segmented)


def multilingual_query_terms(
    query: str, *, drop_stopwords: bool = True, detect: bool = True
) -> list[str]:
    """The query's BM25 terms: the English terms as before, plus stems and grams.

    The added terms are the Snowball stems under the query's detected language (when it has
    a stemmer; only with ``detect``, which loads the detector on first use) and the bigrams
    of each no-space run (its character when the run is one character long). A query
    without either gets exactly ``fts.query_terms``.
    """
    terms = query_terms(query, drop_stopwords=drop_stopwords)
    if not isinstance(query, str) or not query.strip():
        return terms
    extra: list[str] = []
    has_no_space = any(_no_space(char) for char in query)
    if has_no_space:
        for no_space, piece in _runs(query):
            if not no_space:
                continue
            chars = _characters(piece)
            extra += (chars if len(chars) == 1 else _bigrams(chars))[:_MAX_QUERY_GRAMS]
    language = detect_language(query) if detect else "en"
    if language in STEMMED:
        words = [t for t in terms if not any(_no_space(c) for c in t)]
        extra += [s for w, s in zip(words, _stemmers.stem(language, words), strict=True) if s]
    return list(dict.fromkeys(terms + extra))
