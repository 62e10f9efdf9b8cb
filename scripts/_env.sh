# Sourced by scripts/demo.sh and scripts/test.sh: make .venv exist and hold what pyproject asks.
# Re-installs only when pyproject.toml changed since the last install (stamp holds its hash).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${AICO_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat .venv/.aico-installed 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    # torch==2.13.0 is pinned in pyproject: it resolves to the local CPU wheel, never CUDA.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
    echo "$want" > .venv/.aico-installed
fi
# Nothing is ever downloaded at run time; keep every library offline and quiet.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False
export OPENBLAS_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
