"""Producing the ONNX model locally from the shipped PyTorch weights, verified, atomically.

Nothing can be downloaded, so the ONNX file is exported on this machine the first time it is
needed. It runs in a child process (``python -m aico.ai.embeddings._export``) so the caller
never imports torch and keeps its memory small. The export is accepted only if the ONNX path
reproduces the sentence-transformers reference on fixed sentences (cosine >= ``MIN_COSINE``);
then the file is renamed into place and ``export.json`` is written last as the commit marker.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import aico
from aico.ai.embeddings._env import OFFLINE_ENVIRONMENT, apply_offline_environment
from aico.ai.embeddings._package import ModelSpec, read_model_spec, source_fingerprint
from aico.ai.embeddings._runner import INPUT_NAMES, OUTPUT_NAME, OnnxRunner
from aico.errors import AicoError, ConfigError, SemanticMemoryError

EXPORT_RECIPE = 1  # bump when the export procedure changes: old cache entries are ignored
OPSET = 17
MIN_COSINE = 0.99999
ONNX_FILENAME = "model.onnx"
META_FILENAME = "export.json"
EXPORT_TIMEOUT_S = 900

# Fixed, non-user sentences: varied lengths (padding), unicode, emoji, empty, and one longer
# than max_seq_length (truncation).
VERIFY_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "",
    "What did I tell you about my sister's wedding in Lisbon last June?",
    "🙂🎉 emoji, punctuation!?; and Ünïcödé façade naïve café",
    "日本語のテキストと English mixed together",
    "short",
    "Remember to water the basil every other day, it wilts fast in summer heat. " * 30,
    "  leading and trailing whitespace\n\tand control characters  ",
)


def cache_entry_dir(cache_dir: Path, fingerprint: str) -> Path:
    """The cache folder for one (source weights, export recipe) pair."""
    return cache_dir / f"minilm-{fingerprint[:24]}-onnx-r{EXPORT_RECIPE}"


def read_export_meta(entry_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """Return the commit marker if it describes a complete export of these weights."""
    try:
        meta = json.loads((entry_dir / META_FILENAME).read_text(encoding="utf-8"))
        size = (entry_dir / ONNX_FILENAME).stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if (
        meta.get("source_fingerprint") != fingerprint
        or meta.get("recipe") != EXPORT_RECIPE
        or meta.get("onnx_size") != size
    ):
        return None
    return meta


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _trace_to_onnx(spec: ModelSpec, target: Path) -> dict[str, str]:
    """Trace the Hugging Face model to ONNX (last hidden state only; pooling stays in numpy)."""
    try:
        import onnx  # noqa: F401  (torch's TorchScript exporter needs it to serialize)
        import torch
        import transformers
        from tokenizers import Tokenizer
        from transformers import AutoModel
    except ImportError as exc:
        raise ConfigError(
            f"exporting the ONNX embedding model needs the '{exc.name}' package: "
            f"pip install {exc.name}"
        ) from exc

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # Eager attention traces to plain MatMul/Softmax with the padding mask kept as a graph
    # input; the SDPA path bakes shape checks into the trace.
    model = AutoModel.from_pretrained(
        str(spec.model_dir), attn_implementation="eager", local_files_only=True
    ).eval()
    # A padded dummy batch, so the traced graph keeps the masking path (never all-ones).
    tokenizer = Tokenizer.from_file(str(spec.model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    encodings = tokenizer.encode_batch(["a longer sentence to set the width", "short"])
    width = max(len(e.ids) for e in encodings)
    ids = torch.zeros((2, width), dtype=torch.long)
    mask = torch.zeros((2, width), dtype=torch.long)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = torch.tensor(encoding.ids)
        mask[row, : len(encoding.ids)] = 1
    types = torch.zeros_like(ids)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is chatty (deprecation, tracer notes); the numeric
        # verification below is what decides whether the result is usable.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(model),
            (ids, mask, types),
            str(target),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return {"torch": torch.__version__, "transformers": transformers.__version__}


def verify_onnx(spec: ModelSpec, onnx_path: Path, memo_dir: Path | None) -> float:
    """Minimum cosine between the ONNX path and the sentence-transformers reference."""
    from aico.ai.embeddings._reference import SentenceTransformerEncoder

    sentences = list(VERIFY_SENTENCES)
    reference = SentenceTransformerEncoder(spec.model_dir, cache_dir=memo_dir).encode(sentences)
    runner = OnnxRunner(
        onnx_path,
        spec.model_dir / "tokenizer.json",
        dimension=spec.dimension,
        max_seq_length=spec.max_seq_length,
        threads=1,
    )
    batched = runner.encode(sentences, batch_size=4)
    single = np.stack([runner.encode([text], batch_size=1)[0] for text in sentences])
    cosines = np.concatenate([(batched * reference).sum(axis=1), (single * reference).sum(axis=1)])
    return float(cosines.min())


def export_onnx(model_dir: Path, entry_dir: Path, memo_dir: Path | None) -> dict[str, Any]:
    """Export, verify and commit one ONNX model into ``entry_dir`` (imports torch)."""
    apply_offline_environment()
    spec = read_model_spec(model_dir)
    fingerprint = source_fingerprint(spec, memo_dir)
    entry_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{ONNX_FILENAME}.", suffix=".tmp", dir=entry_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        versions = _trace_to_onnx(spec, tmp)
        min_cosine = verify_onnx(spec, tmp, memo_dir)
        if not min_cosine >= MIN_COSINE:
            raise SemanticMemoryError(
                f"the exported ONNX model disagrees with the reference encoder "
                f"(min cosine {min_cosine:.7f} < {MIN_COSINE}); not using it"
            )
        _fsync_file(tmp)
        with tmp.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        size = tmp.stat().st_size
        os.replace(tmp, entry_dir / ONNX_FILENAME)
        _fsync_dir(entry_dir)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    import onnxruntime

    meta: dict[str, Any] = {
        "recipe": EXPORT_RECIPE,
        "opset": OPSET,
        "source_fingerprint": fingerprint,
        "onnx_sha256": digest,
        "onnx_size": size,
        "min_cosine": min_cosine,
        "verify_sentences": len(VERIFY_SENTENCES),
        "onnxruntime": onnxruntime.__version__,
        **versions,
    }
    _write_atomic(entry_dir / META_FILENAME, json.dumps(meta, indent=2, sort_keys=True).encode())
    return meta


def _child_environment() -> dict[str, str]:
    """Offline defaults, quiet progress bars, a PYTHONPATH that finds this very ``aico``."""
    # The child needs no secrets: never hand it a passphrase the parent may hold.
    env = {key: value for key, value in os.environ.items() if "PASSPHRASE" not in key}
    for key, value in OFFLINE_ENVIRONMENT.items():
        env.setdefault(key, value)
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    package_root = str(Path(next(iter(aico.__path__))).parent)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = package_root + (os.pathsep + existing if existing else "")
    return env


def _error_class(name: object) -> type[AicoError]:
    import aico.errors as errors

    found = getattr(errors, str(name), None)
    if isinstance(found, type) and issubclass(found, AicoError):
        return found
    return SemanticMemoryError


def run_export_subprocess(model_dir: Path, entry_dir: Path, memo_dir: Path | None) -> None:
    """Run ``export_onnx`` in a child process and re-raise its typed error here."""
    command = [
        sys.executable,
        "-m",
        "aico.ai.embeddings._export",
        "--model-dir",
        str(model_dir),
        "--entry-dir",
        str(entry_dir),
    ]
    if memo_dir is not None:
        command += ["--memo-dir", str(memo_dir)]
    try:
        done = subprocess.run(
            command,
            env=_child_environment(),
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SemanticMemoryError("the ONNX export process could not run") from exc
    if done.returncode == 0:
        return
    lines = done.stdout.strip().splitlines()
    try:
        failure = json.loads(lines[-1]) if lines else None
    except ValueError:
        failure = None
    if isinstance(failure, dict) and "error" in failure:
        raise _error_class(failure["error"])(str(failure.get("message", "")))
    tail = done.stderr.strip()[-800:]
    raise SemanticMemoryError(f"the ONNX export process failed ({done.returncode}): {tail}")


def main(argv: list[str] | None = None) -> int:
    """Child entry point: export, then print the metadata (or a typed error) as JSON."""
    parser = argparse.ArgumentParser(prog="python -m aico.ai.embeddings._export")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--entry-dir", type=Path, required=True)
    parser.add_argument("--memo-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        meta = export_onnx(args.model_dir, args.entry_dir, args.memo_dir)
    except AicoError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        return 1
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
