"""Tests for openrlhf/knowrl/reward.py: majority, built-in rewards, custom reward files."""

import pytest

from openrlhf.knowrl.reward import (
    REWARD_FUNCS,
    RewardGroup,
    agreement,
    check_rewards,
    compute_rewards,
    get_reward_func,
    load_reward_file,
    majority_label,
    register_reward,
)

F, I, N = "feasible", "infeasible", None


def group(labels, gen_label=None, task="Name the largest planet in the solar system."):
    return RewardGroup(task=task, gen_label=gen_label, labels=list(labels), texts=[f"answer {k}" for k in range(len(labels))])


# ------------------------------------------------------------------------------------------
# Majority / agreement
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels,expected", [
    ([F, F, I], (F, 2)),
    ([I, I, I, F], (I, 3)),
    ([F, I], (None, 1)),          # tie: no label, count of each tied label
    ([F, I, F, I, N], (None, 2)),
    ([N, N, N], (None, 0)),       # nothing parseable
    ([], (None, 0)),
    ([F], (F, 1)),                # n = 1
    ([N], (None, 0)),
    ([N, N, I], (I, 1)),          # None never votes
])
def test_majority_label(labels, expected):
    assert majority_label(labels) == expected


@pytest.mark.parametrize("labels,expected", [
    ([F, F, I], 2 / 3),
    ([N, N, I], 1 / 3),           # unparseable samples count in n
    ([F, I], 0.0),
    ([N, N], 0.0),
    ([], 0.0),
    ([I], 1.0),
])
def test_agreement(labels, expected):
    assert agreement(labels) == pytest.approx(expected)


def test_unknown_label_rejected():
    with pytest.raises(ValueError, match="unknown label"):
        majority_label(["maybe"])
    with pytest.raises(ValueError, match="unknown label"):
        RewardGroup(task="t", gen_label="maybe", labels=[F], texts=["x"])
    with pytest.raises(ValueError, match="texts"):
        RewardGroup(task="t", gen_label=F, labels=[F, I], texts=["x"])


def test_group_from_texts():
    g = RewardGroup.from_texts("t", I, ["Label: infeasible", "Label: feasible", "hmm"])
    assert g.labels == [I, F, None] and g.n == 3 and g.gen_label == I


# ------------------------------------------------------------------------------------------
# Built-in rewards
# ------------------------------------------------------------------------------------------


def test_registry_names():
    assert {"consensus", "soft_consensus", "generation_label", "random"} <= set(REWARD_FUNCS)
    for name in REWARD_FUNCS:
        assert get_reward_func(name) is REWARD_FUNCS[name]


@pytest.mark.parametrize("labels,expected", [
    ([F, F, I, N], [1, 1, 0, 0]),
    ([I, I, I, F], [1, 1, 1, 0]),
    ([F, I, N, N], [0, 0, 0, 0]),     # tie -> no majority
    ([N, N], [0, 0]),
    ([F], [1]),
])
def test_consensus(labels, expected):
    assert get_reward_func("consensus")(group(labels)) == [float(x) for x in expected]


@pytest.mark.parametrize("labels,expected", [
    ([F, F, I, N], [0.5, 0.5, 0.25, 0.0]),
    ([F, I], [0.5, 0.5]),
    ([I, I, I], [1.0, 1.0, 1.0]),
    ([N, N], [0.0, 0.0]),
])
def test_soft_consensus(labels, expected):
    assert get_reward_func("soft_consensus")(group(labels)) == pytest.approx(expected)


def test_generation_label():
    fn = get_reward_func("generation_label")
    assert fn(group([F, I, N, I], gen_label=I)) == [0.0, 1.0, 0.0, 1.0]
    assert fn(group([F, I, N, F], gen_label=F)) == [1.0, 0.0, 0.0, 1.0]
    # unknown gen_label -> consensus
    assert fn(group([F, I, I], gen_label=None)) == [0.0, 1.0, 1.0]


def test_random_deterministic_and_answer_independent():
    fn = get_reward_func("random")
    task = "Predict tomorrow's closing price of a stock."
    a = fn(group([F] * 64, task=task))
    b = fn(group([I, N] * 32, gen_label=I, task=task))
    assert a == b == fn(group([F] * 64, task=task))
    assert set(a) == {0.0, 1.0}  # 64 coin flips: both outcomes occur
    assert 10 < sum(a) < 54
    other = fn(group([F] * 64, task=task + " "))
    assert other != a  # seeded by the task text
    assert fn(group([F] * 3, task=task)) == a[:3]  # seeded by the sample index


def test_register_duplicate_name():
    with pytest.raises(ValueError, match="already registered"):
        register_reward("consensus")(lambda g: [])


# ------------------------------------------------------------------------------------------
# Custom reward files
# ------------------------------------------------------------------------------------------


def test_load_reward_file_happy(tmp_path):
    f = tmp_path / "my_reward.py"
    f.write_text(
        "from dataclasses import dataclass\n"
        "@dataclass\n"
        "class Cfg:\n"
        "    bonus: float = 0.5\n"
        "def reward_func(group):\n"
        "    return [Cfg().bonus if lab == group.gen_label else 0.0 for lab in group.labels]\n"
    )
    fn = load_reward_file(f)
    assert fn(group([F, I], gen_label=F)) == [0.5, 0.0]
    fn2 = get_reward_func(str(f))
    assert compute_rewards(fn2, group([I, I], gen_label=I)) == [0.5, 0.5]


def test_load_reward_file_errors(tmp_path):
    with pytest.raises(ValueError, match="not a file"):
        load_reward_file(tmp_path / "missing.py")
    with pytest.raises(ValueError, match="not a file"):
        load_reward_file(tmp_path)
    txt = tmp_path / "reward.txt"
    txt.write_text("def reward_func(group): return []\n")
    with pytest.raises(ValueError, match=r"not a \.py file"):
        load_reward_file(txt)
    nofn = tmp_path / "nofn.py"
    nofn.write_text("def other(group):\n    return []\n")
    with pytest.raises(ValueError, match="no reward_func"):
        load_reward_file(nofn)
    notcall = tmp_path / "notcall.py"
    notcall.write_text("reward_func = 3\n")
    with pytest.raises(ValueError, match="not callable"):
        load_reward_file(notcall)
    broken = tmp_path / "broken.py"
    broken.write_text("def reward_func(group):\n    return [\n")
    with pytest.raises(ValueError, match="importing it failed"):
        load_reward_file(broken)
    for msg_fn in (nofn, notcall):
        with pytest.raises(ValueError) as ei:
            load_reward_file(msg_fn)
        assert "\n" not in str(ei.value) and str(msg_fn) in str(ei.value)


def test_get_reward_func_unknown():
    with pytest.raises(ValueError, match="unknown reward 'consensuss'"):
        get_reward_func("consensuss")


# ------------------------------------------------------------------------------------------
# check_rewards
# ------------------------------------------------------------------------------------------


def test_check_rewards_ok():
    g = group([F, I, N])
    assert check_rewards(g, [1, 0.5, 0.0]) == [1.0, 0.5, 0.0]
    assert check_rewards(g, (0, 0, 0)) == [0.0, 0.0, 0.0]


def my_bad_reward(group):
    return [1.0]


@pytest.mark.parametrize("rewards,match", [
    ([1.0, 1.0], "returned 2 rewards for a group of 3"),
    ([1.0, float("nan"), 0.0], "must be finite"),
    ([1.0, float("inf"), 0.0], "must be finite"),
    ([1.0, "1", 0.0], "must be numbers"),
    ([1.0, None, 0.0], "must be numbers"),
    ([True, 0.0, 0.0], "must be numbers"),
    (1.0, "must return a list"),
    ("101", "must return a list"),
])
def test_check_rewards_errors(rewards, match):
    with pytest.raises(ValueError, match=match) as ei:
        check_rewards(group([F, I, N]), rewards, "my_reward")
    assert "'my_reward'" in str(ei.value)


def test_compute_rewards_names_function():
    with pytest.raises(ValueError, match="my_bad_reward"):
        compute_rewards(my_bad_reward, group([F, I]))
