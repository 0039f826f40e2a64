"""A group of Ray actors, one per rank, that act as one data-parallel model.

The same class builds the policy group and the reference group: it starts the ranks, wires their
torch.distributed rendezvous (rank 0's store, `openrlhf.trainer.rendezvous`), and fans calls out
to every rank with a deadline.
"""

from __future__ import annotations

import ray

from openrlhf.trainer.model_worker import ModelWorker
from openrlhf.utils.errors import RankDied
from openrlhf.utils.ray_utils import RankPlacement, actor_options, get_with_timeout


class ModelGroup:
    """`world_size` `ModelWorker` actors, one per rank, forming one data-parallel model.

    name: "policy" or "reference" (used in error messages).
    use_gpu: each rank takes a GPU (and a CPU) unless `placements` says otherwise.
    threads_per_rank: torch/OpenMP threads of each rank on CPU (None: the library default).
    timeout: seconds any call to the group may take before `RayWaitTimeout`.
    placements: per rank, what it is launched with and where (`PlacementPlan.rank_placements`);
        None: `RankPlacement.anywhere(use_gpu)` for every rank.
    The ranks are started and their rendezvous wired here; raises `RankDied` naming a rank that
    died meanwhile, `RayWaitTimeout` when they cannot be scheduled within `timeout`.
    """

    def __init__(self, name: str, world_size: int, *, use_gpu: bool, threads_per_rank: int | None,
                 timeout: float, placements: list[RankPlacement] | None = None):
        self.name = name
        self.world_size = world_size
        self.timeout = timeout
        env = {"TOKENIZERS_PARALLELISM": "false"}
        if threads_per_rank:
            env["OMP_NUM_THREADS"] = str(threads_per_rank)
        actor_cls = ray.remote(ModelWorker)
        placements = placements or [RankPlacement.anywhere(use_gpu)] * world_size
        self.actors = [
            actor_cls.options(runtime_env={"env_vars": env}, **actor_options(placements[rank])
                              ).remote(rank, world_size, threads_per_rank)
            for rank in range(world_size)
        ]
        # rank 0's store takes its port from the OS and keeps it, so no other process can take it
        # before the group forms; the ranks learn the port from it
        addr, port = self._get(self.actors[0].open_rendezvous.remote(), "opening the rendezvous")
        self._get([a.set_rendezvous.remote(addr, port) for a in self.actors], "setting the rendezvous")

    def _get(self, refs, what: str):
        try:
            return get_with_timeout(refs, self.timeout, f"{what} ({self.name} group)")
        except ray.exceptions.RayActorError as exc:
            # dead_rank also collects the other ranks' failures, so none is left unread
            fallback = self.dead_rank(refs) if isinstance(refs, list) else None
            rank = self.rank_of(exc)
            raise RankDied(self.name, rank if rank is not None else fallback, what) from None
        except ray.exceptions.RayTaskError as exc:
            # A rank that loses its peer mid-collective fails too (a gloo/NCCL read error), often
            # before Ray has noticed the dead process: name the dead rank if there is one.
            dead = self.dead_rank(refs) if isinstance(refs, list) else None
            if dead is not None:
                raise RankDied(self.name, dead, what) from None
            cause = str(getattr(exc, "cause", exc)).strip().splitlines()
            raise RuntimeError(f"{self.name} group failed while {what}: {cause[-1] if cause else type(exc).__name__}"
                               ) from exc

    @staticmethod
    def dead_rank(refs: list, grace_s: float = 15.0) -> int | None:
        """The first rank (refs are in rank order) whose call ended because its process died."""
        ray.wait(refs, num_returns=len(refs), timeout=grace_s)
        for rank, ref in enumerate(refs):
            try:
                ray.get(ref, timeout=0)
            except ray.exceptions.RayActorError:
                return rank
            except Exception:  # noqa: BLE001 - other failures and unfinished calls are not deaths
                continue
        return None

    def rank_of(self, exc: ray.exceptions.RayActorError) -> int | None:
        """The rank of the actor whose death `exc` reports, or None when it is not one of ours."""
        dead = getattr(exc, "actor_id", None)
        for rank, actor in enumerate(self.actors):
            if dead is not None and actor._actor_id.hex() == dead:
                return rank
        return None

    def call_all(self, method: str, *args, per_rank_args: list[tuple] | None = None, **kwargs) -> list:
        """Call `method` on every rank (with rank-specific leading args if given); wait for all."""
        return self.collect(self.submit_all(method, *args, per_rank_args=per_rank_args, **kwargs), method)

    def submit_all(self, method: str, *args, per_rank_args: list[tuple] | None = None, **kwargs) -> list:
        """Start `method` on every rank without waiting; `collect` the refs (one per rank)."""
        refs = []
        for rank, actor in enumerate(self.actors):
            extra = per_rank_args[rank] if per_rank_args is not None else ()
            refs.append(getattr(actor, method).remote(*extra, *args, **kwargs))
        return refs

    def collect(self, refs: list, method: str) -> list:
        """Wait for `refs` (from `submit_all`) and return the results in rank order. Raises
        `RankDied` naming a dead rank, RuntimeError with a failed rank's error line, or
        `RayWaitTimeout` after the group's timeout."""
        return self._get(refs, f"calling {method}")

    def call_all_async(self, method: str, *args, **kwargs) -> list:
        """Start `method` with the same arguments on every rank; returns the refs, unchecked."""
        return [getattr(actor, method).remote(*args, **kwargs) for actor in self.actors]
