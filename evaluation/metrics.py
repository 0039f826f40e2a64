"""Pure scoring functions for feasibility classification (no I/O, no model; scikit-learn for the
model-relative AUROC and Brier score).

Conventions used everywhere in ``evaluation/``:

* Labels are ``"feasible"`` / ``"infeasible"``; a prediction may also be ``None`` (unparseable).
  **infeasible is the positive class** (it stands for unanswerable / unknown as well).
* **Unparseable counts as wrong** in accuracy, and as "not predicted infeasible" in precision
  and recall (an unparseable answer to an infeasible task is a false negative; to a feasible
  task it is neither a TP nor an FP). For the feasible-class F1 used in macro-F1 the same
  holds with the roles swapped.
* A ratio whose denominator is 0 is ``None`` (JSON ``null``), never a made-up 0 or 1:
  precision with no predicted positives, recall with no gold positives, F1 when there are no
  gold and no predicted positives, AUROC with only one gold class, any metric of 0 items.
  F1 is computed as ``2TP / (2TP + FP + FN)``, so it is 0.0 (not ``None``) when positives
  exist but none is found. Macro-F1 is the mean of the per-class F1 values that are defined.
* With K samples per item the **prediction is the majority label** of the parseable samples;
  a tie is broken by the first parseable sample; no parseable sample gives ``None``.
  **confidence = (samples voting infeasible) / K** (unparseable samples count in K), the
  score used by AUROC and ECE. **agreement** is ``openrlhf.knowrl.reward.agreement``
  (majority count / K, 0 for a tie).
* ECE uses 10 equal-width bins of the confidence: sum over bins of (bin share) x
  |mean confidence - share of gold infeasible| (calibration of P(infeasible)).
* **Balanced accuracy** is the mean of the per-class recalls that are defined, i.e. over the
  classes present in the gold labels (unparseable = a miss for either class). With one class
  present it equals that class's recall (= accuracy): defined, since every item still has a
  right answer; 0 items give ``None``.

Model-relative evaluation (``model_relative_metrics``). The dataset label says whether a task is
answerable at all; the **model-relative label** says whether it is feasible *for this model*:
an item with gold answers is ``feasible`` when the model's greedy answer is graded correct, else
``infeasible``; an item without a gold answer that is unanswerable is ``infeasible`` for every
model. **answerable** marks the items with gold answers (the ones the model answered).
**P(feasible)** is the item's probability that the task is feasible for the model: P(IK), "I
know", in Kadavath et al. 2022, *Language Models (Mostly) Know What They Know*,
arXiv:2207.05221. Conventions there:

* Label metrics (accuracy, balanced accuracy, F1 with infeasible positive, macro-F1) use the
  model-relative label as gold and the same rules as above (unparseable is wrong). They are
  computed here rather than by scikit-learn, which cannot take ``None`` among string labels and
  turns 0/0 into a chosen number; the tests check they equal scikit-learn's with unparseable
  mapped to a third label.
* ``auroc_pik``: AUROC of P(feasible) for model label ``feasible`` over all items (ties count
  1/2); ``auroc_pik_answerable``: the same on answerable items only (the pure P(IK) question:
  which of the questions that have an answer will the model get right). ``brier``: mean of
  (P(feasible) - [model label feasible])^2. ``ece``: the 10-bin ECE above applied to
  P(feasible) against the share of model-label feasible items. Each of these is ``None`` when
  any item of its set has no P(feasible) (a score on part of the items would compare different
  item sets between runs), and the AUROCs also when one class is absent.
* ``overclaim_rate``: share of ALL items predicted feasible whose model label is infeasible
  (the model claims a task it cannot do); ``underclaim_rate``: share of all items predicted
  infeasible whose model label is feasible. Unparseable predictions are in neither, so
  accuracy + overclaim + underclaim + unparseable_rate = 1.
* ``calibration_only_predictions``: the baseline of issue #20, the untrained model with only its
  threshold moved: items whose P(feasible) is strictly above the batch median are feasible,
  items at or below it infeasible (a tie with the median counts as not known, the cautious
  side); an item without P(feasible) gets ``None`` (unparseable).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence

from sklearn.metrics import brier_score_loss, roc_auc_score

from openrlhf.knowrl.reward import agreement as _agreement
from openrlhf.knowrl.reward import majority_label
from openrlhf.knowrl.taxonomy import LABELS, REASON_TO_TYPE, TAXONOMY

POS, NEG = "infeasible", "feasible"
UNPARSEABLE = "unparseable"

__all__ = [
    "POS", "NEG", "UNPARSEABLE", "safe_div", "confusion_matrix", "accuracy", "precision", "recall",
    "f1", "macro_f1", "balanced_accuracy", "unparseable_rate", "vote", "confidence", "mean_agreement", "auroc",
    "ece",
    "reliability_bins", "classification_metrics", "per_group_metrics", "category_type", "score_items",
    "paired_bootstrap", "unpaired_bootstrap", "auroc_p_feasible", "model_relative_metrics",
    "calibration_only_predictions",
]


def safe_div(num: float, den: float) -> float | None:
    """`num` / `den`, or None when `den` is 0."""
    return None if den == 0 else num / den


def _check(gold: Sequence[str], pred: Sequence[str | None]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions — give one prediction per item")
    for g in gold:
        if g not in LABELS:
            raise ValueError(f"unknown gold label {g!r} — use one of {LABELS}")
    for p in pred:
        if p is not None and p not in LABELS:
            raise ValueError(f"unknown predicted label {p!r} — use one of {LABELS} or None")


def confusion_matrix(gold: Sequence[str], pred: Sequence[str | None]) -> dict[str, dict[str, int]]:
    """``{gold: {predicted: count}}`` with gold in LABELS and predicted in LABELS + unparseable."""
    _check(gold, pred)
    cm = {g: {p: 0 for p in (*LABELS, UNPARSEABLE)} for g in LABELS}
    for g, p in zip(gold, pred):
        cm[g][p if p is not None else UNPARSEABLE] += 1
    return cm


def _counts(gold, pred, positive: str) -> tuple[int, int, int]:
    tp = sum(1 for g, p in zip(gold, pred) if g == positive and p == positive)
    fp = sum(1 for g, p in zip(gold, pred) if g != positive and p == positive)
    fn = sum(1 for g, p in zip(gold, pred) if g == positive and p != positive)
    return tp, fp, fn


def accuracy(gold, pred) -> float | None:
    """Share of items predicted right; unparseable predictions are wrong."""
    _check(gold, pred)
    return safe_div(sum(1 for g, p in zip(gold, pred) if g == p), len(gold))


def precision(gold, pred, positive: str = POS) -> float | None:
    """Precision of `pred` against `gold` for label `positive` (infeasible by default); None without positive
    predictions."""
    _check(gold, pred)
    tp, fp, _ = _counts(gold, pred, positive)
    return safe_div(tp, tp + fp)


def recall(gold, pred, positive: str = POS) -> float | None:
    """Recall of `pred` against `gold` for label `positive` (infeasible by default); None without positive
    gold items."""
    _check(gold, pred)
    tp, _, fn = _counts(gold, pred, positive)
    return safe_div(tp, tp + fn)


def f1(gold, pred, positive: str = POS) -> float | None:
    """F1 of `pred` against `gold` for label `positive` (infeasible by default); None when neither
    gold nor pred holds that label. Raises ValueError for lists of different lengths."""
    _check(gold, pred)
    tp, fp, fn = _counts(gold, pred, positive)
    return safe_div(2 * tp, 2 * tp + fp + fn)


def macro_f1(gold, pred) -> float | None:
    """Mean F1 over the two labels that have one; None when neither has."""
    vals = [v for v in (f1(gold, pred, lab) for lab in LABELS) if v is not None]
    return safe_div(sum(vals), len(vals))


def balanced_accuracy(gold, pred) -> float | None:
    """Mean recall over the classes present in ``gold`` (unparseable = a miss); ``None`` for 0 items."""
    recalls = [r for r in (recall(gold, pred, lab) for lab in LABELS) if r is not None]
    return safe_div(sum(recalls), len(recalls))


def unparseable_rate(pred) -> float | None:
    """Share of predictions that are None (no label could be read); None for no predictions."""
    return safe_div(sum(1 for p in pred if p is None), len(pred))


def vote(labels: Sequence[str | None]) -> str | None:
    """Majority label of K parsed samples; ties go to the first parseable sample."""
    label, count = majority_label(list(labels))
    if label is None and count > 0:
        return next(lab for lab in labels if lab is not None)
    return label


def confidence(labels: Sequence[str | None]) -> float:
    """Share of the K samples that say infeasible (unparseable ones count in K); 0.0 for K = 0."""
    return sum(1 for lab in labels if lab == POS) / len(labels) if labels else 0.0


def mean_agreement(sample_labels: Sequence[Sequence[str | None]]) -> float | None:
    """Mean over items of `agreement` (the share of an item's samples holding its majority label,
    0 without a majority); None for no items."""
    return safe_div(sum(_agreement(list(s)) for s in sample_labels), len(sample_labels))


def auroc(gold: Sequence[str], scores: Sequence[float]) -> float | None:
    """Rank-based AUROC (Mann-Whitney U) of ``scores`` for gold infeasible; ties get average
    ranks (a tie between a positive and a negative counts 1/2). ``None`` with one class only."""
    if len(gold) != len(scores):
        raise ValueError(f"{len(gold)} gold labels but {len(scores)} scores")
    n_pos = sum(1 for g in gold if g == POS)
    n_neg = len(gold) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1  # ranks are 1-based
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    rank_sum = sum(r for r, g in zip(ranks, gold) if g == POS)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def reliability_bins(gold: Sequence[str], scores: Sequence[float], n_bins: int = 10,
                     positive: str = POS) -> list[dict]:
    """Per bin of the score: ``lo``, ``hi``, ``n``, ``mean_conf``, ``frac_pos`` (share of gold
    ``positive`` in the bin; None when empty). The last bin includes 1.0."""
    bins = [{"lo": b / n_bins, "hi": (b + 1) / n_bins, "n": 0, "sum_conf": 0.0, "n_pos": 0} for b in range(n_bins)]
    for g, s in zip(gold, scores):
        if not (0.0 <= s <= 1.0) or math.isnan(s):
            raise ValueError(f"score {s!r} outside [0, 1]")
        b = bins[min(int(s * n_bins), n_bins - 1)]
        b["n"] += 1
        b["sum_conf"] += s
        b["n_pos"] += g == positive
    return [{"lo": b["lo"], "hi": b["hi"], "n": b["n"], "mean_conf": safe_div(b["sum_conf"], b["n"]),
             "frac_pos": safe_div(b["n_pos"], b["n"])} for b in bins]


def ece(gold: Sequence[str], scores: Sequence[float], n_bins: int = 10, positive: str = POS) -> float | None:
    """Expected calibration error of P(``positive``) = score (default P(infeasible)), ``n_bins``
    equal-width bins; ``None`` for 0 items."""
    if len(gold) != len(scores):
        raise ValueError(f"{len(gold)} gold labels but {len(scores)} scores")
    if not gold:
        return None
    total = 0.0
    for b in reliability_bins(gold, scores, n_bins, positive):
        if b["n"]:
            total += b["n"] / len(gold) * abs(b["mean_conf"] - b["frac_pos"])
    return total


def classification_metrics(gold: Sequence[str], pred: Sequence[str | None]) -> dict:
    """Counts and the label metrics for one set of items (no sample-level metrics)."""
    cm = confusion_matrix(gold, pred)
    return {
        "n": len(gold),
        "n_infeasible": sum(1 for g in gold if g == POS),
        "accuracy": accuracy(gold, pred),
        "precision": precision(gold, pred),
        "recall": recall(gold, pred),
        "f1": f1(gold, pred),
        "f1_feasible": f1(gold, pred, NEG),
        "macro_f1": macro_f1(gold, pred),
        "balanced_accuracy": balanced_accuracy(gold, pred),
        "unparseable_rate": unparseable_rate(pred),
        "predicted_infeasible_rate": safe_div(sum(1 for p in pred if p == POS), len(pred)),
        "confusion": cm,
    }


def per_group_metrics(groups: Sequence[str | None], gold, pred) -> dict[str, dict]:
    """``classification_metrics`` per group value (``None`` groups are named ``"none"``), sorted."""
    buckets: dict[str, tuple[list, list]] = {}
    for grp, g, p in zip(groups, gold, pred):
        b = buckets.setdefault("none" if grp is None else str(grp), ([], []))
        b[0].append(g)
        b[1].append(p)
    out = {}
    for name in sorted(buckets):
        m = classification_metrics(*buckets[name])
        del m["confusion"]
        out[name] = m
    return out


def category_type(category: str | None) -> str | None:
    """The taxonomy type of a category that is a taxonomy reason or type slug, else ``None``."""
    if category in TAXONOMY:
        return category
    return REASON_TO_TYPE.get(category) if category else None


def score_items(gold: Sequence[str], sample_labels: Sequence[Sequence[str | None]],
                categories: Sequence[str | None] | None = None, n_bins: int = 10) -> dict:
    """All benchmark metrics from gold labels and the K parsed labels of each item.

    Returns the ``classification_metrics`` of the majority vote plus ``k`` (samples per item;
    ``None`` if items differ), ``mean_agreement``, ``sample_accuracy`` (accuracy over all
    samples), ``auroc``, ``ece``, ``reliability`` (bins), ``per_category`` and, when every
    category is a taxonomy slug, ``per_type`` (reasons mapped to their type).
    """
    if len(gold) != len(sample_labels):
        raise ValueError(f"{len(gold)} gold labels but {len(sample_labels)} sample lists")
    preds = [vote(s) for s in sample_labels]
    confs = [confidence(s) for s in sample_labels]
    out = classification_metrics(gold, preds)
    ks = {len(s) for s in sample_labels}
    n_samples = sum(len(s) for s in sample_labels)
    out["k"] = ks.pop() if len(ks) == 1 else None
    out["mean_agreement"] = mean_agreement(sample_labels)
    out["sample_accuracy"] = safe_div(sum(1 for g, s in zip(gold, sample_labels) for x in s if x == g), n_samples)
    out["sample_unparseable_rate"] = safe_div(sum(1 for s in sample_labels for x in s if x is None), n_samples)
    out["auroc"] = auroc(gold, confs)
    out["ece"] = ece(gold, confs, n_bins)
    out["reliability"] = reliability_bins(gold, confs, n_bins)
    if categories is not None:
        out["per_category"] = per_group_metrics(categories, gold, preds)
        types = [category_type(c) for c in categories]
        if categories and all(t is not None for t in types):
            out["per_type"] = per_group_metrics(types, gold, preds)
    return out


# --------------------------------------------------------------------------------------------
# Model-relative evaluation (P(IK), Kadavath et al. 2022)
# --------------------------------------------------------------------------------------------


def _check_p_feasible(p_feasible: Sequence[float | None]) -> None:
    for p in p_feasible:
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0):
            raise ValueError(f"P(feasible) {p!r} is not a probability in [0, 1] (or None)")


def auroc_p_feasible(labels: Sequence[str], p_feasible: Sequence[float | None]) -> float | None:
    """AUROC of ``p_feasible`` for ``labels == "feasible"`` (ties count 1/2), by scikit-learn's
    ``roc_auc_score``. ``None`` for 0 items, one class only, or any ``None`` score."""
    if len(labels) != len(p_feasible):
        raise ValueError(f"{len(labels)} labels but {len(p_feasible)} P(feasible) scores")
    _check_p_feasible(p_feasible)
    y = [int(lab == NEG) for lab in labels]
    if not y or any(p is None for p in p_feasible) or len(set(y)) < 2:
        return None
    return float(roc_auc_score(y, [float(p) for p in p_feasible]))


def model_relative_metrics(model_label: Sequence[str], pred: Sequence[str | None],
                           p_feasible: Sequence[float | None], answerable: Sequence[bool],
                           n_bins: int = 10) -> dict:
    """Predictions and P(feasible) scored against the model-relative labels (conventions in the
    module docstring). All sequences have one entry per item.

    Returns ``n``, ``n_feasible`` (model label feasible), ``n_answerable``, ``accuracy``,
    ``balanced_accuracy``, ``f1`` (infeasible positive), ``f1_feasible``, ``macro_f1``,
    ``unparseable_rate``, ``predicted_feasible_rate``, ``overclaim_rate``, ``underclaim_rate``,
    ``auroc_pik``, ``auroc_pik_answerable``, ``brier`` and ``ece``; ratios are ``None`` where
    undefined. ``ValueError`` on different lengths, an unknown label or a score outside [0, 1].
    """
    n = len(model_label)
    if not (len(pred) == len(p_feasible) == len(answerable) == n):
        raise ValueError(f"model-relative metrics need one entry per item: {n} labels, {len(pred)} predictions, "
                         f"{len(p_feasible)} P(feasible), {len(answerable)} answerable flags")
    _check(model_label, pred)
    _check_p_feasible(p_feasible)
    scored = n > 0 and all(p is not None for p in p_feasible)
    y = [int(lab == NEG) for lab in model_label]
    ans = [i for i in range(n) if answerable[i]]
    return {
        "n": n,
        "n_feasible": sum(y),
        "n_answerable": len(ans),
        "accuracy": accuracy(model_label, pred),
        "balanced_accuracy": balanced_accuracy(model_label, pred),
        "f1": f1(model_label, pred),
        "f1_feasible": f1(model_label, pred, NEG),
        "macro_f1": macro_f1(model_label, pred),
        "unparseable_rate": unparseable_rate(pred),
        "predicted_feasible_rate": safe_div(sum(1 for p in pred if p == NEG), n),
        "overclaim_rate": safe_div(sum(1 for g, p in zip(model_label, pred) if g == POS and p == NEG), n),
        "underclaim_rate": safe_div(sum(1 for g, p in zip(model_label, pred) if g == NEG and p == POS), n),
        "auroc_pik": auroc_p_feasible(model_label, p_feasible),
        "auroc_pik_answerable": auroc_p_feasible([model_label[i] for i in ans], [p_feasible[i] for i in ans]),
        "brier": float(brier_score_loss(y, [float(p) for p in p_feasible], pos_label=1)) if scored else None,
        "ece": ece(model_label, [float(p) for p in p_feasible], n_bins, positive=NEG) if scored else None,
    }


def calibration_only_predictions(p_feasible: Sequence[float | None]) -> list[str | None]:
    """The calibration-only baseline: ``"feasible"`` where P(feasible) is strictly above the median
    of the batch's scores, ``"infeasible"`` at or below it (ties with the median go to
    infeasible), ``None`` where the score is ``None``. Median of an even count = mean of the two
    middle scores. ``ValueError`` on a score outside [0, 1]."""
    _check_p_feasible(p_feasible)
    present = [p for p in p_feasible if p is not None]
    if not present:
        return [None] * len(p_feasible)
    median = statistics.median(present)
    return [None if p is None else (NEG if p > median else POS) for p in p_feasible]


def _percentile_ci(estimate, vals: list[float], n_boot: int, alpha: float) -> dict:
    vals = sorted(vals)
    if not vals:
        return {"estimate": estimate, "ci_low": None, "ci_high": None, "n_boot": n_boot, "n_valid": 0}

    def q(p: float) -> float:  # linear interpolation between order statistics
        pos = p * (len(vals) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(vals) - 1)
        return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)

    return {"estimate": estimate, "ci_low": q(alpha / 2), "ci_high": q(1 - alpha / 2), "n_boot": n_boot,
            "n_valid": len(vals)}


def paired_bootstrap(n_items: int, stat: Callable[[list[int]], float | None | dict], n_boot: int = 1000,
                     seed: int = 0, alpha: float = 0.05) -> dict:
    """Bootstrap CI of a paired statistic over items resampled with replacement.

    ``stat(indices)`` computes the statistic (e.g. a metric of model A minus the same metric of
    model B, both on the items at ``indices``); resamples where it is ``None`` are skipped.
    Returns ``{"estimate", "ci_low", "ci_high", "n_boot", "n_valid"}`` (percentile interval at
    level ``1 - alpha``, ``None`` bounds when no resample is valid). When ``stat`` returns a
    dict of statistics, every key is resampled with the same indices and the result is a dict
    of such records.
    """
    est = stat(list(range(n_items)))
    rng = random.Random(seed)
    draws = []
    if n_items > 0:
        for _ in range(n_boot):
            draws.append(stat([rng.randrange(n_items) for _ in range(n_items)]))
    if isinstance(est, dict):
        return {k: _percentile_ci(v, [d[k] for d in draws if d[k] is not None], n_boot, alpha)
                for k, v in est.items()}
    return _percentile_ci(est, [d for d in draws if d is not None], n_boot, alpha)


def unpaired_bootstrap(n_a: int, n_b: int, stat: Callable[[list[int], list[int]], float | None | dict],
                       n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Bootstrap CI of a statistic of two independent samples (e.g. a metric of B's items minus
    the same metric of A's, when each model was scored on items of its own): each side is
    resampled with replacement on its own. Same return shape as ``paired_bootstrap``."""
    est = stat(list(range(n_a)), list(range(n_b)))
    rng = random.Random(seed)
    draws = []
    if n_a > 0 and n_b > 0:
        for _ in range(n_boot):
            draws.append(stat([rng.randrange(n_a) for _ in range(n_a)], [rng.randrange(n_b) for _ in range(n_b)]))
    if isinstance(est, dict):
        return {k: _percentile_ci(v, [d[k] for d in draws if d[k] is not None], n_boot, alpha)
                for k, v in est.items()}
    return _percentile_ci(est, [d for d in draws if d is not None], n_boot, alpha)
