"""Several runs' metrics side by side, window by window (openrlhf/knowrl/runs_table.py)."""

import json

import pytest

from openrlhf.knowrl.runs_table import main, parse_windows, window_rows


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
