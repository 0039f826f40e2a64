"""Advantage estimators for outcome-reward RL (critic-free).

Owns: a name -> function registry, the helpers that turn one scalar reward per
sample into per-token rewards and discounted returns, and the estimators
"reinforce" (Reinforce++), "reinforce_baseline", "grpo" and "rloo".

Simplifications: there is no value function, so no GAE; rewards arrive as one
scalar per sequence; samples are laid out group-contiguous (rows i*n..i*n+n-1
belong to prompt i). All math is float32 and every output is 0 on padding.

Shared signature:
    fn(rewards[B], kl[B,T], mask[B,T], group_size, kl_coef, gamma=1.0)
        -> (advantages[B,T], returns[B,T])
"""

from __future__ import annotations

from typing import Callable

import torch

from openrlhf.algorithms.losses import masked_whiten

AdvantageFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]

ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {}


def register_advantage_estimator(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator adding fn to ADVANTAGE_ESTIMATORS under name."""

    def deco(fn: AdvantageFn) -> AdvantageFn:
        if name in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return deco


def get_advantage_estimator(name: str) -> AdvantageFn:
    """The advantage function registered as `name` (--advantage_estimator). Raises ValueError naming the valid
    ones for an unknown name."""
    if name not in ADVANTAGE_ESTIMATORS:
        valid = ", ".join(sorted(ADVANTAGE_ESTIMATORS))
        raise ValueError(f"unknown advantage estimator {name!r}; valid: {valid}")
    return ADVANTAGE_ESTIMATORS[name]


# ---------------------------------------------------------------- group helpers


def check_group_size(batch_size: int, group_size: int) -> None:
    """Check that `batch_size` samples split into whole groups of `group_size` (the n samples of one prompt,
    laid out contiguously). Raises ValueError otherwise, or when `group_size` < 1."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if batch_size % group_size != 0:
        raise ValueError(
            f"batch size {batch_size} is not a multiple of group_size {group_size}; "
            "samples must be laid out as whole, contiguous groups"
        )


def group_view(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """[B] -> [B / group_size, group_size] (one row per prompt)."""
    check_group_size(x.shape[0], group_size)
    return x.reshape(-1, group_size)


def group_mean_baseline(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """r - mean of r over its group (the sample itself included)."""
    g = group_view(rewards.float(), group_size)
    return (g - g.mean(dim=1, keepdim=True)).reshape(-1)


def leave_one_out_baseline(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """r - mean of the other n-1 rewards in its group; 0 when the group has one sample."""
    g = group_view(rewards.float(), group_size)
    if group_size == 1:
        # nothing to compare against, so no learning signal rather than raw r
        return torch.zeros_like(rewards, dtype=torch.float32)
    others_mean = (g.sum(dim=1, keepdim=True) - g) / (group_size - 1)
    return (g - others_mean).reshape(-1)


# ------------------------------------------------------------- token helpers


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """[B] index of the last nonzero mask position of each row."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    # padding gets -1 so it can never win the max
    return torch.where(mask > 0, positions, torch.full_like(positions, -1)).max(dim=1).values


def token_level_rewards(
    scalar_rewards: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token reward: -kl_coef * kl on every real token, plus the sequence
    reward on the last real token of each row. 0 on padding."""
    mask = mask.float()
    penalty = -kl_coef * kl.float() * mask
    # a row without response tokens (-1) scatters into column 0, which the mask then zeroes
    last = last_token_index(mask).clamp(min=0).unsqueeze(1)
    outcome = torch.zeros_like(penalty).scatter(1, last, scalar_rewards.float().unsqueeze(1))
    return (penalty + outcome) * mask


def discounted_returns(token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """G_t = sum_{s>=t} gamma^(s-t) r_s over real tokens; 0 on padding."""
    mask = mask.float()
    r = token_rewards.float() * mask
    if gamma == 1.0:
        # reverse cumulative sum, no Python loop over T
        returns = r.flip(1).cumsum(1).flip(1)
    else:
        # scaling by gamma^t and dividing back under/overflows on long
        # responses, so walk backwards instead
        running = torch.zeros_like(r[:, 0])
        cols = []
        for t in range(r.shape[1] - 1, -1, -1):
            running = r[:, t] + gamma * running
            cols.append(running)
        returns = torch.stack(cols[::-1], dim=1)
    return returns * mask


def _returns_from_scalar(
    rewards: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float, gamma: float
) -> torch.Tensor:
    return discounted_returns(token_level_rewards(rewards, kl, mask, kl_coef), mask, gamma)


# ---------------------------------------------------------------- estimators


@register_advantage_estimator("reinforce")
def reinforce_advantages(
    rewards: torch.Tensor,
    kl: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
    kl_coef: float,
    gamma: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reinforce++: KL-shaped token returns, whitened over all real tokens of the batch."""
    check_group_size(rewards.shape[0], group_size)
    mask = mask.float()
    returns = _returns_from_scalar(rewards, kl, mask, kl_coef, gamma)
    return masked_whiten(returns, mask), returns


@register_advantage_estimator("reinforce_baseline")
def reinforce_baseline_advantages(
    rewards: torch.Tensor,
    kl: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
    kl_coef: float,
    gamma: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reinforce++ after subtracting each group's mean reward (removes per-prompt difficulty)."""
    shifted = group_mean_baseline(rewards, group_size)
    return reinforce_advantages(shifted, kl, mask, group_size, kl_coef, gamma)


@register_advantage_estimator("grpo")
def grpo_advantages(
    rewards: torch.Tensor,
    kl: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
    kl_coef: float,
    gamma: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO: (r - group mean) / (unbiased group std + 1e-6), broadcast over the row.

    kl, kl_coef and gamma are accepted for the shared signature but ignored:
    GRPO puts the KL term in the loss (see losses.kl_loss), not in the reward.
    returns is the same tensor as advantages.
    """
    check_group_size(rewards.shape[0], group_size)
    mask = mask.float()
    if group_size == 1:
        # the unbiased std is undefined for one sample; treat it as no signal
        scores = torch.zeros_like(rewards, dtype=torch.float32)
    else:
        g = group_view(rewards.float(), group_size)
        std = g.std(dim=1, unbiased=True, keepdim=True)
        scores = ((g - g.mean(dim=1, keepdim=True)) / (std + 1e-6)).reshape(-1)
    advantages = scores.unsqueeze(1) * mask
    # separate tensor so a caller editing one in place cannot corrupt the other
    return advantages, advantages.clone()


@register_advantage_estimator("rloo")
def rloo_advantages(
    rewards: torch.Tensor,
    kl: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
    kl_coef: float,
    gamma: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RLOO: leave-one-out baseline on the scalar reward, then KL-shaped returns
    used directly as advantages (no whitening)."""
    check_group_size(rewards.shape[0], group_size)
    mask = mask.float()
    shifted = leave_one_out_baseline(rewards, group_size)
    returns = _returns_from_scalar(shifted, kl, mask, kl_coef, gamma)
    return returns, returns
