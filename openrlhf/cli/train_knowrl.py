"""`python -m openrlhf.cli.train_knowrl`: check every input, then start Ray and run KnowRL.

The flags come from `KnowRLConfig` (one field, one flag). Everything that can be checked without
Ray or a model runs first, so a typo costs a second, not an engine start-up; a bad input prints
one line naming the problem and the fix and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import netrc
import os
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlparse

from openrlhf.knowrl.checkpoint import (
    complete_checkpoints,
    fresh_run_problem,
    move_earlier_run_aside,
    previous_run_files,
    resume_check,
)
from openrlhf.knowrl.config import WANDB_ONLINE, ConfigError, KnowRLConfig
from openrlhf.knowrl.in_training_eval import SPLITS as EVAL_SPLITS, last_output_line
from openrlhf.knowrl.loop import KnowRLTrainer
from openrlhf.knowrl.prompts import DEFAULT_PROMPTS_DIR, PromptFileError, load_seed_tasks, load_templates, prompt_lengths
from openrlhf.knowrl.reward import get_reward_func
from openrlhf.knowrl.validate_prompts import validate_prompts_dir
from openrlhf.trainer.lora import add_lora
from openrlhf.trainer.model_worker import attention_backend
from openrlhf.trainer.placement import ClusterResources, LayoutError, plan_placement
from openrlhf.utils.embedded_model import resolve_pretrain
from openrlhf.utils.errors import RankDied
from openrlhf.utils.memory_plan import estimate_memory, model_size_from_path
from openrlhf.utils.quiet import quiet_libraries
from openrlhf.utils.ray_utils import RayWaitTimeout, remote_error_line

# the logger of Ray's "Token authentication is enabled for this Ray cluster" notice (Ray 2.60)
RAY_AUTH_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"

GROUP_TITLES = {
    "model": "model and checkpoints",
    "rollout": "rollout (vLLM engines)",
    "knowrl": "KnowRL method",
    "consensus": "consensus targets, filter, balance and early stopping (against the collapse to one label)",
    "eval": "evaluation during training (OpenRLHF's --eval_steps)",
    "training": "training (DeepSpeed policy update)",
    "ray": "Ray",
    "logging": "logging",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of knowrl-train: one flag per `KnowRLConfig` field (with its help and default,
    grouped), booleans with a --no- form, and --config for a YAML file."""
    parser = argparse.ArgumentParser(
        prog="python -m openrlhf.cli.train_knowrl",
        description="Train a model with KnowRL: introspection, n-sample self-classification, consensus reward, "
                    "Reinforce++ (vLLM rollout engines and DeepSpeed workers in Ray actors).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default="", help="YAML file of flag values (flag names as keys); "
                                                      "flags given on the command line override it")
    groups = {key: parser.add_argument_group(title) for key, title in GROUP_TITLES.items()}
    for f in dataclasses.fields(KnowRLConfig):
        meta = f.metadata
        group = groups[meta["group"]]
        flag = f"--{f.name}"
        if f.type in (bool, "bool"):
            # --flag / --no-flag: a --config file's `true` can be turned off on the command line
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=meta["help"])
            continue
        kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
        extra = {"nargs": "?", "const": meta["const"]} if "const" in meta else {}
        group.add_argument(flag, type=kind, default=f.default, choices=meta.get("choices"), help=meta["help"],
                           **extra)
    return parser


def load_config_file(path: str) -> dict:
    """Flag values from a YAML file (keys are flag names without the dashes)."""
    import yaml

    try:
        with open(path) as f:
            values = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of flag names to values")
    known = {f.name for f in dataclasses.fields(KnowRLConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"--config {path}: unknown flag(s) {', '.join(unknown)}: see --help for the names")
    return values


def parse_config(argv: list[str] | None = None) -> KnowRLConfig:
    """Defaults, then the --config file, then the command line (which wins). Raises ConfigError
    (from `KnowRLConfig.check`) for flag values that break a rule, SystemExit for unparseable
    ones (argparse)."""
    parser = build_parser()
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default="")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**load_config_file(known.config))
    args = vars(parser.parse_args(argv))
    args.pop("config")
    return KnowRLConfig(**args)


def _writable_dir(path: str, flag: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".knowrl-write-test-{os.getpid()}")
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise ConfigError(f"{flag} {path!r} is not writable ({exc.strerror}): choose a folder you can write to")


def wandb_key_available() -> bool:
    """Whether W&B can log in without asking: WANDB_API_KEY is set, or `wandb login` stored a key
    in ~/.netrc for the W&B host (WANDB_BASE_URL, else api.wandb.ai)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_lora(cfg: KnowRLConfig, model_path: str) -> None:
    """--lora_rank: PEFT is installed, --target_modules names linear layers of the model, and PEFT
    can wrap it; tried on an empty (meta-device) copy of the model, so nothing is loaded. Raises
    ConfigError."""
    try:
        import peft  # noqa: F401
    except ImportError:
        raise ConfigError("--lora_rank needs the peft package: pip install peft (scripts/setup_env.sh installs it)"
                          ) from None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=cfg.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=cfg.trust_remote_code)
    try:
        add_lora(model, cfg.lora)
    except ValueError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    except Exception as exc:  # noqa: BLE001 - whatever PEFT raises for a model it cannot wrap
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"--lora_rank: PEFT cannot add LoRA to {model_path} ({type(exc).__name__}: {first}): "
                          f"train it without --lora_rank") from None


def check_eval_dataset(cfg: KnowRLConfig) -> None:
    """--eval_dataset's entries exist (the selfaware/kuq splits can be built: `python -m
    evaluation.splits` is run into a scratch folder) and --eval_metric names one of them.
    Raises ConfigError."""
    names = []
    for entry in (e.strip() for e in cfg.eval_dataset.split(",") if e.strip()):
        if entry in EVAL_SPLITS:
            with tempfile.TemporaryDirectory() as scratch:
                proc = subprocess.run([sys.executable, "-m", "evaluation.splits", "materialize", scratch],
                                      capture_output=True, text=True)
            if proc.returncode != 0:
                raise ConfigError(f"--eval_dataset {entry}: its validation split cannot be built "
                                  f"({last_output_line(proc)}): set "
                                  f"KNOWRL_BENCHMARKS_DIR to the folder holding selfaware/ and kuq/")
            names.append(EVAL_SPLITS[entry].removesuffix(".jsonl"))
        elif entry == "capability" or entry.startswith("capability:"):
            names.append("capability")
        else:
            if not os.path.isfile(entry):
                raise ConfigError(f"--eval_dataset {entry}: not found: give selfaware, kuq, capability[:N] or a JSONL "
                                  f"file of {{\"task\", \"label\"}} rows")
            names.append(os.path.splitext(os.path.basename(entry))[0])
    bench = cfg.eval_metric.split("/")[0]
    if cfg.eval_metric and bench not in names:
        raise ConfigError(f"--eval_metric {cfg.eval_metric}: {bench!r} is not among the --eval_dataset benchmarks "
                          f"({', '.join(names)})")


def validate(cfg: KnowRLConfig):
    """Check what the flag values alone cannot tell (`KnowRLConfig.check` did those): the GPU,
    optional packages, model and prompt files, the reward function, writable folders. Returns
    (seeds, templates, reward_fn, use_gpu). Raises ConfigError."""
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    import torch

    use_gpu = torch.cuda.is_available()
    if use_gpu:
        need(not cfg.colocate_all_models, "--colocate_all_models on GPUs needs vLLM sleep/wake and DeepSpeed offload "
                                          "between phases, not implemented yet (the weight sync by CUDA IPC is): "
                                          "drop the flag and give each rank and engine a GPU of its own")
    if cfg.adam_offload:
        need(use_gpu, "--adam_offload moves optimizer states from GPU to CPU memory, and there is no GPU here: "
                      "drop the flag")
    if not use_gpu:
        need(cfg.vllm_tensor_parallel_size == 1,
             "--vllm_tensor_parallel_size > 1 needs GPUs: use 1 on a machine without a GPU")
        need(cfg.actor_num_nodes == 1 and cfg.ref_num_nodes == 1 or bool(cfg.ray_address or os.environ.get("RAY_ADDRESS")),
             "--actor_num_nodes/--ref_num_nodes > 1 needs a Ray cluster: pass --ray_address or set RAY_ADDRESS")
    if cfg.use_wandb:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ConfigError("--use_wandb needs the wandb package: pip install wandb") from None
        need(cfg.wandb_mode != WANDB_ONLINE or wandb_key_available(),
             "--use_wandb online needs a W&B API key: export WANDB_API_KEY=... (or run `wandb login`), "
             "or use --use_wandb offline")
    if cfg.use_tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError("--use_tensorboard needs the tensorboard package: pip install tensorboard") from None

    pretrain = cfg.pretrain.strip()
    if pretrain and (os.path.exists(pretrain) or pretrain.startswith((".", "/", "~")) or pretrain.count("/") > 1):
        path = os.path.expanduser(pretrain)
        need(os.path.isdir(path), f"--pretrain {pretrain!r} does not exist: give an HF model folder "
                                  f"(with config.json) or leave it empty for the embedded SmolLM2-135M-Instruct")
        need(os.path.isfile(os.path.join(path, "config.json")),
             f"--pretrain {pretrain!r} has no config.json: point it at an HF model folder (save_pretrained output)")

    prompts_dir = cfg.prompt_templates or str(DEFAULT_PROMPTS_DIR)
    seeds_path = cfg.seed_prompts or str(DEFAULT_PROMPTS_DIR)
    need(os.path.exists(seeds_path), f"--seed_prompts {seeds_path}: not found: give a seed JSONL file or a folder of them")
    report = validate_prompts_dir(prompts_dir, seeds_path)
    if report.errors:
        more = len(report.errors) - 1
        hint = f" ({more} more: run `python -m openrlhf.knowrl.prompts validate {prompts_dir} --seeds {seeds_path}`)"
        raise ConfigError(str(report.errors[0]) + (hint if more else ""))
    if report.warnings:
        print(f"[knowrl] prompt check: {len(report.warnings)} warning(s), e.g. {report.warnings[0]} "
              f"(details: python -m openrlhf.knowrl.prompts validate)", flush=True)
    try:
        templates = load_templates(prompts_dir)
        seeds = load_seed_tasks(seeds_path)
    except PromptFileError as exc:
        raise ConfigError(str(exc)) from None
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename or exc}: not found: check --seed_prompts / --prompt_templates") from None
    labels = {s.label for s in seeds}
    need(labels == {"feasible", "infeasible"},
         f"{seeds_path}: the seed tasks need both labels for few-shot prompts, found only {sorted(labels)}")
    try:
        reward_fn = get_reward_func(cfg.reward_func)
    except (Exception, SystemExit) as exc:   # a reward file is user code: anything it raises is one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if not isinstance(exc, ValueError):   # load_reward_file's own ValueErrors already name the file
            first = f"{cfg.reward_func}: loading it failed ({type(exc).__name__}: {first}) — fix the file"
        raise ConfigError(f"--reward_func: {first}") from None

    if cfg.eval_steps > 0:
        check_eval_dataset(cfg)
    for flag, path in (("--save_path", cfg.save_path), ("--ckpt_path", cfg.ckpt_path), ("--log_dir", cfg.log_dir)):
        _writable_dir(path, flag)
    if cfg.use_tensorboard:
        _writable_dir(cfg.use_tensorboard, "--use_tensorboard")
    return seeds, templates, reward_fn, use_gpu


def prepare_run_folders(cfg: KnowRLConfig, model_path: str) -> None:
    """Before Ray: a fresh run must not land in an earlier run's folders (unless --overwrite,
    which moves that run aside; a dry run only says what it would move), and --load_checkpoint
    must find a checkpoint saved under the same model, rank count, ZeRO stage and precision.
    Raises ConfigError with the one line to print."""
    problem = fresh_run_problem(cfg)
    if problem:
        raise ConfigError(problem)
    if cfg.load_checkpoint:
        error, warnings = resume_check(cfg, model_path)
        for line in warnings:
            print(f"[knowrl] warning: {line}", flush=True)
        if error:
            raise ConfigError(error)
    elif cfg.overwrite and previous_run_files(cfg):
        if cfg.dry_run:
            print(f"[knowrl] dry run: --overwrite would move aside {', '.join(previous_run_files(cfg))}", flush=True)
            return
        try:
            moved = move_earlier_run_aside(cfg)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"--overwrite: {exc}") from None
        for old, new in moved:
            print(f"[knowrl] --overwrite: the earlier run's {old} is now {new}", flush=True)


def load_tokenizer(model_path: str, trust_remote_code: bool):
    """The tokenizer of `model_path`. Raises ConfigError (one line with the fix) when it cannot be loaded, has
    no chat template, or has neither a pad nor an eos token."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise ConfigError(f"--pretrain {model_path!r}: cannot load a tokenizer ({str(exc).splitlines()[0]}): "
                          f"give a local HF folder, or a hub id on a machine that reaches the hub") from None
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"--pretrain {model_path!r}: the tokenizer has no chat template: use an instruct/chat "
                          f"model or add a chat_template to tokenizer_config.json")
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
        # answers of different lengths are padded into one batch, with pad (or else eos) as filler
        raise ConfigError(f"--pretrain {model_path!r}: the tokenizer has neither a pad nor an eos token: set "
                          f"pad_token (or eos_token) in its tokenizer_config.json / special_tokens_map.json")
    return tokenizer


# config.json fields that bound the sequence length, as vLLM reads them (it takes the smallest)
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length",
                  "max_seq_length", "seq_len")
# RoPE scalings whose max_position_embeddings already counts the scaling
PRESCALED_ROPE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")


def model_context_length(model_path: str, trust_remote_code: bool, tokenizer=None) -> tuple[int, str] | None:
    """The longest sequence (prompt + answer, in tokens) the vLLM engines accept for this model,
    derived as vLLM derives it: the smallest of the config's length fields (times a RoPE scaling
    factor that is not already counted), capped by the tokenizer's `model_max_length` when that
    is set. Returns (tokens, where it comes from), or None when the config names no length or
    cannot be read (the engine then decides)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError):
        return None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    found = [(int(value), name) for name in CONTEXT_FIELDS
             if isinstance(value := getattr(text_config, name, None), (int, float)) and value > 0]
    if not found:
        return None
    tokens, name = min(found)
    source = f"{name} in {os.path.join(model_path, 'config.json')}"
    rope = getattr(text_config, "rope_parameters", None) or getattr(text_config, "rope_scaling", None)
    rope = rope if isinstance(rope, dict) else {}
    for params in ([rope] if "rope_type" in rope or "type" in rope else list(rope.values())):
        if isinstance(params, dict) and params.get("rope_type", params.get("type")) not in PRESCALED_ROPE \
                and isinstance(params.get("factor"), (int, float)) and params["factor"] > 1:
            tokens, source = int(tokens * params["factor"]), f"{source} x RoPE factor {params['factor']:g}"
            break
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < tokens:
        tokens, source = tokenizer_limit, f"model_max_length in {os.path.join(model_path, 'tokenizer_config.json')}"
    return tokens, source


def _round_up(tokens: int, step: int = 64) -> int:
    return -(-tokens // step) * step


def check_lengths(cfg: KnowRLConfig, model_path: str, tokenizer, templates, seeds) -> None:
    """Before Ray: the engines' length (--prompt_max_len + the longer answer) must fit the model's
    context, the longest seed task's classification prompt must fit --prompt_max_len, and so must
    at least the shortest task-writing prompt (prompts over the limit are dropped in the loop, so
    otherwise every iteration would silently fall back to seed tasks). Prints a warning when only
    the task-writing prompts with the longest examples are too long. Raises ConfigError."""
    from jinja2.exceptions import TemplateError

    answer_flag, answer_len = max(("generate_max_len", cfg.generate_max_len),
                                  ("introspection_max_len", cfg.introspection_max_len), key=lambda f: f[1])
    context = None if os.environ.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN") else \
        model_context_length(model_path, cfg.trust_remote_code, tokenizer)
    if context and cfg.prompt_max_len + answer_len > context[0]:
        raise ConfigError(f"--prompt_max_len {cfg.prompt_max_len} + --{answer_flag} {answer_len} = "
                          f"{cfg.prompt_max_len + answer_len} tokens is longer than the model's context of "
                          f"{context[0]} ({context[1]}): lower them so they add up to {context[0]} or less")
    try:
        lengths = prompt_lengths(tokenizer, templates, seeds, answer_prefix=cfg.answer_prefix,
                                 introspection_prefix=cfg.introspection_prefix,
                                 few_shot_examples=cfg.few_shot_examples,
                                 tasks_per_introspection=cfg.tasks_per_introspection)
    except TemplateError as exc:
        raise ConfigError(f"--pretrain {model_path!r}: its chat template fails on a single user message ({exc}): "
                          f"fix chat_template in tokenizer_config.json") from None

    room = context[0] - answer_len if context else None   # prompt tokens the context leaves
    if lengths["classification"] > cfg.prompt_max_len:
        needed = _round_up(lengths["classification"])
        if room is None or needed <= room:
            fix = f"use --prompt_max_len {needed} or more"
        elif lengths["classification"] <= room:
            fix = f"use --prompt_max_len {room}"
        else:
            fix = (f"shorten the longest seed tasks, or lower --{answer_flag} (the model's context of "
                   f"{context[0]} tokens leaves {room} for the prompt)")
        raise ConfigError(f"--prompt_max_len {cfg.prompt_max_len} is shorter than the classification prompt "
                          f"({lengths['classification']} tokens with the longest seed task): {fix}")
    if lengths["introspection_shortest"] > cfg.prompt_max_len:
        needed = _round_up(lengths["introspection_longest"])
        if room is None or needed <= room:
            fix = f"use --prompt_max_len {needed} or more, or lower --few_shot_examples"
        elif lengths["introspection_shortest"] <= room:
            fix = (f"use --prompt_max_len {room} (all the model's context of {context[0]} tokens leaves after "
                   f"--{answer_flag} {answer_len}), or lower --few_shot_examples")
        else:
            fix = (f"lower --few_shot_examples (the model's context of {context[0]} tokens leaves {room} for the "
                   f"prompt after --{answer_flag} {answer_len})")
        raise ConfigError(f"--prompt_max_len {cfg.prompt_max_len} is shorter than every task-writing prompt "
                          f"({lengths['introspection_shortest']} tokens or more with --few_shot_examples "
                          f"{cfg.few_shot_examples}): {fix}")
    if lengths["introspection_longest"] > cfg.prompt_max_len:
        print(f"[knowrl] warning: task-writing prompts with the longest seed examples take "
              f"{lengths['introspection_longest']} tokens, over --prompt_max_len {cfg.prompt_max_len}: such prompts "
              f"are dropped (knowrl/introspection_prompts_too_long counts them); --prompt_max_len "
              f"{_round_up(lengths['introspection_longest'])} or fewer --few_shot_examples keeps them all", flush=True)


def make_plan(cfg: KnowRLConfig, model_path: str, use_gpu: bool, cluster=None):
    """The placement plan and its description (with, for a local model folder, the per-GPU
    memory estimate). Raises ConfigError for a layout the cluster cannot hold."""
    try:
        plan = plan_placement(cfg, cluster, use_gpu)
    except LayoutError as exc:
        raise ConfigError(str(exc)) from None
    text = plan.describe()
    if use_gpu or cfg.dry_run:
        try:
            text += "\n" + estimate_memory(model_size_from_path(model_path), cfg, plan).describe()
        except (OSError, ValueError, KeyError) as exc:
            text += f"\n[knowrl] no memory estimate for {model_path}: {exc}"
    return plan, text


def performance_notes(cfg: KnowRLConfig) -> list[str]:
    """Settings that work but cost time for nothing, one line each (printed at start and by
    --dry_run)."""
    notes = []
    if cfg.packing_samples and attention_backend(cfg.flash_attn) != "flash_attention_2":
        notes.append("--packing_samples without flash-attn uses SDPA with a dense block-diagonal mask over each "
                     "packed row; expect no speed-up (see benchmarks/README.md)")
    if cfg.actor_world_size == 1 and cfg.zero_stage in (1, 2) and not cfg.adam_offload:
        notes.append(f"--zero_stage {cfg.zero_stage} with one policy rank shards nothing and costs update time; "
                     f"--zero_stage 0 is faster there (see benchmarks/README.md)")
    return notes


def with_resume_advice(line: str, ckpt_path: str) -> str:
    """`line` (an error that stopped the run), plus resume advice only when --ckpt_path holds a
    complete checkpoint to resume from: a run that saved nothing gets none."""
    if complete_checkpoints(ckpt_path):
        line += "; rerun with --load_checkpoint to resume from the last complete checkpoint"
    return line


def main(argv: list[str] | None = None) -> int:
    """knowrl-train: check the flags and files, print the placement plan, start Ray and train. Returns 0 when
    done, 2 for bad input (one `knowrl-train: error:` line), 1 when the run stopped on an error (one line,
    with resume advice when a checkpoint exists)."""
    try:
        cfg = parse_config(argv)
    except ConfigError as exc:
        print(f"knowrl-train: error: {exc}", file=sys.stderr)
        return 2
    quiet_libraries(cfg.verbose)
    try:
        seeds, templates, reward_fn, use_gpu = validate(cfg)
        model_path = resolve_pretrain(cfg.pretrain)
        tokenizer = load_tokenizer(model_path, cfg.trust_remote_code)
        check_lengths(cfg, model_path, tokenizer, templates, seeds)
        if cfg.lora is not None:
            check_lora(cfg, model_path)
    except ConfigError as exc:
        if cfg.debug:
            raise
        print(f"knowrl-train: error: {exc}", file=sys.stderr)
        return 2
    try:
        prepare_run_folders(cfg, model_path)
    except ConfigError as exc:
        print(f"knowrl-train: error: {exc}", file=sys.stderr)
        return 2

    for note in performance_notes(cfg):
        print(f"[knowrl] note: {note}", flush=True)
    if cfg.dry_run:
        try:
            print(make_plan(cfg, model_path, use_gpu)[1], flush=True)
        except ConfigError as exc:
            print(f"knowrl-train: error: {exc}", file=sys.stderr)
            return 2
        print("[knowrl] dry run: flags, files and layout are valid; not starting Ray", flush=True)
        return 0
    os.makedirs(cfg.log_dir, exist_ok=True)
    with open(os.path.join(cfg.log_dir, "config.json"), "w") as f:
        json.dump({**cfg.public_dict(), "resolved_pretrain": model_path, "argv": sys.argv}, f, indent=1)

    import ray

    address = cfg.ray_address or os.environ.get("RAY_ADDRESS") or None
    init_kwargs = dict(address=address, include_dashboard=False, log_to_driver=cfg.verbose,
                       logging_level="INFO" if cfg.verbose else "WARNING")
    if address is None:
        init_kwargs["num_cpus"] = cfg.ray_num_cpus or os.cpu_count()
        # Ray >= 2.59 turns token authentication on for a new local cluster and says so in a warning
        # (RAY_AUTH_MODE would silence it, but Ray reads it when imported, before the flags are
        # known). Only that notice is hidden: authentication failures raise, they are not logged.
        logging.getLogger(RAY_AUTH_NOTICE_LOGGER).setLevel(logging.ERROR)
    started = time.perf_counter()
    ray.init(**init_kwargs)
    try:
        plan, text = make_plan(cfg, model_path, use_gpu, ClusterResources.from_ray_nodes(ray.nodes()))
        print(text, flush=True)
    except ConfigError as exc:
        ray.shutdown()
        print(f"knowrl-train: error: {exc}", file=sys.stderr)
        return 2
    print(f"[knowrl] model {model_path} | {len(seeds)} seed tasks | reward {cfg.reward_func} | "
          f"{cfg.advantage_estimator} | {'GPU' if use_gpu else 'CPU'} | Ray {'at ' + address if address else 'local'}",
          flush=True)
    try:
        trainer = KnowRLTrainer(cfg, model_path, tokenizer, seeds, templates, reward_fn, use_gpu, plan)
        trainer.start()
        trainer.fit()
    except (RuntimeError, RayWaitTimeout) as exc:
        if cfg.debug:
            raise
        line = with_resume_advice(str(exc), cfg.ckpt_path) if isinstance(exc, RankDied) else str(exc)
        print(f"knowrl-train: error: {line}", file=sys.stderr)
        return 1
    except ray.exceptions.RayActorError as exc:
        if cfg.debug:
            raise
        # an actor no caller named: its own error line
        line = f"a Ray actor died ({remote_error_line(str(exc)) or type(exc).__name__})"
        print(f"knowrl-train: error: {with_resume_advice(line, cfg.ckpt_path)}", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
    print(f"[knowrl] done in {time.perf_counter() - started:.0f}s: model {cfg.save_path}, records {cfg.log_dir}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
