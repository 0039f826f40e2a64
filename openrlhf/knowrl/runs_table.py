"""Several runs side by side, window by window of iterations: the table the README's controls
section is made of.

    python -m openrlhf.knowrl.runs_table runs/reproduce/logs runs/ctrl_genlabel/logs \
        --windows 1-10,11-30,31-60,61-92

For each run (its --log_dir) and each window, the mean over the window's iterations of the
rollout metrics, plus how many groups were kept and how many iterations trained. A window the
run has not reached yet shows its iteration count so far.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openrlhf.knowrl.report import load_run, num

COLUMNS = [
    ("rollout/agreement", "mean agreement"),
    ("rollout/feasible_share", "share 'feasible'"),
    ("rollout/gen_label_consistency", "majority = generation label"),
    ("rollout/unparseable_rate", "unparseable"),
]


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
    head = ["run", "iterations"] + [name for _, name in COLUMNS] + ["groups kept", "iterations with an update"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rows in runs.items():
        for row in rows:
            seen = row["window"] if row["iterations"] == row["planned"] else \
                f"{row['window']} ({row['iterations']} so far)"
            cells = [name, seen] + ["" if row[key] is None else f"{row[key]:.3f}" for key, _ in COLUMNS]
            cells += [f"{row['groups_kept']:g}", str(row["updates"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m openrlhf.knowrl.runs_table", description=__doc__.split("\n")[0])
    p.add_argument("log_dirs", nargs="+", help="the --log_dir of each run (its folder name labels the row)")
    p.add_argument("--windows", default="1-10,11-30,31-60,61-92", help="iteration windows, FIRST-LAST,...")
    args = p.parse_args(argv)
    try:
        windows = parse_windows(args.windows)
        runs = {}
        for log_dir in args.log_dirs:
            path = Path(log_dir)
            name = path.parent.name if path.name == "logs" else path.name
            runs[name] = window_rows(load_run(path)["metrics"], windows)
    except (ValueError, FileNotFoundError) as exc:
        print(f"runs_table: {exc}", file=sys.stderr)
        return 2
    print(markdown(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
