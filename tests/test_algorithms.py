"""Hand-computed checks for openrlhf.algorithms (losses + advantage estimators).

Every expected value below is written out from arithmetic done by hand on small
explicit numbers, never by calling the code under test a second time.
"""

import math
import statistics

import pytest
import torch

from openrlhf.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    discounted_returns,
    get_advantage_estimator,
    group_mean_baseline,
    group_view,
    leave_one_out_baseline,
    token_level_rewards,
)
from openrlhf.algorithms.losses import (
    compute_kl,
    kl_loss,
    masked_mean,
    masked_sum,
    masked_whiten,
    policy_loss,
)

E = math.e
T = torch.tensor


def close(actual, expected, atol=1e-5):
    expected = torch.as_tensor(expected, dtype=torch.float32)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    torch.testing.assert_close(actual.float(), expected, atol=atol, rtol=1e-5)


def whiten_list(values):
    """Reference whitening of a plain list (population std), done with statistics."""
    mu = statistics.fmean(values)
    sd = statistics.pstdev(values)
    return [(v - mu) / sd for v in values]


# 2x3 batch whose last position in row 1 is padding (holds a junk value)
X = T([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])
M = T([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


# ----------------------------------------------------------------- reductions


def test_masked_sum_and_mean_ignore_padding():
    close(masked_sum(X, M), 15.0)
    close(masked_sum(X, M, dim=1), [6.0, 9.0])
    close(masked_mean(X, M), 3.0)
    close(masked_mean(X, M, dim=1), [2.0, 4.5])
    close(masked_mean(X, M, dim=0), [2.5, 3.5, 3.0])


def test_masked_whiten_uses_only_masked_entries():
    # real values 1..5: mean 3, population var (4+1+0+1+4)/5 = 2
    s = math.sqrt(2.0)
    out = masked_whiten(X, M)
    close(out, [[-2 / s, -1 / s, 0.0], [1 / s, 2 / s, 0.0]])
    assert out[1, 2] == 0.0
    close(masked_mean(out, M), 0.0)
    close(masked_mean(out**2, M), 1.0)


def test_masked_whiten_without_mean_shift_keeps_mean():
    s = math.sqrt(2.0)
    out = masked_whiten(X, M, shift_mean=False)
    close(out, [[3 - 2 / s, 3 - 1 / s, 3.0], [3 + 1 / s, 3 + 2 / s, 0.0]])


# ------------------------------------------------------------------------- KL


DELTAS = [0.0, 1.0, -1.0, 0.5]


@pytest.mark.parametrize(
    "estimator,expected",
    [
        ("k1", [0.0, 1.0, -1.0, 0.5]),
        ("k2", [0.0, 0.5, 0.5, 0.125]),
        # exp(-d) - 1 + d
        ("k3", [0.0, 1 / E, E - 2.0, math.exp(-0.5) - 0.5]),
    ],
)
def test_kl_estimators(estimator, expected):
    ref = T([[0.3, -1.2, 0.7, -2.0]])
    logp = ref + T([DELTAS])
    close(compute_kl(logp, ref, estimator), [expected])


def test_kl_masked_positions_are_zero():
    logp = T([[1.0, 2.0, 5.0]])
    ref = T([[0.0, 0.0, 0.0]])
    mask = T([[1.0, 1.0, 0.0]])
    close(compute_kl(logp, ref, "k2", mask), [[0.5, 2.0, 0.0]])


def test_kl_clamps_log_ratio_to_ten():
    logp = T([[20.0, -20.0, 10.0]])
    ref = torch.zeros(1, 3)
    close(compute_kl(logp, ref, "k1"), [[10.0, -10.0, 10.0]])
    close(compute_kl(logp, ref, "k2"), [[50.0, 50.0, 50.0]])
    k3 = compute_kl(logp, ref, "k3")
    assert torch.isfinite(k3).all()
    close(k3, [[math.exp(-10) + 9.0, math.exp(10) - 11.0, math.exp(-10) + 9.0]], atol=1e-2)


def test_kl_unknown_estimator():
    with pytest.raises(ValueError, match="k1, k2, k3"):
        compute_kl(torch.zeros(1, 2), torch.zeros(1, 2), "k4")
    with pytest.raises(ValueError, match="k1"):
        kl_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), estimator="mse")


# ---------------------------------------------------------------- policy loss


def _ratio_batch():
    """old_logp = 0, so ratio = exp(logp) and logp = log(ratio).

    row 0, A=+2, ratios [1.1, 1.5, 0.5, pad(3.0)]
    row 1, A=-1, ratios [1.1, 1.5, 0.5, 0.9]
    """
    ratios = T([[1.1, 1.5, 0.5, 3.0], [1.1, 1.5, 0.5, 0.9]])
    logp = ratios.log()
    old = torch.zeros(2, 4)
    adv = T([[2.0, 2.0, 2.0, 2.0], [-1.0, -1.0, -1.0, -1.0]])
    mask = T([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    return logp, old, adv, mask


# per-token -min(r*A, clip(r, 0.8, 1.2)*A), eps = 0.2:
#  A=+2: r=1.1 -> -2.2 (inside); r=1.5 -> -min(3.0, 2.4) = -2.4 (clipped);
#        r=0.5 -> -min(1.0, 1.6) = -1.0 (unclipped, the pessimistic branch)
#  A=-1: r=1.1 -> 1.1; r=1.5 -> -min(-1.5, -1.2) = 1.5 (unclipped);
#        r=0.5 -> -min(-0.5, -0.8) = 0.8 (clipped); r=0.9 -> 0.9 (inside)
ROW0_TOKENS = [-2.2, -2.4, -1.0]
ROW1_TOKENS = [1.1, 1.5, 0.8, 0.9]
TOTAL = sum(ROW0_TOKENS) + sum(ROW1_TOKENS)  # -1.3


def test_policy_loss_clipping_value_and_stats():
    logp, old, adv, mask = _ratio_batch()
    loss, stats = policy_loss(logp, old, adv, mask, clip_eps=0.2)
    close(loss, TOTAL / 7)
    assert set(stats) == {"clip_frac", "approx_kl", "ratio_mean"}
    assert all(isinstance(v, float) for v in stats.values())
    # clipped branch binds for (A>0, r=1.5) and (A<0, r=0.5) only
    assert stats["clip_frac"] == pytest.approx(2 / 7)
    real = [1.1, 1.5, 0.5, 1.1, 1.5, 0.5, 0.9]
    assert stats["ratio_mean"] == pytest.approx(sum(real) / 7, rel=1e-5)
    assert stats["approx_kl"] == pytest.approx(sum(r - 1 - math.log(r) for r in real) / 7, rel=1e-4)


def test_policy_loss_inside_clip_range_is_plain_surrogate():
    # all ratios within [0.8, 1.2]: loss = -mean(r * A), nothing clipped
    ratios = T([[1.0, 0.9, 1.15]])
    adv = T([[1.0, -2.0, 3.0]])
    loss, stats = policy_loss(ratios.log(), torch.zeros(1, 3), adv, torch.ones(1, 3))
    close(loss, -(1.0 - 1.8 + 3.45) / 3)
    assert stats["clip_frac"] == 0.0


def test_policy_loss_accepts_per_sequence_advantages():
    logp, old, _, mask = _ratio_batch()
    loss, _ = policy_loss(logp, old, T([2.0, -1.0]), mask)
    close(loss, TOTAL / 7)


def test_policy_loss_normalizer_for_grad_accumulation():
    logp, old, adv, mask = _ratio_batch()
    full, _ = policy_loss(logp, old, adv, mask)
    # two micro-batches, each divided by the token count of the whole step (7)
    a, _ = policy_loss(logp[:1], old[:1], adv[:1], mask[:1], normalizer=7)
    b, _ = policy_loss(logp[1:], old[1:], adv[1:], mask[1:], normalizer=torch.tensor(7.0))
    close(a, sum(ROW0_TOKENS) / 7)
    close(b, sum(ROW1_TOKENS) / 7)
    close(a + b, full)
    # per-micro-batch default normalisation would instead give a mean of means
    a_default, _ = policy_loss(logp[:1], old[:1], adv[:1], mask[:1])
    close(a_default, sum(ROW0_TOKENS) / 3)


def test_policy_loss_gradient_only_on_masked_tokens():
    # ratio = 1 everywhere, so nothing clips and dloss/dlogp_t = -A_t / N
    logp = torch.zeros(2, 3, requires_grad=True)
    old = torch.zeros(2, 3)
    adv = T([[1.0, 2.0, 3.0], [-1.0, -2.0, 5.0]])
    loss, _ = policy_loss(logp, old, adv, M)
    loss.backward()
    close(logp.grad, [[-1 / 5, -2 / 5, -3 / 5], [1 / 5, 2 / 5, 0.0]])
    assert (logp.grad[M > 0] != 0).all()
    assert (logp.grad[M == 0] == 0).all()


def test_policy_loss_does_not_modify_inputs():
    logp, old, adv, mask = _ratio_batch()
    copies = [t.clone() for t in (logp, old, adv, mask)]
    policy_loss(logp, old, adv, mask)
    for before, after in zip(copies, (logp, old, adv, mask)):
        assert torch.equal(before, after)


# -------------------------------------------------------------------- kl loss


def test_kl_loss_value_and_normalizer():
    ref = torch.zeros(2, 3)
    logp = T([[0.0, 1.0, 7.0], [-1.0, 0.0, 7.0]])
    mask = T([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    # k3 at d = 0, 1, -1, 0 -> 0, 1/e, e-2, 0 over 4 real tokens
    k3_sum = 1 / E + E - 2.0
    close(kl_loss(logp, ref, mask), k3_sum / 4)
    close(kl_loss(logp, ref, mask, estimator="k1"), (1.0 - 1.0) / 4)
    close(kl_loss(logp, ref, mask, estimator="k2"), 1.0 / 4)
    close(kl_loss(logp, ref, mask, normalizer=10), k3_sum / 10)


def test_kl_loss_gradient():
    # d k3 / d logp = 1 - exp(-d); padding must get no gradient
    logp = T([[0.0, 1.0, 7.0], [-1.0, 0.5, 7.0]]).requires_grad_()
    mask = T([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    kl_loss(logp, torch.zeros(2, 3), mask).backward()
    expected = [[0.0, (1 - 1 / E) / 4, 0.0], [(1 - E) / 4, (1 - math.exp(-0.5)) / 4, 0.0]]
    close(logp.grad, expected)


# -------------------------------------------------------------- token helpers


def test_token_level_rewards_puts_reward_on_last_real_token():
    r = T([1.0, -0.5])
    kl = T([[0.1, 0.2, 0.3], [0.4, 0.5, 9.0]])
    out = token_level_rewards(r, kl, M, kl_coef=0.1)
    close(out, [[-0.01, -0.02, -0.03 + 1.0], [-0.04, -0.05 - 0.5, 0.0]])


def test_token_level_rewards_single_token_row():
    out = token_level_rewards(T([2.0]), T([[1.0, 1.0, 1.0]]), T([[1.0, 0.0, 0.0]]), kl_coef=0.5)
    close(out, [[1.5, 0.0, 0.0]])


def test_discounted_returns_gamma_one():
    rewards = T([[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]])  # 7.0 sits on padding
    close(discounted_returns(rewards, M, gamma=1.0), [[6.0, 5.0, 3.0], [9.0, 5.0, 0.0]])


def test_discounted_returns_gamma_half():
    rewards = T([[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]])
    # row0: G2 = 3, G1 = 2 + 1.5 = 3.5, G0 = 1 + 1.75 = 2.75 ; row1: G1 = 5, G0 = 6.5
    close(discounted_returns(rewards, M, gamma=0.5), [[2.75, 3.5, 3.0], [6.5, 5.0, 0.0]])


def test_group_helpers():
    r = T([1.0, 0.0, 2.0, 0.0, 3.0, 6.0])
    close(group_view(r, 3), [[1.0, 0.0, 2.0], [0.0, 3.0, 6.0]])
    close(group_mean_baseline(r, 2), [0.5, -0.5, 1.0, -1.0, -1.5, 1.5])
    # n=3: r - mean(others)
    close(leave_one_out_baseline(r, 3), [0.0, -1.5, 1.5, -4.5, 0.0, 4.5])
    close(leave_one_out_baseline(r, 1), [0.0] * 6)


# ----------------------------------------------------------------- estimators

# toy batch: 2 prompts x 2 samples, T = 3, rows of length 2, 3, 1, 3
REWARDS = T([1.0, 0.0, 2.0, 0.0])
MASK = T([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
KL = T([[0.1, 0.1, 5.0], [0.1, 0.1, 0.1], [0.1, 5.0, 5.0], [0.1, 0.1, 0.1]])  # 5.0 = padding junk
KL_COEF = 0.5  # -> -0.05 per real token


def test_registry():
    assert set(ADVANTAGE_ESTIMATORS) == {"reinforce", "reinforce_baseline", "grpo", "rloo"}
    for name, fn in ADVANTAGE_ESTIMATORS.items():
        assert get_advantage_estimator(name) is fn
    with pytest.raises(ValueError, match="grpo"):
        get_advantage_estimator("gae")


def test_reinforce():
    adv, ret = get_advantage_estimator("reinforce")(REWARDS, KL, MASK, 2, KL_COEF)
    # token rewards: row0 [-.05, .95], row1 [-.05, -.05, -.05], row2 [1.95], row3 like row1
    expected_ret = [[0.9, 0.95, 0.0], [-0.15, -0.1, -0.05], [1.95, 0.0, 0.0], [-0.15, -0.1, -0.05]]
    close(ret, expected_ret)
    w = whiten_list([0.9, 0.95, -0.15, -0.1, -0.05, 1.95, -0.15, -0.1, -0.05])
    close(adv, [[w[0], w[1], 0.0], [w[2], w[3], w[4]], [w[5], 0.0, 0.0], [w[6], w[7], w[8]]])


def test_reinforce_baseline():
    # group means 0.5 and 1.0 -> r' = [0.5, -0.5, 1.0, -1.0]; kl_coef = 0 keeps it simple
    adv, ret = get_advantage_estimator("reinforce_baseline")(REWARDS, KL, MASK, 2, 0.0)
    close(ret, [[0.5, 0.5, 0.0], [-0.5, -0.5, -0.5], [1.0, 0.0, 0.0], [-1.0, -1.0, -1.0]])
    w = whiten_list([0.5, 0.5, -0.5, -0.5, -0.5, 1.0, -1.0, -1.0, -1.0])
    close(adv, [[w[0], w[1], 0.0], [w[2], w[3], w[4]], [w[5], 0.0, 0.0], [w[6], w[7], w[8]]])


def test_reinforce_baseline_with_kl_and_gamma():
    # r' = [0.5, -0.5, 1.0, -1.0], token rewards -0.05 per token, gamma = 0.5
    _, ret = get_advantage_estimator("reinforce_baseline")(REWARDS, KL, MASK, 2, KL_COEF, gamma=0.5)
    # row0: [-.05, .45] -> G1 = .45, G0 = -.05 + .225 = .175
    # row1: [-.05, -.05, -.55] -> G2 = -.55, G1 = -.325, G0 = -.2125
    # row2: [.95]; row3: [-.05, -.05, -1.05] -> G2 = -1.05, G1 = -.575, G0 = -.3375
    close(ret, [[0.175, 0.45, 0.0], [-0.2125, -0.325, -0.55], [0.95, 0.0, 0.0], [-0.3375, -0.575, -1.05]])


def test_grpo():
    adv, ret = get_advantage_estimator("grpo")(REWARDS, KL, MASK, 2, KL_COEF)
    # group [1, 0]: mean .5, unbiased std sqrt(.5); group [2, 0]: mean 1, std sqrt(2)
    a = 0.5 / (math.sqrt(0.5) + 1e-6)
    b = 1.0 / (math.sqrt(2.0) + 1e-6)
    expected = [[a, a, 0.0], [-a, -a, -a], [b, 0.0, 0.0], [-b, -b, -b]]
    close(adv, expected)
    close(ret, expected)


def test_grpo_ignores_kl():
    adv_a, _ = get_advantage_estimator("grpo")(REWARDS, KL, MASK, 2, 0.0)
    adv_b, _ = get_advantage_estimator("grpo")(REWARDS, KL * 100, MASK, 2, 10.0)
    assert torch.equal(adv_a, adv_b)


def test_grpo_identical_rewards_give_zero():
    adv, ret = get_advantage_estimator("grpo")(T([0.7, 0.7, 0.7, 0.7]), KL, MASK, 2, KL_COEF)
    close(adv, torch.zeros(4, 3))
    close(ret, torch.zeros(4, 3))


def test_grpo_group_size_one_is_zero():
    adv, _ = get_advantage_estimator("grpo")(REWARDS, KL, MASK, 1, KL_COEF)
    close(adv, torch.zeros(4, 3))


def test_rloo():
    adv, ret = get_advantage_estimator("rloo")(REWARDS, KL, MASK, 2, KL_COEF)
    # r' = r - other sample = [1, -1, 2, -2]
    # token rewards: row0 [-.05, .95], row1 [-.05, -.05, -1.05], row2 [1.95], row3 [-.05, -.05, -2.05]
    expected = [[0.9, 0.95, 0.0], [-1.15, -1.1, -1.05], [1.95, 0.0, 0.0], [-2.15, -2.1, -2.05]]
    close(ret, expected)
    close(adv, expected)


def test_rloo_group_size_one_keeps_only_kl():
    adv, _ = get_advantage_estimator("rloo")(REWARDS, KL, MASK, 1, KL_COEF)
    close(adv, [[-0.1, -0.05, 0.0], [-0.15, -0.1, -0.05], [-0.05, 0.0, 0.0], [-0.15, -0.1, -0.05]])


@pytest.mark.parametrize("name", ["reinforce", "reinforce_baseline", "grpo", "rloo"])
def test_batch_not_multiple_of_group_size(name):
    with pytest.raises(ValueError, match="multiple of group_size"):
        get_advantage_estimator(name)(REWARDS[:3], KL[:3], MASK[:3], 2, KL_COEF)


@pytest.mark.parametrize("name", ["reinforce", "reinforce_baseline", "grpo", "rloo"])
def test_estimators_zero_padding_float32_and_pure(name):
    rewards = REWARDS.to(torch.bfloat16)
    kl = KL.to(torch.bfloat16)
    copies = (rewards.clone(), kl.clone(), MASK.clone())
    adv, ret = get_advantage_estimator(name)(rewards, kl, MASK, 2, KL_COEF, gamma=0.9)
    assert adv.dtype == torch.float32 and ret.dtype == torch.float32
    assert (adv[MASK == 0] == 0).all() and (ret[MASK == 0] == 0).all()
    for before, after in zip(copies, (rewards, kl, MASK)):
        assert torch.equal(before, after)
