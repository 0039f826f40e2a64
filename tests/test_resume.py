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
def test_time_budget_stops_with_a_checkpoint_and_resume_carries_the_time(tmp_path):
    from tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "run"
    first = subprocess.run(train_argv(model, out, 3, "--max_train_minutes", "0.0001"), cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    assert "--max_train_minutes 0.0001 reached after iteration 1" in first.stdout
    assert complete_checkpoints(str(out / "ckpt")) == ["iter_0001"]
    assert (out / "model" / "config.json").is_file(), "a run stopped by its budget still exports the model"
    spent = json.loads((out / "ckpt" / "iter_0001" / "knowrl_state.json").read_text())["train_seconds"]
    assert spent > 0

    resumed = subprocess.run(train_argv(model, out, 3, "--load_checkpoint", "--max_train_minutes", "60"), cwd=ROOT,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]
    assert "iter 2/3" in resumed.stdout and "iter 3/3" in resumed.stdout
    state = json.loads((out / "ckpt" / "iter_0003" / "knowrl_state.json").read_text())
    assert state["train_seconds"] > spent, "iteration time accumulates over a resume"


@pytest.mark.e2e
@pytest.mark.parametrize("flags", [(), ("--lora_rank", "4", "--lora_alpha", "8")], ids=["full", "lora"])
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(tmp_path, flags):
    """Fixed seed, CPU: stop after iteration 1 (time budget), resume, and the records, metrics
    and task pool of every iteration equal those of a run that was never interrupted. This holds
    because engines are reseeded per iteration and the checkpoint restores weights, optimizer
    and pool exactly; with LoRA, the adapter and its optimizer state (the reference being the
    policy with its adapter off)."""
    from tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    straight, split = tmp_path / "straight", tmp_path / "split"
    extra = ("--actor_learning_rate", "1e-3", "--seed", "7", *flags)
    runs = [subprocess.run(train_argv(model, straight, 3, *extra), cwd=ROOT, capture_output=True, text=True,
                           timeout=900),
            subprocess.run(train_argv(model, split, 3, *extra, "--max_train_minutes", "0.0001"), cwd=ROOT,
                           capture_output=True, text=True, timeout=900),
            subprocess.run(train_argv(model, split, 3, *extra, "--load_checkpoint"), cwd=ROOT, capture_output=True,
                           text=True, timeout=900)]
    for proc in runs:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "reached after iteration 1" in runs[1].stdout and "resumed from" in runs[2].stdout

    def records(run, i):
        return [json.loads(line) for line in (run / "logs" / "iterations" / f"iter_{i:04d}.jsonl").read_text().splitlines()]

    def metrics(run):
        rows = [json.loads(line) for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in row.items() if not k.startswith("timing/")} for row in rows]

    for i in (1, 2, 3):
        assert records(straight, i) == records(split, i), f"iteration {i} differs after the resume"
    assert metrics(straight) == metrics(split)
    pools = [json.loads((run / "ckpt" / "iter_0003" / "knowrl_state.json").read_text())["pool"] for run in (straight, split)]
    assert pools[0] == pools[1]
