"""References between files: Python and JS/TS imports, tests, and Markdown links.

Two steps, so a re-index never has to read an unchanged file: ``references`` parses one
file's text into raw references (what it names, stored with the relationship), and
``resolve`` maps a raw reference onto the current set of indexed paths (no I/O). A test
file (``test_*.py``, ``*_test.py``, ``*.test.ts``, ``*.spec.js``...) also ``tests`` every
file it imports.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

__all__ = ["Reference", "is_test_file", "references", "resolve"]

Kind = Literal["python", "js", "markdown"]

_JS_PATTERNS = (
    re.compile(r"""\bimport\s+(?:[\w*{}\s,$]+\s+from\s+)?["']([^"'\n]+)["']"""),
    re.compile(r"""\bexport\s+[\w*{}\s,$]+\s+from\s+["']([^"'\n]+)["']"""),
    re.compile(r"""\brequire\(\s*["']([^"'\n]+)["']\s*\)"""),
    re.compile(r"""\bimport\(\s*["']([^"'\n]+)["']\s*\)"""),
)
_MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_JS_EXTS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs")
_TEST_RE = re.compile(r"(^test_.*\.py$|.*_test\.py$|.*\.(test|spec)\.[cm]?[jt]sx?$)")


@dataclass(frozen=True)
class Reference:
    """A raw reference of a file: ``kind`` and what it names (a module, a specifier, a link)."""

    kind: Kind
    spec: str
    level: int = 0  # Python's relative-import dots


def is_test_file(rel_path: str) -> bool:
    return bool(_TEST_RE.match(posixpath.basename(rel_path)))


def references(language: str | None, text: str) -> list[Reference]:
    """The raw references of one file's text (empty for languages it does not parse)."""
    if language == "python":
        return _python(text)
    if language in ("javascript", "typescript"):
        found = {m.group(1) for pattern in _JS_PATTERNS for m in pattern.finditer(text)}
        return [Reference("js", spec) for spec in sorted(found)]
    if language == "markdown":
        links = {m.group(1) for m in _MD_LINK.finditer(text)}
        return [Reference("markdown", link) for link in sorted(links)]
    return []


def _python(text: str) -> list[Reference]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return []
    found: set[Reference] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(Reference("python", alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            found.add(Reference("python", base, node.level))
            for alias in node.names:  # ``from pkg import module`` names a module too
                if alias.name != "*":
                    name = f"{base}.{alias.name}" if base else alias.name
                    found.add(Reference("python", name, node.level))
    return sorted(found, key=lambda r: (r.level, r.spec))


def resolve(source: str, ref: Reference, paths: Collection[str]) -> str | None:
    """The indexed path ``ref`` of the file at ``source`` names, if it is one of ``paths``."""
    here = posixpath.dirname(source)
    if ref.kind == "python":
        return _resolve_python(here, ref, paths)
    if ref.kind == "js":
        if not ref.spec.startswith("."):
            return None  # a package, not a file of this folder
        base = posixpath.normpath(posixpath.join(here, ref.spec))
        candidates = [base, *(base + e for e in _JS_EXTS), *(f"{base}/index{e}" for e in _JS_EXTS)]
        return next((c for c in candidates if c in paths), None)
    parts = urlsplit(ref.spec)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    target = unquote(parts.path)
    joined = target.lstrip("/") if target.startswith("/") else posixpath.join(here, target)
    path = posixpath.normpath(joined)
    return path if path in paths else None


def _resolve_python(here: str, ref: Reference, paths: Collection[str]) -> str | None:
    module = ref.spec.replace(".", "/") if ref.spec else ""
    if ref.level:
        base = here
        for _ in range(ref.level - 1):
            base = posixpath.dirname(base)
        stems = [posixpath.join(base, module) if module else base]
    else:
        # Absolute: from the root, or from any folder above the importer (a src layout).
        stems, base = [], here
        while True:
            stems.append(posixpath.join(base, module) if base else module)
            if not base:
                break
            base = posixpath.dirname(base)
    for stem in stems:
        stem = posixpath.normpath(stem) if stem else ""
        for candidate in (f"{stem}.py", f"{stem}/__init__.py" if stem else "__init__.py"):
            if candidate in paths:
                return candidate
    return None
