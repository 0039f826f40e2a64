"""--eval_steps: score the policy on validation sets during training, as OpenRLHF's --eval_steps
does, with the same code as `evaluation/run_eval.py` (dataset-label and model-relative metrics).

Every --eval_steps iterations the policy is exported to log_dir/eval/iter_NNNN/model and
`run_eval.py` scores it in a subprocess (its own vLLM engine: on GPUs leave it memory with
--vllm_gpu_memory_utilization, on CPU it shares the cores with training, which waits). Its
numeric metrics are logged as eval/<benchmark>/<metric>; with --eval_metric the best iteration's
export is moved to --save_path (knowrl_best.json says which), the others are deleted. The
library does not import the evaluation app (tests/test_layers.py): the subprocess is the seam.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

# dataset names --eval_dataset accepts for a validation split of `python -m evaluation.splits`
SPLITS = {"selfaware": "selfaware_validation.jsonl", "kuq": "kuq_validation.jsonl"}
BEST_FILE = "knowrl_best.json"


def last_output_line(proc: subprocess.CompletedProcess) -> str:
    """The last line a failed subprocess printed (stderr first): its own error line."""
    return (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]


def eval_benchmarks(eval_dataset: str, splits_dir: str) -> list[str]:
    """--eval_dataset's comma-separated entries as run_eval.py --benchmark values: `selfaware` and
    `kuq` become their validation split in `splits_dir`, `capability[:N]` and paths stay."""
    out = []
    for entry in (e.strip() for e in eval_dataset.split(",") if e.strip()):
        out.append(os.path.join(splits_dir, SPLITS[entry]) if entry in SPLITS else entry)
    return out


def flatten_metrics(result: dict) -> dict[str, float]:
    """run_eval.py's metrics.json as {"eval/<benchmark>/<metric>": value} for every number at
    most two levels under a benchmark's metrics (model_relative/auroc_pik, ...)."""
    out = {}
    for bench, entry in result.get("benchmarks", {}).items():
        for key, value in (entry.get("metrics") or {}).items():
            inner = value.items() if isinstance(value, dict) else [(None, value)]
            for sub, v in inner:
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[f"eval/{bench}/{key}" + (f"/{sub}" if sub else "")] = float(v)
    return out


class InTrainingEval:
    """Runs the evaluations of one run (`cfg`: its KnowRLConfig; `model_path`: the base model the
    exports are completed from)."""

    def __init__(self, cfg, model_path: str):
        self.cfg = cfg
        self.model_path = model_path
        self.root = os.path.join(cfg.log_dir, "eval")
        self.best: dict | None = None     # {"iteration", "metric", "value"} of --save_path

    def due(self, iteration: int) -> bool:
        """Iteration `iteration` ends with an evaluation (every --eval_steps; -1: never)."""
        return self.cfg.eval_steps > 0 and iteration % self.cfg.eval_steps == 0

    def run(self, iteration: int, policy) -> dict[str, float]:
        """Export the policy, score it, log and keep the best. Raises RuntimeError with run_eval's
        last error line when it fails (the iteration's checkpoint is then the way back)."""
        cfg = self.cfg
        splits = os.path.join(self.root, "splits")
        if any(e.strip() in SPLITS for e in cfg.eval_dataset.split(",")) and not os.path.isdir(splits):
            self.call([sys.executable, "-m", "evaluation.splits", "materialize", splits], iteration)
        folder = os.path.join(self.root, f"iter_{iteration:04d}")
        model = os.path.join(folder, "model")
        policy.call_all("save_hf", model, self.model_path)
        # the installed knowrl-eval (the `evaluation` package sits beside `openrlhf`)
        argv = [sys.executable, "-m", "evaluation.run_eval", "--model-path", model,
                "--output_dir", folder, "--seed", str(cfg.seed), "--n_samples", str(cfg.eval_n_samples),
                "--answer_prefix", cfg.answer_prefix]
        for bench in eval_benchmarks(cfg.eval_dataset, splits):
            argv += ["--benchmark", bench]
        if cfg.prompt_templates:
            argv += ["--prompt_templates", cfg.prompt_templates]
        self.call(argv, iteration)
        with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as f:
            metrics = flatten_metrics(json.load(f))
        self.keep_if_best(iteration, metrics, model)
        return metrics

    @staticmethod
    def call(argv: list[str], iteration: int) -> None:
        """Run one evaluation command; RuntimeError with its last output line when it fails."""
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"--eval_steps: evaluating iteration {iteration} failed: {last_output_line(proc)}")

    def keep_if_best(self, iteration: int, metrics: dict[str, float], model: str) -> None:
        """With --eval_metric, move `model` to --save_path when it beats the best so far (higher
        is better); delete it otherwise (exports are 4 bytes per parameter)."""
        key = f"eval/{self.cfg.eval_metric}"
        value = metrics.get(key)
        if self.cfg.eval_metric and value is not None and (self.best is None or value > self.best["value"]):
            shutil.rmtree(self.cfg.save_path, ignore_errors=True)
            shutil.move(model, self.cfg.save_path)
            self.best = {"iteration": iteration, "metric": self.cfg.eval_metric, "value": value}
            with open(os.path.join(self.cfg.save_path, BEST_FILE), "w", encoding="utf-8") as f:
                json.dump(self.best, f, indent=1)
        else:
            shutil.rmtree(model, ignore_errors=True)

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]
