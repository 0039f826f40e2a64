"""Held-out validation and test subsets of SelfAware and KUQ, fixed before any training run.

The subsets are chosen once, with a fixed seed, and recorded in `evaluation/data/splits.json`
as the `source_id` of every chosen item plus the sha256 of the benchmark file they came from.
Only ids are kept in the repository; `materialize` rebuilds the subsets as our JSONL format from
a local copy of each benchmark (checking its digest), so every later run scores exactly the same
items. Validation is for choices (learning rate, templates, checkpoints); test is looked at only
for the final table.

    python -m evaluation.splits choose  [--benchmarks_dir DIR]   # once; rewrites splits.json
    python -m evaluation.splits materialize OUT_DIR [--benchmarks_dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from contextlib import contextmanager
from pathlib import Path

from evaluation.benchmarks import BenchmarkError, EvalItem, load_benchmark

MANIFEST = Path(__file__).resolve().parent / "data" / "splits.json"
SPLIT_SEED = 20261123
SIZES = {"validation": 100, "test": 300}
BENCHMARKS = ("selfaware", "kuq")


def choose_disjoint(items: list[EvalItem], sizes: dict[str, int], seed: int) -> dict[str, list[str]]:
    """Balanced (half feasible, half infeasible), disjoint subsets; returns source ids per split."""
    rng = random.Random(seed)
    by_label = {label: [it for it in items if it.label == label] for label in ("feasible", "infeasible")}
    for pool in by_label.values():
        rng.shuffle(pool)
    chosen: dict[str, list[str]] = {}
    offset = {label: 0 for label in by_label}
    for split, size in sizes.items():
        ids = []
        for label, want in (("feasible", size // 2), ("infeasible", size - size // 2)):
            pool = by_label[label]
            if offset[label] + want > len(pool):
                raise ValueError(f"not enough {label} items for a {split} split of {size}")
            ids += [it.source_id for it in pool[offset[label]:offset[label] + want]]
            offset[label] += want
        chosen[split] = sorted(ids)
    return chosen


@contextmanager
def benchmarks_dir_set(path: str | None):
    """Resolve benchmark names under `path` for the duration (the loaders read the variable)."""
    saved = os.environ.get("KNOWRL_BENCHMARKS_DIR")
    if path:
        os.environ["KNOWRL_BENCHMARKS_DIR"] = path
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("KNOWRL_BENCHMARKS_DIR", None)
        else:
            os.environ["KNOWRL_BENCHMARKS_DIR"] = saved


def choose(benchmarks_dir: str | None) -> dict:
    """Choose the validation and test subsets of each benchmark (found under `benchmarks_dir`, else the
    default) and return the manifest written to evaluation/data/splits.json."""
    with benchmarks_dir_set(benchmarks_dir):
        return _choose()


def _choose() -> dict:
    manifest = {"seed": SPLIT_SEED, "sizes": SIZES, "benchmarks": {}}
    for name in BENCHMARKS:
        bench = load_benchmark(name)
        ids = [it.source_id for it in bench.items]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name}: source ids are not unique")
        manifest["benchmarks"][name] = {"file": Path(bench.path).name, "sha256": bench.sha256,
                                        "splits": choose_disjoint(bench.items, SIZES, SPLIT_SEED)}
    return manifest


def materialize(out_dir: str, benchmarks_dir: str | None, manifest_path: Path = MANIFEST) -> list[Path]:
    """Write `<benchmark>_<split>.jsonl` (our JSONL format) for every recorded split."""
    with benchmarks_dir_set(benchmarks_dir):
        return _materialize(out_dir, manifest_path)


def _materialize(out_dir: str, manifest_path: Path) -> list[Path]:
    manifest = json.loads(manifest_path.read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entry in manifest["benchmarks"].items():
        bench = load_benchmark(name)
        if bench.sha256 != entry["sha256"]:
            raise BenchmarkError(bench.path, None, f"sha256 {bench.sha256[:12]}... differs from the "
                                 f"{entry['sha256'][:12]}... the splits were chosen from",
                                 "point KNOWRL_BENCHMARKS_DIR at an unmodified copy of the benchmark")
        by_id = {it.source_id: it for it in bench.items}
        for split, ids in entry["splits"].items():
            path = out / f"{name}_{split}.jsonl"
            with open(path, "w") as f:
                for source_id in ids:
                    it = by_id[source_id]
                    row = {"task": it.task, "label": it.label, "source_id": source_id}
                    if it.category:
                        row["category"] = it.category
                    if it.answers:
                        row["answer"] = list(it.answers)
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI: `choose` writes the split manifest, `materialize` writes the recorded subsets as JSONL files.
    Returns 0, or 2 when a benchmark is missing or does not match the manifest."""
    parser = argparse.ArgumentParser(prog="python -m evaluation.splits", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pick = sub.add_parser("choose", help="choose the subsets and write evaluation/data/splits.json")
    pick.add_argument("--benchmarks_dir", default=None, help="folder with selfaware/ and kuq/")
    make = sub.add_parser("materialize", help="write the recorded subsets as JSONL files")
    make.add_argument("out_dir")
    make.add_argument("--benchmarks_dir", default=None, help="folder with selfaware/ and kuq/")
    args = parser.parse_args(argv)
    try:
        if args.command == "choose":
            MANIFEST.write_text(json.dumps(choose(args.benchmarks_dir), indent=1) + "\n")
            print(f"wrote {MANIFEST}")
        else:
            for path in materialize(args.out_dir, args.benchmarks_dir):
                print(f"wrote {path}")
    except (BenchmarkError, ValueError) as exc:
        print(f"splits: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
