"""A finished (or interrupted) KnowRL run's log folder -> ``report.md`` with plots.

This module owns the human-readable summary of one training run. It reads only what the run left
in ``--log_dir`` (read by ``openrlhf.analysis.run_logs.load_run``) and never imports the trainer,
Ray or torch. It writes

    report.md                            summary, plots, per-iteration table, sample tasks, command,
                                         config, links, evaluation comparison (``compare.json``)
    report/*.png                         six figures (Agg backend, each closed after saving)
    report/series.json                   the exact x/y values every figure plots

Missing values (null, NaN, absent keys, absent files) are skipped in plots and shown as ``n/a``
in tables. ``python -m openrlhf.analysis.run_report RUN_LOG_DIR [--compare compare.json]`` prints the
path of the report it wrote.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from collections import Counter
from pathlib import Path

from openrlhf.analysis.markdown import markdown_table
from openrlhf.analysis.run_logs import load_run, num, read_json

REPORT_NAME = "report.md"
FIGURE_DIR = "report"
SAMPLES_PER_ITERATION = 5
TASK_CHARS = 220

PHASES = ("introspection", "classification", "reward", "experience", "update", "weight_sync", "records")

# (metrics key, table header, kind): kind "f" = 3 decimals, "e" = scientific, "i" = integer, "s" = seconds
TABLE_COLUMNS = (
    ("rollout/agreement", "agree", "f"),
    ("rollout/reward", "reward", "f"),
    ("rollout/unparseable_rate", "unparse", "f"),
    ("rollout/feasible_share", "feas", "f"),
    ("rollout/majority_feasible_share", "maj feas", "f"),
    ("rollout/gen_label_consistency", "gen=maj", "f"),
    ("knowrl/tasks_written", "written", "i"),
    ("knowrl/tasks_generated", "generated", "i"),
    ("knowrl/tasks_from_seeds", "seed/pool", "i"),
    ("knowrl/tasks_classified", "classified", "i"),
    ("knowrl/groups_kept", "kept", "i"),
    # collapse monitors (knowrl/consensus.py, held_out.py)
    ("monitor/predicted_feasible_rate", "pred feas", "f"),
    ("monitor/target_feasible_share", "target feas", "f"),
    ("monitor/intent_agreement", "target=intent", "f"),
    ("monitor/trained_groups", "trained", "i"),
    ("monitor/heldout_feasible_rate", "held-out feas", "f"),
    ("monitor/heldout_self_agreement", "held-out agree", "f"),
    ("knowrl/pool_size", "pool", "i"),
    ("train/policy_loss", "pg loss", "e"),
    ("train/kl", "KL", "e"),
    ("train/kl_loss", "KL loss", "e"),
    ("train/clip_frac", "clip", "f"),
    ("train/grad_norm", "grad", "e"),
    ("train/lr", "lr", "e"),
    ("train/optimizer_steps", "steps", "i"),
    ("train/advantage_abs", "mean |adv|", "e"),
    ("train/response_length", "resp len", "f"),
    ("timing/iteration", "time", "s"),
)

CONFIG_KEYS = (
    "pretrain", "resolved_pretrain", "num_iterations", "reward_func", "advantage_estimator", "kl_estimator",
    "init_kl_coef", "use_kl_loss", "eps_clip", "actor_learning_rate", "train_batch_size", "max_epochs",
    "rollout_batch_size", "n_samples_per_prompt", "temperature", "introspection_prompts",
    "tasks_per_introspection", "min_group_reward", "max_group_reward", "pool_agreement_threshold",
    "answer_prefix", "actor_num_nodes", "actor_num_gpus_per_node", "ref_num_nodes", "ref_num_gpus_per_node",
    "vllm_num_engines", "zero_stage", "bf16", "seed", "save_path", "ckpt_path",
)


# --------------------------------------------------------------------------------------------
# Reading the run
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Series: what every figure plots
# --------------------------------------------------------------------------------------------


def line(metrics: list[dict], key: str) -> dict:
    """``{"x": iterations, "y": values}`` for one metric, missing and null points skipped."""
    xs, ys = [], []
    for row in metrics:
        v = num(row.get(key))
        if v is not None:
            xs.append(row["iteration"])
            ys.append(v)
    return {"x": xs, "y": ys}


def mean(values) -> float | None:
    """Mean of the numeric entries of `values` (others are skipped); None when there are none."""
    vals = [v for v in (num(x) for x in values) if v is not None]
    return sum(vals) / len(vals) if vals else None


def type_name(row: dict) -> str:
    """The task type of an iteration record, "untyped" when it has none."""
    return row.get("type") or "untyped"


def per_type_series(records: dict[int, list[dict]]) -> dict:
    """Mean agreement per taxonomy type in the first and the last iteration with records."""
    if not records:
        return {"first_iteration": None, "last_iteration": None, "types": [], "first": [], "last": [],
                "n_first": [], "n_last": []}
    first_it, last_it = min(records), max(records)
    first, last = records[first_it], records[last_it]
    types = sorted({type_name(r) for r in first + last}, key=lambda t: (t == "untyped", t))

    def block(rows):
        agree = [mean(r.get("agreement") for r in rows if type_name(r) == t) for t in types]
        return agree, [sum(type_name(r) == t for r in rows) for t in types]

    (fa, fn), (la, ln) = block(first), block(last)
    return {"first_iteration": first_it, "last_iteration": last_it, "types": types, "first": fa, "last": la,
            "n_first": fn, "n_last": ln}


def timing_series(metrics: list[dict]) -> dict:
    """Seconds per phase per iteration (0 where a phase did not run) and the remainder of
    timing/iteration not covered by a phase as ``other``."""
    extra = sorted({k[len("timing/"):] for row in metrics for k in row
                    if k.startswith("timing/") and k != "timing/iteration" and k[len("timing/"):] not in PHASES})
    phases = [p for p in PHASES + tuple(extra) if any(num(row.get(f"timing/{p}")) is not None for row in metrics)]
    out: dict = {"x": [row["iteration"] for row in metrics], "phases": {}}
    for p in phases:
        out["phases"][p] = [num(row.get(f"timing/{p}")) or 0.0 for row in metrics]
    other = []
    for i, row in enumerate(metrics):
        total = num(row.get("timing/iteration"))
        covered = sum(vals[i] for vals in out["phases"].values())
        other.append(max(0.0, total - covered) if total is not None else 0.0)
    if any(v > 1e-9 for v in other):
        out["phases"]["other"] = other
    return out


def build_series(run: dict) -> dict:
    """Every plotted value, keyed by figure then by curve (x = iteration)."""
    m = run["metrics"]
    classified, kept, filtered = line(m, "knowrl/tasks_classified"), {"x": [], "y": []}, {"x": [], "y": []}
    for row in m:
        c, k = num(row.get("knowrl/tasks_classified")), num(row.get("knowrl/groups_kept"))
        if k is not None:
            kept["x"].append(row["iteration"])
            kept["y"].append(k)
        if c is not None and k is not None:
            filtered["x"].append(row["iteration"])
            filtered["y"].append(c - k)
    return {
        "agreement_reward": {"agreement": line(m, "rollout/agreement"), "reward": line(m, "rollout/reward")},
        "kl_policy_loss": {"kl": line(m, "train/kl"), "kl_loss": line(m, "train/kl_loss"),
                           "policy_loss": line(m, "train/policy_loss")},
        "feasible_share": {"feasible_share": line(m, "rollout/feasible_share"),
                           "majority_feasible_share": line(m, "rollout/majority_feasible_share"),
                           "target_feasible_share": line(m, "monitor/target_feasible_share"),
                           "heldout_feasible_rate": line(m, "monitor/heldout_feasible_rate")},
        "pool_tasks": {"pool_size": line(m, "knowrl/pool_size"), "tasks_written": line(m, "knowrl/tasks_written"),
                       "tasks_generated": line(m, "knowrl/tasks_generated"), "tasks_classified": classified,
                       "groups_kept": kept, "groups_filtered": filtered},
        "per_type": per_type_series(run["records"]),
        "timing": timing_series(m),
    }


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

FIGURES = (
    ("agreement_reward", "Agreement and reward per iteration"),
    ("kl_policy_loss", "KL and policy loss"),
    ("feasible_share", "Share of answers labelled feasible"),
    ("pool_tasks", "Task pool and tasks per iteration"),
    ("per_type", "Mean agreement per taxonomy type, first vs last iteration"),
    ("timing", "Time per phase"),
)


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} recorded", ha="center", va="center", transform=ax.transAxes, color="grey")


def _iteration_axis(ax, xs) -> None:
    ax.set_xlabel("iteration")
    if xs:
        lo, hi = min(xs), max(xs)
        ax.set_xlim(lo - 0.5, hi + 0.5)
        if hi - lo <= 30:
            ax.set_xticks(range(lo, hi + 1))


def _plot_lines(ax, curves: list[tuple[dict, str]], what: str, all_x: list[int]) -> None:
    """Lines over every iteration of the run; a missing point breaks the line (its neighbours
    still show as markers) rather than being bridged."""
    drawn = False
    xs = sorted(set(all_x) | {x for c, _ in curves for x in c["x"]})
    for curve, label in curves:
        if curve["x"]:
            at = dict(zip(curve["x"], curve["y"]))
            ax.plot(xs, [at.get(x, math.nan) for x in xs], "o-", ms=4, label=label)
            drawn = True
    if drawn:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    else:
        _no_data(ax, what)
    _iteration_axis(ax, xs)


def draw_figure(plt, name: str, series: dict, title: str):
    """Draw figure `name` (one of FIGURES) from `series` with matplotlib's `plt`, over every iteration in
    metrics.jsonl; returns the matplotlib Figure."""
    s = series[name]
    all_x = series["timing"]["x"]  # every iteration in metrics.jsonl
    if name == "agreement_reward":
        fig, ax = plt.subplots(figsize=(7, 4))
        _plot_lines(ax, [(s["agreement"], "mean agreement"), (s["reward"], "mean reward")], "rollouts", all_x)
    elif name == "kl_policy_loss":
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        curves = [(s["kl"], "KL (policy vs reference)")]
        if any(v != 0 for v in s["kl_loss"]["y"]):
            curves.append((s["kl_loss"], "KL loss term"))
        _plot_lines(a1, curves, "training updates", all_x)
        a1.set_title("KL", fontsize=10)
        _plot_lines(a2, [(s["policy_loss"], "policy loss")], "training updates", all_x)
        a2.set_title("policy loss", fontsize=10)
    elif name == "feasible_share":
        fig, ax = plt.subplots(figsize=(7, 4))
        curves = [(s["feasible_share"], "answers labelled feasible"),
                  (s["majority_feasible_share"], "tasks with a feasible majority")]
        curves += [(c, label) for c, label in ((s["target_feasible_share"], "tasks with a feasible target"),
                                               (s["heldout_feasible_rate"], "held-out tasks: feasible answers"))
                   if c["y"]]
        _plot_lines(ax, curves, "rollouts", all_x)
        ax.set_ylim(-0.05, 1.05)
    elif name == "pool_tasks":
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
        _plot_lines(a1, [(s["pool_size"], "pool size")], "pool sizes", all_x)
        a1.set_title("few-shot pool", fontsize=10)
        kept = dict(zip(s["groups_kept"]["x"], s["groups_kept"]["y"]))
        filt = dict(zip(s["groups_filtered"]["x"], s["groups_filtered"]["y"]))
        xs = sorted(set(kept) | set(filt))
        if xs:
            kv = [kept.get(x, 0.0) for x in xs]
            a2.bar(xs, kv, width=0.6, label="kept for training")
            a2.bar(xs, [filt.get(x, 0.0) for x in xs], width=0.6, bottom=kv, label="filtered (reward band)")
        for curve, label, marker, color in ((s["tasks_classified"], "classified", "_", "black"),
                                            (s["tasks_written"], "written by the model", "v", "tab:purple"),
                                            (s["tasks_generated"], "generated (passed filter)", "^", "tab:green")):
            if curve["x"]:
                a2.plot(curve["x"], curve["y"], marker=marker, color=color, ms=9, label=label, linestyle="none")
        if xs or any(s[k]["x"] for k in ("tasks_classified", "tasks_written", "tasks_generated")):
            a2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            _no_data(a2, "task counts")
        _iteration_axis(a2, xs + s["tasks_classified"]["x"] + s["tasks_written"]["x"] + all_x)
        a2.set_title("tasks per iteration", fontsize=10)
    elif name == "per_type":
        fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(s["types"]) + 3), 4.5))
        if s["types"]:
            xs = list(range(len(s["types"])))
            same = s["first_iteration"] == s["last_iteration"]
            width = 0.8 if same else 0.4
            ax.bar([x - (0 if same else 0.2) for x in xs], [v or 0.0 for v in s["first"]], width=width,
                   label=f"iteration {s['first_iteration']}")
            if not same:
                ax.bar([x + 0.2 for x in xs], [v or 0.0 for v in s["last"]], width=width,
                       label=f"iteration {s['last_iteration']}")
            names = [f"{t}\n(n={a}/{b})" if not same else f"{t}\n(n={a})"
                     for t, a, b in zip(s["types"], s["n_first"], s["n_last"])]
            ax.set_xticks(xs, names, rotation=30, ha="right", fontsize=7)
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("mean agreement")
            ax.legend(fontsize=8)
        else:
            _no_data(ax, "task records")
    elif name == "timing":
        fig, ax = plt.subplots(figsize=(9, 4.5))
        xs, bottom = s["x"], [0.0] * len(s["x"])
        for phase, vals in s["phases"].items():
            ax.bar(xs, vals, width=0.7, bottom=bottom, label=phase)
            bottom = [b + v for b, v in zip(bottom, vals)]
        if s["phases"]:
            ax.set_ylabel("seconds")
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            _no_data(ax, "timings")
        _iteration_axis(ax, xs)
    else:  # pragma: no cover - FIGURES and this function are kept in step
        raise KeyError(name)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def write_figures(series: dict, folder: Path) -> dict[str, str] | None:
    """One PNG per entry of FIGURES into ``folder``; ``{name: file name}``, or None without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, title in FIGURES:
        fig = draw_figure(plt, name, series, title)
        try:
            fig.savefig(folder / f"{name}.png", dpi=100)
        finally:
            plt.close(fig)
        written[name] = f"{name}.png"
    return written


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def cell(v, kind: str = "f") -> str:
    """A table cell for value `v`: "n/a" for None or non-finite, yes/no for booleans; numbers by `kind`: "f" 3
    decimals, "i" integer, "e" scientific when tiny or huge, "s" seconds."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        if not math.isfinite(v):
            return "n/a"
        if kind == "i":
            return str(int(v)) if float(v).is_integer() else f"{v:.2f}"
        if kind == "e":
            return f"{v:.2e}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4) else f"{v:.4f}"
        if kind == "s":
            return f"{v:.1f}s"
        return f"{v:.3f}"
    return md(str(v))


def md(text: str, limit: int | None = None) -> str:
    """Text safe inside a markdown table cell."""
    text = " ".join(str(text).split())
    if limit and len(text) > limit:
        text = text[:limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def duration(seconds: float | None) -> str:
    """`seconds` as a readable duration (s, min or h); "n/a" for None."""
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def command_line(argv) -> str | None:
    """The recorded command, with a module path argv[0] shown as ``python -m`` (how it was run)."""
    if not isinstance(argv, list) or not argv:
        return None
    argv = [str(a) for a in argv]
    head = argv[0].replace("\\", "/")
    if head.endswith("openrlhf/cli/train_knowrl.py"):
        return "python -m openrlhf.cli.train_knowrl" + ("" if len(argv) == 1 else " " + shlex.join(argv[1:]))
    return shlex.join(argv)


def vote_summary(row: dict) -> tuple[str, str]:
    """("infeasible 6/8", "6 infeasible, 2 feasible") for one task record."""
    labels = [s.get("label") for s in row.get("samples") or [] if isinstance(s, dict)]
    counts = Counter("unparseable" if lab is None else lab for lab in labels)
    n = len(labels)
    maj = row.get("majority")
    head = f"{maj} {counts.get(maj, 0)}/{n}" if maj else f"no majority (n={n})"
    detail = ", ".join(f"{c} {lab}" for lab, c in counts.most_common())
    return head, detail or "no samples"


def sample_rows(rows: list[dict], k: int = SAMPLES_PER_ITERATION) -> list[dict]:
    """Up to k tasks, generated ones first, in record order."""
    generated = [r for r in rows if r.get("source") == "generated"]
    return (generated + [r for r in rows if r.get("source") != "generated"])[:k]


def link(target, log_dir: Path) -> tuple[str, bool]:
    """A relative markdown link target from report.md to ``target`` and whether it exists."""
    p = Path(target).expanduser()
    absolute = p if p.is_absolute() else Path.cwd() / p
    try:
        rel = os.path.relpath(absolute, log_dir.resolve())
    except ValueError:  # another drive on Windows
        rel = str(absolute)
    rel = rel.replace(os.sep, "/")
    return (f"<{rel}>" if " " in rel else rel), absolute.exists()


def complete_tags(ckpt: Path) -> list[str]:
    """The checkpoint tags (iter_NNNN) under `ckpt` whose save completed (knowrl_state.json written), sorted;
    [] when `ckpt` is not a folder."""
    if not ckpt.is_dir():
        return []
    return sorted(t.name for t in ckpt.iterdir() if t.name.startswith("iter_") and (t / "knowrl_state.json").is_file())


def summary_paragraph(run: dict, series: dict) -> str:
    """The report's opening paragraph in markdown: iterations done and planned, model, reward, time, tasks
    classified and updates made, from `run` (`run_logs.read_run`) and `series`."""
    m, cfg = run["metrics"], run["config"]
    its = [row["iteration"] for row in m] or list(run["records"])
    planned = cfg.get("num_iterations")
    first, last = (m[0], m[-1]) if m else ({}, {})
    total = sum(v for v in (num(row.get("timing/iteration")) for row in m) if v is not None) if m else None
    trained = sum(any(k.startswith("train/") for k in row) for row in m)
    classified = sum(num(row.get("knowrl/tasks_classified")) or 0 for row in m)
    parts = [f"This run completed **{len(its)} iteration{'s' if len(its) != 1 else ''}** "
             f"({min(its)}–{max(its)}" + (f" of {planned} planned" if isinstance(planned, int) else "") + ")"]
    model = cfg.get("resolved_pretrain") or cfg.get("pretrain")
    if model:
        parts[0] += f" on `{model}`"
    if cfg.get("reward_func"):
        parts[0] += f" with the `{cfg['reward_func']}` reward"
    parts[0] += "."
    if m:
        parts.append(f"Mean agreement went from {cell(num(first.get('rollout/agreement')))} to "
                     f"**{cell(num(last.get('rollout/agreement')))}** and mean reward from "
                     f"{cell(num(first.get('rollout/reward')))} to **{cell(num(last.get('rollout/reward')))}**; "
                     f"the few-shot pool ended at **{cell(num(last.get('knowrl/pool_size')), 'i')}** tasks.")
        parts.append(f"{int(classified)} tasks were classified in all; {trained} of {len(m)} iterations kept at "
                     f"least one group and updated the policy. Total time **{duration(total)}**.")
    else:
        parts.append("metrics.jsonl is missing: only the task records are summarised.")
    return " ".join(parts)


def compare_section(path: Path) -> list[str]:
    """The markdown section for a compare.json of evaluation/run_eval.py --compare at `path` (metric, A, B,
    difference and its 95% CI per benchmark); says so when the file cannot be read."""
    cmp = read_json(path)
    out = ["## Evaluation comparison", ""]
    if not isinstance(cmp, dict):
        return out + [f"Could not read `{md(str(path))}`.", ""]
    a, b = cmp.get("A") or {}, cmp.get("B") or {}
    out.append(f"A = `{a.get('name', 'A')}` ({md(a.get('spec') or 'embedded')}), "
               f"B = `{b.get('name', 'B')}` ({md(b.get('spec') or 'embedded')}); diff = {cmp.get('diff', 'B - A')}, "
               f"95% paired bootstrap CI ({cmp.get('n_boot', '?')} resamples). Source: `{md(str(path))}`.")
    out.append("")
    for bench, block in (cmp.get("benchmarks") or {}).items():
        out.append(f"**{md(bench)}** (n = {block.get('n', '?')})")
        out.append("")
        rows = []
        for k, mm in (block.get("metrics") or {}).items():
            lo, hi, est = num(mm.get("ci_low")), num(mm.get("ci_high")), num(mm.get("estimate"))
            rows.append([md(k), cell(num(mm.get("A"))), cell(num(mm.get("B"))),
                         "n/a" if est is None else f"{est:+.3f}",
                         "n/a" if lo is None or hi is None else f"[{lo:+.3f}, {hi:+.3f}]"])
        out += [markdown_table(["metric", "A", "B", "diff", "95% CI"], rows), ""]
    intr = cmp.get("intrinsic")
    if isinstance(intr, dict):
        out.append("**intrinsic** (not paired: each model wrote its own tasks)")
        out.append("")
        rows = [[md(k), cell(num((v or {}).get("A"))), cell(num((v or {}).get("B")))] for k, v in intr.items()]
        out += [markdown_table(["metric", "A", "B"], rows), ""]
    return out


def build_markdown(run: dict, series: dict, figures: dict[str, str] | None, *, ckpt_path=None, save_path=None,
                   compare_json=None) -> str:
    """The whole report.md text for `run` (`run_logs.read_run`): summary, plots (`figures` maps figure name to
    file; None: matplotlib missing), tables, links to `ckpt_path`/`save_path` when given, and the
    comparison in `compare_json` when given."""
    log_dir: Path = run["log_dir"]
    m, cfg, records = run["metrics"], run["config"], run["records"]
    out = [f"# KnowRL run report: `{md(log_dir.resolve().name)}`", "", summary_paragraph(run, series), ""]
    if run["skipped_lines"]:
        out += [f"_{run['skipped_lines']} unreadable JSON line(s) were skipped._", ""]

    out += ["## Plots", ""]
    if figures is None:
        out += ["matplotlib is not installed: no plots (the plotted values are in "
                f"[{FIGURE_DIR}/series.json]({FIGURE_DIR}/series.json)).", ""]
    else:
        for name, title in FIGURES:
            out += [f"### {title}", "", f"![{title}]({FIGURE_DIR}/{figures[name]})", ""]
        out += [f"Plotted values: [{FIGURE_DIR}/series.json]({FIGURE_DIR}/series.json).", ""]

    out += ["## Metrics per iteration", ""]
    if m:
        cols = [c for c in TABLE_COLUMNS if any(c[0] in row for row in m)]
        rows = [[str(row["iteration"])] + [cell(row.get(k), kind) for k, _, kind in cols] for row in m]
        out.append(markdown_table(["iter"] + [md(h) for _, h, _ in cols], rows))
        out += ["", "Training columns read n/a in iterations where no group fell inside the reward band "
                "(no policy update).", ""]
    else:
        out += ["metrics.jsonl is missing or empty.", ""]

    pt = series["per_type"]
    if pt["types"]:
        out += [f"## Per-type agreement (iteration {pt['first_iteration']} vs {pt['last_iteration']})", ""]
        rows = [[md(t), str(nf), cell(af), str(nl), cell(al)]
                for t, nf, af, nl, al in zip(pt["types"], pt["n_first"], pt["first"], pt["n_last"], pt["last"])]
        out.append(markdown_table(["type", f"n it {pt['first_iteration']}", f"agree it {pt['first_iteration']}",
                                   f"n it {pt['last_iteration']}", f"agree it {pt['last_iteration']}"], rows))
        out.append("")

    if run["introspection"]:
        out += ["## Introspection", ""]
        rows = []
        for it, entries in run["introspection"].items():
            kept = sum(len(e.get("kept") or []) for e in entries)
            why = Counter(d.get("why") or "?" for e in entries for d in e.get("dropped") or [] if isinstance(d, dict))
            rows.append([str(it), str(len(entries)), str(kept), str(sum(why.values())),
                         ", ".join(f"{w} {c}" for w, c in why.most_common()) or "—"])
        out += [markdown_table(["iter", "prompts", "tasks kept", "dropped", "dropped because"], rows), ""]

    if records:
        out += ["## Sample tasks and votes", ""]
        shown = [min(records)] + ([max(records)] if max(records) != min(records) else [])
        for it in shown:
            rows = sample_rows(records[it])
            out += [f"### Iteration {it} ({len(records[it])} tasks classified)", ""]
            if not rows:
                out += ["No tasks.", ""]
                continue
            body = []
            for r in rows:
                vote, detail = vote_summary(r)
                kind = r.get("reason") or r.get("type") or "—"
                body.append([md(r.get("source") or "?"), md(r.get("gen_label") or "—"), md(kind), md(vote),
                             md(detail), cell(num(r.get("mean_reward"))), cell(bool(r.get("kept"))),
                             cell(bool(r.get("joined_pool"))), md(r.get("task") or "", TASK_CHARS)])
            out += [markdown_table(["source", "written as", "reason/type", "vote", "all votes", "reward", "trained",
                                    "pooled", "task"], body), ""]

    out += ["## Command", ""]
    cmd = command_line(cfg.get("argv"))
    out += ["```bash", cmd, "```", ""] if cmd else ["config.json is missing or records no argv.", ""]
    if cfg:
        rows = [[f"`{k}`", md(json.dumps(cfg[k]))] for k in CONFIG_KEYS if k in cfg]
        out += ["Key configuration (all flags: [config.json](config.json)):", ""]
        out += [markdown_table(["flag", "value"], rows), ""]

    if run["placement"]:
        out += ["## Placement", ""]
        rows = [[md(g), str(len(ids or [])), md(", ".join(sorted({str(i)[:12] for i in ids or []})) or "—")]
                for g, ids in run["placement"].items()]
        out += [markdown_table(["group", "actors", "nodes"], rows), ""]

    out += ["## Artifacts", ""]
    arts = ["- Metrics: [metrics.jsonl](metrics.jsonl); task records: [iterations/](iterations/)"]
    if ckpt_path:
        target, exists = link(ckpt_path, log_dir)
        tags = complete_tags(Path(ckpt_path).expanduser())
        arts.append(f"- Checkpoints: [{md(str(ckpt_path))}]({target})" + ("" if exists else " (not found)")
                    + (f" — complete: {', '.join(tags)}" if tags else ""))
    if save_path:
        target, exists = link(save_path, log_dir)
        arts.append(f"- HF model folder: [{md(str(save_path))}]({target})" + ("" if exists else " (not found)"))
    out += arts + [""]

    if compare_json:
        out += compare_section(Path(compare_json))
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def write_report(log_dir, *, ckpt_path=None, save_path=None, compare_json=None) -> Path:
    """Write ``log_dir/report.md``, ``log_dir/report/*.png`` and ``log_dir/report/series.json``;
    return the path of report.md. ``ckpt_path``/``save_path`` add links to the checkpoint and
    HF folders; ``compare_json`` (written by ``evaluation/run_eval.py --compare``) adds its table."""
    run = load_run(log_dir)
    series = build_series(run)
    folder = run["log_dir"] / FIGURE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "series.json").write_text(json.dumps(series, indent=1) + "\n", encoding="utf-8")
    figures = write_figures(series, folder)
    text = build_markdown(run, series, figures, ckpt_path=ckpt_path, save_path=save_path, compare_json=compare_json)
    path = run["log_dir"] / REPORT_NAME
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """CLI: write report.md and its plots into a run's --log_dir and print its path. Returns 0, or
    2 (one error line) for a missing --compare file or run files."""
    p = argparse.ArgumentParser(prog="python -m openrlhf.analysis.run_report",
                                description="Write report.md and plots for a KnowRL run's --log_dir.")
    p.add_argument("log_dir", help="the run's --log_dir (config.json, metrics.jsonl, iterations/)")
    p.add_argument("--compare", default=None, metavar="PATH",
                   help="compare.json from evaluation/run_eval.py --compare, added as a table")
    p.add_argument("--ckpt_path", default=None,
                   help="checkpoint folder to link (default: config.json's ckpt_path when it exists from here)")
    p.add_argument("--save_path", default=None,
                   help="trained HF model folder to link (default: config.json's save_path when it exists from here)")
    args = p.parse_args(argv)
    cfg = read_json(Path(args.log_dir) / "config.json")
    cfg = cfg if isinstance(cfg, dict) else {}
    for key in ("ckpt_path", "save_path"):
        if getattr(args, key) is None and isinstance(cfg.get(key), str) and cfg[key] and Path(cfg[key]).exists():
            setattr(args, key, cfg[key])
    if args.compare and not Path(args.compare).is_file():
        print(f"report: error: --compare {args.compare}: no such file", file=sys.stderr)
        return 2
    try:
        path = write_report(args.log_dir, ckpt_path=args.ckpt_path, save_path=args.save_path,
                            compare_json=args.compare)
    except FileNotFoundError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
