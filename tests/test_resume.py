"""Resume after a crash: the driver is SIGKILLed mid-run, a second run with --load_checkpoint
continues from the newest intact checkpoint past a torn log line, and every iteration's records
and metrics are present exactly once; a fresh run is refused in an earlier run's folders and
--overwrite moves them aside. Also: an interrupted save (no loop-state file) is never resumed
from, and a run stopped by its time budget resumes to exactly the uninterrupted run."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from openrlhf.cli.train_knowrl import main as train_main
from openrlhf.knowrl.checkpoint import complete_checkpoints, write_state
from openrlhf.utils.jsonl import read_jsonl

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


def plant_earlier_run(out):
    """An earlier run's output in out/{ckpt,logs,model}: a checkpoint of iteration 9, 9 metrics lines."""
    (out / "ckpt" / "iter_0009").mkdir(parents=True)
    (out / "ckpt" / "iter_0009" / "mp_rank_00_model_states.pt").write_bytes(b"weights")
    write_state(str(out / "ckpt" / "iter_0009"), {"iteration": 9, "pool": {}, "settings": {}})
    (out / "logs").mkdir()
    (out / "logs" / "metrics.jsonl").write_text("".join(f'{{"iteration": {i}}}\n' for i in range(1, 10)))
    (out / "model").mkdir()
    (out / "model" / "config.json").write_text("{}")


def logged_iterations(log_dir):
    rows, unreadable = read_jsonl(log_dir / "metrics.jsonl")
    assert unreadable == 0
    return [r["iteration"] for r in rows]


@pytest.mark.e2e
def test_sigkill_then_resume_past_a_torn_log_and_a_damaged_checkpoint_loses_and_duplicates_nothing(tmp_path, capsys):
    """A run started with --overwrite over an earlier run's folders moves them aside; it is
    SIGKILLed (driver and actors) once two checkpoints are complete; a fresh run in its folders and
    a resume under another ZeRO stage are refused before Ray, touching nothing; with a torn metrics
    line and its newest checkpoint damaged on top, --load_checkpoint continues from the intact
    one, and every iteration's records and metrics end up present exactly once."""
    from tiny_model import build_tiny_model, tiny_train_command

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "run"
    plant_earlier_run(out)
    iterations = 12   # tiny iterations take well under a second: leave the kill plenty of run to land in
    proc = subprocess.Popen(train_argv(model, out, iterations, "--overwrite"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 600
        while len(complete_checkpoints(str(out / "ckpt"))) < 2:
            assert proc.poll() is None, "the first run ended before its second checkpoint"
            assert time.time() < deadline, "no two checkpoints within 10 minutes"
            time.sleep(0.02)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert not (out / "model" / "config.json").exists(), "the killed run should not have finished"
    aside = sorted(p.name for p in out.iterdir() if ".prev-" in p.name)
    assert [name.split(".prev-")[0] for name in aside] == ["ckpt", "logs", "model"]
    assert (out / aside[0] / "iter_0009" / "knowrl_state.json").is_file(), "moved aside, not deleted"
    assert logged_iterations(out / aside[1]) == list(range(1, 10))

    # a fresh run in the same folders, and a resume under another ZeRO stage: refused before Ray
    # (in-process: no Ray), nothing touched
    tags = complete_checkpoints(str(out / "ckpt"))
    # only the complete checkpoints: a rank outliving the driver by a moment may still write the next one
    def complete_files():
        return {p: p.stat().st_mtime_ns for tag in tags for p in (out / "ckpt" / tag).rglob("*") if p.is_file()}

    saved = complete_files()
    capsys.readouterr()  # drop the model builder's progress bars
    assert train_main(tiny_train_command(model, out, "--num_iterations", "2")[3:]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds an earlier run's output" in err[0] and "--overwrite" in err[0]
    assert train_main(train_argv(model, out, iterations, "--load_checkpoint", "--zero_stage", "0")[3:]) == 2
    assert "--zero_stage 2 in the checkpoint, 0 now" in capsys.readouterr().err
    assert complete_files() == saved

    with open(out / "logs" / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 99, "rollout/agr')                      # torn, as by a kill mid-write
    victim = max((out / "ckpt" / tags[-1]).rglob("*.pt"), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:100])                       # damaged newest checkpoint
    intact = int(tags[-2].split("_")[1])
    resumed = subprocess.run(train_argv(model, out, iterations, "--load_checkpoint"), cwd=ROOT, capture_output=True,
                             text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]
    assert "is damaged" in resumed.stdout and tags[-1] in resumed.stdout
    assert re.search(rf"resumed from .* after iteration {intact}\n", resumed.stdout), resumed.stdout[-3000:]
    assert "dropped 1 unreadable line" in resumed.stdout   # the torn line (merged with any the kill tore)
    assert "Traceback" not in resumed.stderr
    assert f"iter {intact + 1}/{iterations}" in resumed.stdout
    assert f"iter {intact}/{iterations}" not in resumed.stdout

    assert logged_iterations(out / "logs") == list(range(1, iterations + 1)), "every iteration's metrics once"
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
