"""What a file is: language (by name), binary or text, its encoding, its text and lines.

Binary means a NUL byte in the first 8 KiB, or bytes no accepted encoding decodes. Text is
decoded as UTF-8 (with or without a BOM) or UTF-16 with a BOM; anything else is treated as
binary rather than guessed (a wrong guess would index mojibake).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["Detected", "detect", "language_of"]

_LANGUAGES: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "restructuredtext",
    ".txt": "text",
    ".json": "json",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".html": "html",
    ".css": "css",
    ".sh": "shell",
    ".rs": "rust",
    ".go": "go",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".java": "java",
    ".sql": "sql",
}


def language_of(name: str) -> str | None:
    dot = name.rfind(".")
    return _LANGUAGES.get(name[dot:].lower()) if dot > 0 else None


@dataclass(frozen=True)
class Detected:
    is_binary: bool
    encoding: str | None
    text: str | None  # None for binary files
    line_count: int | None


def detect(data: bytes) -> Detected:
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return _decoded(data, "utf-16")
    if b"\x00" in data[:8192]:
        return Detected(True, None, None, None)
    if data.startswith(codecs.BOM_UTF8):
        return _decoded(data, "utf-8-sig")
    return _decoded(data, "utf-8")


def _decoded(data: bytes, encoding: str) -> Detected:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        # A multi-byte character cut by MAX_READ_BYTES is not a reason to call it binary.
        try:
            text = data[:-3].decode(encoding) if len(data) > 3 else ""
        except UnicodeDecodeError:
            return Detected(True, None, None, None)
    if "\x00" in text:
        return Detected(True, None, None, None)
    lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    return Detected(False, encoding, text, lines)
