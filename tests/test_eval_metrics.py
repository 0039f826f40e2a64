"""Hand-computed checks of evaluation/metrics.py (infeasible = positive class)."""

import math

import pytest

from evaluation import metrics as M

F, I, U = "feasible", "infeasible", None


def test_basic_counts_and_ratios():
    gold = [I, I, I, F, F, F]
    pred = [I, F, U, I, F, F]
    # TP=1, FN=2 (one feasible, one unparseable), FP=1, TN=2; unparseable counts as wrong.
    assert M.accuracy(gold, pred) == pytest.approx(3 / 6)
    assert M.precision(gold, pred) == pytest.approx(1 / 2)
    assert M.recall(gold, pred) == pytest.approx(1 / 3)
    assert M.f1(gold, pred) == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))
    # feasible as positive: TP=2, FP=1 (gold I pred F), FN=1 (gold F pred I)
    assert M.f1(gold, pred, F) == pytest.approx(4 / 6)
    assert M.macro_f1(gold, pred) == pytest.approx((2 / 5 + 4 / 6) / 2)
    assert M.unparseable_rate(pred) == pytest.approx(1 / 6)
    cm = M.confusion_matrix(gold, pred)
    assert cm == {I: {F: 1, I: 1, "unparseable": 1}, F: {F: 2, I: 1, "unparseable": 0}}


def test_f1_matches_harmonic_mean():
    gold = [I, I, F, F, I]
    pred = [I, F, I, F, I]
    p, r = M.precision(gold, pred), M.recall(gold, pred)
    assert M.f1(gold, pred) == pytest.approx(2 * p * r / (p + r))


def test_no_positives():
    gold = [F, F, F]
    assert M.recall(gold, [F, F, F]) is None
    assert M.precision(gold, [F, F, F]) is None
    assert M.f1(gold, [F, F, F]) is None  # 0/0
    assert M.f1(gold, [I, F, F]) == 0.0  # a false positive makes it 0, not undefined
    assert M.precision(gold, [I, F, F]) == 0.0
    assert M.macro_f1(gold, [F, F, F]) == 1.0  # only the feasible-class F1 is defined
    assert M.auroc(gold, [0.1, 0.2, 0.3]) is None
    m = M.classification_metrics(gold, [F, F, F])
    assert m["n_infeasible"] == 0 and m["accuracy"] == 1.0 and m["f1"] is None


def test_all_unparseable():
    gold = [I, F, I, F]
    pred = [U, U, U, U]
    assert M.accuracy(gold, pred) == 0.0
    assert M.unparseable_rate(pred) == 1.0
    assert M.precision(gold, pred) is None
    assert M.recall(gold, pred) == 0.0
    assert M.f1(gold, pred) == 0.0 and M.macro_f1(gold, pred) == 0.0
    s = M.score_items(gold, [[U, U]] * 4)
    assert s["accuracy"] == 0.0 and s["mean_agreement"] == 0.0 and s["auroc"] == 0.5
    assert s["ece"] == pytest.approx(0.5)  # all confidence 0, half of them infeasible


def test_empty():
    assert M.accuracy([], []) is None
    assert M.unparseable_rate([]) is None
    assert M.ece([], []) is None
    assert M.mean_agreement([]) is None


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="unknown gold"):
        M.accuracy(["yes"], [F])
    with pytest.raises(ValueError, match="one prediction per item"):
        M.accuracy([F, I], [F])


def test_vote_confidence_agreement():
    assert M.vote([I, I, F, U]) == I
    assert M.vote([U, F, I]) == F  # tie: first parseable sample
    assert M.vote([I, F]) == I
    assert M.vote([U, U]) is None
    assert M.vote([F]) == F  # K = 1
    assert M.confidence([I, I, F, U]) == 0.5  # unparseable counts in K
    assert M.confidence([I]) == 1.0 and M.confidence([U]) == 0.0
    assert M.mean_agreement([[I, I, F, U], [F, F, F, F]]) == pytest.approx((0.5 + 1.0) / 2)
    assert M.mean_agreement([[I, F]]) == 0.0  # tie


def test_k1_score_items():
    gold = [I, F, I, F]
    samples = [[I], [F], [F], [U]]
    s = M.score_items(gold, samples, [None] * 4)
    assert s["k"] == 1
    assert s["accuracy"] == 0.5 and s["sample_accuracy"] == 0.5
    assert s["mean_agreement"] == pytest.approx(3 / 4)
    # scores 1,0,0,0: positives {1, 0}, negatives {0, 0}: pairs 2 wins + 2 ties -> (2 + 1) / 4
    assert s["auroc"] == pytest.approx(0.75)
    assert s["per_category"]["none"]["n"] == 4


def test_auroc_small_cases():
    assert M.auroc([F, I], [0.1, 0.9]) == 1.0
    assert M.auroc([F, I], [0.9, 0.1]) == 0.0
    assert M.auroc([F, I], [0.5, 0.5]) == 0.5
    # positives 0.8, 0.4; negatives 0.4, 0.2: pairs (0.8>0.4, 0.8>0.2, tie, 0.4>0.2) = 3.5/4
    assert M.auroc([I, I, F, F], [0.8, 0.4, 0.4, 0.2]) == pytest.approx(3.5 / 4)


def test_ece_small_cases():
    assert M.ece([I, F], [1.0, 0.0]) == 0.0
    assert M.ece([I, F], [0.0, 1.0]) == 1.0
    # bin [0.7,0.8): conf 0.75 x2, one positive -> |0.75-0.5|; bin [0.2,0.3): conf 0.25, negative -> 0.25
    assert M.ece([I, F, F], [0.75, 0.75, 0.25]) == pytest.approx(2 / 3 * 0.25 + 1 / 3 * 0.25)
    bins = M.reliability_bins([I, F, F], [0.75, 0.75, 0.25])
    assert len(bins) == 10 and bins[7]["n"] == 2 and bins[7]["frac_pos"] == 0.5 and bins[0]["mean_conf"] is None
    assert M.reliability_bins([I], [1.0])[9]["n"] == 1  # 1.0 falls in the last bin


def test_per_type_mapping():
    s = M.score_items([I, F, I], [[I], [F], [F]], ["missing_context", "contextual_awareness", "malicious_intent"])
    assert set(s["per_type"]) == {"contextual_awareness", "ethical_integrity"}
    assert s["per_type"]["contextual_awareness"]["n"] == 2
    assert s["per_type"]["contextual_awareness"]["accuracy"] == 1.0
    assert "per_type" not in M.score_items([I], [[I]], ["squadqa"])


def test_paired_bootstrap_shape_and_bounds():
    a = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
    b = [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]

    def stat(idx):
        return sum(b[i] - a[i] for i in idx) / len(idx)

    res = M.paired_bootstrap(len(a), stat, n_boot=500, seed=3)
    assert set(res) == {"estimate", "ci_low", "ci_high", "n_boot", "n_valid"}
    assert res["estimate"] == pytest.approx(0.2)
    assert res["n_boot"] == 500 and res["n_valid"] == 500
    assert 0.0 <= res["ci_low"] <= res["estimate"] <= res["ci_high"] <= 0.6
    assert M.paired_bootstrap(len(a), stat, n_boot=500, seed=3) == res  # seeded

    same = M.paired_bootstrap(5, lambda idx: 0.0, n_boot=50)
    assert same["ci_low"] == same["ci_high"] == 0.0

    multi = M.paired_bootstrap(len(a), lambda idx: {"d": stat(idx), "none": None}, n_boot=100)
    assert multi["d"]["n_valid"] == 100 and multi["none"]["ci_low"] is None and multi["none"]["n_valid"] == 0
    empty = M.paired_bootstrap(0, lambda idx: None, n_boot=10)
    assert empty["ci_low"] is None and empty["n_valid"] == 0


def test_unpaired_bootstrap():
    a, b = [0, 0, 1, 0], [1, 1, 0, 1, 1, 1]

    def stat(idx_a, idx_b):
        return sum(b[i] for i in idx_b) / len(idx_b) - sum(a[i] for i in idx_a) / len(idx_a)

    res = M.unpaired_bootstrap(len(a), len(b), stat, n_boot=400, seed=1)
    assert res["estimate"] == pytest.approx(5 / 6 - 1 / 4)
    assert -1.0 <= res["ci_low"] < res["estimate"] < res["ci_high"] <= 1.0
    assert M.unpaired_bootstrap(len(a), len(b), stat, n_boot=400, seed=1) == res
    wider = M.unpaired_bootstrap(len(a), len(b), stat, n_boot=400, seed=1, alpha=0.01)
    assert wider["ci_low"] <= res["ci_low"] and wider["ci_high"] >= res["ci_high"]
    assert M.unpaired_bootstrap(0, 3, lambda i, j: None, n_boot=5)["n_valid"] == 0


def test_intrinsic_metrics():
    from evaluation.intrinsic import intrinsic_metrics

    gold = [I, I, F, F]
    samples = [[F, F], [I, I], [I, I], [F, U]]
    types = ["ambiguity", "ambiguity", "ambiguity", "temporal_perception"]
    m = intrinsic_metrics(gold, samples, types)
    assert m["consistency"] == 0.5
    assert m["overconfidence"] == 0.5 and m["conservatism"] == 0.5
    assert m["mean_agreement"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert m["per_type"]["ambiguity"]["n"] == 3 and m["per_type"]["temporal_perception"]["conservatism"] == 0.0
    assert m["per_type"]["temporal_perception"]["overconfidence"] is None
    assert not math.isnan(m["unparseable_rate"])
