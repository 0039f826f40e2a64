"""The collapse experiment's table and pre-registered rules (evaluation/experiment_arms.py) on
hand-built result folders: which arm stopped the collapse, which learned, which is picked."""

import json
import random

import pytest

from evaluation.experiment_arms import arms_report, main, monitor_means

F, I = "feasible", "infeasible"


def write_eval(folder, skill: float, rng: random.Random, collapsed: bool = False):
    """40 dataset items and 40 capability items; `skill` in [0, 1] mixes P(feasible) between
    noise and the item's label (dataset: gold; capability: the model's own correctness)."""
    folder.mkdir(parents=True)
    rows = []
    for j in range(80):
        gold = F if j % 2 else I
        p = 0.0 if collapsed else min(1.0, max(0.0, skill * (gold == F) + (1 - skill) * rng.random()))
        vote = F if p > 0.5 else I
        row = {"benchmark": "selfaware_validation" if j < 20 else "kuq_validation" if j < 40 else "capability",
               "task": f"t{j}", "gold": gold, "samples": [{"label": vote}], "p_feasible": p, "prediction": vote}
        if j >= 40:
            row["model_relative_label"] = gold
        rows.append(row)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_metrics(folder, rate: float, agreement: float):
    folder.mkdir(parents=True)
    rows = [{"iteration": i, "monitor/predicted_feasible_rate": rate, "monitor/self_agreement": agreement}
            for i in range(1, 11)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def experiment(tmp_path):
    rng = random.Random(0)
    write_eval(tmp_path / "base" / "eval", 0.0, rng)
    # A0 collapses; A1 stops the collapse but learns nothing; A2 stops it and learns; P stops it
    arms = {"A0": (0.02, 0.99, 0.0, True), "A1": (0.4, 0.7, 0.0, False), "A2": (0.45, 0.7, 0.8, False),
            "P": (0.5, 0.6, 0.0, False)}
    for arm, (rate, agreement, skill, collapsed) in arms.items():
        for seed in (42, 43):
            write_eval(tmp_path / f"{arm}_s{seed}" / "eval", skill, rng, collapsed)
            write_metrics(tmp_path / f"{arm}_s{seed}" / "logs", rate, agreement)
    return tmp_path


def test_rules_pick_the_arm_that_stops_the_collapse_and_learns(experiment):
    report = arms_report(experiment, n_boot=60)
    arms = report["arms"]
    assert report["A0_collapsed"] is True
    assert [arms[a]["rule1"] for a in ("A0", "A1", "A2", "P")] == [False, True, True, True]
    assert arms["A2"]["rule2"] is True and arms["A1"]["rule2"] is False and arms["P"]["rule2"] is None
    assert arms["A2"]["vs_base"]["E1"]["ci_low"] > 0 and arms["A2"]["vs_placebo"]["E2"]["ci_low"] > 0
    assert report["pick"] == "A2"


def test_without_learning_the_pick_is_the_best_ranking_arm_that_stopped_the_collapse(experiment):
    import shutil

    for seed in (42, 43):
        shutil.rmtree(experiment / f"A2_s{seed}")
    report = arms_report(experiment, n_boot=20)
    assert report["pick"] == "A1" and not any(e["rule2"] for e in report["arms"].values())


def test_monitor_window_and_cli(experiment, capsys):
    assert monitor_means(experiment / "A1_s42" / "logs" / "metrics.jsonl") == {
        "feasible_rate": pytest.approx(0.4), "self_agreement": pytest.approx(0.7), "iterations": 3}
    assert main([str(experiment), "--n_boot", "10"]) == 0
    out = capsys.readouterr().out
    assert "rule 3 picks: A2" in out and (experiment / "arms.json").is_file()
    saved = json.loads((experiment / "arms.json").read_text())
    assert saved["arms"]["A0"]["series"]["42"]["iteration"] == list(range(1, 11))
    assert saved["arms"]["A0"]["series"]["43"]["feasible_rate"] == [0.02] * 10
    assert (experiment / "arms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the figure is drawn"
    assert main([str(experiment / "nowhere")]) == 2
    assert "run scripts/collapse_experiment.sh first" in capsys.readouterr().err


def test_full_budget_run_reads_test_splits_and_its_own_window(tmp_path, capsys):
    """FULL=1's folder: the base model and one arm, scored on the test splits, 30 iterations."""
    rng = random.Random(1)
    for name, skill in (("base", 0.0), ("A1_s42", 0.8)):
        write_eval(tmp_path / name / "eval", skill, rng)
        lines = (tmp_path / name / "eval" / "predictions.jsonl").read_text()
        (tmp_path / name / "eval" / "predictions.jsonl").write_text(lines.replace("_validation", "_test"))
    (tmp_path / "A1_s42" / "logs").mkdir()
    rows = [{"iteration": i, "monitor/predicted_feasible_rate": 0.05 if i <= 10 else 0.5,
             "monitor/self_agreement": 0.7} for i in range(1, 31)]
    (tmp_path / "A1_s42" / "logs" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = arms_report(tmp_path, n_boot=30, window=(28, 30))
    a1 = report["arms"]["A1"]
    assert a1["monitors"][42]["feasible_rate"] == pytest.approx(0.5) and a1["rule1"]
    assert a1["vs_base"]["E1"]["estimate"] > 0.3, "the test-split rows are the dataset rows"
    assert "vs_placebo" not in a1 and a1["rule2"] is None and report["pick"] == "A1"
    assert not arms_report(tmp_path, n_boot=30)["arms"]["A1"]["rule1"], "iterations 8-10 sit at 0.05"
    assert main([str(tmp_path), "--n_boot", "10", "--window", "28", "30"]) == 0
    assert "it. 28-30" in capsys.readouterr().out
    assert main([str(tmp_path), "--window", "30", "28"]) == 2
    assert "--window 30 28" in capsys.readouterr().err
