"""Does a model's own confidence carry a signal about what it can do? Bootstrap CIs per benchmark.

Reads one ``run_eval.py`` result (``predictions.jsonl``) and, for every benchmark, reports with
95 % percentile bootstrap intervals over items (``metrics.paired_bootstrap``):

* ``auroc_pik``: AUROC of P(feasible) for "the model's greedy answer is correct" (P(IK),
  Kadavath et al. 2022), over all items with a model-relative label, and
  ``auroc_pik_answerable`` over the items with gold answers only;
* ``auroc_dataset``: AUROC of P(feasible) against the dataset label (answerable by someone),
  and, for intrinsic rows, against the label the task was written for;
* balanced accuracy against the model-relative labels of the majority vote (``vote``) and of the
  **calibration-only baseline** (the same model with its threshold moved to the batch median of
  P(feasible): ``metrics.calibration_only_predictions``);
* ``answer_accuracy``: the share of answerable items the model answers correctly (greedy).

An AUROC interval that lies above 0.5 is a signal a label-free method could sharpen; one that
straddles 0.5 is not evidence of any.

    python -m evaluation.pik_signal RESULT_DIR [--n_boot 1000] [--seed 0]   # writes RESULT_DIR/signal.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluation import metrics as M
from evaluation.report import INTRINSIC, group_records, read_predictions

STATS = ("auroc_pik", "auroc_pik_answerable", "auroc_dataset", "bal_acc_vote", "bal_acc_calibration_only",
         "answer_accuracy")


def signal_stats(rows: list[dict]) -> dict[str, float | None]:
    """The statistics of the module docstring on ``rows`` (predictions.jsonl records); None where
    undefined (one class, no scores, no answerable items)."""
    rel = [r for r in rows if r.get("model_relative_label") is not None]
    answerable = [r for r in rel if "answer_correct" in r]
    p_all = [r.get("p_feasible") for r in rows]
    out = {"auroc_dataset": M.auroc_p_feasible([r["gold"] for r in rows], p_all) if rows else None}
    if not rel:
        return {**dict.fromkeys(STATS), **out}
    labels = [r["model_relative_label"] for r in rel]
    p_rel = [r.get("p_feasible") for r in rel]
    out["auroc_pik"] = M.auroc_p_feasible(labels, p_rel)
    out["auroc_pik_answerable"] = M.auroc_p_feasible([r["model_relative_label"] for r in answerable],
                                                     [r.get("p_feasible") for r in answerable])
    out["bal_acc_vote"] = M.balanced_accuracy(labels, [r["prediction"] for r in rel])
    out["bal_acc_calibration_only"] = (M.balanced_accuracy(labels, M.calibration_only_predictions(p_rel))
                                       if all(p is not None for p in p_rel) else None)
    out["answer_accuracy"] = (sum(r["answer_correct"] for r in answerable) / len(answerable)) if answerable else None
    return out


def signal_report(records: list[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """``{benchmark: {"n", "n_answerable", "n_feasible_for_model", stat: {estimate, ci_low, ci_high,
    n_boot, n_valid}}}`` for every benchmark in ``records`` (intrinsic included)."""
    report = {}
    for name, rows in group_records(records).items():
        entry = {"n": len(rows), "n_answerable": sum("answer_correct" in r for r in rows),
                 "n_feasible_for_model": sum(r.get("model_relative_label") == "feasible" for r in rows)}
        entry.update(M.paired_bootstrap(len(rows), lambda idx: signal_stats([rows[i] for i in idx]),
                                        n_boot=n_boot, seed=seed))
        report[name] = entry
    return report


def _cell(rec: dict) -> str:
    if rec["estimate"] is None:
        return "n/a"
    ci = f" [{rec['ci_low']:.2f}, {rec['ci_high']:.2f}]" if rec["ci_low"] is not None else ""
    return f"{rec['estimate']:.2f}{ci}"


def format_markdown(report: dict) -> str:
    """The report as a markdown table, one row per benchmark."""
    head = ["benchmark", "n (answerable, feasible for model)", "P(IK) AUROC", "P(IK) AUROC answerable",
            "AUROC vs dataset/intended label", "bal. acc. vote", "bal. acc. calibration-only", "answer acc."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in report.items():
        label = f"{name} (label written for)" if name == INTRINSIC else name
        lines.append(f"| {label} | {e['n']} ({e['n_answerable']}, {e['n_feasible_for_model']}) | "
                     + " | ".join(_cell(e[k]) for k in ("auroc_pik", "auroc_pik_answerable", "auroc_dataset",
                                                         "bal_acc_vote", "bal_acc_calibration_only",
                                                         "answer_accuracy")) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: print (and write as JSON) the P(I know) signal statistics of a run_eval.py output with bootstrap
    CIs. Returns 2 when the predictions are missing or unreadable, else 0."""
    parser = argparse.ArgumentParser(prog="python -m evaluation.pik_signal", description=__doc__.split("\n\n")[0])
    parser.add_argument("result", help="a run_eval.py output folder (or its predictions.jsonl)")
    parser.add_argument("--n_boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    args = parser.parse_args(argv)
    src = Path(args.result)
    pred = src / "predictions.jsonl" if src.is_dir() else src
    if not pred.is_file():
        print(f"pik_signal: error: {args.result}: no predictions.jsonl there — pass a folder written by run_eval.py",
              file=sys.stderr)
        return 2
    try:
        records = read_predictions(pred)
    except ValueError as exc:
        print(f"pik_signal: error: {exc}", file=sys.stderr)
        return 2
    report = signal_report(records, n_boot=args.n_boot, seed=args.seed)
    out = pred.parent / "signal.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(format_markdown(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
