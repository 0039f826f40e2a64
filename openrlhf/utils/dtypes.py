"""The one dtype rule shared by the trainer and the rollout engines."""

from __future__ import annotations

import torch


def policy_dtype(bf16: bool) -> torch.dtype:
    """The dtype the policy and the reference are loaded, scored and trained in: bf16 with --bf16,
    fp32 otherwise (whatever the checkpoint's own dtype). The engines sample in it too."""
    return torch.bfloat16 if bf16 else torch.float32
