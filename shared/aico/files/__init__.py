"""The file index's pure logic: walking, ignore rules, reading, detection, git status,
relationships, snippets, chunking and relevance. No store is touched here; ``FileMemory``
(``aico.ai.memory.files``) writes what these functions find (docs/files.md)."""

from aico.files.chunking import Chunk, chunk_text
from aico.files.detect import Detected, detect, language_of
from aico.files.gitstatus import GitState, git_state
from aico.files.ignore import DEFAULT_IGNORES, IgnoreRules
from aico.files.reading import ReadResult, read_file, stat_key
from aico.files.relations import Reference, is_test_file, references, resolve
from aico.files.relevance import FileSignals, Score, score
from aico.files.snippets import Snippet, snippets
from aico.files.walker import WalkEntry, WalkStats, walk

__all__ = [
    "DEFAULT_IGNORES",
    "Chunk",
    "Detected",
    "FileSignals",
    "GitState",
    "IgnoreRules",
    "ReadResult",
    "Reference",
    "Score",
    "Snippet",
    "WalkEntry",
    "WalkStats",
    "chunk_text",
    "detect",
    "git_state",
    "is_test_file",
    "language_of",
    "read_file",
    "references",
    "resolve",
    "score",
    "snippets",
    "stat_key",
    "walk",
]
