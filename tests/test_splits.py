"""Held-out splits: balanced, disjoint, reproducible, and rebuilt only from the same benchmark file."""

import json

import pytest

from evaluation.benchmarks import BenchmarkError, EvalItem
from evaluation.splits import MANIFEST, SIZES, choose_disjoint, materialize


def items(n_feasible, n_infeasible):
    return ([EvalItem(f"question {i}?", "feasible", None, f"F{i}") for i in range(n_feasible)]
            + [EvalItem(f"unknowable {i}?", "infeasible", "future", f"I{i}") for i in range(n_infeasible)])


def test_splits_are_balanced_disjoint_and_seeded():
    pool = items(40, 30)
    chosen = choose_disjoint(pool, {"validation": 10, "test": 30}, seed=7)
    assert len(chosen["validation"]) == 10 and len(chosen["test"]) == 30
    assert not set(chosen["validation"]) & set(chosen["test"])
    for ids in chosen.values():
        assert sum(i.startswith("I") for i in ids) == len(ids) // 2
    assert choose_disjoint(pool, {"validation": 10, "test": 30}, seed=7) == chosen
    assert choose_disjoint(pool, {"validation": 10, "test": 30}, seed=8) != chosen
    with pytest.raises(ValueError, match="not enough infeasible"):
        choose_disjoint(pool, {"validation": 10, "test": 60}, seed=7)


def test_committed_manifest_is_disjoint_and_sized():
    manifest = json.loads(MANIFEST.read_text())
    assert set(manifest["benchmarks"]) == {"selfaware", "kuq"}
    for entry in manifest["benchmarks"].values():
        splits = entry["splits"]
        assert {k: len(v) for k, v in splits.items()} == SIZES
        assert not set(splits["validation"]) & set(splits["test"])
        assert len(entry["sha256"]) == 64


def test_materialize_checks_the_file_digest(tmp_path, monkeypatch):
    bench_dir = tmp_path / "benchmarks"
    (bench_dir / "kuq").mkdir(parents=True)
    kuq = bench_dir / "kuq" / "knowns_unknowns.jsonl"
    kuq.write_text("".join(json.dumps({"question": f"Q{i}?", "unknown": i % 2 == 0}) + "\n" for i in range(20)))
    from evaluation.benchmarks import load_kuq, sha256_file

    loaded = load_kuq(kuq)
    manifest = {"benchmarks": {"kuq": {"file": kuq.name, "sha256": sha256_file(kuq),
                                       "splits": choose_disjoint(loaded, {"validation": 4, "test": 6}, 1)}}}
    manifest_path = tmp_path / "splits.json"
    manifest_path.write_text(json.dumps(manifest))
    written = materialize(str(tmp_path / "out"), str(bench_dir), manifest_path)
    rows = [json.loads(line) for line in (tmp_path / "out" / "kuq_test.jsonl").read_text().splitlines()]
    assert len(written) == 2 and len(rows) == 6
    assert sum(r["label"] == "infeasible" for r in rows) == 3
    kuq.write_text(kuq.read_text() + json.dumps({"question": "extra?", "unknown": True}) + "\n")
    with pytest.raises(BenchmarkError, match="differs"):
        materialize(str(tmp_path / "out2"), str(bench_dir), manifest_path)
