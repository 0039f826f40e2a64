"""Hostile model output cannot break parsing, escape the classification prompt, or earn reward it
should not (hypothesis fuzzing of the label parser, the task parser/filter and the rewards)."""

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openrlhf.knowrl.prompts import (
    DEFAULT_PROMPTS_DIR,
    build_classification_prompt,
    filter_generated_tasks,
    load_templates,
    parse_answer,
    parse_generated_tasks,
    parse_label,
)
from openrlhf.knowrl.reward import REWARD_FUNCS, RewardGroup

TEMPLATES = load_templates(DEFAULT_PROMPTS_DIR)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like model output: label words, markers, template pieces, markdown, odd unicode.
FRAGMENTS = st.sampled_from(["Label:", "label", "feasible", "infeasible", "not", "Task:", "{task}", "{examples}",
                             "```", "**", "<label>", "</label>", '{"label": ', '"}', "\n", " ", "Reason:",
                             "impossible", "possible", "\u200b", "\ufffd", "\x00", "é", "\u202e"])
MODEL_TEXT = st.one_of(st.text(max_size=400), st.lists(st.one_of(FRAGMENTS, st.text(max_size=12)),
                                                       max_size=40).map("".join))


@SETTINGS
@given(MODEL_TEXT)
def test_label_parser_never_raises_and_answers_in_range(text):
    assert parse_label(text) in ("feasible", "infeasible", None)
    assert parse_answer(text, "Label:") in ("feasible", "infeasible", None)


@SETTINGS
@given(MODEL_TEXT)
def test_task_parser_and_filter_never_raise_and_keep_only_clean_tasks(text):
    tasks = parse_generated_tasks(text)
    assert all(isinstance(t, str) and t == t.strip() and t for t in tasks)
    kept, dropped = filter_generated_tasks(tasks, existing=["Write a haiku about the sea in five words."])
    assert len(kept) + len(dropped) == len(tasks)
    for task in kept:
        assert 20 <= len(task) <= 300
        assert not re.search(r"\{[A-Za-z_]+\}", task), "a template placeholder survived the filter"
        assert "label:" not in task.lower(), "an answer marker survived the filter"
        assert "\x00" not in task and "\ufffd" not in task


@SETTINGS
@given(MODEL_TEXT)
def test_a_task_cannot_close_the_fence_of_the_classification_prompt(task):
    prompt = build_classification_prompt(TEMPLATES, task)
    assert task in prompt
    longest_run = max([len(r) for r in re.findall(r"`+", task)] or [0])
    fenced = [n for n in range(3, longest_run + 4) if f"{'`' * n}\n{task}\n{'`' * n}" in prompt]
    assert fenced and fenced[-1] > longest_run, "the task must sit in a fence longer than any backtick run in it"


@SETTINGS
@given(st.lists(MODEL_TEXT, min_size=1, max_size=8), st.sampled_from(["feasible", "infeasible", None]))
def test_rewards_are_bounded_and_unparseable_answers_earn_nothing(texts, gen_label):
    group = RewardGroup.from_texts("some task", gen_label, texts)
    for name, fn in REWARD_FUNCS.items():
        rewards = fn(group)
        assert len(rewards) == len(texts)
        assert all(0.0 <= r <= 1.0 for r in rewards), name
        if name != "random":
            for label, reward in zip(group.labels, rewards):
                if label is None:
                    assert reward == 0.0, f"{name} rewarded an unparseable answer"
