"""Resume after a crash: the driver is SIGKILLed mid-run, a second run with --load_checkpoint
continues from the newest complete checkpoint, and every iteration's records and metrics are
present exactly once. Also: an interrupted save (no loop-state file) is never resumed from."""

import json
import os
import signal
import subprocess
import time

import pytest

from openrlhf.knowrl.checkpoint import complete_checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_complete_checkpoints_ignore_interrupted_saves(tmp_path):
    for tag, complete in (("iter_0001", True), ("iter_0002", True), ("iter_0003", False)):
        (tmp_path / tag).mkdir()
        (tmp_path / tag / "mp_rank_00_model_states.pt").write_bytes(b"x")
        if complete:
            (tmp_path / tag / "knowrl_state.json").write_text("{}")
    assert complete_checkpoints(str(tmp_path)) == ["iter_0001", "iter_0002"]
    assert complete_checkpoints(str(tmp_path / "missing")) == []


def train_argv(model, out, iterations, *extra):
    from tiny_model import tiny_train_command

    return tiny_train_command(model, out, "--num_iterations", str(iterations), "--save_steps", "1",
                              "--max_ckpt_num", "2", *extra)


@pytest.mark.e2e
def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    from tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "run"
    iterations = 12   # tiny iterations take well under a second: leave the kill plenty of run to land in
    proc = subprocess.Popen(train_argv(model, out, iterations), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not complete_checkpoints(str(out / "ckpt")):
            assert proc.poll() is None, "the first run ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.02)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert not (out / "model" / "config.json").exists(), "the killed run should not have finished"

    resumed = subprocess.run(train_argv(model, out, iterations, "--load_checkpoint"), cwd=ROOT, capture_output=True,
                             text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]
    assert "resumed from" in resumed.stdout
    done_before = int(resumed.stdout.split("after iteration ")[1].split()[0])
    assert 1 <= done_before < iterations
    assert f"iter {done_before + 1}/{iterations}" in resumed.stdout
    assert f"iter {done_before}/{iterations}" not in resumed.stdout

    metrics = [json.loads(line)["iteration"] for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert metrics == list(range(1, iterations + 1)), "every iteration's metrics exactly once"
    for i in range(1, iterations + 1):
        records = (out / "logs" / "iterations" / f"iter_{i:04d}.jsonl").read_text().splitlines()
        assert len(records) == 2 and all(json.loads(r)["iteration"] == i for r in records)
    last_two = [f"iter_{iterations - 1:04d}", f"iter_{iterations:04d}"]
    assert complete_checkpoints(str(out / "ckpt")) == last_two, "rotation keeps the newest 2"
    state = json.loads((out / "ckpt" / last_two[-1] / "knowrl_state.json").read_text())
    assert state["iteration"] == iterations
    assert (out / "model" / "config.json").is_file()


@pytest.mark.e2e
def test_budget_stop_then_resume_equals_the_uninterrupted_run(tmp_path):
    """Fixed seed, CPU: a run stopped by --max_train_minutes after iteration 1 checkpoints and
    exports; resumed, it carries its training time on, and the records, metrics and task pool
    of every iteration equal those of a run that was never interrupted. This holds because
    engines are reseeded per iteration and the checkpoint restores weights, optimizer and pool
    exactly. (The LoRA form of this check is in tests/test_lora.py.)"""
    from tiny_model import build_tiny_model, straight_and_resumed_runs

    model = build_tiny_model(tmp_path / "tiny")
    runs = straight_and_resumed_runs(model, tmp_path, "--actor_learning_rate", "1e-3", "--seed", "7")
    assert "--max_train_minutes 0.0001 reached after iteration 1" in runs.stopped.stdout
    assert "iter 2/3" in runs.resumed.stdout and "iter 1/3" not in runs.resumed.stdout
    assert runs.checkpoints_at_stop == ["iter_0001"]
    assert runs.exported_at_stop, "a run stopped by its budget still exports the model"
    first_state = runs.state_at_stop
    assert first_state["iteration"] == 1 and first_state["train_seconds"] > 0
    state = json.loads((runs.split / "ckpt" / "iter_0003" / "knowrl_state.json").read_text())
    assert state["train_seconds"] > first_state["train_seconds"], "iteration time accumulates over a resume"
