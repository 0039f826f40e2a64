#!/usr/bin/env bash
# The controlled experiment of issue #22 (pre-registered in docs/results/collapse_experiment.md):
# does a label-free consensus target stop the collapse to "infeasible", and does the model then
# learn anything about what it can do? Every arm trains the embedded SmolLM2-135M-Instruct for the
# same number of iterations with configuration A of scripts/reproduce_cpu.sh, then is scored on
# the validation splits (dataset labels) and the capability suite (labels relative to the model).
#
#   bash scripts/collapse_experiment.sh              # starts in the background, prints its log
#   FOREGROUND=1 bash scripts/collapse_experiment.sh
#   ARMS="A0 A2" SEEDS="42" bash scripts/collapse_experiment.sh    # a subset
#   STOP=1 bash scripts/collapse_experiment.sh       # stop a background run (resume: run again)
#   FULL=1 bash scripts/collapse_experiment.sh       # rule 3: the picked arm (ARMS, default A1) at
#                                                    # full budget, scored on the test splits
#   FULL=1 STOP=1 bash scripts/collapse_experiment.sh   # stop the full-budget run
#
# Arms: A0 today's settings; A1 aligned pseudo-labels + nondegenerate filter; A2 A1 + class
# balance; A3 A2 + intent weight 0.5; P placebo (A2 with the targets permuted within each batch).
# Resumable: training resumes from its newest checkpoint, finished evaluations are reused.
# Outputs: runs/collapse/<arm>_s<seed>/{logs,model,eval}; base model: runs/collapse/base/.
# FULL=1: 30 iterations, seed 42, SelfAware/KUQ test splits and a capability:200 draw with seed 1
# (the base model is scored on the same items), in runs/collapse_full/.
set -euo pipefail
self=$(readlink -f "${BASH_SOURCE[0]}")
root=$(cd "$(dirname "$self")/.." && pwd)
cd "$root"
if [ "${FULL:-0}" = "1" ]; then
    out=${OUT_DIR:-runs/collapse_full} iterations=${ITERATIONS:-30} arms=${ARMS:-A1} seeds=${SEEDS:-42}
    split=test eval_seed=1
else
    out=${OUT_DIR:-runs/collapse} iterations=${ITERATIONS:-10} arms=${ARMS:-A0 A2 P A1 A3} seeds=${SEEDS:-42 43}
    split=validation eval_seed=0
fi
mkdir -p "$out"

if [ "${STOP:-0}" = "1" ]; then
    if [ -f "$out/pid" ]; then kill -- "-$(cat "$out/pid")" 2>/dev/null || true; rm -f "$out/pid"; fi
    echo "collapse_experiment.sh: stopped (run it again to resume)"; exit 0
fi
if [ "${FOREGROUND:-0}" != "1" ]; then
    FOREGROUND=1 setsid nohup bash "$self" "$@" >>"$out/experiment.log" 2>&1 &
    echo $! > "$out/pid"
    echo "collapse_experiment.sh: running in the background (pid $!); log: $out/experiment.log"
    exit 0
fi

export KNOWRL_BENCHMARKS_DIR=${KNOWRL_BENCHMARKS_DIR:-$root/../shared/benchmarks}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
py=.venv/bin/python
log() { echo "[collapse] $(date -u '+%Y-%m-%d %H:%M:%S') $*"; }

arm_flags() {
    case "$1" in
        A0) echo "" ;;
        A1) echo "--pseudo_label aligned --group_filter nondegenerate" ;;
        A2) echo "--pseudo_label aligned --group_filter nondegenerate --class_balance groups" ;;
        A3) echo "--pseudo_label aligned --group_filter nondegenerate --class_balance groups --intent_weight 0.5" ;;
        P)  echo "--pseudo_label aligned --group_filter nondegenerate --class_balance groups --permute_targets" ;;
        *) echo "collapse_experiment.sh: unknown arm $1 (A0 A1 A2 A3 P)" >&2; exit 2 ;;
    esac
}

$py -m evaluation.splits materialize "$out/splits" >/dev/null
# dataset labels (SelfAware, KUQ) and labels relative to the model (capability suite)
eval_sets=(--benchmark "$out/splits/selfaware_$split.jsonl" --benchmark "$out/splits/kuq_$split.jsonl"
           --benchmark capability:200)
evaluate() {  # model folder ('' = the embedded base model), output folder
    if [ ! -f "$2/predictions.jsonl" ]; then
        log "evaluate ${1:-base} -> $2"
        $py evaluation/run_eval.py --model-path "$1" "${eval_sets[@]}" --seed "$eval_seed" --output_dir "$2"
        $py -m evaluation.pik_signal "$2" >/dev/null
    fi
}

evaluate "" "$out/base/eval"
for seed in $seeds; do
    for arm in $arms; do
        run="$out/${arm}_s${seed}"
        flags=$(arm_flags "$arm")
        if [ ! -f "$run/model/tokenizer_config.json" ]; then
            log "train $arm seed $seed: $flags"
            # configuration A of scripts/reproduce_cpu.sh, a fixed number of iterations
            # shellcheck disable=SC2086
            $py -m openrlhf.cli.train_knowrl \
              --num_iterations "$iterations" --reward_func consensus --advantage_estimator reinforce \
              --rollout_batch_size 8 --n_samples_per_prompt 6 \
              --introspection_prompts 4 --tasks_per_introspection 4 \
              --prompt_max_len 768 --generate_max_len 24 --introspection_max_len 160 \
              --train_batch_size 24 --micro_train_batch_size 6 --micro_rollout_batch_size 12 \
              --temperature 1.0 --actor_learning_rate 1e-6 --init_kl_coef 1e-2 \
              --min_group_reward 0.2 --max_group_reward 0.9 --seed "$seed" --zero_stage 0 \
              --save_steps 1 --max_ckpt_num 1 --load_checkpoint $flags \
              --save_path "$run/model" --ckpt_path "$run/ckpt" --log_dir "$run/logs"
        fi
        evaluate "$run/model" "$run/eval"
        rm -rf "$run/ckpt"   # 0.5 GB per arm; the trained model stays in $run/model
        log "done $arm seed $seed"
    done
done
rm -f "$out/pid"
log "all arms done: python -m evaluation.experiment_arms $out$([ "$split" = test ] && echo " --window $((iterations - 2)) $iterations")"
