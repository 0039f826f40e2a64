"""Token-level loss math for the RL trainer.

Owns: masked reductions (mean / sum / whitening), the three standard KL
estimators, the PPO clipped policy surrogate and the KL penalty loss.

Simplifications: every function is a pure function of [B, T] response-token
tensors plus a float mask (1.0 = real token, 0.0 = padding); there is no value
head / critic loss, no dual-clip and no entropy bonus. Reductions are a plain
token mean, optionally over a caller-supplied token count so that gradient
accumulation gives the token mean of the whole optimizer step.
"""

from __future__ import annotations

import torch

KL_ESTIMATORS = ("k1", "k2", "k3")

# exp(10) ~ 2.2e4 already makes k3 dominate any sensible loss; clamping the log
# ratio keeps exp() finite (and gradients bounded) when the policy has drifted
# far from the reference on a few tokens, e.g. early in training or after a
# numerically unlucky logit.
KL_LOG_RATIO_CLAMP = 10.0


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of x over positions where mask is nonzero (over all of x if dim is None)."""
    prod = x * mask
    return prod.sum() if dim is None else prod.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of x over the masked positions."""
    # clamp only protects an all-padding slice from 0/0; such a slice yields 0
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(x, mask, dim) / count.clamp_min(1e-8)


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8, shift_mean: bool = True
) -> torch.Tensor:
    """Normalise x to mean 0 / std 1 using statistics of the masked entries only.

    Uses the population variance (divide by the token count), so the masked
    entries of the result have std exactly 1 under that definition. With
    shift_mean=False only the scale changes and the original mean is kept.
    Padding positions come back as 0.
    """
    x = x.float()
    mask = mask.to(x.dtype)
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def compute_kl(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    estimator: str,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from log-probs of sampled tokens.

    With d = logp - ref_logp (clamped to [-10, 10], see KL_LOG_RATIO_CLAMP):
      k1 = d                  unbiased, high variance, can be negative
      k2 = d**2 / 2           biased, low variance, always >= 0
      k3 = exp(-d) - 1 + d    unbiased, low variance, always >= 0
    If mask is given, padding positions are 0.
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; valid: {', '.join(KL_ESTIMATORS)}")
    delta = (logp.float() - ref_logp.float()).clamp(-KL_LOG_RATIO_CLAMP, KL_LOG_RATIO_CLAMP)
    if estimator == "k1":
        kl = delta
    elif estimator == "k2":
        kl = 0.5 * delta**2
    else:
        kl = torch.exp(-delta) - 1.0 + delta
    if mask is not None:
        kl = kl * mask.to(kl.dtype)
    return kl


def _token_normalizer(mask: torch.Tensor, normalizer: float | torch.Tensor | None) -> torch.Tensor | float:
    if normalizer is None:
        return mask.sum().clamp_min(1.0)
    if isinstance(normalizer, torch.Tensor):
        # a token count is a constant, never something to differentiate
        return normalizer.detach().float()
    return float(normalizer)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    normalizer: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO clipped surrogate, summed over masked tokens and divided by normalizer.

    normalizer defaults to the number of masked tokens in this call. A trainer
    accumulating gradients over micro-batches should pass the token count of
    the whole optimizer step, so the summed micro-batch losses equal the token
    mean over the step instead of a mean of per-micro-batch means.

    Stats (floats, masked means over this call's tokens):
      clip_frac  - fraction of tokens where the clipped branch was the minimum
                   (i.e. the token contributes no gradient)
      approx_kl  - k3 estimate of KL(pi_old || pi)
      ratio_mean - mean importance ratio
    """
    mask = mask.float()
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    advantages = advantages.float().detach()
    log_ratio = logp.float() - old_logp.float().detach()
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages
    per_token = -torch.minimum(unclipped, clipped)
    loss = masked_sum(per_token, mask) / _token_normalizer(mask, normalizer)

    with torch.no_grad():
        stats = {
            "clip_frac": masked_mean((clipped < unclipped).float(), mask).item(),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask).item(),
            "ratio_mean": masked_mean(ratio, mask).item(),
        }
    return loss, stats


def kl_loss(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    mask: torch.Tensor,
    estimator: str = "k3",
    normalizer: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(pi || pi_ref) penalty: masked sum of the per-token estimate / normalizer
    (same normalisation contract as policy_loss)."""
    mask = mask.float()
    kl = compute_kl(logp, ref_logp.detach(), estimator, mask)
    return kl.sum() / _token_normalizer(mask, normalizer)
