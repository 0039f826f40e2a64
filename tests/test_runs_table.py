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
