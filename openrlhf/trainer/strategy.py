"""DeepSpeed configuration for policy and reference workers (ZeRO stages 0-3, CPU or GPU)."""

from __future__ import annotations


def deepspeed_config(*, zero_stage: int, bf16: bool, micro_batch_size: int,
                     max_norm: float, trainable: bool, adam_offload: bool = False) -> dict:
    """The DeepSpeed config dict of one rank: ZeRO `zero_stage` (0 for a frozen model at stages 1-2, which
    shard nothing it has), bf16 or fp32, `micro_batch_size` samples per micro-batch, gradient clipping at
    `max_norm`, optimizer states on the CPU with `adam_offload`. Raises ValueError for a stage outside 0-3
    or --adam_offload with stage 0."""
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"--zero_stage must be 0, 1, 2 or 3, got {zero_stage}")
    if not trainable and zero_stage in (1, 2):
        # Stages 1-2 shard optimizer state and gradients, which a frozen model does not have;
        # only ZeRO-3 (sharded parameters) changes anything for inference.
        zero_stage = 0
    zero = {"stage": zero_stage}
    if zero_stage == 3:
        zero.update(stage3_param_persistence_threshold="auto", stage3_prefetch_bucket_size="auto")
    if adam_offload and trainable:
        if zero_stage == 0:
            raise ValueError("--adam_offload needs ZeRO stage 1, 2 or 3")
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    config = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": 1,
        # The trainer decides where an optimizer step ends (the kept-sample count varies per
        # iteration), so DeepSpeed must not count micro-steps itself.
        "managed_gradient_accumulation": False,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
        # With offload DeepSpeed must step on the CPU with its own Adam; otherwise a torch AdamW is used.
        "zero_force_ds_cpu_optimizer": bool(adam_offload and trainable),
    }
    if trainable:
        config["gradient_clipping"] = max_norm
    return config
