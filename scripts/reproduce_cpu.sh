#!/usr/bin/env bash
# The CPU reproduction of issue #9: train the embedded SmolLM2-135M-Instruct with KnowRL for a
# fixed budget of iteration time, then score the base and the trained model side by side on the
# held-out splits (evaluation/data/splits.json: SelfAware and KUQ, validation 100 + test 300 each,
# balanced, chosen with a fixed seed before any run) and on self-written tasks.
#
#   bash scripts/reproduce_cpu.sh                 # starts in the background, prints where it logs
#   FOREGROUND=1 bash scripts/reproduce_cpu.sh    # same, in this terminal
#   RUN_DIR=runs/reproduce TRAIN_MINUTES=60 REWARD=consensus bash scripts/reproduce_cpu.sh
#
# Run it again after an interruption: training resumes from the newest complete checkpoint (one
# per iteration) with the iteration time spent so far carried over, and evaluation steps whose
# results exist are reused. Knobs for the controls: REWARD (consensus, generation_label, random),
# ESTIMATOR (reinforce, reinforce_baseline, grpo), POOL=0 (no pool growth), LR, KL, N, TEMPERATURE,
# SEED, ITERATIONS (a fixed number of iterations instead of the time budget: the controls use the
# main run's count, so a busier machine changes their wall time, not their amount of training),
# EXTRA (more flags), SPLITS=validation (tuning: evaluate on the validation splits only),
# KEEP_CKPT=0 (delete the run's training checkpoints, about 4 GB, once it is evaluated and reported).
# Needs the benchmarks: KNOWRL_BENCHMARKS_DIR (default ../shared/benchmarks) with selfaware/ kuq/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
run=${RUN_DIR:-runs/reproduce}
splits=${SPLITS:-all}
case "$splits" in
    all|validation) ;;
    *) echo "reproduce_cpu.sh: SPLITS=$splits: use all (validation and test splits) or validation (tuning)" >&2; exit 2 ;;
esac
mkdir -p "$run"

if [ "${FOREGROUND:-0}" != "1" ]; then
    FOREGROUND=1 nohup bash "$root/scripts/reproduce_cpu.sh" "$@" >>"$run/reproduce.log" 2>&1 &
    echo "reproduce_cpu.sh: running in the background (pid $!); log: $run/reproduce.log"
    echo "  follow it with: tail -f $run/reproduce.log    (run this script again to resume)"
    exit 0
fi

export KNOWRL_BENCHMARKS_DIR=${KNOWRL_BENCHMARKS_DIR:-$root/../shared/benchmarks}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
bash scripts/setup_env.sh
py=.venv/bin/python
echo "[reproduce] $(date -u '+%Y-%m-%d %H:%M:%S') start in $run"

$py -m evaluation.splits materialize "$run/splits"

extra_flags=()
if [ "${POOL:-1}" = "0" ]; then extra_flags+=(--pool_max_size 0); fi
# GRPO puts the KL term in the loss (the CLI refuses KL in the reward with grpo)
if [ "${ESTIMATOR:-reinforce}" = "grpo" ]; then extra_flags+=(--use_kl_loss --kl_estimator k3); fi
# the tokenizer is the last file the HF export writes: its presence means training finished
if [ ! -f "$run/model/tokenizer_config.json" ]; then
    # shellcheck disable=SC2086
    $py -m openrlhf.cli.train_knowrl \
      --num_iterations "${ITERATIONS:-10000}" --max_train_minutes "${TRAIN_MINUTES:-60}" \
      --reward_func "${REWARD:-consensus}" --advantage_estimator "${ESTIMATOR:-reinforce}" \
      --rollout_batch_size 8 --n_samples_per_prompt "${N:-6}" \
      --introspection_prompts 4 --tasks_per_introspection 4 \
      --prompt_max_len 768 --generate_max_len 24 --introspection_max_len 160 \
      --train_batch_size 24 --micro_train_batch_size 6 --micro_rollout_batch_size 12 \
      --temperature "${TEMPERATURE:-1.0}" --actor_learning_rate "${LR:-1e-6}" --init_kl_coef "${KL:-1e-2}" \
      --min_group_reward 0.2 --max_group_reward 0.9 --seed "${SEED:-42}" \
      --save_steps 1 --max_ckpt_num 2 --load_checkpoint ${extra_flags[@]+"${extra_flags[@]}"} ${EXTRA:-} \
      --save_path "$run/model" --ckpt_path "$run/ckpt" --log_dir "$run/logs"
fi

# The base model's results are shared by every run that uses the same splits and settings.
base=${BASE_EVAL:-runs/base_eval}
validation_splits=(--benchmark "$run/splits/selfaware_validation.jsonl" --benchmark "$run/splits/kuq_validation.jsonl")
test_splits=(--benchmark "$run/splits/selfaware_test.jsonl" --benchmark "$run/splits/kuq_test.jsonl")
all_splits=("${validation_splits[@]}" "${test_splits[@]}")
sampling=(--n_samples 4 --max_new_tokens 24 --seed 0)
if [ ! -f "$base/predictions.jsonl" ]; then
    $py evaluation/run_eval.py --model-path "" "${all_splits[@]}" "${sampling[@]}" --intrinsic 20 --output_dir "$base"
fi
# SPLITS=validation (tuning): the trained model never sees the test splits
eval_flags=("${all_splits[@]}" "${sampling[@]}")
if [ "$splits" = "validation" ]; then eval_flags=("${validation_splits[@]}" "${sampling[@]}"); fi
if [ ! -f "$run/eval/B_model/predictions.jsonl" ]; then
    $py evaluation/run_eval.py --model-path "$run/model" "${eval_flags[@]}" --intrinsic 20 \
      --output_dir "$run/eval/B_model"
fi
$py evaluation/run_eval.py --compare "$base" "$run/eval/B_model" "${eval_flags[@]}" --output_dir "$run/eval"

$py -m openrlhf.analysis.run_report "$run/logs" --compare "$run/eval/compare.json" \
  --ckpt_path "$run/ckpt" --save_path "$run/model"
if [ "${KEEP_CKPT:-1}" = "0" ]; then rm -rf "$run/ckpt"; echo "[reproduce] removed $run/ckpt (KEEP_CKPT=0)"; fi
echo "[reproduce] $(date -u '+%Y-%m-%d %H:%M:%S') done: $run/logs/report.md, $run/eval/compare.json"
