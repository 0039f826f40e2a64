"""Several runs side by side, window by window of iterations: the table the README's controls
section is made of.

    python -m openrlhf.analysis.runs_table runs/reproduce/logs runs/ctrl_genlabel/logs \
        --windows 1-10,11-30,31-60,61-92 [--eval]

For each run (its --log_dir) and each window, the mean over the window's iterations of the
rollout metrics, plus how many groups were kept and how many iterations trained. A window the
run has not reached yet shows its iteration count so far. ``--eval`` adds the settings in which
the runs differ and each run's held-out comparison with the base model (``<run>/eval/compare.json``,
written by scripts/reproduce_cpu.sh), split by split, then the evaluated runs ranked by
``selection_score`` on the validation splits only: how tuning picks a configuration. ``--band``
adds where the groups went: for tasks written as feasible and as infeasible, how many groups were
kept, dropped below the reward band and dropped above it, over the whole run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from openrlhf.analysis.markdown import markdown_table
from openrlhf.analysis.run_logs import load_run, num

COLUMNS = [
    ("rollout/agreement", "mean agreement"),
    ("rollout/feasible_share", "share 'feasible'"),
    ("rollout/gen_label_consistency", "majority = generation label"),
    ("rollout/unparseable_rate", "unparseable"),
]


# (config.json key, column name): the knobs the tuning and control runs vary
KNOBS = [
    ("reward_func", "reward"),
    ("advantage_estimator", "estimator"),
    ("pool_max_size", "pool"),
    ("actor_learning_rate", "lr"),
    ("init_kl_coef", "KL"),
    ("n_samples_per_prompt", "n"),
    ("temperature", "temperature"),
    ("min_group_reward", "band low"),
    ("max_group_reward", "band high"),
    ("seed", "seed"),
]
EVAL_METRICS = [("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("auroc", "AUROC"),
                ("mean_agreement", "mean agreement")]


def parse_windows(text: str) -> list[tuple[int, int]]:
    """'1-10,11-30' -> [(1, 10), (11, 30)]; a bare number is a one-iteration window."""
    windows = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            window = (int(first), int(last or first))
        except ValueError:
            raise ValueError(f"--windows: {part!r} is not FIRST-LAST (e.g. 1-10,11-30)") from None
        if window[0] < 1 or window[1] < window[0]:
            raise ValueError(f"--windows: {part!r} must satisfy 1 <= FIRST <= LAST")
        windows.append(window)
    return windows


def window_rows(metrics: list[dict], windows: list[tuple[int, int]]) -> list[dict]:
    """One dict per window: iterations seen, the mean of each column, groups kept, iterations
    with an update."""
    rows = []
    for first, last in windows:
        inside = [m for m in metrics if first <= m.get("iteration", 0) <= last]
        row = {"window": f"{first}-{last}", "iterations": len(inside), "planned": last - first + 1}
        for key, _ in COLUMNS:
            values = [v for v in (num(m.get(key)) for m in inside) if v is not None]
            row[key] = sum(values) / len(values) if values else None
        row["groups_kept"] = sum(num(m.get("knowrl/groups_kept")) or 0 for m in inside)
        row["updates"] = sum(1 for m in inside if "train/policy_loss" in m)
        rows.append(row)
    return rows


def markdown(runs: dict[str, list[dict]]) -> str:
    """One markdown row per run and iteration window (`runs`: run name -> window rows from `window_rows`),
    with the mean of each metric column."""
    head = ["run", "iterations"] + [name for _, name in COLUMNS] + ["groups kept", "iterations with an update"]
    body = []
    for name, windows in runs.items():
        for row in windows:
            seen = row["window"] if row["iterations"] == row["planned"] else \
                f"{row['window']} ({row['iterations']} so far)"
            cells = [name, seen] + ["" if row[key] is None else f"{row[key]:.3f}" for key, _ in COLUMNS]
            cells += [f"{row['groups_kept']:g}", str(row["updates"])]
            body.append(cells)
    return markdown_table(head, body)


def differing_knobs(configs: dict[str, dict]) -> list[tuple[str, str]]:
    """The knobs whose values are not the same in every run (all of them for a single run)."""
    if len(configs) == 1:
        return KNOBS
    return [(key, name) for key, name in KNOBS if len({json.dumps(c.get(key)) for c in configs.values()}) > 1]


def change(metric: dict) -> str:
    """'A -> B, +d [lo, hi]' from one compare.json metric entry; '' for a metric not compared."""
    if not metric:
        return ""

    def f(x):
        return "n/a" if x is None else f"{x:.3f}"

    text = f"{f(metric.get('A'))} -> {f(metric.get('B'))}"
    if metric.get("estimate") is not None:
        text += f", {metric['estimate']:+.3f} [{metric['ci_low']:+.3f}, {metric['ci_high']:+.3f}]"
    return text


def load_comparisons(run_dirs: dict[str, Path]) -> dict[str, dict | None]:
    """Each run's <run>/eval/compare.json, None for a run not evaluated yet."""
    comparisons = {}
    for name, run_dir in run_dirs.items():
        path = run_dir / "eval" / "compare.json"
        comparisons[name] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return comparisons


def eval_markdown(comparisons: dict[str, dict | None], configs: dict[str, dict]) -> str:
    """One row per run and split: the differing knobs, then base -> trained for each metric with
    the paired bootstrap CI of the difference. A run not yet evaluated gets one row saying so."""
    knobs = differing_knobs(configs)
    head = ["run"] + [name for _, name in knobs] + ["split (n)"] + [name for _, name in EVAL_METRICS]
    rows = []
    for name, compared in comparisons.items():
        prefix = [name] + [str(configs[name].get(key, "")) for key, _ in knobs]
        if compared is None:
            rows.append(prefix + ["not evaluated yet"] + [""] * len(EVAL_METRICS))
            continue
        for split, entry in compared.get("benchmarks", {}).items():
            cells = [f"{split} ({entry.get('n')})"] + [change(entry["metrics"].get(key, {})) for key, _ in EVAL_METRICS]
            rows.append(prefix + cells)
        intrinsic = compared.get("intrinsic")
        if intrinsic:
            n = intrinsic.get("n", {})
            cells = [f"own tasks ({n.get('A')} / {n.get('B')})", "consistency " + change(intrinsic.get("consistency", {})),
                     "", "", change(intrinsic.get("mean_agreement", {}))]
            rows.append(prefix + cells)
    return markdown_table(head, rows)


def selection_score(compared: dict) -> tuple[float, float] | None:
    """How tuning picks a configuration, fixed before any tuning run was evaluated: the mean over
    the VALIDATION splits of the trained-minus-base macro-F1 difference, then of the AUROC
    difference to break ties. Macro-F1 because a model that answers one label to everything
    keeps accuracy 0.5 on a balanced split but drops to macro-F1 0.333; test splits never count.
    None when the run has no validation split compared."""
    f1, auroc = [], []
    for split, entry in compared.get("benchmarks", {}).items():
        if "validation" not in split:
            continue
        metrics = entry.get("metrics", {})
        f1.append(num(metrics.get("macro_f1", {}).get("estimate")))
        auroc.append(num(metrics.get("auroc", {}).get("estimate")))
    f1 = [v for v in f1 if v is not None]
    auroc = [v for v in auroc if v is not None]
    if not f1:
        return None
    return sum(f1) / len(f1), (sum(auroc) / len(auroc) if auroc else float("-inf"))


def ranking_markdown(comparisons: dict[str, dict | None]) -> str:
    """The evaluated runs, best first by selection_score."""
    scored = []
    for name, compared in comparisons.items():
        score = selection_score(compared or {})
        if score is not None:
            scored.append((score, name))
    scored.sort(key=lambda item: item[0], reverse=True)
    rows = [[str(rank), name, f"{f1:+.3f}", "n/a" if auroc == float("-inf") else f"{auroc:+.3f}"]
            for rank, ((f1, auroc), name) in enumerate(scored, 1)]
    return markdown_table(["rank", "run", "validation macro-F1 difference (mean)",
                           "validation AUROC difference (mean)"], rows)


def band_counts(records: dict[int, list[dict]], low: float, high: float) -> dict[str, dict[str, int]]:
    """{generation label: {"kept", "below", "above", "other"}} over every task group the run scored
    ("other": dropped with a mean reward inside the band)."""
    counts: dict[str, dict[str, int]] = {}
    for rows in records.values():
        for row in rows:
            label = row.get("gen_label") or "none"
            mean = num(row.get("mean_reward"))
            where = "kept" if row.get("kept") else ("below" if mean is not None and mean < low else
                                                    "above" if mean is not None and mean > high else "other")
            slot = counts.setdefault(label, {"kept": 0, "below": 0, "above": 0, "other": 0})
            slot[where] += 1
    return counts


def band_markdown(runs: dict[str, dict[str, dict[str, int]]]) -> str:
    """Markdown table of `runs` (run name -> written-as label -> counts of kept and dropped groups): per run
    and label, groups kept and dropped below, above or otherwise outside the reward band."""
    head = ["run", "tasks written as", "groups", "kept", "dropped below the band", "dropped above the band",
            "dropped otherwise"]
    rows = []
    for name, counts in runs.items():
        for label in sorted(counts):
            c = counts[label]
            rows.append([name, label] + [str(v) for v in (sum(c.values()), c["kept"], c["below"], c["above"], c["other"])])
    return markdown_table(head, rows)


def main(argv: list[str] | None = None) -> int:
    """CLI: print the runs table of the given --log_dir folders (and with --eval / --band the extra tables).
    Returns the exit status (2 for a missing or unreadable run)."""
    p = argparse.ArgumentParser(prog="python -m openrlhf.analysis.runs_table", description=__doc__.split("\n")[0])
    p.add_argument("log_dirs", nargs="+", help="the --log_dir of each run (its folder name labels the row)")
    p.add_argument("--windows", default="1-10,11-30,31-60,61-92", help="iteration windows, FIRST-LAST,...")
    p.add_argument("--eval", action="store_true",
                   help="also print the differing settings and each run's held-out comparison (<run>/eval/compare.json)")
    p.add_argument("--band", action="store_true",
                   help="also count, per generation label, the groups kept and dropped below/above the reward band")
    args = p.parse_args(argv)
    try:
        windows = parse_windows(args.windows)
        runs, configs, run_dirs, bands = {}, {}, {}, {}
        for log_dir in args.log_dirs:
            path = Path(log_dir)
            name = path.parent.name if path.name == "logs" else path.name
            loaded = load_run(path)
            runs[name] = window_rows(loaded["metrics"], windows)
            configs[name] = loaded["config"] or {}
            if args.band:
                low, high = (num(configs[name].get(key)) for key in ("min_group_reward", "max_group_reward"))
                bands[name] = band_counts(loaded["records"], float("-inf") if low is None else low,
                                          float("inf") if high is None else high)
            run_dirs[name] = path.parent if path.name == "logs" else path
    except (ValueError, FileNotFoundError) as exc:
        print(f"runs_table: {exc}", file=sys.stderr)
        return 2
    print(markdown(runs))
    if args.eval:
        comparisons = load_comparisons(run_dirs)
        print()
        print(eval_markdown(comparisons, configs))
        print()
        print(ranking_markdown(comparisons))
    if args.band:
        print()
        print(band_markdown(bands))
    return 0


if __name__ == "__main__":
    sys.exit(main())
