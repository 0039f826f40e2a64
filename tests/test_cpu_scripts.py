"""The CPU reproduction and tuning scripts refuse bad knobs with one line, before they set up an
environment, start a run or create its folder."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_script(name, env, tmp_path):
    return subprocess.run(["bash", str(REPO / "scripts" / name)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", **env})


def test_reproduce_refuses_an_unknown_splits_value(tmp_path):
    run_dir = tmp_path / "run"
    r = run_script("reproduce_cpu.sh", {"SPLITS": "test", "RUN_DIR": str(run_dir)}, tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "reproduce_cpu.sh: SPLITS=test: use all (validation and test splits) or validation (tuning)"]
    assert not run_dir.exists()


@pytest.mark.parametrize("env, message", [
    ({"ONLY": "lr1"}, "ONLY=lr1 is not a configuration; use one of: A genlabel_low0 lr3e-6 "),
    ({"TUNE_ITERATIONS": "1"}, "TUNE_ITERATIONS=1: give a whole number of iterations, at least 2"),
    ({"TUNE_ITERATIONS": "ten"}, "TUNE_ITERATIONS=ten: give a whole number"),
    ({"SET": "ablations"}, "SET=ablations: use tuning (the configurations to pick from) or controls"),
    ({"SET": "controls", "ONLY": "lr3e-6"}, "ONLY=lr3e-6 is not a configuration; use one of: nopool "),
])
def test_tuning_refuses_bad_knobs(tmp_path, env, message):
    r = run_script("tune_training.sh", env, tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr
    assert r.stdout == ""
