"""Memory estimate: analytic parameter counts against published sizes, ZeRO sharding, checkpointing."""

import dataclasses

import pytest

from openrlhf.knowrl.config import KnowRLConfig
from openrlhf.trainer.placement import ClusterResources, plan_placement
from openrlhf.utils.memory_plan import GIB, estimate_memory, model_size_from_config

LLAMA_31_8B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
    "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "head_dim": 128,
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
}
QWEN25_7B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584, "num_hidden_layers": 28,
    "num_attention_heads": 28, "num_key_value_heads": 4, "intermediate_size": 18944, "vocab_size": 152064,
    "tie_word_embeddings": False, "rms_norm_eps": 1e-6,
}
SMOLLM2_135M = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
    "tie_word_embeddings": True,
}


@pytest.mark.parametrize("config, published", [
    (LLAMA_31_8B, 8.03e9),
    (QWEN25_7B, 7.62e9),
    (SMOLLM2_135M, 134.5e6),
])
def test_parameter_counts_match_published_sizes(config, published):
    size = model_size_from_config(config)
    assert abs(size.params - published) / published < 0.005


def test_model_size_fields_and_qwen2_biases():
    size = model_size_from_config(QWEN25_7B)
    assert (size.hidden, size.layers, size.heads, size.kv_heads, size.head_dim) == (3584, 28, 28, 4, 128)
    assert (size.vocab, size.intermediate, size.tie_embeddings) == (152064, 18944, False)
    as_llama = model_size_from_config({**QWEN25_7B, "model_type": "llama"})
    # q/k/v biases: (28 + 2 * 4) heads x 128 per layer.
    assert size.params - as_llama.params == 28 * (28 + 2 * 4) * 128
    tied = model_size_from_config({**LLAMA_31_8B, "tie_word_embeddings": True})
    assert model_size_from_config(LLAMA_31_8B).params - tied.params == 128256 * 4096


def test_unsupported_configs_are_named():
    with pytest.raises(ValueError, match="hidden_size"):
        model_size_from_config({"model_type": "llama"})
    with pytest.raises(ValueError, match="mixture-of-experts"):
        model_size_from_config({**LLAMA_31_8B, "num_local_experts": 8})


def script_cfg(**overrides):
    """The 1x8 layout and memory flags of scripts/train_knowrl_gpu.sh."""
    fields = dict(actor_num_gpus_per_node=4, ref_num_gpus_per_node=2, vllm_num_engines=2,
                  vllm_gpu_memory_utilization=0.6, zero_stage=3, bf16=True, gradient_checkpointing=True,
                  micro_train_batch_size=2, micro_rollout_batch_size=4, prompt_max_len=1024, generate_max_len=1024)
    fields.update(overrides)
    return KnowRLConfig(**fields)


def estimate(cfg, config=LLAMA_31_8B, gpus=8):
    plan = plan_placement(cfg, ClusterResources.uniform(1, gpus, 96), use_gpu=True)
    return estimate_memory(model_size_from_config(config), cfg, plan)


def test_zero3_shards_optimizer_states_over_world_size():
    size = model_size_from_config(LLAMA_31_8B)
    one = estimate(script_cfg(actor_num_gpus_per_node=1, ref_num_gpus_per_node=1, vllm_num_engines=1))
    four = estimate(script_cfg())
    policy_1, policy_4 = one.role("policy"), four.role("policy")
    assert policy_4.item("optimizer") == pytest.approx(policy_1.item("optimizer") / 4)
    assert policy_4.item("weights") == pytest.approx(policy_1.item("weights") / 4)
    assert policy_4.item("gradients") == pytest.approx(policy_1.item("gradients") / 4)
    # bf16 AdamW: fp32 m, v and master weights = 12 bytes per parameter.
    assert policy_1.item("optimizer") == pytest.approx(size.params * 12 / GIB)


def test_zero_stages_shard_progressively():
    def policy(stage):
        return estimate(script_cfg(zero_stage=stage)).role("policy")
    s0, s1, s2, s3 = (policy(s) for s in range(4))
    assert s1.item("optimizer") == pytest.approx(s0.item("optimizer") / 4)
    assert s1.item("gradients") == s0.item("gradients")
    assert s2.item("gradients") == pytest.approx(s1.item("gradients") / 4)
    assert s2.item("weights") == s0.item("weights") and s3.item("weights") == pytest.approx(s2.item("weights") / 4)


def test_gradient_checkpointing_reduces_activations():
    with_ckpt = estimate(script_cfg()).role("policy").item("activations")
    without = estimate(script_cfg(gradient_checkpointing=False)).role("policy").item("activations")
    assert with_ckpt < without / 10


def test_adam_offload_takes_optimizer_states_off_the_gpu():
    resident = estimate(script_cfg()).role("policy")
    offloaded = estimate(script_cfg(adam_offload=True)).role("policy")
    assert resident.item("optimizer") > 0 and offloaded.item("optimizer") == 0
    assert resident.item("fp32 gradients") > 0 and offloaded.item("fp32 gradients") == 0
    assert offloaded.total_gib <= resident.total_gib - resident.item("optimizer") + 1e-9


def test_policy_total_against_h100_measurements():
    """Peaks measured by benchmarks/gpu_smoke.py on one H100 (benchmarks/results/gpu_smoke_h100*.json):
    ZeRO-2, one rank, bf16, gradient checkpointing, micro-batch 2 of 1024 + 1024 tokens."""
    from types import SimpleNamespace

    qwen05 = dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                  num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)
    qwen3 = dict(qwen05, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16)
    for config, offload, measured in ((qwen05, False, 11.10), (qwen3, False, 63.29), (qwen05, True, 4.92),
                                      (qwen3, True, 11.60)):
        cfg = SimpleNamespace(bf16=True, zero_stage=2, gradient_checkpointing=True, adam_offload=offload,
                              micro_train_batch_size=2, prompt_max_len=1024, generate_max_len=1024,
                              vllm_gpu_memory_utilization=0.5, actor_num_nodes=1, actor_num_gpus_per_node=1,
                              ref_num_nodes=1, ref_num_gpus_per_node=1, vllm_tensor_parallel_size=1, init_kl_coef=0.0)
        planned = estimate_memory(model_size_from_config(config), cfg).role("policy").total_gib
        assert 0.9 * measured <= planned <= 1.4 * measured, (config["hidden_size"], offload, planned, measured)


def test_fp32_doubles_weights_and_drops_master_copy():
    bf16 = estimate(script_cfg()).role("policy")
    fp32 = estimate(script_cfg(bf16=False)).role("policy")
    assert fp32.item("weights") == pytest.approx(2 * bf16.item("weights"))
    assert fp32.item("optimizer") == pytest.approx(bf16.item("optimizer") * 8 / 12)


def test_8b_script_layout_fits_80gib_and_describe_names_roles():
    est = estimate(script_cfg())
    assert est.role("policy").total_gib < 80
    assert est.role("reference").total_gib < 80
    vllm = est.role("vllm")
    assert vllm.item("weights") + vllm.item("KV cache") == pytest.approx(0.6 * 80)
    assert est.warnings == ()
    text = est.describe()
    for role in ("policy", "reference", "vllm"):
        assert role in text
    assert "estimate" in text and "WARNING" not in text


def test_warning_when_a_role_exceeds_the_gpu():
    est = estimate(script_cfg(zero_stage=0, gradient_checkpointing=False))
    assert est.role("policy").total_gib > 80
    assert any(w.startswith("policy needs") for w in est.warnings)
    assert "WARNING: policy needs" in est.describe()


def test_vllm_weights_larger_than_its_share_warn():
    cfg = script_cfg(vllm_gpu_memory_utilization=0.1)
    est = estimate(cfg)
    assert est.role("vllm").item("KV cache") == 0
    assert any("no room for a KV cache" in w for w in est.warnings)


def test_colocated_roles_add_up():
    # no plan: the placement plan refuses colocation on GPUs (not implemented), the estimate reads the flags
    cfg = script_cfg(ref_num_gpus_per_node=4, vllm_num_engines=4, colocate_all_models=True)
    est = estimate_memory(model_size_from_config(LLAMA_31_8B), cfg, None)
    assert est.colocated
    assert est.colocated_total_gib == pytest.approx(sum(r.total_gib for r in est.roles))
    assert "colocated" in est.describe()


def test_without_a_plan_reads_the_flags():
    cfg = script_cfg()
    size = model_size_from_config(SMOLLM2_135M)
    planned = estimate(cfg, SMOLLM2_135M)
    unplanned = estimate_memory(size, cfg, None)
    assert [r.total_gib for r in planned.roles] == pytest.approx([r.total_gib for r in unplanned.roles])
    no_kl = estimate_memory(size, dataclasses.replace(cfg, init_kl_coef=0.0), None)
    assert no_kl.role("reference") is None
