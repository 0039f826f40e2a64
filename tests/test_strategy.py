"""DeepSpeed configuration: stage mapping for a frozen reference, caller-owned step boundaries."""

import pytest

from openrlhf.trainer.strategy import deepspeed_config


@pytest.mark.parametrize("stage,frozen_stage", [(0, 0), (1, 0), (2, 0), (3, 3)])
def test_reference_stage(stage, frozen_stage):
    policy = deepspeed_config(zero_stage=stage, bf16=True, micro_batch_size=2, max_norm=1.0, trainable=True)
    reference = deepspeed_config(zero_stage=stage, bf16=True, micro_batch_size=2, max_norm=1.0, trainable=False)
    assert policy["zero_optimization"]["stage"] == stage
    assert reference["zero_optimization"]["stage"] == frozen_stage
    assert policy["gradient_clipping"] == 1.0 and "gradient_clipping" not in reference
    assert policy["managed_gradient_accumulation"] is False and policy["gradient_accumulation_steps"] == 1
    assert policy["bf16"] == {"enabled": True}


def test_adam_offload_moves_policy_optimizer_to_cpu():
    policy = deepspeed_config(zero_stage=3, bf16=True, micro_batch_size=2, max_norm=1.0, trainable=True,
                              adam_offload=True)
    reference = deepspeed_config(zero_stage=3, bf16=True, micro_batch_size=2, max_norm=1.0, trainable=False,
                                 adam_offload=True)
    assert policy["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert policy["zero_force_ds_cpu_optimizer"] is True
    assert "offload_optimizer" not in reference["zero_optimization"]
    with pytest.raises(ValueError, match="ZeRO stage 1, 2 or 3"):
        deepspeed_config(zero_stage=0, bf16=True, micro_batch_size=2, max_norm=1.0, trainable=True,
                         adam_offload=True)


def test_bad_stage():
    with pytest.raises(ValueError, match="--zero_stage"):
        deepspeed_config(zero_stage=4, bf16=False, micro_batch_size=1, max_norm=1.0, trainable=True)


def test_attention_backend_falls_back_to_sdpa_without_cuda():
    import torch

    from openrlhf.trainer.model_worker import attention_backend

    assert attention_backend(False) == "sdpa"
    if not torch.cuda.is_available():  # this machine: no CUDA, so flash-attention is never chosen
        assert attention_backend(True) == "sdpa"
