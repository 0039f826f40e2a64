"""Small helpers around Ray: every wait has a timeout and names what it was waiting for."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import ray
from ray.util.placement_group import NODE_ID_LABEL_KEY, placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

# What one rank reserves. A GPU rank (a training rank, a vLLM engine or one of its tensor-parallel
# workers) takes a GPU and a CPU to drive it; CPU ranks time-share the cores (every phase runs in
# turn), so they reserve none.
GPU_RANK_BUNDLE = {"GPU": 1, "CPU": 1}
CPU_RANK_BUNDLE = {"CPU": 0}


class RayWaitTimeout(RuntimeError):
    """A Ray wait ran past its deadline; the message names what was awaited."""


@dataclass(frozen=True)
class RankPlacement:
    """What one rank (a training rank, or one vLLM engine) is launched with.

    bundles: Ray resource bundles, e.g. ({"GPU": 1, "CPU": 1},): one for a training rank or an
        engine on one device; one per GPU for an engine with tensor parallelism N > 1 (its N vLLM
        workers fill them, all on one node).
    node_id: the Ray NodeID the rank must run on; None lets Ray choose.
    """

    bundles: tuple[dict, ...]
    node_id: str | None = None

    @classmethod
    def anywhere(cls, use_gpu: bool, gpus: int = 1) -> RankPlacement:
        """A rank launched without a placement plan (tests, benchmarks): the bundles a plan gives
        it (`gpus` of them on GPU, one on CPU), on any node."""
        return cls(tuple(dict(GPU_RANK_BUNDLE) for _ in range(gpus)) if use_gpu else (dict(CPU_RANK_BUNDLE),))


def actor_options(placement: RankPlacement) -> dict:
    """The keyword arguments of Ray's `.options()` that launch an actor exactly as `placement`
    says. One bundle: `num_gpus`/`num_cpus` of that bundle, held to `node_id` when given. Several
    (a tensor-parallel vLLM engine): a STRICT_PACK placement group of those bundles on
    `node_id`'s node; the actor itself reserves nothing in bundle 0 and the placement group is
    captured by its child actors, so vLLM's Ray executor finds it
    (`ray.util.get_current_placement_group`) and puts one worker in each bundle. Reusing the
    returned options for a replacement actor reuses that placement group."""
    if len(placement.bundles) == 1:
        bundle = placement.bundles[0]
        return {"num_gpus": bundle.get("GPU", 0), "num_cpus": bundle.get("CPU", 0),
                "scheduling_strategy": pin_to_node(placement.node_id)}
    selector = [{NODE_ID_LABEL_KEY: placement.node_id}] * len(placement.bundles) if placement.node_id else None
    group = placement_group([dict(b) for b in placement.bundles], strategy="STRICT_PACK",
                            bundle_label_selector=selector)
    return {"num_gpus": 0, "num_cpus": 0,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=0, placement_group_capture_child_tasks=True)}


def get_with_timeout(refs, timeout: float, what: str):
    """ray.get with a deadline; a stuck or unschedulable actor becomes a named error, not a hang.

    Results are collected as they finish, so a failed task (a dead actor) raises at once even
    while others are still running, or blocked in a collective waiting for the dead one.
    `refs`: one ObjectRef (returns its value) or a list (returns the values in order); `timeout`
    in seconds. Raises `RayWaitTimeout` naming `what`, or the first failed call's Ray error."""
    single = not isinstance(refs, list)
    pending = [refs] if single else list(refs)
    position = {ref: i for i, ref in enumerate(pending)}
    results: list = [None] * len(pending)
    deadline = time.monotonic() + timeout
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            raise RayWaitTimeout(
                f"timed out after {timeout:.0f}s {what}: an actor is stuck or could not be scheduled "
                f"(check `ray status` for free resources)"
            )
        for ref in ready:
            results[position[ref]] = ray.get(ref)
    return results[0] if single else results


def pin_to_node(node_id: str | None):
    """Ray scheduling strategy that holds an actor to the node the placement plan chose (None:
    let Ray choose)."""
    if not node_id:
        return None
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def remote_error_line(text: str) -> str:
    """The line naming the exception a remote call or actor constructor raised, e.g.
    "ValueError: max_model_len ... is too large", out of Ray's error text (a header, the remote
    traceback, then that exception; with chained exceptions, the last one). When that line only
    counts errors (pydantic: "1 validation error for ModelConfig"), its first detail is added.
    Falls back to the text's first line when it holds no traceback."""
    lines = text.strip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "')]
    if not lines:
        return ""
    if not frames:
        return lines[0].strip()
    after = lines[frames[-1] + 1:]
    # the frame's source line (and any ^^^ marker) is indented; the exception line is not
    for i, line in enumerate(after):
        if line.strip() and not line[0].isspace():
            header = line.strip()
            if re.search(r": \d+ validation errors? for ", header):
                detail = next((d.strip() for d in after[i + 1:] if d.strip()), "")
                header = f"{header}: {detail.split(' [type=')[0]}" if detail else header
            return header
    return lines[0].strip()
