"""Answers cut at the length limit and answers that think aloud, in training and evaluation alike.

A task-writing answer cut by --introspection_max_len ends in half a task: that task is dropped
as 'truncated' (the ones before it ended properly). A classification answer cut by
--generate_max_len has a label only if the label was complete before the cut. Qwen3-style
templates are asked not to think (enable_thinking=False) and <think> blocks are removed before
tasks and labels are read. Hand-built answers stand in for the engines' output throughout."""

import random
from types import SimpleNamespace

import pytest

from evaluation import report as R
from evaluation.engine import Classifier, Completion
from evaluation.intrinsic import generate_tasks
from openrlhf.cli.train_knowrl import parse_config
from openrlhf.knowrl.loop import KnowRLTrainer, Task
from openrlhf.knowrl.prompts import (
    DEFAULT_PROMPTS_DIR,
    chat_prompt,
    load_seed_tasks,
    load_templates,
    parse_answer,
    parse_generated_tasks,
    parse_label,
    split_truncated_task,
    strip_think_blocks,
    tasks_from_answer,
)
from openrlhf.knowrl.reward import get_reward_func
from openrlhf.rollout.vllm_engine import Generation

LIMERICK = "Write a limerick about a cat who learns to swim."
CHESS_CUT = "Describe the rules of chess to a child who has never"
CHESS = "Describe the rules of chess to a child who has never played a board game."

# Thinks aloud unless the caller passes enable_thinking=False, like Qwen3's template.
THINKING_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}"
    "{% else %}{{ '<think>\n' }}{% endif %}{% endif %}"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_cut") / "m")


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


@pytest.fixture(scope="module")
def trainer(tiny, tokenizer):
    """The loop's controller without start(): parsing needs no engines or policy."""
    cfg = parse_config(["--pretrain", tiny, "--rollout_batch_size", "8", "--no-fill_from_seeds"])
    seeds = load_seed_tasks(DEFAULT_PROMPTS_DIR / "seed_tasks.jsonl")
    return KnowRLTrainer(cfg, tiny, tokenizer, seeds, load_templates(DEFAULT_PROMPTS_DIR),
                         get_reward_func(cfg.reward_func), False)


# ----------------------------------------------------------------------------- think blocks


@pytest.mark.parametrize("text,expected", [
    ("<think>Is it?</think>\nLabel: feasible", "\nLabel: feasible"),
    ("<THINK>a</THINK>x<thinking>b</thinking>y", "xy"),
    ("the template opened it </think> Label: infeasible", " Label: infeasible"),
    ("<think> still thinking when the answer ended", ""),
    ("Label: feasible\n<think> more", "Label: feasible\n"),
    ("no tags at all", "no tags at all"),
])
def test_strip_think_blocks(text, expected):
    assert strip_think_blocks(text) == expected


def test_tasks_inside_thinking_are_not_tasks():
    text = f"Task:<think>Task: {CHESS}</think>\nTask: {LIMERICK}"
    assert parse_generated_tasks(text) == [LIMERICK]
    assert parse_generated_tasks(f"Task:<think>\nTask: {LIMERICK}\nTask: {CHESS}") == []   # thinking only


@pytest.mark.parametrize("completion,label", [
    ("<think>feasible? no...</think> infeasible", "infeasible"),     # prefilled Label:, then a think block
    ("<think>It is infeasible, surely.</think>\nLabel: feasible", "feasible"),
    ("<think>It is infeasible, surely. Or", None),                    # thinking only: no label
    ("it could be infeasible</think>\n\nLabel: feasible", "feasible"),  # opened by the template
])
def test_labels_inside_thinking_are_not_labels(completion, label):
    assert parse_answer(completion, "Label:") == label
    assert parse_label("Label:" + completion) == label


def test_chat_prompt_turns_thinking_off(tokenizer):
    plain = chat_prompt(tokenizer, "Can you add 2 and 3?", "Label:")
    assert plain == "<|im_start|>user\nCan you add 2 and 3?<|im_end|>\n<|im_start|>assistant\nLabel:"
    saved = tokenizer.chat_template
    try:
        tokenizer.chat_template = THINKING_TEMPLATE
        messages = [{"role": "user", "content": "Can you add 2 and 3?"}]
        default = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert default.endswith("assistant\n<think>\n")   # the template thinks unless told not to
        prompt = chat_prompt(tokenizer, "Can you add 2 and 3?", "Label:")
    finally:
        tokenizer.chat_template = saved
    assert prompt == ("<|im_start|>user\nCan you add 2 and 3?<|im_end|>\n<|im_start|>assistant\n"
                      "<think>\n\n</think>\n\nLabel:")


# ----------------------------------------------------------------------------- cut task-writing answers


def test_cut_answer_loses_only_its_last_task():
    text = f"Task: {LIMERICK}\nTask: {CHESS_CUT}"
    assert split_truncated_task(text, finished=False) == ([LIMERICK], CHESS_CUT)
    assert split_truncated_task(text, finished=True) == ([LIMERICK, CHESS_CUT], None)
    # cut after the last task's line ended, or inside text that is no task: every task is whole
    assert split_truncated_task(f"Task: {LIMERICK}\nTask: {CHESS}\n", finished=False) == ([LIMERICK, CHESS], None)
    assert split_truncated_task(f"Task: {LIMERICK}\nThese tasks are", finished=False) == ([LIMERICK], None)
    assert split_truncated_task(f"Task: {CHESS_CUT}", finished=False) == ([], CHESS_CUT)
    assert split_truncated_task("Task:\n" + CHESS_CUT, finished=False) == ([], CHESS_CUT)


def test_tasks_from_answer_drops_the_cut_task_as_truncated():
    kept, dropped = tasks_from_answer(f"Task: {LIMERICK}\nTask: {CHESS_CUT}", False, [])
    assert kept == [LIMERICK] and dropped == [(CHESS_CUT, "truncated")]


def test_training_drops_and_logs_the_cut_task(trainer):
    targets = [("feasible", None), ("infeasible", "missing_context")]
    outputs = [[Generation(0, [], [], f" {LIMERICK}\nTask: {CHESS_CUT}", False)],
               [Generation(1, [], [], f" {CHESS}", True)]]
    tasks, log = trainer.writer.tasks(targets, outputs, random.Random(0))
    assert sorted(t.text for t in tasks) == sorted([LIMERICK, CHESS])
    assert log[0]["finished"] is False and log[0]["kept"] == [LIMERICK]
    assert log[0]["dropped"] == [{"task": CHESS_CUT, "why": "truncated"}]
    assert log[1]["dropped"] == [] and log[1]["kept"] == [CHESS]


def test_evaluation_drops_the_cut_task_too():
    templates = load_templates(DEFAULT_PROMPTS_DIR)
    seeds = load_seed_tasks(DEFAULT_PROMPTS_DIR / "seed_tasks.jsonl")

    class CutWriter:
        """Every task-writing answer is cut in its second task."""

        def chat(self, text, assistant_prefix=""):
            return text + assistant_prefix

        def generate(self, prompts, *, n, temperature, max_tokens):
            return [[Completion(f" {LIMERICK}\nTask: {CHESS_CUT}", False)] for _ in prompts]

    tasks, log = generate_tasks(CutWriter(), templates, seeds, 1, seed=0, max_rounds=1)
    assert [t["task"] for t in tasks] == [LIMERICK]
    assert all({"task": CHESS_CUT, "why": "truncated"} in entry["dropped"] for entry in log)


# ----------------------------------------------------------------------------- cut classification answers


@pytest.mark.parametrize("completion,cut_label,whole_label", [
    (" feasible\nReason: the sum of two", "feasible", "feasible"),       # label complete before the cut
    (" **infeasible**\nReason: needs", "infeasible", "infeasible"),
    (" infeas", None, None),                                            # cut inside the label
    (" not", None, None),
    (" feasible", None, "feasible"),                                    # might have gone on ("feasible or ...")
    (" I think this is feasible, but", None, "feasible"),              # the label would have come later
    ("<think>long thoughts about it", None, None),
])
def test_cut_answer_has_a_label_only_if_it_came_before_the_cut(completion, cut_label, whole_label):
    assert parse_answer(completion, "Label:", finished=False) == cut_label
    assert parse_answer(completion, "Label:", finished=True) == whole_label
    assert parse_label("Label:" + completion, finished=False) == cut_label


def test_training_classification_reads_cut_answers_as_cut(trainer, monkeypatch):
    answers = [Generation(0, [], [], " I think this is feasible, but", False),
               Generation(0, [], [], " I think this is feasible, but", True),
               Generation(0, [], [], " infeasible\nReason: it needs", False)]
    # stands in for the vLLM engines: the answers are fixed so the cut flag is what varies
    monkeypatch.setattr(trainer, "engines", SimpleNamespace(
        generate=lambda prompts, sampling, n, iteration: [answers for _ in prompts]))
    groups = trainer.classify([Task(LIMERICK, "feasible", None, None, "seed")], 1)
    assert groups[0].labels == [None, "feasible", "infeasible"]


def test_evaluation_records_and_reparses_cut_answers(tiny):
    clf = Classifier(tiny, seed=0, use_gpu=False, answer_prefix="Label:")
    cut = clf.sample(" I think this is feasible, but", finished=False)
    whole = clf.sample(" I think this is feasible, but", finished=True)
    assert cut == {"text": "Label: I think this is feasible, but", "label": None, "finished": False}
    assert whole["label"] == "feasible"
    records = [R.make_record("mini", 0, {"task": LIMERICK, "label": "feasible"}, [cut, whole])]
    assert R.reparse(records) == 0   # --reparse reads a recorded cut answer as cut
    assert [s["label"] for s in records[0]["samples"]] == [None, "feasible"]
