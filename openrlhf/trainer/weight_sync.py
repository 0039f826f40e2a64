"""Weight sync from policy rank 0 to the rollout engines over a process group of their own.

Rank 0 of the group is policy rank 0; then every vLLM worker of every engine (an engine with
tensor parallelism N has N workers, each receives the full tensors and loads its own shard),
engine by engine. The group is built from a TCPStore
directly (not torch.distributed's default group), so it lives beside DeepSpeed's group in the
policy process and beside vLLM's in each engine. gloo on CPU, NCCL on GPU: the same code.
Policy rank 0's store binds a port the OS picks and holds it (`openrlhf.trainer.rendezvous`);
the engines connect to the port it reports.

Parameters travel in buckets: both sides cut the same metadata list into the same buckets, so
the sender flattens a bucket into one tensor and the receivers split it back by shape.

Colocated (`--colocate_all_models`), policy ranks and engines share devices, and NCCL cannot put
two ranks on one GPU: each bucket then travels as a handle instead (`SharedBucket`: CUDA IPC for a
GPU tensor, a file in /dev/shm for a CPU one), which the engine's workers open and copy from,
with no process group at all. Each engine worker opens the handle of the policy
rank with its own index (on a GPU, the rank on the same device).

Simplification: each worker holds every received tensor until the last bucket, then loads them
all at once (memory: one full copy of the weights per worker during the sync).
"""

from __future__ import annotations

import datetime
import os
import pickle
from dataclasses import dataclass

import ray
import torch
import torch.distributed as dist

from openrlhf.utils.errors import EngineDied, RankDied
from openrlhf.utils.ray_utils import get_with_timeout

_DTYPES = {str(t): t for t in (torch.float32, torch.bfloat16, torch.float16)}


@dataclass(frozen=True)
class ParamMeta:
    """Name, shape and dtype of one policy parameter, in the order the weight sync sends them."""
    name: str
    shape: tuple[int, ...]
    dtype: str              # str(torch.dtype), e.g. "torch.float32"

    @property
    def nbytes(self) -> int:
        """Bytes of the full (unsharded) tensor."""
        return _DTYPES[self.dtype].itemsize * max(1, int(torch.Size(self.shape).numel()))


def plan_buckets(metadata: list[ParamMeta], bucket_bytes: int) -> list[list[int]]:
    """Consecutive indices of same-dtype parameters, each bucket at most `bucket_bytes`
    (a single larger parameter gets a bucket of its own)."""
    buckets: list[list[int]] = []
    size = 0
    for i, meta in enumerate(metadata):
        current = buckets[-1] if buckets else None
        fits = current is not None and metadata[current[0]].dtype == meta.dtype and size + meta.nbytes <= bucket_bytes
        if fits:
            current.append(i)
            size += meta.nbytes
        else:
            buckets.append([i])
            size = meta.nbytes
    return buckets


class WeightSyncGroup:
    """This process's member of the weight-sync group. `store`: policy rank 0's own store
    (`rendezvous.open_store`) on rank 0, a connection to it (`rendezvous.join_store`) elsewhere.
    The constructor returns once all `world_size` ranks have joined (or raises after `timeout_s`)."""

    def __init__(self, store: dist.Store, rank: int, world_size: int, use_gpu: bool, timeout_s: float = 600.0):
        timeout = datetime.timedelta(seconds=timeout_s)
        self.rank = rank
        self.store = store      # rank 0's store must outlive the group: it holds the port
        prefixed = dist.PrefixStore("knowrl-weight-sync", store)
        if use_gpu:
            self.group = dist.ProcessGroupNCCL(prefixed, rank, world_size)
        else:
            self.group = dist.ProcessGroupGloo(prefixed, rank, world_size, timeout)

    def broadcast(self, tensor: torch.Tensor) -> None:
        """Broadcast `tensor` in place from rank 0 (the policy) to every rank of the group; blocks until done."""
        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        self.group.broadcast([tensor], opts).wait()

    def send_bucket(self, tensors: list[torch.Tensor]) -> None:
        """Rank 0: send `tensors` (one bucket) as one flat broadcast, in order."""
        flat = torch.cat([t.detach().reshape(-1) for t in tensors]) if len(tensors) > 1 else \
            tensors[0].detach().reshape(-1).contiguous()
        self.broadcast(flat)

    def receive_bucket(self, metas: list[ParamMeta], device) -> list[tuple[str, torch.Tensor]]:
        """Receive one bucket broadcast by rank 0 onto `device`; returns (name, tensor) per entry of `metas`,
        each shaped as its metadata says (views into one flat buffer)."""
        flat = torch.empty(sum(int(torch.Size(m.shape).numel()) for m in metas), dtype=_DTYPES[metas[0].dtype],
                           device=device)
        self.broadcast(flat)
        return split_bucket(flat, metas)


def connect_policy_to_engines(policy, engines: list, timeout: float) -> list[ParamMeta]:
    """Form the group (policy rank 0 + every engine) once; return the parameter list to sync."""
    rank0 = policy.actors[0]
    metadata = get_with_timeout(rank0.weight_metadata.remote(), timeout, "reading the policy's parameter list")
    workers = get_with_timeout([e.num_workers.remote() for e in engines], timeout, "asking the engines' sizes")
    world = 1 + sum(workers)
    host, port = get_with_timeout(rank0.open_weight_sync.remote(world, timeout), timeout,
                                  "opening the weight-sync rendezvous")
    refs = [rank0.init_weight_sync.remote(world, timeout)]
    refs += [e.init_weight_sync.remote(host, port, 1 + sum(workers[:i]), world, timeout)
             for i, e in enumerate(engines)]
    get_with_timeout(refs, timeout, "forming the weight-sync group")
    return metadata


def broadcast_policy_to_engines(policy, engines: list, metadata: list[ParamMeta], bucket_bytes: int,
                                timeout: float) -> None:
    """Every policy rank takes part (ZeRO-3 gathers); rank 0 sends; every engine receives and loads."""
    policy_refs = policy.call_all_async("broadcast_weights", bucket_bytes)
    engine_refs = [e.receive_weights.remote(metadata, bucket_bytes) for e in engines]
    dead = None
    for i, ref in enumerate(engine_refs):
        try:
            get_with_timeout(ref, timeout, f"syncing weights to vLLM engine {i}")
        except ray.exceptions.RayActorError:
            dead = i if dead is None else dead
    try:
        get_with_timeout(policy_refs, timeout, "broadcasting the policy weights")
    except ray.exceptions.RayActorError as exc:
        raise RankDied("policy", policy.rank_of(exc), "broadcasting the policy weights") from None
    except ray.exceptions.RayTaskError:
        if dead is None:
            raise
    # the sender fails too when a receiver's process is gone; the engine is what to report
    if dead is not None:
        raise EngineDied(dead, f"vLLM engine {dead} died during the weight sync")


class SharedBucket:
    """One flat bucket that processes on this node can map without a copy. On a GPU the handle is
    a CUDA IPC handle (torch's own pickling of a CUDA tensor); on a CPU the bucket is written to a
    file in /dev/shm that this object unlinks on `release` (torch's CPU sharing either passes file
    descriptors, which only a process's own children can receive, or leaves its files to a
    manager daemon). The exporter keeps the object until every receiver has copied the bucket."""

    def __init__(self, flat: torch.Tensor, name: str):
        self.path = None
        if flat.is_cuda:
            from multiprocessing.reduction import ForkingPickler

            self.tensor = flat
            self.handle = ("cuda", bytes(ForkingPickler.dumps(flat)))
        else:
            self.path = f"/dev/shm/knowrl-{name}"
            self.tensor = torch.from_file(self.path, shared=True, size=flat.numel(), dtype=flat.dtype)
            self.tensor.copy_(flat)
            self.handle = ("file", self.path, flat.numel(), str(flat.dtype))

    def release(self) -> None:
        """Drop the bucket: forget the tensor and unlink its /dev/shm file (CPU); safe to call twice."""
        self.tensor = None
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None


def open_handle(handle: tuple) -> torch.Tensor:
    """The exporter's bucket, mapped into this process (valid until the exporter releases it)."""
    if handle[0] == "cuda":
        from torch.multiprocessing import reductions  # noqa: F401 - the CUDA rebuild functions the handle names

        return pickle.loads(handle[1])
    _, path, numel, dtype = handle
    return torch.from_file(path, shared=True, size=numel, dtype=_DTYPES[dtype])


def split_bucket(flat: torch.Tensor, metas: list[ParamMeta]) -> list[tuple[str, torch.Tensor]]:
    """Split a flat bucket into (name, tensor) per entry of `metas`, each a view shaped as its metadata says.
    `flat` holds exactly the entries' elements, in order."""
    sizes = [int(torch.Size(m.shape).numel()) for m in metas]
    return [(m.name, chunk.view(m.shape)) for m, chunk in zip(metas, flat.split(sizes))]


def share_policy_with_engines(policy, engines: list, metadata: list[ParamMeta], bucket_bytes: int,
                              timeout: float) -> None:
    """The colocated sync: bucket by bucket, every policy rank exports a flat copy (ZeRO-3 gathers
    it), the engines' workers copy it out of the handle, then the next bucket replaces it; at the
    end each engine loads what it copied."""
    workers = get_with_timeout([e.num_workers.remote() for e in engines], timeout, "asking the engines' sizes")
    first = [sum(workers[:i]) for i in range(len(engines))]
    try:
        for index, bucket in enumerate(plan_buckets(metadata, bucket_bytes)):
            handles = policy.call_all("export_bucket", index, bucket_bytes)
            metas = [metadata[i] for i in bucket]
            wait_for_engines([e.copy_shared_bucket.remote(metas, handles, first[i]) for i, e in enumerate(engines)],
                             timeout, f"copying weight bucket {index} into the engines")
    finally:
        policy.call_all("release_exported")
    wait_for_engines([e.load_copied_weights.remote() for e in engines], timeout, "loading the shared weights")


def wait_for_engines(refs: list, timeout: float, what: str) -> None:
    """Wait for one call per engine; a dead engine becomes EngineDied(index) (the loop restarts it)."""
    for i, ref in enumerate(refs):
        try:
            get_with_timeout(ref, timeout, f"{what} (engine {i})")
        except ray.exceptions.RayActorError:
            raise EngineDied(i, f"vLLM engine {i} died while {what}") from None
