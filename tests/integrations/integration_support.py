"""Shared by the integration tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

from aico.ai.embeddings import HashingEncoder

PASSPHRASE = "integration test passphrase"
ROOT = Path(__file__).resolve().parents[2]


def hashing_embed(texts: list[str]) -> list[list[float]]:
    """The same vectors aico's test encoder makes, as a LangGraph embedding function."""
    vectors: list[list[float]] = HashingEncoder().encode(texts).tolist()
    return vectors


def scan(root: Path, needles: list[bytes]) -> list[tuple[str, bytes]]:
    """Every (file, needle) where a needle occurs in the raw bytes of a file under ``root``."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [(str(path), n) for n in needles if n in data]
    return found
