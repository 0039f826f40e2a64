"""A run's Ray actors: the vLLM engines (an `EnginePool`), the policy ranks and the reference
ranks, started on the nodes of the placement plan, wired for weight sync, and the record of
where each one actually runs (log_dir/placement.json)."""

from __future__ import annotations

import json
import os
import time

import ray

from openrlhf.knowrl.config import KnowRLConfig
from openrlhf.rollout.engine_pool import EnginePool
from openrlhf.rollout.vllm_engine import engine_dtype
from openrlhf.trainer.actor_group import ModelGroup
from openrlhf.trainer.placement import PlacementPlan
from openrlhf.utils.ray_utils import get_with_timeout


def launch_actors(cfg: KnowRLConfig, model_path: str, use_gpu: bool, plan: PlacementPlan | None
                  ) -> tuple[EnginePool, ModelGroup, ModelGroup | None]:
    """Start --vllm_num_engines engines, --actor_world_size policy ranks (trainable) and, when the
    run needs one, --ref_world_size reference ranks, each on its planned node (`plan` None: where
    Ray puts them); join the policy to the engines for weight sync. On CPU the engines, and each
    group's ranks, split the Ray node's CPUs as threads. Returns (engines, policy, reference or
    None), after writing where each actor runs to log_dir/placement.json and printing what
    started. Raises `EngineStartError`/`RankDied` naming what failed, `RayWaitTimeout` after
    --actor_timeout seconds."""
    started = time.perf_counter()
    def placements(group: str) -> list | None:
        return plan.rank_placements(group) if plan else None

    cpus = int(ray.available_resources().get("CPU", os.cpu_count() or 1)) or 1
    if use_gpu:
        engine_threads = policy_threads = ref_threads = None
    else:
        engine_threads = cpus
        policy_threads = max(1, cpus // cfg.actor_world_size)
        ref_threads = max(1, cpus // cfg.ref_world_size)
    engine_args = dict(
        model_path=model_path, seed=cfg.seed,
        max_model_len=cfg.prompt_max_len + max(cfg.generate_max_len, cfg.introspection_max_len),
        use_gpu=use_gpu, tensor_parallel_size=cfg.vllm_tensor_parallel_size,
        gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, dtype=engine_dtype(cfg.bf16),
        enforce_eager=cfg.enforce_eager, threads=engine_threads, kv_cache_gb=cfg.vllm_cpu_kvcache_gb,
        trust_remote_code=cfg.trust_remote_code, ready_timeout=cfg.actor_timeout)
    engines = EnginePool.launch(cfg.vllm_num_engines, placements("vllm"), engine_args,
                                max_restarts=cfg.max_engine_restarts, timeout=cfg.actor_timeout,
                                colocated=cfg.colocate_all_models, bucket_bytes=cfg.weight_sync_bucket_mb * 2**20)
    common = dict(zero_stage=cfg.zero_stage, bf16=cfg.bf16, seed=cfg.seed, trust_remote_code=cfg.trust_remote_code,
                  flash_attn=cfg.flash_attn, packing_samples=cfg.packing_samples,
                  share_prompt_prefix=cfg.share_prompt_prefix)
    policy = ModelGroup("policy", cfg.actor_world_size, use_gpu=use_gpu, threads_per_rank=policy_threads,
                        timeout=cfg.actor_timeout, placements=placements("policy"))
    init_refs = policy.call_all_async(
        "init_model", model_path, trainable=True, micro_batch_size=cfg.micro_train_batch_size,
        learning_rate=cfg.actor_learning_rate, weight_decay=cfg.l2, max_norm=cfg.max_norm,
        gradient_checkpointing=cfg.gradient_checkpointing, lr_warmup_steps=cfg.lr_warmup_steps,
        adam_offload=cfg.adam_offload, lora=cfg.lora, **common)
    reference = None
    if cfg.needs_reference:
        reference = ModelGroup("reference", cfg.ref_world_size, use_gpu=use_gpu, threads_per_rank=ref_threads,
                               timeout=cfg.actor_timeout, placements=placements("reference"))
        init_refs += reference.call_all_async("init_model", model_path, trainable=False,
                                              micro_batch_size=cfg.micro_rollout_batch_size, **common)
    get_with_timeout(init_refs, cfg.actor_timeout, "initialising the policy and reference models")
    engines.connect(policy)
    record_placement(cfg.log_dir, {"policy": policy.actors, "reference": reference.actors if reference else [],
                                   "vllm": engines.actors}, cfg.actor_timeout)
    print(ready_message(cfg, engines, reference, time.perf_counter() - started), flush=True)
    return engines, policy, reference


def ready_message(cfg: KnowRLConfig, engines: EnginePool, reference: ModelGroup | None, seconds: float) -> str:
    """What started, in how many seconds, how weights reach the engines and, with LoRA, what the
    engines and the reference get: the line(s) a run prints once its actors are up."""
    line = (f"[knowrl] {len(engines)} vLLM engine(s), {cfg.actor_world_size} policy rank(s), "
            f"{cfg.ref_world_size if reference else 0} reference rank(s) ready in {seconds:.1f}s; weights reach the "
            f"engines {'through shared memory (colocated)' if cfg.colocate_all_models else 'over a sync group'}; "
            f"engines and policy in {engines.engine_args['dtype']}")
    if cfg.lora is not None:
        line += (f"\n[knowrl] LoRA rank {cfg.lora_rank} (alpha {cfg.lora_alpha:g}) on {cfg.target_modules}; the "
                 f"engines get the merged weights")
        if cfg.needs_ref_logprobs and reference is None:
            line += "; reference log-probs from the policy with its adapter off, no reference model loaded"
    return line


def record_placement(log_dir: str, groups: dict[str, list], timeout: float) -> None:
    """Where every actor actually runs: `groups` maps a group name to its actors; writes
    log_dir/placement.json, group name -> the Ray node id of each actor in order."""
    placed = {name: get_with_timeout([a.node_id.remote() for a in actors], timeout, f"locating the {name} actors")
              for name, actors in groups.items()}
    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, "placement.json"), "w") as f:
        json.dump(placed, f, indent=1)
