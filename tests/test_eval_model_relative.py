"""Model-relative evaluation (issue #20): the metrics of evaluation/metrics.py against labels that
say what is feasible for the model itself (P(IK), Kadavath et al. 2022), checked on hand-computed
cases, and their place in evaluation/report.py scoring, --rescore and --compare. Pure Python and
scikit-learn: no engine."""

import json
import math
import warnings

import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from evaluation import metrics as M
from evaluation import report as R
from evaluation import run_eval

F, I, U = "feasible", "infeasible", None


def mixed_case():
    """Six items: three the model can do, three it cannot (two of them unanswerable)."""
    label = [F, F, F, I, I, I]
    pred = [F, I, U, I, F, I]
    p = [0.9, 0.75, 0.7, 0.72, 0.8, 0.1]
    answerable = [True, True, True, True, False, False]
    return label, pred, p, answerable


def test_label_metrics_by_hand():
    m = M.model_relative_metrics(*mixed_case())
    assert (m["n"], m["n_feasible"], m["n_answerable"]) == (6, 3, 4)
    assert m["accuracy"] == pytest.approx(3 / 6)  # items 0, 3, 5; the unparseable one is wrong
    assert m["balanced_accuracy"] == pytest.approx((1 / 3 + 2 / 3) / 2)  # recall F = 1/3, recall I = 2/3
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # infeasible: TP 2, FP 1 (item 1), FN 1 (item 4)
    assert m["f1_feasible"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))  # TP 1, FP 1 (item 4), FN 2 (items 1, 2)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.4) / 2)
    assert m["overclaim_rate"] == pytest.approx(1 / 6)  # item 4: claimed, cannot
    assert m["underclaim_rate"] == pytest.approx(1 / 6)  # item 1: can, said infeasible
    assert m["unparseable_rate"] == pytest.approx(1 / 6)
    assert m["accuracy"] + m["overclaim_rate"] + m["underclaim_rate"] + m["unparseable_rate"] == pytest.approx(1)
    assert m["predicted_feasible_rate"] == pytest.approx(2 / 6)


def test_score_metrics_by_hand():
    m = M.model_relative_metrics(*mixed_case())
    # feasible 0.9 beats all three infeasible scores, 0.75 beats 0.72 and 0.1, 0.7 beats 0.1
    assert m["auroc_pik"] == pytest.approx(6 / 9)
    assert m["auroc_pik_answerable"] == pytest.approx(2 / 3)  # items 0-3: 0.9 and 0.75 beat 0.72, 0.7 does not
    sq = [(1 - 0.9) ** 2, (1 - 0.75) ** 2, (1 - 0.7) ** 2, 0.72 ** 2, 0.8 ** 2, 0.1 ** 2]
    assert m["brier"] == pytest.approx(sum(sq) / 6)
    # bins of P(feasible): [0.9] all F, [0.75, 0.7, 0.72] two F of three, [0.8] no F, [0.1] no F
    ece = (abs(0.9 - 1) + 3 * abs((0.75 + 0.7 + 0.72) / 3 - 2 / 3) + abs(0.8 - 0) + abs(0.1 - 0)) / 6
    assert m["ece"] == pytest.approx(ece)
    label, _, p, _ = mixed_case()
    # the scikit-learn AUROC agrees with the file's rank-based one (scores flipped to P(infeasible))
    assert m["auroc_pik"] == pytest.approx(M.auroc(label, [1 - x for x in p]))


def test_auroc_ties_count_half():
    assert M.auroc_p_feasible([F, I], [0.5, 0.5]) == 0.5
    assert M.auroc_p_feasible([F, I, I], [0.5, 0.5, 0.1]) == pytest.approx((0.5 + 1) / 2)


def test_ece_bins_p_feasible_not_mirrored_p_infeasible():
    # 0.7 is bin 7 of P(feasible); as P(infeasible) 0.3 it would share bin 3 with 0.35 (= P(f) 0.65)
    label, p = [F, I], [0.7, 0.65]
    assert M.ece(label, p, positive=F) == pytest.approx((0.3 + 0.65) / 2)
    assert M.ece(label, [1 - x for x in p]) == pytest.approx(abs((0.3 + 0.35) / 2 - 0.5))


def test_one_class_model_labels():
    # the model answers everything right: no infeasible item, AUROC undefined
    m = M.model_relative_metrics([F, F, F], [F, I, U], [0.9, 0.5, 0.2], [True] * 3)
    assert m["auroc_pik"] is None and m["auroc_pik_answerable"] is None
    assert m["balanced_accuracy"] == pytest.approx(1 / 3) == m["accuracy"]  # mean over the present class
    assert m["f1"] == 0.0  # a false positive exists, so 0 rather than undefined
    assert m["f1_feasible"] == pytest.approx(2 / 4) and m["macro_f1"] == pytest.approx(0.25)
    assert m["brier"] == pytest.approx((0.01 + 0.25 + 0.64) / 3)
    assert m["ece"] == pytest.approx((0.1 + 0.5 + 0.8) / 3)
    assert m["overclaim_rate"] == 0.0 and m["underclaim_rate"] == pytest.approx(1 / 3)
    # nothing feasible for the model
    m = M.model_relative_metrics([I, I], [I, I], [0.3, 0.0], [False, True])
    assert m["auroc_pik"] is None and m["auroc_pik_answerable"] is None and m["n_feasible"] == 0
    assert m["balanced_accuracy"] == 1.0 and m["f1"] == 1.0
    assert m["f1_feasible"] is None and m["macro_f1"] == 1.0  # no feasible gold or prediction: 0/0
    assert m["brier"] == pytest.approx((0.09 + 0.0) / 2) and m["ece"] == pytest.approx(0.3 / 2)


def test_all_correct_and_empty():
    label, _, p, answerable = mixed_case()
    m = M.model_relative_metrics(label, label, p, answerable)
    assert m["accuracy"] == m["balanced_accuracy"] == m["f1"] == m["macro_f1"] == 1.0
    assert m["overclaim_rate"] == m["underclaim_rate"] == m["unparseable_rate"] == 0.0
    e = M.model_relative_metrics([], [], [], [])
    assert e["n"] == 0 and e["n_feasible"] == 0
    for k in ("accuracy", "balanced_accuracy", "f1", "macro_f1", "auroc_pik", "auroc_pik_answerable", "brier",
              "ece", "overclaim_rate", "underclaim_rate"):
        assert e[k] is None, k


def test_unparseable_is_a_miss_for_either_class_like_sklearn_with_a_third_label():
    label = [F, F, I, I, I]
    pred = [U, F, U, I, F]
    # own: recall F = 1/2, recall I = 1/3
    m = M.model_relative_metrics(label, pred, [0.5] * 5, [True] * 5)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    # scikit-learn agrees once None is a label of its own (it cannot take None among strings)
    marked = ["unparseable" if p is None else p for p in pred]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(label, marked))
    assert m["f1"] == pytest.approx(f1_score(label, marked, labels=[I], average="macro"))
    assert m["f1_feasible"] == pytest.approx(f1_score(label, marked, labels=[F], average="macro"))
    assert m["accuracy"] == pytest.approx(2 / 5)


def test_missing_p_feasible():
    label, pred, p, answerable = mixed_case()
    p = list(p)
    p[5] = None  # an unanswerable item without a score
    m = M.model_relative_metrics(label, pred, p, answerable)
    assert m["auroc_pik"] is None and m["brier"] is None and m["ece"] is None
    assert m["auroc_pik_answerable"] == pytest.approx(2 / 3)  # its own items all have scores
    assert m["accuracy"] == pytest.approx(0.5)  # label metrics do not need scores
    assert M.auroc_p_feasible([F, I], [0.9, None]) is None


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="one entry per item"):
        M.model_relative_metrics([F, I], [F], [0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match=r"not a probability in \[0, 1\]"):
        M.model_relative_metrics([F], [F], [1.5], [True])
    with pytest.raises(ValueError, match="not a probability"):
        M.model_relative_metrics([F], [F], [math.nan], [True])
    with pytest.raises(ValueError, match="unknown gold label 'maybe'"):
        M.model_relative_metrics(["maybe"], [F], [0.5], [True])


def test_calibration_only_baseline():
    # median 0.5: only scores strictly above are feasible; a tie with the median is infeasible
    assert M.calibration_only_predictions([0.1, 0.5, 0.5, 0.9]) == [I, I, I, F]
    assert M.calibration_only_predictions([0.8, 0.2, 0.6, 0.4]) == [F, I, F, I]  # median 0.5 = (0.4 + 0.6) / 2
    assert M.calibration_only_predictions([0.3, None, 0.7, 0.5]) == [I, None, F, I]  # median of the scored ones
    assert M.calibration_only_predictions([0.4, 0.4]) == [I, I]
    assert M.calibration_only_predictions([]) == [] and M.calibration_only_predictions([None]) == [None]


def test_balanced_accuracy_on_dataset_labels():
    gold, pred = [I, I, I, F], [I, I, I, I]  # a one-label model: F1 looks good, balanced accuracy does not
    assert M.f1(gold, pred) == pytest.approx(6 / 7)
    assert M.balanced_accuracy(gold, pred) == pytest.approx(0.5)
    assert M.classification_metrics(gold, pred)["balanced_accuracy"] == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# Records: scoring, table, --rescore, --compare
# --------------------------------------------------------------------------------------------


def row(bench, i, gold, labels, *, p=None, mr=None, correct=None, source="label_token"):
    r = {"benchmark": bench, "index": i, "source_id": str(i), "task": f"{bench} question {i}", "gold": gold,
         "category": None, "samples": [{"text": f"Label: {x}", "label": x, "finished": True} for x in labels],
         "prediction": M.vote(labels), "confidence": M.confidence(labels)}
    if p is not None:
        r["p_feasible"], r["p_feasible_source"] = p, source
    if correct is not None:
        r.update(model_answers=["a", "b"], answer_correct=correct, answer_correct_share=0.5 if correct else 0.0)
    if mr is not None or correct is not None:
        r["model_relative_label"] = mr
    return r


def relative_rows(bench="qa"):
    """The mixed case as records (items 0-3 answered and graded, 4-5 unanswerable) plus one feasible
    item without gold answers, whose model-relative label cannot be known (None)."""
    label, pred, p, answerable = mixed_case()
    rows = []
    for i, (lab, pr, pf, ans) in enumerate(zip(label, pred, p, answerable)):
        gold = F if ans else I
        rows.append(row(bench, i, gold, [pr, pr], p=pf, mr=lab, correct=(lab == F) if ans else None))
    rows.append(row(bench, 6, F, [F, F], p=0.6, mr=None))
    return rows


def test_score_records_adds_model_relative_beside_dataset_metrics():
    rows = relative_rows()
    m = R.score_records(rows)["benchmarks"]["qa"]
    dataset = M.score_items([r["gold"] for r in rows], [[s["label"] for s in r["samples"]] for r in rows],
                            [None] * len(rows))
    assert {k: m[k] for k in dataset} == dataset  # dataset-label metrics unchanged
    mr = m["model_relative"]
    assert {k: mr[k] for k in M.model_relative_metrics(*mixed_case())} == M.model_relative_metrics(*mixed_case())
    # calibration-only: median of the six P(feasible) = (0.72 + 0.75) / 2 -> items 0, 1, 4 feasible
    base = M.model_relative_metrics(mixed_case()[0], [F, F, I, I, F, I], mixed_case()[2], mixed_case()[3])
    assert mr["calibration_only"] == {k: base[k] for k in R.BASELINE_KEYS}
    assert mr["calibration_only"]["overclaim_rate"] == pytest.approx(1 / 6)
    # dataset labels: gold F = items 0-3 and 6 (scores 0.9 0.75 0.7 0.72 0.6), I = items 4-5 (0.8 0.1)
    assert m["auroc_p_feasible"] == pytest.approx((1 + 0.5 + 0.5 + 0.5 + 0.5) / 5)
    table = R.format_table(R.score_records(rows))
    assert "model-relative" in table and "calibration-only" in table and "bal_acc" in table


def test_old_records_score_as_before():
    rows = [row("old", i, gold, labels) for i, (gold, labels) in
            enumerate([(F, [F, F]), (I, [I, F]), (I, [U, U]), (F, [I, I])])]
    m = R.score_records(rows)["benchmarks"]["old"]
    assert "model_relative" not in m and "auroc_p_feasible" not in m
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert "model-relative" not in R.format_table(R.score_records(rows))


def write_run(folder, rows):
    """predictions.jsonl plus a metrics.json laid out as run_eval.py writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    R.write_jsonl(folder / "predictions.jsonl", rows)
    scores = R.score_records(rows)
    R.write_json(folder / "metrics.json", {"model": {"name": "m"},
                                           "benchmarks": {k: {"metrics": v} for k, v in scores["benchmarks"].items()}})
    return folder / "predictions.jsonl"


def test_rescore_round_trip_covers_model_relative(tmp_path, capsys):
    rows = relative_rows() + [row("old", i, F, [F, I]) for i in range(3)]
    pred = write_run(tmp_path / "run", rows)
    assert run_eval.main(["--rescore", str(pred)]) == 0
    assert "rescored metrics match" in capsys.readouterr().out
    rescored = json.loads((tmp_path / "run" / "metrics_rescored.json").read_text())
    assert rescored["benchmarks"]["qa"]["model_relative"]["auroc_pik"] == pytest.approx(6 / 9)
    assert "model_relative" not in rescored["benchmarks"]["old"]
    # a changed model-relative label alone makes the rescored metrics differ from metrics.json
    rows[0]["model_relative_label"] = I
    R.write_jsonl(pred, rows)
    assert run_eval.main(["--rescore", str(pred)]) == 1
    assert "DIFFER" in capsys.readouterr().out


def test_reparse_updates_p_feasible_from_samples_only():
    a = row("qa", 0, F, [I, I], p=0.0, source="samples")
    b = row("qa", 1, F, [I, I], p=0.3, source="label_token")
    for r in (a, b):
        for s in r["samples"]:
            s["text"] = "Label: feasible"
    assert R.reparse([a, b]) == 4
    assert a["p_feasible"] == 1.0 and b["p_feasible"] == 0.3


def test_compare_gives_model_relative_cis_when_both_runs_have_them():
    rows_a = relative_rows()
    rows_b = relative_rows()
    for r in rows_b:  # B always says feasible
        r["samples"] = [{"text": "Label: feasible", "label": F, "finished": True}] * 2
    cmp = R.compare_records(rows_a, rows_b, n_boot=50, seed=1)
    ms = cmp["benchmarks"]["qa"]["metrics"]
    ma = R.score_records(rows_a)["benchmarks"]["qa"]
    mb = R.score_records(rows_b)["benchmarks"]["qa"]
    for key, mr_key in (("mr_balanced_accuracy", "balanced_accuracy"), ("mr_auroc_pik", "auroc_pik")):
        assert ms[key]["A"] == pytest.approx(ma["model_relative"][mr_key])
        assert ms[key]["B"] == pytest.approx(mb["model_relative"][mr_key])
        assert ms[key]["estimate"] == pytest.approx(ms[key]["B"] - ms[key]["A"])
        assert ms[key]["n_valid"] > 0 and ms[key]["ci_low"] <= ms[key]["ci_high"]
    assert ms["mr_balanced_accuracy"]["B"] == pytest.approx(0.5)  # recall F = 1, recall I = 0
    assert ms["balanced_accuracy"]["A"] == pytest.approx(ma["balanced_accuracy"])
    assert "mr_ = model-relative" in R.format_compare(cmp, "a", "b")
    # one run without model-relative fields: nothing model-relative to compare
    old_b = [{k: v for k, v in r.items() if k not in ("model_relative_label", "answer_correct", "p_feasible")}
             for r in rows_b]
    ms = R.compare_records(rows_a, old_b, n_boot=20)["benchmarks"]["qa"]["metrics"]
    assert "mr_balanced_accuracy" not in ms and "mr_auroc_pik" not in ms
