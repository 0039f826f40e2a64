"""evaluation/pik_signal.py on hand-made prediction rows: the P(IK) AUROCs, the calibration-only
baseline and the bootstrap intervals around them."""

import json

import pytest

from evaluation.pik_signal import main, signal_report, signal_stats


def row(benchmark, gold, p, correct=None, pred="infeasible"):
    r = {"benchmark": benchmark, "index": 0, "task": "t", "gold": gold, "prediction": pred, "p_feasible": p,
         "samples": [{"text": "", "label": pred, "finished": True}]}
    if correct is not None:
        r["answer_correct"] = correct
        r["model_relative_label"] = "feasible" if correct else "infeasible"
    elif gold == "infeasible":
        r["model_relative_label"] = "infeasible"
    return r


def test_stats_by_hand():
    rows = [row("b", "feasible", 0.9, True), row("b", "feasible", 0.6, False), row("b", "feasible", 0.7, True),
            row("b", "infeasible", 0.2), row("b", "infeasible", 0.8)]
    s = signal_stats(rows)
    # model-feasible scores {0.9, 0.7} against infeasible {0.6, 0.2, 0.8}: 5 of 6 pairs ordered right
    assert s["auroc_pik"] == pytest.approx(5 / 6)
    assert s["auroc_pik_answerable"] == pytest.approx(1.0)  # {0.9, 0.7} vs {0.6}
    # dataset labels: feasible {0.9, 0.6, 0.7} vs infeasible {0.2, 0.8}: 4 of 6
    assert s["auroc_dataset"] == pytest.approx(4 / 6)
    assert s["answer_accuracy"] == pytest.approx(2 / 3)
    # the vote says infeasible everywhere: recall 0 on feasible, 1 on infeasible
    assert s["bal_acc_vote"] == pytest.approx(0.5)
    # median 0.7: only 0.9 and 0.8 are above -> feasible; feasible recall 1/2, infeasible recall 2/3
    assert s["bal_acc_calibration_only"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_one_class_and_missing_scores_are_none():
    s = signal_stats([row("b", "infeasible", 0.1), row("b", "infeasible", None)])
    assert s["auroc_pik"] is None and s["auroc_dataset"] is None and s["bal_acc_calibration_only"] is None
    assert signal_stats([row("b", "feasible", 0.5)])["auroc_pik"] is None  # no model-relative label


def test_bootstrap_interval_brackets_the_estimate_and_main_writes_json(tmp_path, capsys):
    rows = [row("cap", "feasible", 0.9 - 0.01 * i, True) for i in range(20)] + \
           [row("cap", "infeasible", 0.3 + 0.01 * i) for i in range(20)]
    rep = signal_report(rows, n_boot=200, seed=1)["cap"]
    assert rep["n"] == 40 and rep["n_answerable"] == 20 and rep["n_feasible_for_model"] == 20
    assert rep["auroc_pik"]["estimate"] == 1.0 and rep["auroc_pik"]["ci_low"] == pytest.approx(1.0)
    noisy = [row("cap", "feasible", (i * 7 % 10) / 10, i % 2 == 0) for i in range(40)]
    est = signal_report(noisy, n_boot=200, seed=1)["cap"]["auroc_pik"]
    assert est["ci_low"] <= est["estimate"] <= est["ci_high"] and est["ci_low"] < est["ci_high"]
    pred = tmp_path / "predictions.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(tmp_path), "--n_boot", "50"]) == 0
    assert json.loads((tmp_path / "signal.json").read_text())["cap"]["n"] == 40
    assert "| cap |" in capsys.readouterr().out
    assert main([str(tmp_path / "nowhere")]) == 2
