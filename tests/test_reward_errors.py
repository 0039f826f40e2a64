"""A custom --reward_func that fails: at import, the run stops before Ray with one line naming the
file; during training (it raises, returns NaN, the wrong length, ...), the run stops with one line
naming the file, the iteration and the task, the last complete iteration is checkpointed, and
--load_checkpoint continues once the file is fixed."""

import json
import os
import subprocess

import pytest

from openrlhf.cli.train_knowrl import main, parse_config
from openrlhf.knowrl.checkpoint import complete_checkpoints
from openrlhf.knowrl.loop import KnowRLTrainer, Task, TaskGroup
from openrlhf.knowrl.prompts import DEFAULT_PROMPTS_DIR, load_seed_tasks, load_templates
from openrlhf.knowrl.reward import RewardFunctionError, RewardGroup, compute_rewards, load_reward_file
from openrlhf.rollout.vllm_engine import Generation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK = "Translate the sentence about a cat that sleeps on a warm windowsill into French."


def group(n=2):
    return RewardGroup(task=TASK, gen_label="feasible", labels=["feasible", None][:n] + [None] * max(0, n - 2),
                       texts=[f"answer {k}" for k in range(n)])


def reward_file(tmp_path, body: str, name="my_reward.py"):
    path = tmp_path / name
    path.write_text(body)
    return str(path)


# ----------------------------------------------------------------------------- one group


RAISES = "def helper(group):\n    return {'weights': 1}['bonus']\n\ndef reward_func(group):\n    return helper(group)\n"


def test_a_raising_reward_names_file_line_iteration_and_task(tmp_path):
    path = reward_file(tmp_path, RAISES)
    with pytest.raises(RewardFunctionError) as ei:
        compute_rewards(load_reward_file(path), group(), source=path, iteration=2)
    err = ei.value
    assert (err.source, err.iteration, err.task) == (path, 2, TASK)
    assert str(err) == (f"reward function {path}, iteration 2, task {TASK[:59] + '…'!r}: "
                        f"raised KeyError: 'bonus' at my_reward.py:2")
    assert isinstance(err.__cause__, KeyError)   # --debug still shows the original traceback


@pytest.mark.parametrize("body,problem", [
    ("def reward_func(group):\n    return [float('nan')] * group.n\n",
     "returned nan for sample 0 — rewards must be finite"),
    ("def reward_func(group):\n    return [0.0, float('-inf')]\n", "returned -inf for sample 1 — rewards must be finite"),
    ("def reward_func(group):\n    return [1.0]\n",
     "returned 1 rewards for a group of 2 samples — return one float per sample"),
    ("def reward_func(group):\n    return [1.0, 'high']\n",
     "returned 'high' (str) for sample 1 — rewards must be numbers"),
    ("def reward_func(group):\n    return None\n", "returned NoneType — it must return a list of floats"),
    ("def reward_func(group):\n    return [1.0, 10 ** 400]\n", "for sample 1 — rewards must be finite"),
    ("import sys\ndef reward_func(group):\n    sys.exit('done')\n", "raised SystemExit: done at my_reward.py:3"),
    ("class Odd:\n    def __len__(self):\n        raise RuntimeError('no length')\n    def __iter__(self):\n"
     "        return iter([])\ndef reward_func(group):\n    return Odd()\n",
     "raised RuntimeError: no length at my_reward.py:3"),
])
def test_bad_rewards_are_one_line_naming_the_file(tmp_path, body, problem):
    path = reward_file(tmp_path, body)
    with pytest.raises(RewardFunctionError) as ei:
        compute_rewards(load_reward_file(path), group(), source=path, iteration=3)
    message = str(ei.value)
    assert "\n" not in message
    assert message.startswith(f"reward function {path}, iteration 3, task 'Translate the sentence")
    assert message.endswith(problem), message


def test_training_scores_name_the_reward_file_and_iteration(tmp_path):
    from tiny_model import build_tiny_model
    from transformers import AutoTokenizer

    model = build_tiny_model(tmp_path / "tiny")
    path = reward_file(tmp_path, RAISES)
    cfg = parse_config(["--pretrain", model, "--reward_func", path])
    trainer = KnowRLTrainer(cfg, model, AutoTokenizer.from_pretrained(model),
                            load_seed_tasks(DEFAULT_PROMPTS_DIR / "seed_tasks.jsonl"),
                            load_templates(DEFAULT_PROMPTS_DIR), load_reward_file(path), False)
    task_group = TaskGroup(task=Task(TASK, "feasible", None, None, "seed"), prompt="",
                           samples=[Generation(0, [], [], " feasible", True)] * 2, labels=["feasible"] * 2)
    with pytest.raises(RewardFunctionError) as ei:
        trainer.score(task_group, 4)
    assert (ei.value.source, ei.value.iteration, ei.value.task) == (path, 4, TASK)


# ----------------------------------------------------------------------------- at import, before Ray


IMPORT_FAILURES = {
    "syntax error": ("def reward_func(group):\n    return [\n", "SyntaxError: '[' was never closed"),
    "name error": ("WEIGHTS = load_weights()\n", "NameError: name 'load_weights' is not defined at my_reward.py:1"),
    "multi-line message": ("raise RuntimeError('bad settings\\nsee the docs')\n",
                           "RuntimeError: bad settings at my_reward.py:1"),
    "exit at import": ("import sys\nsys.exit(3)\n", "SystemExit: 3 at my_reward.py:2"),
}


@pytest.mark.parametrize("name", sorted(IMPORT_FAILURES))
def test_reward_file_failing_at_import_is_one_line_before_ray(name, tmp_path, capsys):
    import ray

    body, expected = IMPORT_FAILURES[name]
    path = reward_file(tmp_path, body)
    argv = ["--save_path", str(tmp_path / "s"), "--ckpt_path", str(tmp_path / "c"), "--log_dir", str(tmp_path / "l"),
            "--reward_func", path, "--dry_run"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, f"expected one line, got:\n{err}"
    assert err.startswith(f"knowrl-train: error: --reward_func: {path}: importing it failed: {expected}"), err
    assert not ray.is_initialized()


# ----------------------------------------------------------------------------- during a run (Ray)


@pytest.mark.e2e
def test_reward_failing_in_iteration_2_checkpoints_iteration_1_and_resumes_after_the_fix(tmp_path):
    from tiny_model import build_tiny_model, tiny_train_command

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "run"
    # Iteration 1's records exist from the end of iteration 1 on: the file fails in iteration 2.
    broken = reward_file(tmp_path, (
        "import os\n"
        "from openrlhf.knowrl.reward import consensus\n"
        f"RECORDS = {str(out / 'logs' / 'iterations' / 'iter_0001.jsonl')!r}\n"
        "def reward_func(group):\n"
        "    if os.path.exists(RECORDS):\n"
        "        return {}['bonus']\n"
        "    return consensus(group)\n"), name="broken_reward.py")
    fixed = reward_file(tmp_path, "from openrlhf.knowrl.reward import consensus\n"
                                  "def reward_func(group):\n    return consensus(group)\n", name="fixed_reward.py")

    def train(*flags):
        # default --save_steps -1: without the failure handling no checkpoint would exist at all
        return subprocess.run(tiny_train_command(model, out, "--num_iterations", "2", *flags), cwd=ROOT,
                              capture_output=True, text=True, timeout=900)

    first = train("--reward_func", broken)
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    errors = [line for line in first.stderr.splitlines() if line.startswith("knowrl-train: error:")]
    assert len(errors) == 1, first.stderr[-3000:]
    assert errors[0].startswith(f"knowrl-train: error: reward function {broken}, iteration 2, task '"), errors[0]
    assert "raised KeyError: 'bonus' at broken_reward.py:6" in errors[0]
    assert "--load_checkpoint to continue from iteration 2" in errors[0]
    assert complete_checkpoints(str(out / "ckpt")) == ["iter_0001"]
    state = json.loads((out / "ckpt" / "iter_0001" / "knowrl_state.json").read_text())
    assert state["iteration"] == 1
    assert not (out / "model" / "config.json").exists()

    resumed = train("--reward_func", fixed, "--load_checkpoint")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "after iteration 1" in resumed.stdout and "iter 2/2" in resumed.stdout
    metrics = [json.loads(line)["iteration"] for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert metrics == [1, 2]
    assert (out / "model" / "config.json").is_file()
