"""The rollout batch the trainer consumes, and how it is cut into per-rank micro-batches.

Layout follows OpenRLHF: every sequence is [left-padded prompt | right-padded response], so all
responses start at the same column and response log-probs are one slice of the logits.
Samples are group-contiguous: rows i*n .. i*n+n-1 are the n answers to task i.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch


@dataclass
class Experience:
    """One training batch of B samples: P prompt columns and T response columns (shapes on each field)."""
    sequences: torch.Tensor          # [B, P+T] token ids: left-padded prompt, right-padded response
    attention_mask: torch.Tensor     # [B, P+T] 1 on real tokens
    action_mask: torch.Tensor        # [B, T] 1 on real response tokens
    rewards: torch.Tensor            # [B] scalar reward per sample
    old_logp: torch.Tensor | None = None    # [B, T] behaviour policy log-probs
    ref_logp: torch.Tensor | None = None    # [B, T] reference model log-probs
    kl: torch.Tensor | None = None          # [B, T] per-token KL estimate (policy vs reference)
    advantages: torch.Tensor | None = None  # [B, T]
    returns: torch.Tensor | None = None     # [B, T]

    @property
    def prompt_width(self) -> int:
        """P: the number of (left-padded) prompt columns in `sequences`."""
        return self.sequences.shape[1] - self.action_mask.shape[1]

    def __len__(self) -> int:
        return self.sequences.shape[0]

    def select(self, index: list[int]) -> dict[str, torch.Tensor]:
        """Rows `index` as a plain dict of tensors (what travels to a worker), with the columns
        that are padding in every selected row cut off: left of the prompts, right of the
        responses. Response columns keep their positions, so results are read back as `[:, :t]`."""
        rows = torch.as_tensor(index, dtype=torch.long)
        attention = self.attention_mask.index_select(0, rows)
        action = self.action_mask.index_select(0, rows)
        width_p = self.prompt_width
        start = int(attention[:, :width_p].any(0).long().argmax()) if width_p else 0
        used = action.any(0).nonzero()
        t = int(used[-1]) + 1 if len(used) else 1
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, torch.Tensor):
                continue
            value = value.index_select(0, rows)
            if f.name in ("sequences", "attention_mask"):
                value = value[:, start:width_p + t]
            elif value.dim() == 2:
                value = value[:, :t]
            out[f.name] = value
        return out


def build_experience(prompt_ids: list[list[int]], response_ids: list[list[int]], rewards: list[float],
                     pad_token_id: int) -> Experience:
    """Pad token-id lists into the fixed [prompt | response] layout."""
    if not prompt_ids or len(prompt_ids) != len(response_ids) or len(rewards) != len(prompt_ids):
        raise ValueError("build_experience needs equally long, non-empty prompt/response/reward lists")
    width_p = max(len(p) for p in prompt_ids)
    width_t = max(1, max(len(r) for r in response_ids))
    batch = len(prompt_ids)
    sequences = torch.full((batch, width_p + width_t), pad_token_id, dtype=torch.long)
    attention = torch.zeros((batch, width_p + width_t), dtype=torch.long)
    action = torch.zeros((batch, width_t), dtype=torch.float32)
    for row, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        sequences[row, width_p - len(p):width_p] = torch.as_tensor(p)
        attention[row, width_p - len(p):width_p] = 1
        if r:
            sequences[row, width_p:width_p + len(r)] = torch.as_tensor(r)
            attention[row, width_p:width_p + len(r)] = 1
            action[row, :len(r)] = 1.0
    return Experience(sequences, attention, action, torch.as_tensor(rewards, dtype=torch.float32))


def rank_micro_batches(num_items: int, world_size: int, micro_batch_size: int,
                       contiguous: bool = False) -> list[list[list[int]]]:
    """Deal items to ranks and cut each rank's share into micro-batches: round-robin, or in
    `contiguous` runs (neighbouring items, such as one task's n answers, stay on one rank and in
    one micro-batch where they fit, which prompt-prefix sharing needs).

    Every rank gets the same NUMBER of micro-batches (some possibly empty): ZeRO's collectives
    run inside forward/backward, so a rank that skipped one would deadlock the others.
    """
    if contiguous:
        bounds = [num_items * rank // world_size for rank in range(world_size + 1)]
        shares = [list(range(bounds[rank], bounds[rank + 1])) for rank in range(world_size)]
    else:
        shares = [list(range(rank, num_items, world_size)) for rank in range(world_size)]
    count = max(1, math.ceil(max(len(s) for s in shares) / micro_batch_size))
    return [[s[i * micro_batch_size:(i + 1) * micro_batch_size] for i in range(count)] for s in shares]


def optimizer_steps(num_items: int, train_batch_size: int) -> list[list[int]]:
    """Consecutive item indices per optimizer step; the last step may be smaller."""
    return [list(range(start, min(start + train_batch_size, num_items)))
            for start in range(0, num_items, train_batch_size)]
