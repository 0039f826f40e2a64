"""The training command line: every required flag exists, and bad input stops before Ray starts
with one line that names the problem (no model is loaded for these cases)."""

import dataclasses
import os
from pathlib import Path

import pytest

from openrlhf.cli.train_knowrl import build_parser, main, parse_config
from openrlhf.knowrl.config import ConfigError, KnowRLConfig

REQUIRED_FLAGS = [
    "--pretrain", "--save_path", "--ckpt_path", "--save_steps", "--micro_train_batch_size", "--train_batch_size",
    "--micro_rollout_batch_size", "--rollout_batch_size", "--n_samples_per_prompt", "--max_epochs",
    "--prompt_max_len", "--generate_max_len", "--actor_learning_rate", "--init_kl_coef", "--advantage_estimator",
    "--kl_estimator", "--use_kl_loss", "--zero_stage", "--bf16", "--vllm_num_engines", "--vllm_tensor_parallel_size",
    "--vllm_gpu_memory_utilization", "--colocate_all_models", "--seed_prompts", "--num_iterations",
    "--min_group_reward", "--max_group_reward", "--pool_agreement_threshold", "--seed", "--use_tensorboard",
    "--use_wandb", "--ray_address", "--reward_func",
]


def test_help_documents_every_required_flag():
    text = build_parser().format_help()
    for flag in REQUIRED_FLAGS:
        assert flag in text, flag
    actions = {a.option_strings[0]: a for a in build_parser()._actions if a.option_strings}
    for flag in REQUIRED_FLAGS:
        assert actions[flag].help, f"{flag} has no help text"


def test_readme_hyperparameters_parse():
    cfg = parse_config("--micro_train_batch_size 2 --train_batch_size 16 --micro_rollout_batch_size 4 "
                       "--rollout_batch_size 16 --n_samples_per_prompt 8 --max_epochs 1 --prompt_max_len 1024 "
                       "--generate_max_len 1024 --actor_learning_rate 5e-7 --init_kl_coef 1e-4".split())
    assert cfg.actor_learning_rate == 5e-7 and cfg.n_samples_per_prompt == 8 and cfg.advantage_estimator == "reinforce"


def test_unknown_estimator_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        parse_config(["--advantage_estimator", "ppo_magic"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.fixture
def out_dirs(tmp_path):
    return ["--save_path", str(tmp_path / "s"), "--ckpt_path", str(tmp_path / "c"), "--log_dir", str(tmp_path / "l")]


def _bad_seed_file(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text('{"task": "What is 2 + 2 in decimal notation?", "label": "feasible"}\n{"task": oops}\n')
    return ["--seed_prompts", str(path)]


def _reward_file_without_func(tmp_path):
    path = tmp_path / "my_reward.py"
    path.write_text("def something_else(group):\n    return []\n")
    return ["--reward_func", str(path)]


def _not_a_model_dir(tmp_path):
    (tmp_path / "empty_model").mkdir()
    return ["--pretrain", str(tmp_path / "empty_model")]


def _save_path_under_a_file(tmp_path):
    (tmp_path / "plain_file").write_text("x")
    return ["--save_path", str(tmp_path / "plain_file" / "model")]


CASES = {
    "missing model": (lambda t: ["--pretrain", str(t / "nope")], "does not exist"),
    "no config.json": (_not_a_model_dir, "no config.json"),
    "bad seed line": (_bad_seed_file, "seeds.jsonl:2"),
    "missing seed file": (lambda t: ["--seed_prompts", str(t / "missing.jsonl")], "missing.jsonl"),
    "unknown reward": (lambda t: ["--reward_func", "majority_vibes"], "unknown reward"),
    "reward file without reward_func": (_reward_file_without_func, "reward_func"),
    "batch does not divide": (lambda t: ["--train_batch_size", "15", "--micro_train_batch_size", "2"],
                              "not a multiple"),
    "n=1 with consensus": (lambda t: ["--n_samples_per_prompt", "1"], "--n_samples_per_prompt 2 or more"),
    "inverted band": (lambda t: ["--min_group_reward", "0.9", "--max_group_reward", "0.1"], "reward band"),
    "unwritable save path": (_save_path_under_a_file, "not writable"),
    "tensor parallel on CPU": (lambda t: ["--vllm_tensor_parallel_size", "2"], "needs GPUs"),
    "k1 as a KL loss": (lambda t: ["--use_kl_loss", "--init_kl_coef", "0.01"], "--kl_estimator k3"),
    "grpo with KL in the reward": (lambda t: ["--advantage_estimator", "grpo"], "ignores KL in the reward"),
    "zero rollout batch": (lambda t: ["--rollout_batch_size", "0"], "--rollout_batch_size must be at least 1"),
    "negative time budget": (lambda t: ["--max_train_minutes", "-5"], "--max_train_minutes must be 0"),
    "adam offload without a GPU": (lambda t: ["--adam_offload"], "there is no GPU here"),
    "packing and prompt sharing together": (lambda t: ["--packing_samples", "--share_prompt_prefix"], "pick one"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_stops_before_ray_with_one_line(name, tmp_path, out_dirs, capsys):
    import ray

    make_args, expected = CASES[name]
    argv = out_dirs + make_args(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, f"expected one line, got:\n{err}"
    assert err.startswith("knowrl-train: error:") and expected in err, err
    assert not ray.is_initialized()


def test_tokenizer_without_chat_template_is_refused(tmp_path, out_dirs, capsys):
    from tiny_model import build_tiny_model
    from transformers import AutoTokenizer

    model_dir = build_tiny_model(tmp_path / "tiny")
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = None
    for name in os.listdir(model_dir):
        if name.startswith(("tokenizer", "chat_template", "special_tokens")):
            os.remove(os.path.join(model_dir, name))
    tok.save_pretrained(model_dir)
    assert main(out_dirs + ["--pretrain", model_dir]) == 2
    assert "no chat template" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["train_llama31_8b_knowrl.sh", "train_qwen25_7b_knowrl.sh"])
def test_gpu_launch_scripts_dry_run(script, tmp_path):
    """The cluster scripts' flags parse and validate (pointed at a local tiny model, no Ray)."""
    import subprocess

    from tiny_model import build_tiny_model, set_context

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # the stand-in gets the 7B/8B models' 32k context, which the scripts' lengths are sized for
    model = set_context(build_tiny_model(tmp_path / "tiny"), 32768)
    env = dict(os.environ, PRETRAIN=model, RUN_DIR=str(tmp_path / "run"),
               PATH=os.path.dirname(__import__("sys").executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(["bash", os.path.join(root, "scripts", script), "--dry_run"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dry run" in proc.stdout
    assert "policy     4 rank(s)" in proc.stdout and "2 engine(s) x TP 1" in proc.stdout
    assert "memory estimate per process" in proc.stdout  # CPU wording; "per GPU" on a GPU machine


def test_wandb_key_on_the_command_line_is_refused_without_echoing_it(tmp_path, out_dirs, capsys):
    """The key comes from WANDB_API_KEY: one on argv would sit in shell history and `ps`."""
    import ray

    assert main(out_dirs + ["--use_wandb", "0123456789abcdef-secret"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("knowrl-train: error: --use_wandb takes 'online' or 'offline', not an API key")
    assert "WANDB_API_KEY" in err and "secret" not in err and err.count("\n") == 0
    assert not ray.is_initialized() and not (tmp_path / "l" / "config.json").exists()


def test_use_wandb_is_a_switch_with_online_and_offline():
    assert parse_config(["--use_wandb"]).wandb_mode == "online"
    assert parse_config(["--use_wandb", "offline"]).wandb_mode == "offline"
    assert parse_config(["--use_wandb", "true"]).wandb_mode == "online"   # the older spelling still works
    assert parse_config([]).wandb_mode == ""
    assert KnowRLConfig(use_wandb=True).wandb_mode == "online"           # a YAML `use_wandb: true`


def test_online_wandb_without_a_key_stops_before_ray(tmp_path, out_dirs, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))   # no ~/.netrc from `wandb login`
    monkeypatch.delenv("NETRC", raising=False)
    assert main(out_dirs + ["--use_wandb", "online"]) == 2
    assert "--use_wandb online needs a W&B API key: export WANDB_API_KEY" in capsys.readouterr().err


BOOLEAN_FLAGS = [f.name for f in dataclasses.fields(KnowRLConfig) if f.type in (bool, "bool")]


@pytest.mark.parametrize("name", BOOLEAN_FLAGS)
def test_every_boolean_flag_has_a_no_form(name, tmp_path):
    """--flag and --no-flag both parse, and --no-flag turns off a --config file's `true`."""
    path = tmp_path / "run.yaml"
    path.write_text(f"{name}: true\n" + ("kl_estimator: k3\n" if name == "use_kl_loss" else ""))
    assert getattr(parse_config([f"--{name}"] + (["--kl_estimator", "k3"] if name == "use_kl_loss" else [])),
                   name) is True
    assert getattr(parse_config(["--config", str(path), f"--no-{name}"]), name) is False
    assert getattr(parse_config(["--config", str(path)]), name) is True


# flag values alone break these rules: KnowRLConfig(...) in Python refuses them with the CLI's line
PYTHON_RULES = {
    "batch does not divide": dict(train_batch_size=7),
    "batch vs policy ranks": dict(train_batch_size=16, micro_train_batch_size=2, actor_num_gpus_per_node=3),
    "inverted band": dict(min_group_reward=0.9, max_group_reward=0.1),
    "k1 as a KL loss": dict(use_kl_loss=True, init_kl_coef=0.01),
    "grpo with KL in the reward": dict(advantage_estimator="grpo"),
    "zero rollout batch": dict(rollout_batch_size=0),
    "n=1 with consensus": dict(n_samples_per_prompt=1),
    "adam offload without ZeRO": dict(adam_offload=True, zero_stage=0),
    "packing and prompt sharing together": dict(packing_samples=True, share_prompt_prefix=True),
    "a W&B key": dict(use_wandb="0123456789abcdef"),
}


def as_argv(values: dict) -> list[str]:
    argv = []
    for key, value in values.items():
        argv += [f"--{key}"] if value is True else [f"--{key}", str(value)]
    return argv


@pytest.mark.parametrize("name", sorted(PYTHON_RULES))
def test_knowrl_config_in_python_is_checked_as_the_cli_is(name, out_dirs, capsys):
    values = PYTHON_RULES[name]
    with pytest.raises(ConfigError) as caught:
        KnowRLConfig(**values)
    assert main(out_dirs + as_argv(values)) == 2
    assert capsys.readouterr().err.strip() == f"knowrl-train: error: {caught.value}"
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


def test_config_file_then_command_line_precedence(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("n_samples_per_prompt: 6\nactor_learning_rate: 1.0e-6\nadvantage_estimator: rloo\n")
    cfg = parse_config(["--config", str(path), "--n_samples_per_prompt", "4"])
    assert cfg.n_samples_per_prompt == 4          # command line wins
    assert cfg.actor_learning_rate == 1e-6        # file beats the default
    assert cfg.advantage_estimator == "rloo"
    assert cfg.rollout_batch_size == 16           # untouched default

    path.write_text("n_samples_per_prompt: 6\nnot_a_flag: 1\n")
    assert main(["--config", str(path)]) == 2
    assert "unknown flag(s) not_a_flag" in capsys.readouterr().err


def quickstart_training_argv(run_dir) -> list[str]:
    """The training command of scripts/quickstart_cpu.sh, its shell variables filled in."""
    import shlex

    script = (Path(__file__).resolve().parents[1] / "scripts" / "quickstart_cpu.sh").read_text()
    block = script[script.index("-m openrlhf.cli.train_knowrl"):].split("\n\n")[0]
    block = block.replace("\\\n", " ").replace('"$iterations"', "3").replace("$run", str(run_dir))
    return shlex.split(block)[2:]   # after "-m openrlhf.cli.train_knowrl"


def test_quickstart_trips_none_of_its_own_notes_or_warnings(tmp_path, capsys):
    """The official example runs as the notes advise (dry run: same checks and notes, no Ray)."""
    argv = quickstart_training_argv(tmp_path / "run")
    assert "--zero_stage" in argv and "--overwrite" in argv
    assert main(argv + ["--dry_run"]) == 0
    out = capsys.readouterr()
    assert "note:" not in out.out and "warning" not in out.out.lower(), out.out
    assert out.err == ""
