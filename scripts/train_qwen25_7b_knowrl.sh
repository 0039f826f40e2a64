#!/usr/bin/env bash
# KnowRL on Qwen-2.5-7B-Instruct with Reinforce++ on a GPU node (layout and knobs: scripts/train_knowrl_gpu.sh).
# Start Ray first:   ray start --head --node-ip-address 0.0.0.0
# then, from the repository root:  bash scripts/train_qwen25_7b_knowrl.sh [extra flags]
# PRETRAIN may be a local folder when the nodes cannot reach the model hub.
set -euo pipefail
export PRETRAIN=${PRETRAIN:-Qwen/Qwen2.5-7B-Instruct}
export RUN_DIR=${RUN_DIR:-./checkpoint/qwen25-7b-knowrl}
exec bash "$(dirname "${BASH_SOURCE[0]}")/train_knowrl_gpu.sh" "$@"
