"""When the behaviour policy's scoring pass can be skipped: one optimizer step per rollout and no
KL in the reward. The training forward then stands in with a ratio of exactly 1."""

import pytest
import torch

from openrlhf.algorithms import policy_loss
from openrlhf.knowrl.config import KnowRLConfig


def needs(samples, **overrides):
    return KnowRLConfig(**overrides).needs_old_logprobs(samples)


@pytest.mark.parametrize("samples,overrides,expected", [
    (16, dict(train_batch_size=16, use_kl_loss=True, kl_estimator="k3"), False),  # GRPO-style: one step, KL in the loss
    (16, dict(train_batch_size=16, init_kl_coef=0.0), False),          # no KL at all
    (16, dict(train_batch_size=16, init_kl_coef=1e-4), True),          # KL in the reward needs π_old
    (32, dict(train_batch_size=16, use_kl_loss=True, kl_estimator="k3"), True),   # a second step sees changed weights
    (16, dict(train_batch_size=16, use_kl_loss=True, kl_estimator="k3", max_epochs=2), True),
])
def test_when_old_logprobs_are_needed(samples, overrides, expected):
    assert needs(samples, **overrides) is expected


def test_detached_current_logprobs_give_the_on_policy_gradient():
    """Ratio 1 from a detached copy: the loss gradient is -A/normalizer per token, the REINFORCE
    gradient, the same as with a separately computed π_old equal to π."""
    logp = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    adv = torch.tensor([[2.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, stats = policy_loss(logp, logp.detach(), adv, mask)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-1.0, -1.0, 0.0]]))
    assert stats["clip_frac"] == 0.0 and stats["approx_kl"] == 0.0
