#!/usr/bin/env bash
# Set up (or refresh) .venv, then run the whole test suite on CPU.
#   bash scripts/run_tests.sh [extra pytest args]
#   bash scripts/run_tests.sh -m "not e2e"   # fast tier only: no Ray/vLLM/DeepSpeed/training runs (pytest.ini)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest -q --durations=15 tests "$@"
