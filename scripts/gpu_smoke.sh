#!/usr/bin/env bash
# GPU smoke run of the DeepSpeed policy path (no vLLM or Ray needed): see benchmarks/gpu_smoke.py.
# Wheels in .whl/ (DeepSpeed and what it needs, when the machine lacks them) are installed into
# /tmp/knowrl-site first; a tokenizer in .whl/tokenizer enables the save_hf check.
#   bash scripts/gpu_smoke.sh [extra flags for benchmarks.gpu_smoke]
# Results: ${OUT:-.}/gpu_smoke.json
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import deepspeed" 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/knowrl-site .whl/*.whl
        export PYTHONPATH="/tmp/knowrl-site:${PYTHONPATH:-}"
    else
        echo "gpu_smoke: DeepSpeed is not installed; pip install deepspeed (or put its wheels in .whl/)" >&2
        exit 2
    fi
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 DS_BUILD_OPS=0
if [ -z "${KNOWRL_SMOKE_TOKENIZER:-}" ] && [ -f .whl/tokenizer/tokenizer.json ]; then
    export KNOWRL_SMOKE_TOKENIZER="$PWD/.whl/tokenizer"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PYTHON" -m benchmarks.gpu_smoke --output "${OUT:-.}/gpu_smoke.json" "$@"
