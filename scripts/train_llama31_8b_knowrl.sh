#!/usr/bin/env bash
# KnowRL on LLaMA-3.1-8B-Instruct with Reinforce++ on a GPU node (layout and knobs: scripts/train_knowrl_gpu.sh).
# Start Ray first:   ray start --head --node-ip-address 0.0.0.0
# then, from the repository root:  bash scripts/train_llama31_8b_knowrl.sh [extra flags]
# PRETRAIN may be a local folder when the nodes cannot reach the model hub.
set -euo pipefail
export PRETRAIN=${PRETRAIN:-meta-llama/Llama-3.1-8B-Instruct}
export RUN_DIR=${RUN_DIR:-./checkpoint/llama31-8b-knowrl}
exec bash "$(dirname "${BASH_SOURCE[0]}")/train_knowrl_gpu.sh" "$@"
