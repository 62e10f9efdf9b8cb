"""Cut a text file into chunks for the semantic store: whole lines, near a target size.

A chunk ends at a blank line or a Markdown heading when one is near, so a paragraph or a
section stays together; a single line longer than ``max_chars`` is cut. Each chunk knows
its line range (what a hit shows beside the path). Chunk texts are stripped of NUL (the
store refuses it) and empty chunks are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Chunk", "chunk_text"]

TARGET_CHARS = 1200
MAX_CHARS = 2000
MAX_CHUNKS = 2000


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    line_start: int
    line_end: int


def chunk_text(text: str, *, target: int = TARGET_CHARS, max_chars: int = MAX_CHARS) -> list[Chunk]:
    lines = text.replace("\x00", "").splitlines()
    chunks: list[Chunk] = []
    buf: list[str] = []
    size = 0
    first = 1

    def flush(last: int) -> None:
        nonlocal buf, size, first
        body = "\n".join(buf).strip()
        if body:
            chunks.append(Chunk(len(chunks), body, first, last))
        buf, size, first = [], 0, last + 1

    for number, line in enumerate(lines, 1):
        while len(line) > max_chars:  # one enormous line (minified code, a data blob)
            if buf:
                flush(number - 1)
                first = number
            buf, size = [line[:max_chars]], max_chars
            flush(number)
            first = number
            line = line[max_chars:]
        boundary = not line.strip() or line.startswith("#")
        if buf and (size + len(line) > max_chars or (size >= target and boundary)):
            flush(number - 1)
        buf.append(line)
        size += len(line) + 1
        if len(chunks) >= MAX_CHUNKS:
            break
    if buf and len(chunks) < MAX_CHUNKS:
        flush(len(lines))
    return chunks[:MAX_CHUNKS]
