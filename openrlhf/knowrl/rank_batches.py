"""How one experience batch is spread over a model group's ranks: the log-prob scoring passes
of the policy and the reference, and the micro-batches of each optimizer step of an update.
With --share_prompt_prefix a task's answers stay together (contiguous rows), so they share
micro-batches and one prompt forward."""

from __future__ import annotations

import random

import torch

from openrlhf.trainer.actor_group import ModelGroup
from openrlhf.trainer.experience import Experience, optimizer_steps, rank_micro_batches


def score_logprobs(passes: dict[str, tuple[ModelGroup, dict]], exp: Experience, micro_batch_size: int,
                   temperature: float, contiguous: bool, concurrent: bool) -> dict[str, torch.Tensor]:
    """Run each log-prob pass over `exp` (name -> (group, extra `compute_logprobs` keywords), e.g.
    "ref_logp" -> (the policy, {"disable_adapter": True}) with LoRA) and return name -> log-probs
    [B, T] in `exp`'s row order, 0 off the action mask. `concurrent`: submit every pass before
    collecting any (groups on devices of their own)."""
    pending, out = {}, {}
    for name, (group, kwargs) in passes.items():
        pending[name] = submit_logprobs(group, exp, micro_batch_size, temperature, contiguous, **kwargs)
        if not concurrent:
            out[name] = collect_logprobs(group, exp, *pending.pop(name))
    for name, (plan, refs) in pending.items():
        out[name] = collect_logprobs(passes[name][0], exp, plan, refs)
    return out


def submit_logprobs(group: ModelGroup, exp: Experience, micro_batch_size: int, temperature: float,
                    contiguous: bool, **kwargs) -> tuple[list, list]:
    """Start a log-prob pass of `group` over `exp` (`kwargs` go to `compute_logprobs`); returns
    the micro-batch plan and the refs."""
    plan = rank_micro_batches(len(exp), group.world_size, micro_batch_size, contiguous=contiguous)
    per_rank = [([exp.select(idx) if idx else None for idx in rank_plan],) for rank_plan in plan]
    return plan, group.submit_all("compute_logprobs", temperature, per_rank_args=per_rank, **kwargs)


def collect_logprobs(group: ModelGroup, exp: Experience, plan: list, refs: list) -> torch.Tensor:
    """The log-probs of a `submit_logprobs` pass in `exp`'s row order, [B, T], 0 off the mask."""
    results = group.collect(refs, "compute_logprobs")
    out = torch.zeros_like(exp.action_mask)
    for rank_plan, rank_results in zip(plan, results):
        for idx, logp in zip(rank_plan, rank_results):
            if idx:
                out[torch.as_tensor(idx), :logp.shape[1]] = logp
    return out * exp.action_mask


def epoch_order(rows: int, group_size: int, whole_groups: bool, rng: random.Random) -> list[int]:
    """The rows of one epoch in a random order (drawn from `rng`); `whole_groups`: the groups of
    `group_size` consecutive rows (a task's answers) are shuffled, not the rows inside them."""
    if whole_groups:
        groups = [list(range(i, min(i + group_size, rows))) for i in range(0, rows, group_size)]
        rng.shuffle(groups)
        return [i for g in groups for i in g]
    order = list(range(rows))
    rng.shuffle(order)
    return order


def train_step_batches(exp: Experience, order: list[int], world: int, train_batch_size: int,
                       micro_batch_size: int, contiguous: bool) -> list[list[dict]]:
    """One epoch's optimizer steps (`train_batch_size` rows of `order` each), per rank: a list of
    steps, each {"micro_batches": [Experience | None], "normalizer": float}. The normalizer is the
    step's action tokens / `world`: DeepSpeed averages gradients over ranks, so each rank dividing
    its token sums by it gives the token mean over the whole step."""
    per_rank: list[list[dict]] = [[] for _ in range(world)]
    for step in optimizer_steps(len(order), train_batch_size):
        rows = [order[i] for i in step]
        normalizer = float(exp.action_mask[torch.as_tensor(rows)].sum()) / world
        plan = rank_micro_batches(len(rows), world, micro_batch_size, contiguous=contiguous)
        for rank, rank_plan in enumerate(plan):
            per_rank[rank].append({"micro_batches": [exp.select([rows[i] for i in idx]) if idx else None
                                                     for idx in rank_plan], "normalizer": normalizer})
    return per_rank
