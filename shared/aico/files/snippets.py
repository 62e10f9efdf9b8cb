"""The parts of a file worth naming: Markdown headings, Python and JS/TS functions and classes.

A snippet is its first line (a signature or a heading), with its line range; the body stays
in the chunks. Python uses ``ast`` (exact ranges, methods included); JS/TS a line regex
(start lines only, the end is the next snippet's start).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Snippet", "snippets"]

SnippetType = Literal["header", "function", "class"]
_MAX_SNIPPET_CHARS = 300
_MAX_SNIPPETS = 500
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_JS_DEF = re.compile(
    r"^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?"
    r"(?:(?P<cls>class)\s+(?P<cname>[A-Za-z_$][\w$]*)|function\*?\s+(?P<fname>[A-Za-z_$][\w$]*)"
    r"|(?:const|let|var)\s+(?P<aname>[A-Za-z_$][\w$]*)\s*=\s*(?:async\s*)?"
    r"(?:\([^)]*\)|[A-Za-z_$][\w$]*)\s*=>)"
)


@dataclass(frozen=True)
class Snippet:
    snippet_type: SnippetType
    content: str
    line_start: int  # 1-based, inclusive
    line_end: int


def snippets(language: str | None, text: str) -> list[Snippet]:
    if language == "python":
        found = _python(text)
    elif language in ("javascript", "typescript"):
        found = _js(text)
    elif language == "markdown":
        found = _markdown(text)
    else:
        found = []
    return found[:_MAX_SNIPPETS]


def _line(lines: list[str], number: int) -> str:
    return lines[number - 1].strip()[:_MAX_SNIPPET_CHARS] if 0 < number <= len(lines) else ""


def _python(text: str) -> list[Snippet]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return []
    lines = text.splitlines()
    found: list[Snippet] = []
    doc = ast.get_docstring(tree, clean=False)
    if doc is not None and tree.body:
        first = tree.body[0]
        end = first.end_lineno or first.lineno
        found.append(Snippet("header", doc.strip()[:_MAX_SNIPPET_CHARS], first.lineno, end))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            kind: SnippetType = "class" if isinstance(node, ast.ClassDef) else "function"
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found.append(
                Snippet(kind, _line(lines, node.lineno), start, node.end_lineno or node.lineno)
            )
    return sorted(found, key=lambda s: (s.line_start, s.snippet_type))


def _js(text: str) -> list[Snippet]:
    lines = text.splitlines()
    starts: list[tuple[int, SnippetType]] = []
    for number, line in enumerate(lines, 1):
        match = _JS_DEF.match(line)
        if match:
            starts.append((number, "class" if match.group("cls") else "function"))
    return [
        Snippet(
            kind,
            _line(lines, start),
            start,
            (starts[i + 1][0] - 1) if i + 1 < len(starts) else len(lines),
        )
        for i, (start, kind) in enumerate(starts)
    ]


def _markdown(text: str) -> list[Snippet]:
    lines = text.splitlines()
    heads: list[tuple[int, int, str]] = []
    fence = False
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
            continue
        match = None if fence else _MD_HEADING.match(line)
        if match:
            heads.append((number, len(match.group(1)), match.group(2)[:_MAX_SNIPPET_CHARS]))
    found = []
    for i, (start, level, title) in enumerate(heads):
        end = len(lines)
        for later, later_level, _ in heads[i + 1 :]:
            if later_level <= level:
                end = later - 1
                break
        found.append(Snippet("header", title, start, end))
    return found
