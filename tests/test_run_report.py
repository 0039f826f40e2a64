"""openrlhf/analysis/run_report.py on synthetic run folders written in the formats the trainer leaves
(config.json, metrics.jsonl, iterations/iter_NNNN[_introspection].jsonl, placement.json): the
markdown, the PNGs and their plotted series, the one-iteration case and the CLI."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from openrlhf.analysis.run_report import FIGURES, build_series, command_line, vote_summary, write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ARGV = ["/home/u/KnowRL/openrlhf/cli/train_knowrl.py", "--num_iterations", "3", "--reward_func", "consensus",
        "--log_dir", "/tmp/run logs", "--rollout_batch_size", "4"]


def metrics_row(it: int, *, train: bool, **override) -> dict:
    row = {
        "iteration": it, "rollout/agreement": 0.6 + 0.1 * it, "rollout/reward": 0.5 + 0.1 * it,
        "rollout/unparseable_rate": 0.05, "rollout/feasible_share": 0.4, "rollout/majority_feasible_share": 0.5,
        "rollout/gen_label_consistency": 0.75, "knowrl/tasks_written": 10, "knowrl/tasks_generated": 6,
        "knowrl/tasks_classified": 4, "knowrl/tasks_from_seeds": 1, "knowrl/groups_kept": 2 if train else 0,
        "knowrl/pool_size": it, "timing/introspection": 1.5, "timing/classification": 2.0, "timing/reward": 0.01,
        "timing/records": 0.02, "timing/iteration": 9.0,
    }
    if train:
        row.update({"train/policy_loss": -0.01 * it, "train/kl": 1e-4 * it, "train/kl_loss": 0.0,
                    "train/clip_frac": 0.1, "train/grad_norm": 0.5, "train/lr": 5e-7, "train/optimizer_steps": 1,
                    "train/advantage_abs": 0.3, "train/response_length": 3.0, "timing/experience": 1.0,
                    "timing/update": 2.0, "timing/weight_sync": 0.5})
    row.update(override)
    return row


def record(it: int, j: int, source: str, labels: list) -> dict:
    n_inf = sum(lab == "infeasible" for lab in labels)
    n_feas = sum(lab == "feasible" for lab in labels)
    majority = None if n_inf == n_feas else ("infeasible" if n_inf > n_feas else "feasible")
    reasons = ["missing_context", "outside_training_cutoff", None, "malicious_intent"]
    types = ["contextual_awareness", "temporal_perception", None, "ethical_integrity"]
    return {"iteration": it, "task": f"Iteration {it} task {j}: what did I | say before?", "source": source,
            "gen_label": "infeasible" if reasons[j % 4] else "feasible", "type": types[j % 4],
            "reason": reasons[j % 4], "majority": majority,
            "agreement": max(n_inf, n_feas) / len(labels), "mean_reward": 0.5, "kept": j % 2 == 0,
            "joined_pool": j == 0, "answer_prefix": "Label:",
            "samples": [{"text": f" {lab}" if lab else " ???", "label": lab, "reward": 1.0, "finished": True}
                        for lab in labels]}


def write_run(root: Path, iterations: list[dict], *, placement=True, introspection=True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = {"pretrain": "", "resolved_pretrain": "/models/SmolLM2-135M-Instruct", "num_iterations": len(iterations),
              "reward_func": "consensus", "actor_learning_rate": 5e-7, "n_samples_per_prompt": 8,
              "save_path": "./ckpt/knowrl", "ckpt_path": "./ckpt/knowrl_ckpt", "argv": ARGV}
    (root / "config.json").write_text(json.dumps(config, indent=1))
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in iterations))
    (root / "iterations").mkdir(exist_ok=True)
    votes = [["infeasible"] * 6 + ["feasible"] * 2, ["feasible"] * 8, ["feasible"] * 4 + ["infeasible"] * 4,
             ["infeasible"] * 7 + [None]]
    for row in iterations:
        it = row["iteration"]
        recs = [record(it, j, "generated" if j < 3 else "seed", votes[(j + it) % 4]) for j in range(4)]
        (root / "iterations" / f"iter_{it:04d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        if introspection:
            intro = [{"iteration": it, "target_label": "infeasible", "reason": "missing_context",
                      "output": "Task: a\nTask: b", "kept": [recs[0]["task"]],
                      "dropped": [{"task": "short", "why": "too_short"}]},
                     {"iteration": it, "target_label": "feasible", "reason": None, "output": "Task: c",
                      "kept": [recs[1]["task"], recs[2]["task"]], "dropped": []}]
            (root / "iterations" / f"iter_{it:04d}_introspection.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in intro))
    if placement:
        (root / "placement.json").write_text(json.dumps({"policy": ["node_a"], "reference": ["node_a"],
                                                         "vllm": ["node_b", "node_b"]}))
    return root


@pytest.fixture
def run3(tmp_path):
    # iteration 2 kept no group (no train/* keys); iteration 3 has a null KL
    return write_run(tmp_path / "run3", [metrics_row(1, train=True), metrics_row(2, train=False),
                                         metrics_row(3, train=True, **{"train/kl": None})])


def check_pngs(folder: Path) -> None:
    for name, _ in FIGURES:
        png = folder / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE, png
        img = mpimg.imread(png)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, (png, img.shape)


def test_three_iterations(run3):
    before = plt.get_fignums()
    path = write_report(run3)
    assert path == run3 / "report.md" and path.is_file()
    assert plt.get_fignums() == before  # every figure closed
    text = path.read_text()

    for it in (1, 2, 3):
        assert f"\n| {it} |" in text  # one row per iteration in the metrics table
    assert "**3 iterations** (1–3 of 3 planned)" in text
    assert "2 of 3 iterations kept at least one group" in text
    assert "Total time **27.0 s**" in text
    # the exact command, as it was run
    assert "python -m openrlhf.cli.train_knowrl " + shlex.join(ARGV[1:]) in text
    assert "'/tmp/run logs'" in text
    assert "`reward_func` | \"consensus\"" in text
    # plots embedded with relative paths
    for name, _ in FIGURES:
        assert f"(report/{name}.png)" in text
    check_pngs(run3)

    series = json.loads((run3 / "report" / "series.json").read_text())
    agree = series["agreement_reward"]["agreement"]
    assert agree["x"] == [1, 2, 3]
    assert agree["y"] == pytest.approx([0.7, 0.8, 0.9])
    assert series["kl_policy_loss"]["kl"]["x"] == [1]  # iteration 2: no key; iteration 3: null
    assert series["kl_policy_loss"]["policy_loss"]["x"] == [1, 3]
    assert series["pool_tasks"]["groups_filtered"]["y"] == [2, 4, 2]
    assert series["timing"]["phases"]["update"] == [2.0, 0.0, 2.0]
    assert series["timing"]["phases"]["other"][1] == pytest.approx(9.0 - 3.53)
    pt = series["per_type"]
    assert (pt["first_iteration"], pt["last_iteration"]) == (1, 3)
    assert "untyped" in pt["types"] and "contextual_awareness" in pt["types"]

    # missing training values read n/a, sample votes from the first and last iteration
    assert "n/a" in text
    assert "### Iteration 1 (4 tasks classified)" in text and "### Iteration 3 (4 tasks classified)" in text
    assert "### Iteration 2 (" not in text
    assert "infeasible 6/8" in text and "feasible 8/8" in text and "no majority (n=8)" in text
    assert "what did I \\| say before?" in text  # pipes escaped in table cells
    assert "too_short 1" in text  # introspection drops
    assert "## Placement" in text and "node_b" in text


def test_links_and_compare(run3, tmp_path):
    ckpt = tmp_path / "ckpt"
    (ckpt / "iter_0003").mkdir(parents=True)
    (ckpt / "iter_0003" / "knowrl_state.json").write_text("{}")
    (ckpt / "iter_0002").mkdir()  # interrupted save: not listed as complete
    hf = tmp_path / "hf"
    hf.mkdir()
    cmp = {"benchmarks": {"selfaware": {"n": 40, "metrics": {
        "accuracy": {"A": 0.5, "B": 0.625, "estimate": 0.125, "ci_low": 0.025, "ci_high": 0.25, "n_boot": 200,
                     "n_valid": 200},
        "auroc": {"A": None, "B": 0.7, "estimate": None, "ci_low": None, "ci_high": None, "n_boot": 200,
                  "n_valid": 0}}}},
        "n_boot": 200, "seed": 0, "diff": "B - A",
        "intrinsic": {"n": {"A": 10, "B": 12}, "consistency": {"A": 0.4, "B": None}},
        "A": {"spec": "", "name": "base"}, "B": {"spec": str(hf), "name": "hf"}}
    cpath = tmp_path / "cmp" / "compare.json"
    cpath.parent.mkdir()
    cpath.write_text(json.dumps(cmp))
    text = write_report(run3, ckpt_path=ckpt, save_path=hf, compare_json=cpath).read_text()
    assert "[" + str(ckpt) + "](../ckpt)" in text and "complete: iter_0003" in text and "iter_0002" not in text
    assert "](../hf)" in text
    assert "## Evaluation comparison" in text and "**selfaware** (n = 40)" in text
    assert "| accuracy | 0.500 | 0.625 | +0.125 | [+0.025, +0.250] |" in text
    assert "| auroc | n/a | 0.700 | n/a | n/a |" in text
    assert "| consistency | 0.400 | n/a |" in text
    missing = write_report(run3, save_path=tmp_path / "nope").read_text()
    assert "(not found)" in missing


def test_one_iteration_without_training_or_optional_files(tmp_path):
    root = write_run(tmp_path / "run1", [metrics_row(1, train=False, **{"rollout/reward": None})],
                     placement=False, introspection=False)
    text = write_report(root).read_text()
    assert "**1 iteration** (1–1 of 1 planned)" in text and "\n| 1 |" in text
    assert "## Placement" not in text and "## Introspection" not in text
    assert text.count("### Iteration 1 (") == 1
    check_pngs(root)
    series = json.loads((root / "report" / "series.json").read_text())
    assert series["agreement_reward"]["agreement"]["x"] == [1]
    assert series["agreement_reward"]["reward"]["x"] == []
    assert series["kl_policy_loss"]["kl"] == {"x": [], "y": []}
    assert series["per_type"]["first_iteration"] == series["per_type"]["last_iteration"] == 1


def test_torn_line_and_empty_folder(tmp_path):
    root = write_run(tmp_path / "torn", [metrics_row(1, train=True), metrics_row(2, train=True)])
    with open(root / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 3, "rollout/agr')  # a run killed mid-write
    text = write_report(root).read_text()
    assert "1 unreadable JSON line(s) were skipped" in text and "**2 iterations**" in text
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        write_report(tmp_path / "empty")


def test_helpers():
    assert command_line(["/x/bin/knowrl-train", "--seed", "1"]) == "/x/bin/knowrl-train --seed 1"
    assert command_line(None) is None
    assert vote_summary({"majority": "infeasible", "samples": [{"label": "infeasible"}] * 6 + [{"label": None}] * 2}) \
        == ("infeasible 6/8", "6 infeasible, 2 unparseable")


def test_cli(run3, tmp_path):
    cpath = tmp_path / "compare.json"
    cpath.write_text(json.dumps({"benchmarks": {}, "n_boot": 10, "diff": "B - A"}))
    proc = subprocess.run([sys.executable, "-m", "openrlhf.analysis.run_report", str(run3), "--compare", str(cpath)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(run3 / "report.md")
    assert "## Evaluation comparison" in (run3 / "report.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "openrlhf.analysis.run_report", str(tmp_path / "missing")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "not a folder" in bad.stderr


def test_collapse_monitors_are_columns_and_curves_when_logged(tmp_path):
    monitors = {"monitor/predicted_feasible_rate": 0.31, "monitor/target_feasible_share": 0.5,
                "monitor/heldout_feasible_rate": 0.27, "monitor/trained_groups": 4}
    run = write_run(tmp_path / "mon", [metrics_row(1, train=True, **monitors), metrics_row(2, train=True)])
    text = (write_report(run)).read_text()
    header = next(line for line in text.splitlines() if line.startswith("| iter"))
    assert "pred feas" in header and "target feas" in header and "held-out feas" in header
    assert "target=intent" not in header, "a monitor never logged gets no column"
    assert "0.310" in text and "0.270" in text
    plain = (write_report(write_run(tmp_path / "plain", [metrics_row(1, train=True)]))).read_text()
    assert "pred feas" not in plain
    series = build_series({"metrics": [metrics_row(1, train=True, **monitors)], "records": {}})
    assert series["feasible_share"]["heldout_feasible_rate"] == {"x": [1], "y": [0.27]}
