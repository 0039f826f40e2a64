"""Faults during a run: a vLLM engine process killed with SIGKILL is named, restarted, re-synced
and the run completes; with no restarts allowed the run stops with one clear error line and a
checkpoint of the last complete iteration."""

import json
import os
import subprocess
import time

from openrlhf.knowrl.loop import complete_checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITERATIONS = 12


def run_and_kill_engine(tmp_path, *extra):
    from tiny_model import build_tiny_model, tiny_train_command

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "run"
    # tiny iterations take well under a second: enough of them that the kill lands mid-run
    argv = tiny_train_command(model, out, "--num_iterations", str(ITERATIONS), "--actor_timeout", "300", *extra)
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    metrics = out / "logs" / "metrics.jsonl"
    deadline = time.time() + 600
    while not (metrics.exists() and metrics.read_text().strip()):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.02)
    # The engine process is named by Ray after its actor class.
    subprocess.run(["pkill", "-9", "-f", "ray::LLMEngineActor"], check=True)
    stdout, stderr = proc.communicate(timeout=900)
    return proc.returncode, stdout, stderr, out


def test_killed_engine_is_restarted_and_the_run_completes(tmp_path):
    code, stdout, stderr, out = run_and_kill_engine(tmp_path, "--max_engine_restarts", "2")
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    assert "vLLM engine 0 died" in stdout and "restarting it (1/2)" in stdout
    iterations = [json.loads(line)["iteration"] for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert iterations == list(range(1, ITERATIONS + 1))
    assert (out / "model" / "config.json").is_file()


def test_no_restarts_left_stops_with_a_checkpoint_and_one_line(tmp_path):
    code, stdout, stderr, out = run_and_kill_engine(tmp_path, "--max_engine_restarts", "0")
    assert code == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("knowrl-train: error: vLLM engine 0 died") and "--load_checkpoint" in last, stderr[-2000:]
    # the checkpoint holds the last iteration that completed before the engine was found dead
    completed = len((out / "logs" / "metrics.jsonl").read_text().splitlines())
    tags = complete_checkpoints(str(out / "ckpt"))
    assert tags and tags[-1] == f"iter_{completed:04d}", (tags, completed)
    assert json.loads((out / "ckpt" / tags[-1] / "knowrl_state.json").read_text())["iteration"] == completed


def test_killed_policy_rank_is_named_within_bounded_time(tmp_path):
    """A policy rank's process dies (SIGKILL): the other rank may sit in a collective waiting for
    it, yet the run stops at once with one line naming the rank, not at the actor timeout."""
    from tiny_model import build_tiny_model, tiny_train_command

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "run"
    # two policy ranks and no reference (no KL), so every ModelWorker process is a policy rank
    argv = tiny_train_command(model, out, "--num_iterations", "40", "--actor_num_gpus_per_node", "2",
                              "--init_kl_coef", "0", "--save_steps", "1", "--actor_timeout", "600")
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    metrics = out / "logs" / "metrics.jsonl"
    deadline = time.time() + 600
    while not (metrics.exists() and metrics.read_text().strip()):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.02)
    victim = subprocess.run(["pgrep", "-f", "ray::ModelWorker"], capture_output=True, text=True).stdout.split()[0]
    killed_at = time.time()
    os.kill(int(victim), 9)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stdout[-3000:] + stderr[-3000:]
    assert time.time() - killed_at < 120, "the dead rank should be noticed long before --actor_timeout"
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("knowrl-train: error: policy rank") and "died" in last, stderr[-2000:]
    assert "--load_checkpoint" in last
    assert "Traceback" not in stderr
    assert complete_checkpoints(str(out / "ckpt")), "the per-iteration checkpoints before the kill remain usable"
