"""Lengths and tokens checked before Ray (issue #19, items 4-6): prompts that cannot fit
--prompt_max_len, engine lengths past the model's context and a tokenizer without pad or eos
are refused with one line by `main([... '--dry_run'])`; prompts dropped for length during a
run are counted in the metrics and warned about once. Tiny models from tests/tiny_model.py;
nothing here starts Ray or vLLM."""

import json
import os
import random
from types import SimpleNamespace

import pytest
import ray

from openrlhf.cli.train_knowrl import main, model_context_length, parse_config
from openrlhf.knowrl.loop import KnowRLTrainer, Task
from openrlhf.knowrl.prompts import (
    DEFAULT_PROMPTS_DIR,
    build_classification_prompt,
    chat_prompt,
    load_seed_tasks,
    load_templates,
    prompt_lengths,
    prompt_token_count,
)
from openrlhf.knowrl.records import iteration_metrics
from openrlhf.knowrl.reward import get_reward_func
from openrlhf.rollout.vllm_engine import Generation

SMALL_ANSWERS = ["--generate_max_len", "8", "--introspection_max_len", "24"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_preflight") / "model")


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


@pytest.fixture(scope="module")
def seeds():
    return load_seed_tasks(DEFAULT_PROMPTS_DIR)


@pytest.fixture(scope="module")
def templates():
    return load_templates(DEFAULT_PROMPTS_DIR)


def dry_run(tmp_path, model_dir, *flags) -> list[str]:
    out = ["--save_path", str(tmp_path / "s"), "--ckpt_path", str(tmp_path / "c"), "--log_dir", str(tmp_path / "l")]
    return out + ["--pretrain", str(model_dir), *flags, "--dry_run"]


def refused_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("knowrl-train: error: "), err
    assert not ray.is_initialized()
    return err


def lengths(tokenizer, templates, seeds, **overrides):
    cfg = parse_config([])
    kwargs = dict(answer_prefix=cfg.answer_prefix, introspection_prefix=cfg.introspection_prefix,
                  few_shot_examples=cfg.few_shot_examples, tasks_per_introspection=cfg.tasks_per_introspection)
    return prompt_lengths(tokenizer, templates, seeds, **{**kwargs, **overrides})


# ----------------------------------------------------------------------------- measuring


def test_prompt_lengths_bound_every_prompt_the_loop_builds(tiny, tokenizer, templates, seeds):
    cfg = parse_config(["--pretrain", tiny, "--prompt_max_len", "100000"])
    measured = lengths(tokenizer, templates, seeds)
    classification = prompt_token_count(tokenizer, [chat_prompt(tokenizer, build_classification_prompt(
        templates, s.task), cfg.answer_prefix) for s in seeds])
    assert measured["classification"] == max(classification)
    assert measured["classification_shortest"] == min(classification)
    # the loop's own task-writing prompts, many random draws: all within the measured bounds
    trainer = KnowRLTrainer(cfg, tiny, tokenizer, seeds, templates, get_reward_func(cfg.reward_func), False)
    built = [len(ids) for it in range(1, 25) for ids in trainer.writer.requests(it, random.Random(it))[1]]
    assert measured["introspection_shortest"] <= min(built) <= max(built) <= measured["introspection_longest"]
    more = lengths(tokenizer, templates, seeds, few_shot_examples=2 * cfg.few_shot_examples)
    assert more["introspection_shortest"] > measured["introspection_shortest"]


def test_model_context_length_reads_config_rope_and_tokenizer(tiny, tmp_path):
    import shutil

    assert model_context_length(tiny, False) == (1024, f"max_position_embeddings in {tiny}/config.json")
    scaled = shutil.copytree(tiny, tmp_path / "scaled")
    config = json.loads((scaled / "config.json").read_text())
    config["rope_scaling"] = config["rope_parameters"] = {"rope_type": "linear", "factor": 4.0,
                                                          "rope_theta": 10000.0}
    (scaled / "config.json").write_text(json.dumps(config))
    tokens, source = model_context_length(str(scaled), False)
    assert tokens == 4096 and "RoPE factor 4" in source

    class Tokenizer:
        model_max_length = 3000

    assert model_context_length(str(scaled), False, Tokenizer()) == (
        3000, f"model_max_length in {scaled}/tokenizer_config.json")
    assert model_context_length(str(tmp_path / "no_model_here"), False) is None


# ----------------------------------------------------------------------------- refusals before Ray


def test_prompt_max_len_below_the_classification_prompt_is_refused(tiny, tokenizer, templates, seeds, tmp_path,
                                                                   capsys):
    """Before: exit 0 after iterations of 'kept 0/0 groups' (every classification prompt dropped)."""
    needed = lengths(tokenizer, templates, seeds)["classification"]
    assert main(dry_run(tmp_path, tiny, "--prompt_max_len", "64", *SMALL_ANSWERS)) == 2
    err = refused_line(capsys)
    assert (f"--prompt_max_len 64 is shorter than the classification prompt ({needed} tokens with the longest "
            f"seed task): use --prompt_max_len") in err


def test_few_shot_examples_that_never_fit_are_refused(tiny, tokenizer, templates, seeds, tmp_path, capsys):
    """Before: every task-writing prompt silently dropped, seed tasks stood in for the run."""
    shortest = lengths(tokenizer, templates, seeds, few_shot_examples=12)["introspection_shortest"]
    assert shortest > 512
    assert main(dry_run(tmp_path, tiny, "--few_shot_examples", "12", "--prompt_max_len", "512",
                        *SMALL_ANSWERS)) == 2
    err = refused_line(capsys)
    assert (f"--prompt_max_len 512 is shorter than every task-writing prompt ({shortest} tokens or more with "
            f"--few_shot_examples 12)") in err and "lower --few_shot_examples" in err


def test_prompts_that_only_sometimes_fit_pass_with_a_warning(tiny, tokenizer, templates, seeds, tmp_path, capsys):
    measured = lengths(tokenizer, templates, seeds)
    limit = (measured["introspection_shortest"] + measured["introspection_longest"]) // 2
    assert measured["classification"] <= limit
    assert main(dry_run(tmp_path, tiny, "--prompt_max_len", str(limit), *SMALL_ANSWERS)) == 0
    out = capsys.readouterr().out
    assert (f"[knowrl] warning: task-writing prompts with the longest seed examples take "
            f"{measured['introspection_longest']} tokens, over --prompt_max_len {limit}") in out
    assert "dry run: flags, files and layout are valid" in out


def with_context(model_dir, tmp_path, tokens: int) -> str:
    """A copy of the tiny model whose config and tokenizer say its context is `tokens` long."""
    import shutil

    from tiny_model import set_context

    return set_context(shutil.copytree(model_dir, tmp_path / f"context_{tokens}"), tokens)


def test_engine_length_past_the_model_context_is_refused(tiny, tmp_path, capsys):
    """Before: --dry_run passed and the real run died in the vLLM engine's start."""
    model = with_context(tiny, tmp_path, 2048)
    assert main(dry_run(tmp_path, model, "--prompt_max_len", "3000", "--generate_max_len", "8",
                        "--introspection_max_len", "512")) == 2
    err = refused_line(capsys)
    assert ("--prompt_max_len 3000 + --introspection_max_len 512 = 3512 tokens is longer than the model's context "
            f"of 2048 (max_position_embeddings in {model}/config.json): lower them so they add up to 2048 "
            "or less") in err
    # the same lengths fit a model with room for them
    assert main(dry_run(tmp_path, with_context(tiny, tmp_path, 4096), "--prompt_max_len", "3000",
                        "--generate_max_len", "8", "--introspection_max_len", "512")) == 0


def test_tokenizer_without_pad_or_eos_is_refused(tiny, tmp_path, capsys):
    """Before: a TypeError traceback mid-iteration, when padding the first batch of answers."""
    import shutil

    from transformers import AutoTokenizer

    model = shutil.copytree(tiny, tmp_path / "no_pad")
    tok = AutoTokenizer.from_pretrained(model)
    tok.pad_token = None
    tok.eos_token = None
    for name in os.listdir(model):
        if name.startswith(("tokenizer", "special_tokens")):
            os.remove(model / name)
    tok.save_pretrained(model)
    reloaded = AutoTokenizer.from_pretrained(model)
    assert reloaded.pad_token_id is None and reloaded.eos_token_id is None
    assert main(dry_run(tmp_path, model, "--prompt_max_len", "768", *SMALL_ANSWERS)) == 2
    err = refused_line(capsys)
    assert err == (f"knowrl-train: error: --pretrain '{model}': the tokenizer has neither a pad nor an eos token: "
                   f"set pad_token (or eos_token) in its tokenizer_config.json / special_tokens_map.json")


# ----------------------------------------------------------------------------- during a run


def make_trainer(tiny, tokenizer, seeds, templates, *flags) -> KnowRLTrainer:
    """The loop's controller without start(): prompt building and filtering need no engines."""
    cfg = parse_config(["--pretrain", tiny, *flags])
    return KnowRLTrainer(cfg, tiny, tokenizer, seeds, templates, get_reward_func(cfg.reward_func), False)


def test_dropped_introspection_prompts_are_counted_and_warned_once(tiny, tokenizer, seeds, templates, capsys):
    roomy = make_trainer(tiny, tokenizer, seeds, templates, "--prompt_max_len", "100000",
                         "--introspection_prompts", "8")
    sizes = {it: [len(ids) for ids in roomy.writer.requests(it, random.Random(it))[1]] for it in (1, 2)}
    limit = sorted(sizes[1])[len(sizes[1]) // 2]
    expected = {it: sum(n > limit for n in sizes[it]) for it in sizes}
    assert expected[1] > 0
    capsys.readouterr()

    trainer = make_trainer(tiny, tokenizer, seeds, templates, "--prompt_max_len", str(limit),
                           "--introspection_prompts", "8")
    for it in (1, 2):
        rng = random.Random(it)
        targets, prompts = trainer.writer.requests(it, rng)
        assert len(prompts) == 8 - expected[it]
        # the engines' answers, as the loop parses them (no engine needed for this step)
        outputs = [[Generation(i, ids, [], " Write a limerick about a cat who learns to swim.", True)]
                   for i, ids in enumerate(prompts)]
        tasks, log = trainer.writer.tasks(targets, outputs, rng)
        metrics = iteration_metrics([], [], tasks, log, len(trainer.pool), trainer.cfg.introspection_prompts)
        assert metrics["knowrl/introspection_prompts_too_long"] == expected[it]
    out = capsys.readouterr().out
    assert out.count("[knowrl] warning:") == 1, out
    assert (f"iteration 1: {expected[1]} of 8 task-writing prompts are longer than --prompt_max_len {limit}"
            in out)
    assert "knowrl/introspection_prompts_too_long counts them (warned once)" in out


def test_dropped_classification_prompts_are_counted_and_warned_once(tiny, tokenizer, seeds, templates, capsys):
    trainer = make_trainer(tiny, tokenizer, seeds, templates, "--prompt_max_len", "64")
    tasks = [Task(s.task, s.label, s.type, s.reason, "seed") for s in seeds[:3]]
    sent = []   # stands in for the engines: records what reaches them
    trainer.engines = SimpleNamespace(generate=lambda prompts, sampling, n, iteration: sent.extend(prompts) or [])
    for it in (1, 2):
        groups = trainer.classify(tasks, it)   # every prompt is too long: nothing reaches the engines
        assert groups == [] and sent == []
        metrics = iteration_metrics(groups, [], tasks, [], len(trainer.pool), trainer.cfg.introspection_prompts)
        assert metrics["knowrl/classification_prompts_too_long"] == 3
    out = capsys.readouterr().out
    assert out.count("[knowrl] warning:") == 1
    assert "iteration 1: 3 of 3 classification prompts are longer than --prompt_max_len 64" in out
