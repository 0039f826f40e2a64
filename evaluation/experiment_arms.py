"""The table and the pre-registered verdict of the collapse experiment (issue #22,
docs/results/collapse_experiment.md), from the folders `scripts/collapse_experiment.sh` leaves.

For every arm (two or more seeds, `<dir>/<arm>_s<seed>/`):

* rule 1, collapse stopped: the means over iterations 8-10 (`--window`) of
  `monitor/predicted_feasible_rate` and `monitor/self_agreement` in each seed's `logs/metrics.jsonl`;
* rule 2, self-knowledge: the endpoints E1-E4 of each seed's `eval/predictions.jsonl`, averaged
  over seeds, minus the same for the base model, the placebo (arm P) and, for E3/E4, the
  calibration-only baseline (the base model thresholded at its median P(feasible)); 95 % paired
  bootstrap CIs over items (all models' rows resampled with the same indices).

  E1 AUROC of P(feasible) vs the dataset labels, SelfAware + KUQ (validation or test) pooled;
  E2 P(IK) AUROC on the capability suite (vs the model's own correctness);
  E3 macro-F1 of the vote vs the dataset labels (pooled);
  E4 balanced accuracy of the vote vs the model-relative labels (capability suite).

    python -m evaluation.experiment_arms runs/collapse [--n_boot 1000] [--figure PATH]
    # writes runs/collapse/arms.json and the figure (default runs/collapse/arms.png)
    python -m evaluation.experiment_arms runs/collapse_full --window 28 30   # the full-budget run
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from evaluation import metrics as M
from evaluation.report import read_predictions
from openrlhf.utils.jsonl import read_jsonl

CAPABILITY = "capability"
ENDPOINTS = ("E1", "E2", "E3", "E4")
WINDOW = (8, 10)
BAND, MAX_AGREEMENT = (0.2, 0.8), 0.95
PLACEBO = "P"


def monitor_series(metrics_path: Path) -> dict[str, list]:
    """Per iteration: {"iteration": [...], "feasible_rate": [...], "self_agreement": [...]}
    (None where an iteration logged no monitor). Unreadable (torn) lines are skipped."""
    rows, _ = read_jsonl(metrics_path)
    return {"iteration": [r["iteration"] for r in rows],
            "feasible_rate": [r.get("monitor/predicted_feasible_rate") for r in rows],
            "self_agreement": [r.get("monitor/self_agreement") for r in rows]}


def window_means(series: dict[str, list], window: tuple[int, int] = WINDOW) -> dict[str, float | None]:
    """Means over iterations window[0]..window[1] of a `monitor_series`' feasible rate and self-agreement."""
    inside = [i for i, it in enumerate(series["iteration"]) if window[0] <= it <= window[1]]

    def mean(key):
        vals = [series[key][i] for i in inside if series[key][i] is not None]
        return sum(vals) / len(vals) if vals else None

    return {"feasible_rate": mean("feasible_rate"), "self_agreement": mean("self_agreement"), "iterations": len(inside)}


def monitor_means(metrics_path: Path, window: tuple[int, int] = WINDOW) -> dict[str, float | None]:
    """`window_means` of the run whose metrics.jsonl is `metrics_path`."""
    return window_means(monitor_series(metrics_path), window)


def split_rows(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(dataset-labelled rows: every benchmark but the capability suite; capability rows), in file order."""
    dataset = [r for r in records if not r["benchmark"].startswith(CAPABILITY)]
    capability = [r for r in records if r["benchmark"].startswith(CAPABILITY)]
    return dataset, capability


def endpoint_values(dataset: list[dict], capability: list[dict], calibration_only: bool = False
                    ) -> dict[str, float | None]:
    """E1-E4 of one model on the given rows; `calibration_only`: its votes replaced by the
    median-threshold predictions of P(feasible) (E1/E2 are unchanged by a threshold)."""
    def votes(rows):
        if not calibration_only:
            return [r["prediction"] for r in rows]
        return M.calibration_only_predictions([r.get("p_feasible") for r in rows])

    relative = [r for r in capability if r.get("model_relative_label") is not None]
    labels = [r["model_relative_label"] for r in relative]
    return {
        "E1": M.auroc_p_feasible([r["gold"] for r in dataset], [r.get("p_feasible") for r in dataset]),
        "E2": M.auroc_p_feasible(labels, [r.get("p_feasible") for r in relative]) if relative else None,
        "E3": M.macro_f1([r["gold"] for r in dataset], votes(dataset)),
        "E4": M.balanced_accuracy(labels, votes(relative)) if relative else None,
    }


def mean_over(models: list[tuple[list[dict], list[dict]]], idx_d: list[int], idx_c: list[int],
              calibration_only: bool = False) -> dict[str, float | None]:
    """Each endpoint averaged over `models` (their (dataset, capability) rows), on the rows at the
    given indices; None when undefined for any model."""
    per = [endpoint_values([d[i] for i in idx_d], [c[i] for i in idx_c], calibration_only) for d, c in models]
    return {k: (sum(p[k] for p in per) / len(per)) if all(p[k] is not None for p in per) else None
            for k in ENDPOINTS}


def paired_differences(arm: list, other: list, n_d: int, n_c: int, other_calibration_only: bool = False,
                       n_boot: int = 1000, seed: int = 0) -> dict:
    """Arm minus comparator for each endpoint, {E: {estimate, ci_low, ci_high, ...}} (95 %).
    Dataset and capability items are two samples, each resampled on its own (hence
    `unpaired_bootstrap`'s two index sets); within each, every model gets the same indices, so
    the difference is paired over items."""
    def stat(idx_d, idx_c):
        a = mean_over(arm, idx_d, idx_c)
        b = mean_over(other, idx_d, idx_c, other_calibration_only)
        return {k: a[k] - b[k] if a[k] is not None and b[k] is not None else None for k in ENDPOINTS}

    return M.unpaired_bootstrap(n_d, n_c, stat, n_boot=n_boot, seed=seed)


def load_model(eval_dir: Path) -> tuple[list[dict], list[dict]]:
    """(dataset rows, capability rows) of one evaluation folder."""
    return split_rows(read_predictions(eval_dir / "predictions.jsonl"))


def check_same_items(models: dict[str, tuple[list[dict], list[dict]]]) -> None:
    """ValueError unless every model was scored on the same items in the same order."""
    keys = {name: [(r["benchmark"], r["task"], r["gold"]) for part in rows for r in part]
            for name, rows in models.items()}
    first_name, first = next(iter(keys.items()))
    for name, k in keys.items():
        if k != first:
            raise ValueError(f"{name} and {first_name} were scored on different items: evaluate both with the same "
                             f"benchmarks and --seed")


def arms_report(root: Path, n_boot: int = 1000, seed: int = 0, window: tuple[int, int] = WINDOW) -> dict:
    """Rules 1-3 of the pre-registration for every complete arm under `root` (see the module
    docstring); rule 1 reads the monitors' means over iterations `window` (first, last)."""
    runs: dict[str, dict[int, Path]] = {}
    for run in sorted(root.iterdir()):
        m = re.fullmatch(r"(\w+?)_s(\d+)", run.name)
        if m and (run / "eval" / "predictions.jsonl").is_file() and (run / "logs" / "metrics.jsonl").is_file():
            runs.setdefault(m.group(1), {})[int(m.group(2))] = run
    base = load_model(root / "base" / "eval")
    models = {"base": base}
    for arm, seeds in runs.items():
        for s, run in seeds.items():
            models[f"{arm}_s{s}"] = load_model(run / "eval")
    check_same_items(models)
    n_d, n_c = len(base[0]), len(base[1])
    everything_d, everything_c = list(range(n_d)), list(range(n_c))
    report: dict = {"window": list(window), "base": mean_over([base], everything_d, everything_c),
                    "calibration_only": mean_over([base], everything_d, everything_c, True), "arms": {}}
    placebo = [models[f"{PLACEBO}_s{s}"] for s in sorted(runs.get(PLACEBO, {}))]
    for arm, seeds in runs.items():
        arm_models = [models[f"{arm}_s{s}"] for s in sorted(seeds)]
        series = {s: monitor_series(run / "logs" / "metrics.jsonl") for s, run in sorted(seeds.items())}
        entry = {"seeds": sorted(seeds), "monitors": {s: window_means(v, window) for s, v in series.items()},
                 "series": series,
                 "endpoints": mean_over(arm_models, everything_d, everything_c),
                 "vs_base": paired_differences(arm_models, [base], n_d, n_c, n_boot=n_boot, seed=seed),
                 "vs_calibration_only": paired_differences(arm_models, [base], n_d, n_c, True, n_boot, seed)}
        if placebo and arm != PLACEBO:
            entry["vs_placebo"] = paired_differences(arm_models, placebo, n_d, n_c, n_boot=n_boot, seed=seed)
        report["arms"][arm] = entry
    apply_rules(report)
    return report


def _above(diff: dict) -> bool:
    return diff.get("ci_low") is not None and diff["ci_low"] > 0


def apply_rules(report: dict) -> None:
    """Add `rule1`, `rule2` per arm and the `pick` (rule 3) to `report`, as pre-registered."""
    arms = report["arms"]

    def stopped(monitors: dict, collapsed: bool = False) -> bool:
        vals = list(monitors.values())
        if collapsed:
            return all(v["feasible_rate"] is not None and v["feasible_rate"] < BAND[0] for v in vals)
        return all(v["feasible_rate"] is not None and BAND[0] <= v["feasible_rate"] <= BAND[1]
                   and v["self_agreement"] is not None and v["self_agreement"] < MAX_AGREEMENT for v in vals)

    report["A0_collapsed"] = stopped(arms["A0"]["monitors"], collapsed=True) if "A0" in arms else None
    for name, e in arms.items():
        e["rule1"] = name != "A0" and stopped(e["monitors"])
        comparators = ("vs_base", "vs_placebo")
        if "vs_placebo" in e:
            ranking = any(all(_above(e[c][k]) for c in comparators) for k in ("E1", "E2"))
            decision = any(all(_above(e[c][k]) for c in comparators + ("vs_calibration_only",)) for k in ("E3", "E4"))
            e["rule2"] = ranking and decision
        else:
            e["rule2"] = None   # the placebo itself, or no placebo yet
    candidates = [n for n, e in arms.items() if e["rule1"] and n != PLACEBO]   # the placebo is a control
    with_2 = [n for n in candidates if arms[n]["rule2"]]

    def gain(name, keys):
        vals = [arms[name]["vs_base"][k]["estimate"] for k in keys if arms[name]["vs_base"][k]["estimate"] is not None]
        return sum(vals) / len(vals) if vals else float("-inf")

    if with_2:
        report["pick"] = max(with_2, key=lambda n: gain(n, ("E1", "E2")))
    elif candidates:
        report["pick"] = max(candidates, key=lambda n: gain(n, ("E1",)))
    else:
        report["pick"] = None


def format_markdown(report: dict) -> str:
    """The arms as one markdown table (monitors per seed, endpoints, differences with CIs)."""
    def cell(d):
        if d is None or d.get("estimate") is None:
            return "n/a"
        lo, hi = d.get("ci_low"), d.get("ci_high")
        ci = f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None else ""
        return f"{d['estimate']:+.3f}{ci}"

    def num(v):
        return "n/a" if v is None else f"{v:.3f}"

    first, last = report.get("window", WINDOW)
    head = ["arm", f"feasible rate / self-agreement, it. {first}-{last}, per seed", "rule 1"]
    head += [f"{k} (vs base)" for k in ENDPOINTS] + ["E1/E2 vs placebo", "E3/E4 vs calibration-only", "rule 2"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| base | | | " + " | ".join(num(report["base"][k]) for k in ENDPOINTS) + " | | "
                 + " / ".join(num(report["calibration_only"][k]) for k in ("E3", "E4")) + " (its values) | |")
    for name, e in report["arms"].items():
        mon = "; ".join(f"s{s}: {num(v['feasible_rate'])} / {num(v['self_agreement'])}" for s, v in e["monitors"].items())
        vp = e.get("vs_placebo")
        lines.append(f"| {name} | {mon} | {'yes' if e['rule1'] else 'no'} | "
                     + " | ".join(f"{num(e['endpoints'][k])} ({cell(e['vs_base'][k])})" for k in ENDPOINTS) + " | "
                     + (f"{cell(vp['E1'])} / {cell(vp['E2'])}" if vp else "") + " | "
                     + f"{cell(e['vs_calibration_only']['E3'])} / {cell(e['vs_calibration_only']['E4'])} | "
                     + {True: "yes", False: "no", None: "n/a"}[e["rule2"]] + " |")
    lines.append("")
    lines.append(f"A0 collapsed: {report.get('A0_collapsed')}; rule 3 picks: {report.get('pick')}")
    return "\n".join(lines)


def plot_arms(report: dict, path: Path) -> None:
    """Three panels into `path` (PNG): the predicted-feasible rate and the self-agreement of every
    arm and seed per iteration (the rule-1 band and ceiling drawn, the window of rule 1 shaded),
    and each arm's endpoints minus the base model's with their 95 % CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = report["arms"]
    colours = {name: f"C{i}" for i, name in enumerate(arms)}
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    for ax, key, title in ((axes[0], "feasible_rate", "predicted-feasible rate (rollout)"),
                           (axes[1], "self_agreement", "self-agreement (rollout)")):
        for name, e in arms.items():
            for i, (s, series) in enumerate(e["series"].items()):
                pts = [(x, y) for x, y in zip(series["iteration"], series[key]) if y is not None]
                if pts:
                    ax.plot(*zip(*pts), color=colours[name], ls=("-", "--", ":")[i % 3], marker=".",
                            label=f"{name} s{s}")
        first, last = report.get("window", WINDOW)
        ax.axvspan(first - 0.5, last + 0.5, color="0.92", zorder=0)
        if key == "feasible_rate":
            ax.axhspan(*BAND, color="tab:green", alpha=0.08, zorder=0)
        else:
            ax.axhline(MAX_AGREEMENT, color="k", lw=0.8, ls="--")
        ax.set(title=title, xlabel="iteration", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=7, ncol=2)
    ax = axes[2]
    width = 0.8 / max(1, len(arms))
    for j, (name, e) in enumerate(arms.items()):
        for k, endpoint in enumerate(ENDPOINTS):
            d = e["vs_base"][endpoint]
            if d.get("estimate") is None:
                continue
            x = k + (j - (len(arms) - 1) / 2) * width
            lo, hi = d.get("ci_low"), d.get("ci_high")
            err = [[d["estimate"] - lo], [hi - d["estimate"]]] if lo is not None else None
            ax.errorbar(x, d["estimate"], yerr=err, fmt="o", color=colours[name], capsize=3,
                        label=name if k == 0 else None)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(ENDPOINTS)), ["E1 AUROC\n(dataset)", "E2 P(IK) AUROC\n(capability)",
                                          "E3 macro-F1\n(dataset)", "E4 bal. acc.\n(capability)"])
    ax.set(title="arm minus base model (95 % CI, seeds averaged)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI: compare each arm of a collapse experiment folder with its base run, write arms.json
    there and print it as markdown. Returns 2 when the base evaluation is missing or an arm cannot be
    read, else 0."""
    parser = argparse.ArgumentParser(prog="python -m evaluation.experiment_arms", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="the experiment folder (scripts/collapse_experiment.sh's OUT_DIR)")
    parser.add_argument("--n_boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", help="where to draw the monitors and endpoints (default ROOT/arms.png)")
    parser.add_argument("--window", type=int, nargs=2, default=list(WINDOW), metavar=("FIRST", "LAST"),
                        help="iterations whose monitor means rule 1 reads (default 8 10)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / "base" / "eval" / "predictions.jsonl").is_file():
        print(f"experiment_arms: error: {root}/base/eval/predictions.jsonl is missing: run "
              f"scripts/collapse_experiment.sh first", file=sys.stderr)
        return 2
    try:
        if not 1 <= args.window[0] <= args.window[1]:
            raise ValueError(f"--window {args.window[0]} {args.window[1]}: needs 1 <= FIRST <= LAST")
        report = arms_report(root, args.n_boot, args.seed, tuple(args.window))
    except ValueError as exc:
        print(f"experiment_arms: error: {exc}", file=sys.stderr)
        return 2
    (root / "arms.json").write_text(json.dumps(report, indent=1) + "\n")
    print(format_markdown(report))
    figure = Path(args.figure) if args.figure else root / "arms.png"
    plot_arms(report, figure)
    print(f"wrote {root / 'arms.json'} and {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
