#!/usr/bin/env bash
# Tuning step of issue #9: which classification prompt and answer format suits the embedded model?
# Scores the BASE model on the validation splits only (SelfAware and KUQ, 100 items each; the test
# splits are kept for the final comparison) with every template in docs/results/tuning/templates/,
# the shipped template, and the shipped template without the "Label:" prefill; prints a table.
#
#   bash scripts/tune_templates.sh            # results in runs/tuning/, about 4 minutes per variant
#
# The shipped template's results are reused from the reproduction's base evaluation
# (BASE_EVAL, default runs/base_eval) when it exists: same items, samples and seed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export KNOWRL_BENCHMARKS_DIR=${KNOWRL_BENCHMARKS_DIR:-$root/../shared/benchmarks}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
bash scripts/setup_env.sh
py=.venv/bin/python
out=runs/tuning
mkdir -p "$out"
$py -m evaluation.splits materialize "$out/splits"
common=(--model-path "" --benchmark "$out/splits/selfaware_validation.jsonl"
        --benchmark "$out/splits/kuq_validation.jsonl" --n_samples 4 --max_new_tokens 24 --seed 0)

default=${BASE_EVAL:-runs/base_eval}
if [ ! -f "$default/metrics.json" ]; then
    default=$out/base_default
    [ -f "$default/metrics.json" ] || $py evaluation/run_eval.py "${common[@]}" --output_dir "$default"
fi
dirs=("$default")
for template in docs/results/tuning/templates/*.md; do
    name=$(basename "$template" .md)
    prompts=$out/templates/$name
    mkdir -p "$prompts"
    cp "$template" "$prompts/classification.md"
    cp knowrl_prompts/introspection.md "$prompts/introspection.md"
    [ -f "$out/base_$name/metrics.json" ] || $py evaluation/run_eval.py "${common[@]}" \
        --prompt_templates "$prompts" --output_dir "$out/base_$name"
    dirs+=("$out/base_$name")
done
[ -f "$out/base_no_prefill/metrics.json" ] || $py evaluation/run_eval.py "${common[@]}" --answer_prefix "" \
    --output_dir "$out/base_no_prefill"
dirs+=("$out/base_no_prefill")

$py - "${dirs[@]}" <<'PY'
import json
import sys

print("| prompt | split | accuracy | macro-F1 | AUROC | answers 'infeasible' | unparseable samples | mean agreement |")
print("|---|---|---|---|---|---|---|---|")
for folder in sys.argv[1:]:
    results = json.load(open(f"{folder}/metrics.json"))["benchmarks"]
    for split, name in (("selfaware_validation", "SelfAware val"), ("kuq_validation", "KUQ val")):
        m = results[split]["metrics"]
        print(f"| {folder.rsplit('/', 1)[-1]} | {name} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['auroc']:.3f} "
              f"| {m['predicted_infeasible_rate']:.2f} | {m['sample_unparseable_rate']:.2f} | {m['mean_agreement']:.2f} |")
PY
