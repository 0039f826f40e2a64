"""The rollout engines of a training run, as one object: start, sampling (with restarts of dead
engines), per-iteration reseeding and the weight sync from the policy.

An engine whose process dies is replaced by a new actor on the same node, joined to a new
weight-sync group and given the policy's current weights, up to `max_restarts` times over the
run. Past that, the call that found the death raises `EngineRestartsExhausted`; the caller
knows whether the policy still holds the previous iteration (a death while sampling) or already
holds this iteration's update (a death in the post-update sync), and saves accordingly.
"""

from __future__ import annotations

import ray

from openrlhf.rollout.vllm_engine import (
    Generation,
    PendingGeneration,
    collect_from_engines,
    create_vllm_engines,
    submit_to_engines,
)
from openrlhf.trainer.weight_sync import (
    broadcast_policy_to_engines,
    connect_policy_to_engines,
    share_policy_with_engines,
)
from openrlhf.utils.errors import EngineDied, EngineRestartsExhausted
from openrlhf.utils.ray_utils import RankPlacement, actor_options, get_with_timeout


class EnginePool:
    """`len(actors)` vLLM engine actors (`LLMEngineActor`), one weight-sync peer of the policy.

    actors: the engine actors, in engine-index order (index i samples shard i of each request).
    launch_options: per engine, the Ray options it was launched with (`ray_utils.actor_options`):
        its node, or its placement group; a restart reuses them.
    engine_args: the keyword arguments of `create_vllm_engines` the engines started with
        (`seed` is the run seed: engine i starts from seed + i).
    max_restarts: restarts allowed over the run (--max_engine_restarts).
    timeout: seconds any single engine call may take before it is an error.
    colocated: the policy shares devices with the engines (weights go through shared memory).
    bucket_bytes: size of one weight-sync bucket, bytes.
    """

    def __init__(self, actors: list, launch_options: list[dict], engine_args: dict, *, max_restarts: int,
                 timeout: float, colocated: bool, bucket_bytes: int):
        self.actors = actors
        self.launch_options = launch_options
        self.engine_args = engine_args
        self.max_restarts = max_restarts
        self.timeout = timeout
        self.colocated = colocated
        self.bucket_bytes = bucket_bytes
        self.restarts = 0
        self.policy = None              # the ModelGroup whose weights the engines sample from
        self.weight_metadata: list = []  # the policy's parameter list, in sync order

    @classmethod
    def launch(cls, count: int, placements: list[RankPlacement] | None, engine_args: dict, **options) -> EnginePool:
        """Start `count` engines, each as its `placements` entry says (the plan's; None:
        `RankPlacement.anywhere`), and wait until they are ready. Raises `EngineStartError` naming
        the engine whose constructor failed."""
        placements = placements or [RankPlacement.anywhere(engine_args["use_gpu"],
                                                           engine_args.get("tensor_parallel_size", 1))] * count
        launch = [actor_options(p) for p in placements]
        return cls(create_vllm_engines(count, launch_options=launch, **engine_args), launch, engine_args, **options)

    def __len__(self) -> int:
        return len(self.actors)

    def connect(self, policy) -> None:
        """Make `policy` (a ModelGroup) the source of the engines' weights: read its parameter list
        and, unless colocated (handles, no group), form the weight-sync group with every engine."""
        self.policy = policy
        if self.colocated:
            self.weight_metadata = get_with_timeout(policy.actors[0].weight_metadata.remote(), self.timeout,
                                                    "reading the policy's parameter list")
        else:
            self.weight_metadata = connect_policy_to_engines(policy, self.actors, self.timeout)

    def reseed(self, iteration: int, only: int | None = None) -> None:
        """Seed each engine's sampler from (run seed, iteration, engine index), so a resumed run
        samples what the uninterrupted run sampled. `only`: that engine alone. A dead engine is
        skipped: the next `generate` finds it and restarts it."""
        for i, engine in enumerate(self.actors):
            if only is not None and i != only:
                continue
            try:
                get_with_timeout(engine.reseed.remote(self.engine_args["seed"] * 1_000_003 + iteration * 101 + i),
                                 self.timeout, f"seeding vLLM engine {i}")
            except ray.exceptions.RayActorError:
                pass

    def generate(self, prompts: list[list[int]], sampling: dict, n: int, iteration: int) -> list[list[Generation]]:
        """`n` samples of each prompt (token ids), in request order: `[len(prompts)][n]`.
        `sampling`: vLLM SamplingParams keywords. An engine that dies is restarted (synced and
        reseeded for `iteration`) and the whole request runs again. Raises
        `EngineRestartsExhausted` when no restart is left."""
        while True:
            try:
                return collect_from_engines(self.submit(prompts, sampling, n), self.timeout)
            except EngineDied as exc:
                self.replace(exc)
                self.sync_weights(iteration)    # the new engine needs the current weights
                self.reseed(iteration, only=exc.index)

    def submit(self, prompts: list[list[int]], sampling: dict, n: int) -> PendingGeneration:
        """Start a request without waiting (see `collect`); nothing is restarted here."""
        return submit_to_engines(self.actors, prompts, sampling, n, self.timeout)

    def collect(self, pending: PendingGeneration) -> list[list[Generation]]:
        """The samples of a `submit`ted request. Raises `EngineDied` when an engine died meanwhile:
        the caller drops the request; the next sync or `generate` restarts the engine."""
        return collect_from_engines(pending, self.timeout)

    def sync_weights(self, iteration: int) -> None:
        """Load the policy's current weights into every engine. An engine that dies during the
        sync is replaced and the sync runs again, until every engine holds the weights; the new
        engines are then reseeded for `iteration`. Raises `EngineRestartsExhausted` when a death
        finds no restart left (the policy's weights are unchanged by a sync either way)."""
        replaced = []
        while True:
            try:
                sync = share_policy_with_engines if self.colocated else broadcast_policy_to_engines
                sync(self.policy, self.actors, self.weight_metadata, self.bucket_bytes, self.timeout)
                break
            except EngineDied as exc:
                self.replace(exc)
                replaced.append(exc.index)
        for index in replaced:
            self.reseed(iteration, only=index)

    def replace(self, exc: EngineDied) -> None:
        """Kill the dead engine `exc.index` and start a new one on its node (with a seed of its
        own) joined to a new weight-sync group; its weights are the checkpoint's until the caller
        syncs. Raises `EngineRestartsExhausted` (from `exc`) when the restarts are used up."""
        if self.restarts >= self.max_restarts:
            raise EngineRestartsExhausted(f"{exc}; {self.restarts} restart(s) already used (--max_engine_restarts "
                                          f"{self.max_restarts})") from exc
        self.restarts += 1
        print(f"[knowrl] {exc}: restarting it ({self.restarts}/{self.max_restarts})", flush=True)
        ray.kill(self.actors[exc.index], no_restart=True)
        (self.actors[exc.index],) = create_vllm_engines(
            1, launch_options=[self.launch_options[exc.index]],
            **{**self.engine_args, "seed": self.engine_args["seed"] + 1000 * self.restarts})
        self.connect(self.policy)
