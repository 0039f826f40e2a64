"""The training command line: every required flag exists, and bad input stops before Ray starts
with one line that names the problem (no model is loaded for these cases)."""

import os

import pytest

from openrlhf.cli.train_knowrl import build_parser, main, parse_config

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


def test_wandb_key_is_masked_everywhere_it_is_written():
    from openrlhf.cli.train_knowrl import mask_secrets

    assert mask_secrets(["x", "--use_wandb", "k3y", "--use_wandb=k3y", "--use_wandb", "offline"]) == \
        ["x", "--use_wandb", "***", "--use_wandb=***", "--use_wandb", "offline"]
    cfg = parse_config(["--use_wandb", "0123456789abcdef-secret"])
    assert cfg.public_dict()["use_wandb"] == "***"
    assert "secret" not in str(cfg.public_dict())
    assert parse_config(["--use_wandb", "offline"]).public_dict()["use_wandb"] == "offline"


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
