"""Faults during a run: a vLLM engine process killed with SIGKILL is named, restarted, re-synced
and serves the next iterations; once no restarts are left the run stops with one clear error line
and a checkpoint of the last complete iteration; a killed policy rank is named at once."""

import json
import os
import subprocess
import time

import pytest

from openrlhf.knowrl.checkpoint import complete_checkpoints

pytestmark = pytest.mark.e2e   # starts Ray, vLLM or DeepSpeed (see pytest.ini)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITERATIONS = 40


class TinyRun:
    """A tiny training run in a subprocess. Its output goes to files, not pipes: a pipe nobody
    reads while we wait for the first iteration could fill up and stall the run."""

    def __init__(self, tmp_path, *flags):
        from tiny_model import build_tiny_model, tiny_train_command

        model = build_tiny_model(tmp_path / "tiny")
        self.out = tmp_path / "run"
        self.stdout_path, self.stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        with open(self.stdout_path, "w") as stdout, open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(tiny_train_command(model, self.out, *flags), cwd=ROOT, stdout=stdout,
                                         stderr=stderr, text=True, start_new_session=True)

    def wait_for_first_iteration(self, timeout=600):
        metrics = self.out / "logs" / "metrics.jsonl"
        deadline = time.time() + timeout
        while not (metrics.exists() and metrics.read_text().strip()):
            assert self.proc.poll() is None, self.stderr_path.read_text()[-3000:]
            assert time.time() < deadline, "no iteration finished in time"
            time.sleep(0.02)

    def actor_pids(self, actor_class: str) -> list[int]:
        """Processes of this run's Ray actors of one class. Only descendants of this run count:
        a name match across the machine would also hit any other KnowRL run going on here."""
        import psutil

        pids = []
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if f"ray::{actor_class}" in " ".join(child.cmdline()):
                    pids.append(child.pid)
            except psutil.Error:  # exited while we looked
                pass
        return pids

    def finish(self, timeout):
        self.proc.wait(timeout=timeout)
        return self.proc.returncode, self.stdout_path.read_text(), self.stderr_path.read_text()


def wait_for(condition, run, timeout=600):
    deadline = time.time() + timeout
    while not condition():
        assert run.proc.poll() is None, run.stdout_path.read_text()[-3000:] + run.stderr_path.read_text()[-3000:]
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_killed_engine_is_restarted_and_once_no_restarts_are_left_the_run_stops_with_a_checkpoint(tmp_path):
    """One run, --max_engine_restarts 1: the first SIGKILL of the engine is named, the engine is
    restarted and re-synced and serves the next iterations; the second SIGKILL finds no restart
    left, so the run stops with one error line and a checkpoint of the last complete iteration."""
    # tiny iterations take well under a second: enough of them that both kills land mid-run
    run = TinyRun(tmp_path, "--num_iterations", str(ITERATIONS), "--actor_timeout", "300",
                  "--max_engine_restarts", "1")
    metrics = run.out / "logs" / "metrics.jsonl"
    logged = lambda: len(metrics.read_text().splitlines()) if metrics.exists() else 0  # noqa: E731
    run.wait_for_first_iteration()
    first = run.actor_pids("LLMEngineActor")     # Ray names the engine process after its actor class
    assert first, "no engine process found under the run"
    at_first_kill = logged()
    for pid in first:
        os.kill(pid, 9)
    wait_for(lambda: "restarting it (1/1)" in run.stdout_path.read_text(), run)
    wait_for(lambda: logged() >= at_first_kill + 2, run)        # the restarted engine serves iterations
    second = [pid for pid in run.actor_pids("LLMEngineActor") if pid not in first]
    assert second, "no restarted engine process found under the run"
    for pid in second:
        os.kill(pid, 9)
    code, stdout, stderr = run.finish(timeout=900)
    assert code == 1, stdout[-3000:] + stderr[-3000:]
    assert "vLLM engine 0 died" in stdout and "restarting it (1/1)" in stdout
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("knowrl-train: error: vLLM engine 0 died") and "--load_checkpoint" in last, stderr[-2000:]
    iterations = [json.loads(line)["iteration"] for line in metrics.read_text().splitlines()]
    completed = len(iterations)
    assert iterations == list(range(1, completed + 1)) and at_first_kill + 2 <= completed < ITERATIONS
    # the checkpoint holds the last iteration that completed before the engine was found dead
    tags = complete_checkpoints(str(run.out / "ckpt"))
    assert tags and tags[-1] == f"iter_{completed:04d}", (tags, completed)
    assert json.loads((run.out / "ckpt" / tags[-1] / "knowrl_state.json").read_text())["iteration"] == completed


def test_killed_policy_rank_is_named_within_bounded_time(tmp_path):
    """A policy rank's process dies (SIGKILL): the other rank may sit in a collective waiting for
    it, yet the run stops at once with one line naming the rank, not at the actor timeout."""
    # two policy ranks and no reference (no KL), so every ModelWorker process is a policy rank
    run = TinyRun(tmp_path, "--num_iterations", "40", "--actor_num_gpus_per_node", "2",
                  "--init_kl_coef", "0", "--save_steps", "1", "--actor_timeout", "600")
    run.wait_for_first_iteration()
    # the metrics line is written before that iteration's checkpoint: kill only once one is complete
    deadline = time.time() + 300
    while not complete_checkpoints(str(run.out / "ckpt")):
        assert run.proc.poll() is None and time.time() < deadline, run.stderr_path.read_text()[-3000:]
        time.sleep(0.02)
    victim = run.actor_pids("ModelWorker")[0]
    killed_at = time.time()
    os.kill(victim, 9)
    code, stdout, stderr = run.finish(timeout=600)
    assert code == 1, stdout[-3000:] + stderr[-3000:]
    assert time.time() - killed_at < 120, "the dead rank should be noticed long before --actor_timeout"
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("knowrl-train: error: policy rank") and "died" in last, stderr[-2000:]
    assert "--load_checkpoint" in last
    assert "Traceback" not in stderr
    assert complete_checkpoints(str(run.out / "ckpt")), "the per-iteration checkpoints before the kill remain usable"
