"""Several runs' metrics side by side, window by window (openrlhf/analysis/runs_table.py)."""

import json

import pytest

from openrlhf.analysis.runs_table import main, parse_windows, window_rows


def write_run(folder, rows):
    logs = folder / "logs"
    logs.mkdir(parents=True)
    (logs / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return logs


def metrics(iteration, agreement, kept, trained=True):
    row = {"iteration": iteration, "rollout/agreement": agreement, "rollout/feasible_share": 0.25,
           "knowrl/groups_kept": kept}
    if trained:
        row["train/policy_loss"] = 0.1
    return row


def test_window_means_and_counts():
    rows = [metrics(1, 0.5, 4), metrics(2, 0.7, 2), metrics(3, 1.0, 0, trained=False)]
    first, second = window_rows(rows, [(1, 2), (3, 5)])
    assert first["iterations"] == 2 and first["rollout/agreement"] == pytest.approx(0.6)
    assert first["groups_kept"] == 6 and first["updates"] == 2
    assert second["iterations"] == 1 and second["planned"] == 3 and second["updates"] == 0
    assert second["rollout/gen_label_consistency"] is None   # never logged: an empty cell, not 0


def test_parse_windows():
    assert parse_windows("1-10, 11-30,40") == [(1, 10), (11, 30), (40, 40)]
    for bad in ("10-1", "0-3", "a-b"):
        with pytest.raises(ValueError, match="--windows"):
            parse_windows(bad)


def test_cli_prints_one_row_per_run_and_window(tmp_path, capsys):
    a = write_run(tmp_path / "run_a", [metrics(i, 0.8, 1) for i in range(1, 5)])
    b = write_run(tmp_path / "run_b", [metrics(1, 0.4, 3)])
    assert main([str(a), str(b), "--windows", "1-2,3-4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("| run_a | 1-2 | 0.800 |")
    assert out[5].startswith("| run_b | 3-4 (0 so far) |")
    assert main([str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_eval_table_shows_the_differing_settings_and_each_comparison(tmp_path, capsys):
    a = write_run(tmp_path / "tune_a", [metrics(1, 0.8, 1)])
    b = write_run(tmp_path / "tune_b", [metrics(1, 0.6, 2)])
    (a / "config.json").write_text(json.dumps({"actor_learning_rate": 1e-6, "init_kl_coef": 0.01, "seed": 42}))
    (b / "config.json").write_text(json.dumps({"actor_learning_rate": 3e-6, "init_kl_coef": 0.01, "seed": 42}))
    (a.parent / "eval").mkdir()
    acc = {"A": 0.5, "B": 0.56, "estimate": 0.06, "ci_low": 0.01, "ci_high": 0.11}
    (a.parent / "eval" / "compare.json").write_text(json.dumps({
        "benchmarks": {"selfaware_validation": {"n": 100, "metrics": {"accuracy": acc, "auroc": {"A": 0.5, "B": None}}}},
        "intrinsic": {"n": {"A": 40, "B": 38}, "consistency": {"A": 0.5, "B": 0.7, "estimate": 0.2,
                                                                 "ci_low": 0.0, "ci_high": 0.4}}}))
    assert main([str(a), str(b), "--windows", "1-1", "--eval"]) == 0
    out = capsys.readouterr().out.split("\n\n")[1].splitlines()
    assert out[0] == "| run | lr | split (n) | accuracy | macro-F1 | AUROC | mean agreement |"
    assert out[2] == ("| tune_a | 1e-06 | selfaware_validation (100) | 0.500 -> 0.560, +0.060 [+0.010, +0.110] "
                      "|  | 0.500 -> n/a |  |")
    assert out[3].startswith("| tune_a | 1e-06 | own tasks (40 / 38) | consistency 0.500 -> 0.700, +0.200")
    assert out[4] == "| tune_b | 3e-06 | not evaluated yet |  |  |  |  |"


def test_band_table_counts_groups_by_generation_label(tmp_path, capsys):
    logs = write_run(tmp_path / "genlabel", [metrics(1, 0.9, 1)])
    (logs / "config.json").write_text(json.dumps({"min_group_reward": 0.2, "max_group_reward": 0.9}))
    (logs / "iterations").mkdir()
    groups = [("feasible", 0.0, False), ("feasible", 0.5, True), ("infeasible", 1.0, False),
              ("infeasible", 0.8, True), ("infeasible", 0.5, False)]
    (logs / "iterations" / "iter_0001.jsonl").write_text("".join(
        json.dumps({"iteration": 1, "task": f"t{i}", "gen_label": g, "mean_reward": r, "kept": k, "samples": []}) + "\n"
        for i, (g, r, k) in enumerate(groups)))
    assert main([str(logs), "--windows", "1-1", "--band"]) == 0
    out = capsys.readouterr().out.split("\n\n")[1].splitlines()
    assert out[2:] == ["| genlabel | feasible | 2 | 1 | 1 | 0 | 0 |", "| genlabel | infeasible | 3 | 1 | 0 | 1 | 1 |"]


def test_ranking_uses_validation_macro_f1_then_auroc_and_ignores_test_splits(tmp_path, capsys):
    def diff(estimate):
        return {"A": 0.5, "B": 0.5 + estimate, "estimate": estimate, "ci_low": estimate - 0.1, "ci_high": estimate + 0.1}

    def evaluated(name, val_f1, val_auroc, test_f1):
        logs = write_run(tmp_path / name, [metrics(1, 0.8, 1)])
        (logs.parent / "eval").mkdir()
        splits = {"selfaware_validation": (val_f1[0], val_auroc), "kuq_validation": (val_f1[1], val_auroc),
                  "selfaware_test": (test_f1, 0.3)}
        (logs.parent / "eval" / "compare.json").write_text(json.dumps({"benchmarks": {
            split: {"n": 100, "metrics": {"macro_f1": diff(f1), "auroc": diff(auroc)}}
            for split, (f1, auroc) in splits.items()}}))
        return str(logs)

    # tie on validation macro-F1 (mean +0.02) broken by AUROC; a large test gain must not lift run c
    a = evaluated("a", (0.00, 0.04), 0.01, 0.0)
    b = evaluated("b", (0.02, 0.02), 0.05, 0.0)
    c = evaluated("c", (-0.05, 0.01), 0.20, 0.5)
    unevaluated = str(write_run(tmp_path / "d", [metrics(1, 0.8, 1)]))
    assert main([a, b, c, unevaluated, "--windows", "1-1", "--eval"]) == 0
    ranking = capsys.readouterr().out.split("\n\n")[2].splitlines()
    assert [row.split(" | ")[1] for row in ranking[2:]] == ["b", "a", "c"]
    assert ranking[2] == "| 1 | b | +0.020 | +0.050 |"
    assert ranking[4] == "| 3 | c | -0.020 | +0.200 |"
