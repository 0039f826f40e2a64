"""--eval_steps / --eval_dataset / --eval_metric: the pieces on their own, the checks before Ray,
and a tiny-model run whose evaluations go through evaluation/run_eval.py for real."""

import json
import os
import subprocess

import pytest

from openrlhf.cli.train_knowrl import main
from openrlhf.knowrl.config import ConfigError, KnowRLConfig
from openrlhf.knowrl.in_training_eval import BEST_FILE, InTrainingEval, eval_benchmarks, flatten_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dataset_names_become_run_eval_benchmarks():
    assert eval_benchmarks("selfaware, capability:20,/x/mine.jsonl,kuq", "/s") == [
        "/s/selfaware_validation.jsonl", "capability:20", "/x/mine.jsonl", "/s/kuq_validation.jsonl"]


def test_numbers_of_run_eval_metrics_are_flattened():
    result = {"benchmarks": {"mine": {"path": "x", "metrics": {
        "accuracy": 0.5, "macro_f1": None, "confusion": {"tp": 1}, "k": 4, "per_category": {"a": {"f1": 1}},
        "model_relative": {"auroc_pik": 0.6, "n": 10, "note": "text"}, "reliability": [0.1]}}}}
    assert flatten_metrics(result) == {"eval/mine/accuracy": 0.5, "eval/mine/confusion/tp": 1.0, "eval/mine/k": 4.0,
                                       "eval/mine/model_relative/auroc_pik": 0.6, "eval/mine/model_relative/n": 10.0}


def test_only_a_better_iteration_replaces_the_saved_model(tmp_path):
    cfg = KnowRLConfig(eval_steps=1, eval_dataset="capability", eval_metric="capability/accuracy",
                       save_path=str(tmp_path / "best"), log_dir=str(tmp_path / "logs"))
    ev = InTrainingEval(cfg, "base")
    for iteration, value in ((1, 0.5), (2, 0.4), (3, 0.7)):
        model = tmp_path / f"m{iteration}"
        model.mkdir()
        (model / "weights").write_text(str(iteration))
        ev.keep_if_best(iteration, {"eval/capability/accuracy": value}, str(model))
        assert not model.exists(), "an export is moved to --save_path or deleted"
    assert (tmp_path / "best" / "weights").read_text() == "3"
    assert json.loads((tmp_path / "best" / BEST_FILE).read_text()) == {
        "iteration": 3, "metric": "capability/accuracy", "value": 0.7}
    restored = InTrainingEval(cfg, "base")
    restored.load_state_dict(json.loads(json.dumps(ev.state_dict())))
    assert restored.best["iteration"] == 3


@pytest.mark.parametrize("flags, problem", [
    (dict(eval_steps=2), "--eval_steps needs --eval_dataset"),
    (dict(eval_metric="mine/accuracy"), "--eval_metric mine/accuracy needs --eval_steps N"),
    (dict(eval_steps=1, eval_dataset="capability", eval_metric="accuracy"), "give BENCHMARK/METRIC"),
    (dict(eval_steps=0), "--eval_steps must be -1 (never) or at least 1"),
])
def test_flag_rules(flags, problem):
    with pytest.raises(ConfigError) as err:
        KnowRLConfig(**flags)
    assert problem in str(err.value)


def test_datasets_are_checked_before_ray(tmp_path, capsys):
    from tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    dirs = ["--pretrain", model, "--save_path", str(tmp_path / "m"), "--ckpt_path", str(tmp_path / "c"),
            "--log_dir", str(tmp_path / "l"), "--dry_run", "--eval_steps", "1"]
    assert main(dirs + ["--eval_dataset", str(tmp_path / "missing.jsonl")]) == 2
    assert "--eval_dataset" in capsys.readouterr().err
    assert main(dirs + ["--eval_dataset", "capability:8", "--eval_metric", "selfaware_validation/macro_f1"]) == 2
    assert "'selfaware_validation' is not among the --eval_dataset benchmarks (capability)" in capsys.readouterr().err
    env_dir = os.environ.get("KNOWRL_BENCHMARKS_DIR")
    os.environ["KNOWRL_BENCHMARKS_DIR"] = str(tmp_path / "no_benchmarks")
    try:
        assert main(dirs + ["--eval_dataset", "kuq"]) == 2
        assert "set KNOWRL_BENCHMARKS_DIR" in capsys.readouterr().err
    finally:
        if env_dir is None:
            os.environ.pop("KNOWRL_BENCHMARKS_DIR")
        else:
            os.environ["KNOWRL_BENCHMARKS_DIR"] = env_dir


@pytest.mark.e2e
def test_tiny_run_evaluates_and_keeps_the_best(tmp_path):
    from tiny_model import build_tiny_model, tiny_train_command

    model = build_tiny_model(tmp_path / "tiny", label_answers=True)
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"task": t, "label": lab}) + "\n" for t, lab in [
        ("Write a short poem about the sea.", "feasible"), ("Predict the exact price of a stock next year.", "infeasible"),
        ("What is the capital city of France?", "feasible"), ("Who will win the world cup in 2090?", "infeasible")]))
    out = tmp_path / "run"
    argv = tiny_train_command(model, out, "--num_iterations", "2", "--zero_stage", "0", "--few_shot_examples", "2",
                              "--eval_steps", "2", "--eval_dataset", str(data), "--eval_metric", "mine/accuracy",
                              "--eval_n_samples", "2")
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    metrics = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    # every --eval_steps 2 iterations: iteration 2 only
    assert "eval/mine/accuracy" not in metrics[0] and "timing/eval" not in metrics[0]
    m = metrics[1]
    assert 0.0 <= m["eval/mine/accuracy"] <= 1.0 and m["eval/mine/n"] == 4.0 and "timing/eval" in m
    assert (out / "logs" / "eval" / "iter_0002" / "predictions.jsonl").is_file()
    best = json.loads((out / "model" / BEST_FILE).read_text())
    assert best == {"iteration": 2, "metric": "mine/accuracy", "value": m["eval/mine/accuracy"]}
    assert f"holds iteration {best['iteration']}, the best by --eval_metric mine/accuracy" in proc.stdout
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "model")
