"""Prediction records -> metrics, tables, plots and model comparisons.

A *record* is one line of ``predictions.jsonl``: ``benchmark``, ``index``, ``source_id``,
``task``, ``gold``, ``category`` (``reason``/``type`` for intrinsic rows, whose ``benchmark``
is ``"intrinsic"``), ``samples`` (each ``{"text", "label", "finished"}``), ``prediction``, ``confidence``
and ``agreement``. Rows of a model-relative run also carry ``p_feasible`` (the item's
P(feasible), Kadavath et al. 2022's P(IK)) and ``model_relative_label`` (feasible/infeasible
for this model); rows of items with gold answers also ``model_answers``, ``answer_correct``
(the greedy answer is right) and ``answer_correct_share``. ``score_records`` derives every
metric from ``gold``, ``category``, the samples' parsed labels and these fields only, so
``--rescore`` reproduces ``metrics.json`` from the records; rows without the new fields are
scored exactly as before they existed (plus ``balanced_accuracy``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from openrlhf.knowrl.prompts import parse_label
from openrlhf.knowrl.reward import agreement

from evaluation import metrics as M
from evaluation.intrinsic import intrinsic_metrics

INTRINSIC = "intrinsic"
TABLE_KEYS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "macro_f1", "unparseable_rate",
              "mean_agreement", "auroc", "ece")
SHORT = {"accuracy": "acc", "balanced_accuracy": "bal_acc", "precision": "P", "recall": "R", "f1": "F1",
         "macro_f1": "mF1", "unparseable_rate": "unparse", "mean_agreement": "agree", "auroc": "AUROC", "ece": "ECE"}
# model-relative table columns: (key in the "model_relative" metrics, header)
MR_COLUMNS = (("accuracy", "acc"), ("balanced_accuracy", "bal_acc"), ("f1", "F1"), ("macro_f1", "mF1"),
              ("auroc_pik", "PIK_AUC"), ("auroc_pik_answerable", "PIK_ans"), ("brier", "Brier"), ("ece", "ECE"),
              ("overclaim_rate", "over"), ("underclaim_rate", "under"))
BASELINE_KEYS = ("accuracy", "balanced_accuracy", "f1", "f1_feasible", "macro_f1", "overclaim_rate",
                 "underclaim_rate")


def make_record(benchmark: str, index: int, item, samples: list[dict], **extra) -> dict:
    """One predictions.jsonl row for an item (``EvalItem`` or dict with task/label/category)."""
    get = (lambda k: item.get(k)) if isinstance(item, dict) else (lambda k: getattr(item, k, None))
    labels = [s["label"] for s in samples]
    rec = {"benchmark": benchmark, "index": index, "source_id": get("source_id"), "task": get("task"),
           "gold": get("label"), "category": get("category"), **extra, "samples": samples,
           "prediction": M.vote(labels), "confidence": M.confidence(labels), "agreement": agreement(labels)}
    if get("difficulty") is not None:  # graded suites (capability): the item's level
        rec["difficulty"] = get("difficulty")
    return rec


def group_records(records: list[dict]) -> dict[str, list[dict]]:
    """The prediction records grouped by their benchmark, in first-seen order."""
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["benchmark"], []).append(r)
    return out


def _labels(rows):
    return [[s["label"] for s in r["samples"]] for r in rows]


def _model_relative_inputs(rows: list[dict]) -> tuple[list, list, list, list]:
    """(model labels, majority-vote predictions, P(feasible), answerable flags) of the rows that
    have a ``model_relative_label``; answerable = the row was graded (``answer_correct`` set)."""
    mr = [r for r in rows if r.get("model_relative_label") is not None]
    return ([r["model_relative_label"] for r in mr], [M.vote([s["label"] for s in r["samples"]]) for r in mr],
            [r.get("p_feasible") for r in mr], [r.get("answer_correct") is not None for r in mr])


def score_model_relative(rows: list[dict]) -> dict:
    """``M.model_relative_metrics`` over the rows that have a ``model_relative_label``, plus
    ``calibration_only``: the label metrics (``BASELINE_KEYS``) of the same P(feasible)
    thresholded at the batch median (``None`` when a row has no ``p_feasible``)."""
    labels, pred, p_feasible, answerable = _model_relative_inputs(rows)
    out = M.model_relative_metrics(labels, pred, p_feasible, answerable)
    out["calibration_only"] = None
    if labels and all(p is not None for p in p_feasible):
        base = M.model_relative_metrics(labels, M.calibration_only_predictions(p_feasible), p_feasible, answerable)
        out["calibration_only"] = {k: base[k] for k in BASELINE_KEYS}
    return out


def score_benchmark(rows: list[dict]) -> dict:
    """``M.score_items`` of the dataset labels; with P(feasible) in the rows also
    ``auroc_p_feasible`` (AUROC of P(feasible) for dataset label feasible), and with
    model-relative labels also ``model_relative`` (``score_model_relative``)."""
    out = M.score_items([r["gold"] for r in rows], _labels(rows), [r.get("category") for r in rows])
    if any(r.get("p_feasible") is not None for r in rows):
        out["auroc_p_feasible"] = M.auroc_p_feasible([r["gold"] for r in rows], [r.get("p_feasible") for r in rows])
    if any(r.get("model_relative_label") is not None for r in rows):
        out["model_relative"] = score_model_relative(rows)
    return out


def score_intrinsic(rows: list[dict]) -> dict:
    """Metrics of the model's own written tasks (`rows`): the intrinsic ones and the classification scores per
    reason."""
    out = intrinsic_metrics([r["gold"] for r in rows], _labels(rows), [r.get("type") for r in rows])
    out["classification"] = M.score_items([r["gold"] for r in rows], _labels(rows), [r.get("reason") for r in rows])
    return out


def score_records(records: list[dict]) -> dict:
    """``{"benchmarks": {name: metrics}, "intrinsic": metrics?}`` from prediction records."""
    out: dict = {"benchmarks": {}}
    for name, rows in group_records(records).items():
        if name == INTRINSIC:
            out["intrinsic"] = score_intrinsic(rows)
        else:
            out["benchmarks"][name] = score_benchmark(rows)
    return out


def reparse(records: list[dict]) -> int:
    """Re-parse every sample's text with the current ``parse_label`` (a sample recorded as cut at
    the length limit, ``"finished": false``, parsed as such); return how many changed. A
    ``p_feasible`` taken from the samples (``p_feasible_source == "samples"``) follows the new
    labels; one from the label token's probability does not depend on the parser and stays."""
    changed = 0
    for r in records:
        for s in r["samples"]:
            new = parse_label(s["text"], s.get("finished", True))
            changed += new != s["label"]
            s["label"] = new
        labels = [s["label"] for s in r["samples"]]
        r["prediction"], r["confidence"], r["agreement"] = M.vote(labels), M.confidence(labels), agreement(labels)
        if r.get("p_feasible_source") == "samples" and labels:
            r["p_feasible"] = labels.count(M.NEG) / len(labels)
    return changed


def read_predictions(path) -> list[dict]:
    """Read a predictions.jsonl; ``ValueError`` naming the file and line on a bad line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                if not isinstance(r, dict):
                    raise ValueError("not a JSON object")
                for key in ("benchmark", "gold", "samples"):
                    if key not in r:
                        raise ValueError(f"missing {key!r}")
                if not isinstance(r["samples"], list) or not all(isinstance(s, dict) and "label" in s
                                                                 for s in r["samples"]):
                    raise ValueError("'samples' must be a list of {\"text\", \"label\"}")
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: bad prediction record ({e}) — pass a predictions.jsonl "
                                 "written by run_eval.py") from None
            rows.append(r)
    if not rows:
        raise ValueError(f"{path}: no prediction records — pass a predictions.jsonl written by run_eval.py")
    return rows


# --------------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------------


def fmt(v, width: int = 6) -> str:
    """`v` right-aligned in `width` characters: 3 decimals for floats, "n/a" for None or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a".rjust(width)
    if isinstance(v, float):
        return f"{v:.3f}".rjust(width)
    return str(v).rjust(width)


def format_table(scores: dict, title: str = "") -> str:
    """The plain-text metrics table of `scores` (one row per benchmark; model-relative and intrinsic tables
    when present), under `title`."""
    lines = [title] if title else []
    head = f"{'benchmark':<22}{'n':>6}{'K':>3} " + " ".join(f"{SHORT[k]:>7}" for k in TABLE_KEYS)
    lines.append(head)
    lines.append("-" * len(head))
    for name, m in scores.get("benchmarks", {}).items():
        lines.append(f"{name[:22]:<22}{m['n']:>6}{fmt(m['k'], 3)} " + " ".join(fmt(m.get(k), 7) for k in TABLE_KEYS))
    relative = {name: m["model_relative"] for name, m in scores.get("benchmarks", {}).items()
                if m.get("model_relative")}
    if relative:
        lines.append("\nmodel-relative (gold = feasible for this model: greedy answer correct; infeasible positive; "
                     "PIK = AUROC of P(feasible), all / answerable items; over/under = share of all items claimed "
                     "feasible but not / infeasible but feasible)")
        head = f"{'benchmark':<22}{'n':>6}{'n_feas':>7} " + " ".join(f"{h:>7}" for _, h in MR_COLUMNS)
        lines.append(head)
        lines.append("-" * len(head))
        for name, mr in relative.items():
            lines.append(f"{name[:22]:<22}{mr['n']:>6}{mr['n_feasible']:>7} "
                         + " ".join(fmt(mr[k], 7) for k, _ in MR_COLUMNS))
            base = mr.get("calibration_only")
            if base:
                lines.append(f"{'  calibration-only':<35} " + " ".join(fmt(base.get(k), 7) for k, _ in MR_COLUMNS))
    for name, m in scores.get("benchmarks", {}).items():
        for key, label in (("per_type", "type"), ("per_category", "category")):
            groups = m.get(key)
            if not groups:
                continue
            lines.append(f"\n{name}: per {label}  (F1 infeasible-positive; n/a = no infeasible items)")
            lines.append(f"  {'':<34}{'n':>5}{'n_inf':>6} {'acc':>7} {'F1':>7} {'unparse':>7} {'pred_inf':>8}")
            for g, gm in groups.items():
                lines.append(f"  {g[:34]:<34}{gm['n']:>5}{gm['n_infeasible']:>6} {fmt(gm['accuracy'], 7)} "
                             f"{fmt(gm['f1'] if gm['n_infeasible'] else None, 7)} {fmt(gm['unparseable_rate'], 7)} "
                             f"{fmt(gm['predicted_infeasible_rate'], 8)}")
    intr = scores.get("intrinsic")
    if intr:
        lines.append(f"\nintrinsic self-consistency ({intr['n']} generated tasks: {intr['n_generated_feasible']} "
                     f"feasible, {intr['n_generated_infeasible']} infeasible)")
        lines.append(f"  {'type':<24}{'n':>5} {'consist':>8} {'agree':>7} {'overconf':>8} {'conserv':>8} {'unparse':>8}")
        for g, gm in [("ALL", intr)] + list(intr["per_type"].items()):
            lines.append(f"  {g[:24]:<24}{gm['n']:>5} {fmt(gm['consistency'], 8)} {fmt(gm['mean_agreement'], 7)} "
                         f"{fmt(gm['overconfidence'], 8)} {fmt(gm['conservatism'], 8)} {fmt(gm['unparseable_rate'], 8)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------

def _subset_stats(rows: list[dict], idx: list[int], model_relative: bool = False) -> dict:
    """The compared metrics of the rows at ``idx`` (repeats allowed); with ``model_relative`` also
    the model-relative balanced accuracy and P(IK) AUROC of those rows that have a model label."""
    gold = [rows[i]["gold"] for i in idx]
    labels = [[s["label"] for s in rows[i]["samples"]] for i in idx]
    pred = [M.vote(x) for x in labels]
    conf = [M.confidence(x) for x in labels]
    out = {"accuracy": M.accuracy(gold, pred), "balanced_accuracy": M.balanced_accuracy(gold, pred),
           "precision": M.precision(gold, pred), "recall": M.recall(gold, pred),
           "f1": M.f1(gold, pred), "macro_f1": M.macro_f1(gold, pred), "unparseable_rate": M.unparseable_rate(pred),
           "mean_agreement": M.mean_agreement(labels), "auroc": M.auroc(gold, conf), "ece": M.ece(gold, conf)}
    if model_relative:
        mr_labels, mr_pred, p_feasible, _ = _model_relative_inputs([rows[i] for i in idx])
        out["mr_balanced_accuracy"] = M.balanced_accuracy(mr_labels, mr_pred)
        out["mr_auroc_pik"] = M.auroc_p_feasible(mr_labels, p_feasible)
    return out


def _has_model_relative(rows: list[dict]) -> bool:
    return any(r.get("model_relative_label") is not None for r in rows)


def compare_records(rows_a: list[dict], rows_b: list[dict], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Per benchmark, each metric of A and B, ``diff`` = B - A and a paired bootstrap 95% CI.
    Items must match (same benchmark, task and gold, same order). When both runs have
    model-relative labels for a benchmark, ``mr_balanced_accuracy`` and ``mr_auroc_pik`` (each
    model scored against its own model-relative labels, on the same resampled items) are compared
    too. Intrinsic rows are not paired (each model writes its own tasks): their differences get
    an unpaired bootstrap CI."""
    ga, gb = group_records(rows_a), group_records(rows_b)
    out: dict = {"benchmarks": {}, "n_boot": n_boot, "seed": seed, "diff": "B - A"}
    for name, ra in ga.items():
        if name == INTRINSIC:
            continue
        rb = gb.get(name)
        if rb is None:
            raise ValueError(f"benchmark {name!r} is in A's predictions but not in B's — evaluate both on the same benchmarks")
        if [(r["task"], r["gold"]) for r in ra] != [(r["task"], r["gold"]) for r in rb]:
            raise ValueError(f"benchmark {name!r}: A and B were scored on different items — use the same --limit and --seed")

        mr = _has_model_relative(ra) and _has_model_relative(rb)

        def stat(idx, ra=ra, rb=rb, mr=mr):
            a, b = _subset_stats(ra, idx, mr), _subset_stats(rb, idx, mr)
            return {k: (b[k] - a[k]) if a[k] is not None and b[k] is not None else None for k in a}

        a_full, b_full = _subset_stats(ra, list(range(len(ra))), mr), _subset_stats(rb, list(range(len(rb))), mr)
        boot = M.paired_bootstrap(len(ra), stat, n_boot=n_boot, seed=seed)
        out["benchmarks"][name] = {"n": len(ra), "metrics": {
            k: {"A": a_full[k], "B": b_full[k], **{kk: vv for kk, vv in boot[k].items()}} for k in a_full}}
    if INTRINSIC in ga or INTRINSIC in gb:
        ia = score_intrinsic(ga[INTRINSIC]) if INTRINSIC in ga else None
        ib = score_intrinsic(gb[INTRINSIC]) if INTRINSIC in gb else None
        keys = ("n", "consistency", "mean_agreement", "overconfidence", "conservatism", "unparseable_rate")
        out["intrinsic"] = {k: {"A": ia and ia[k], "B": ib and ib[k]} for k in keys}
        if ia is not None and ib is not None:
            rows_ia, rows_ib = ga[INTRINSIC], gb[INTRINSIC]
            rates = keys[1:]

            def intrinsic_only(rows):
                return intrinsic_metrics([r["gold"] for r in rows], _labels(rows), [r.get("type") for r in rows])

            def diff(idx_a, idx_b):
                a = intrinsic_only([rows_ia[i] for i in idx_a])
                b = intrinsic_only([rows_ib[i] for i in idx_b])
                return {k: b[k] - a[k] if a[k] is not None and b[k] is not None else None for k in rates}

            boot = M.unpaired_bootstrap(len(rows_ia), len(rows_ib), diff, n_boot=n_boot, seed=seed)
            for k in rates:
                out["intrinsic"][k].update(boot[k])
    return out


def format_compare(cmp: dict, name_a: str, name_b: str) -> str:
    """The plain-text comparison of `cmp` (from --compare): per benchmark each metric for A, B, B - A and its
    95% CI."""
    lines = [f"A = {name_a}\nB = {name_b}\ndiff = B - A, 95% paired bootstrap CI ({cmp['n_boot']} resamples)"]
    for bench, block in cmp["benchmarks"].items():
        lines.append(f"\n{bench} (n = {block['n']})")
        lines.append(f"  {'metric':<21}{'A':>8}{'B':>8}{'diff':>9}   95% CI")
        for k, m in block["metrics"].items():
            ci = "n/a" if m["ci_low"] is None else f"[{m['ci_low']:+.3f}, {m['ci_high']:+.3f}]"
            d = "n/a" if m["estimate"] is None else f"{m['estimate']:+.3f}"
            lines.append(f"  {k:<21}{fmt(m['A'], 8)}{fmt(m['B'], 8)}{d:>9}   {ci}")
        if "mr_balanced_accuracy" in block["metrics"]:
            lines.append("  (mr_ = model-relative: each model against its own labels; feasible = its answer is right)")
    if "intrinsic" in cmp:
        lines.append("\nintrinsic (not paired: each model wrote its own tasks; unpaired bootstrap CI)")
        for k, m in cmp["intrinsic"].items():
            if m.get("ci_low") is None:
                d = "" if m.get("estimate") is None else f"{m['estimate']:+9.3f}   n/a"
                lines.append(f"  {k:<18}{fmt(m['A'], 8)}{fmt(m['B'], 8)}{d}")
            else:
                lines.append(f"  {k:<18}{fmt(m['A'], 8)}{fmt(m['B'], 8)}{m['estimate']:+9.3f}   "
                             f"[{m['ci_low']:+.3f}, {m['ci_high']:+.3f}]")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def plot_metrics(scores: dict, path, title: str = "") -> bool:
    """Reliability diagram + per-category accuracy/F1 bars per benchmark into ``path``.
    Returns False (and draws nothing) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    benches = list(scores.get("benchmarks", {}).items())
    if not benches:
        return False
    fig, axes = plt.subplots(len(benches), 2, figsize=(12, 4 * len(benches)), squeeze=False)
    for row, (name, m) in zip(axes, benches):
        ax = row[0]
        bins = [b for b in m["reliability"] if b["n"]]
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.bar([(b["lo"] + b["hi"]) / 2 for b in bins], [b["frac_pos"] for b in bins], width=0.09, alpha=0.7,
               label="share gold infeasible")
        for b in bins:
            ax.annotate(str(b["n"]), ((b["lo"] + b["hi"]) / 2, b["frac_pos"]), ha="center", va="bottom", fontsize=7)
        ax.set_xlim(0, 1), ax.set_ylim(0, 1.05)
        ax.set_xlabel("confidence = share of samples voting infeasible")
        ax.set_ylabel("share gold infeasible")
        ax.set_title(f"{name}: reliability (ECE {fmt(m['ece']).strip()}, AUROC {fmt(m['auroc']).strip()})")
        ax.legend(fontsize=7, loc="upper left")
        ax = row[1]
        groups = m.get("per_type") or m.get("per_category") or {}
        names = list(groups)
        xs = list(range(len(names)))
        ax.bar([x - 0.2 for x in xs], [groups[g]["accuracy"] or 0 for g in names], width=0.4, label="accuracy")
        ax.bar([x + 0.2 for x in xs], [(groups[g]["f1"] or 0) if groups[g]["n_infeasible"] else 0 for g in names],
               width=0.4, label="F1 (infeasible; 0 if none)")
        ax.set_xticks(xs, names, rotation=35, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{name}: per {'type' if m.get('per_type') else 'category'} (n = {m['n']})")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_json(path, obj) -> None:
    """Write `obj` to `path` as indented UTF-8 JSON."""
    Path(path).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path, rows) -> None:
    """Write `rows` to `path`, one JSON object per line (UTF-8)."""
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def eprint(*a) -> None:
    """Print to stderr and flush."""
    print(*a, file=sys.stderr, flush=True)
