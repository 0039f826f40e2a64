"""The placement plan is what a real Ray cluster launches: a policy group and a tensor-parallel
engine's placement group get exactly the resources and the node the plan prints.

This machine has no GPU, so Ray is started with 3 logical GPUs (Ray schedules on its own
accounting; nothing touches CUDA). The engine is a stand-in actor launched through the same
`actor_options` that `create_vllm_engines` uses, because a real vLLM engine on GPUs cannot run
here; it reports the placement group vLLM's Ray executor would find and fill.
"""

import pytest
import ray

from openrlhf.trainer.actor_group import ModelGroup
from openrlhf.trainer.placement import ClusterResources, plan_placement
from openrlhf.utils.ray_utils import actor_options, get_with_timeout
from test_placement import layout

pytestmark = pytest.mark.e2e


@pytest.fixture
def ray_with_logical_gpus():
    ray.init(num_cpus=3, num_gpus=3, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_plan_resources_are_the_launched_resources(ray_with_logical_gpus):
    cluster = ClusterResources.from_ray_nodes(ray.nodes())
    cfg = layout(actor_num_gpus_per_node=1, needs_reference=False, vllm_num_engines=1, vllm_tensor_parallel_size=2)
    plan = plan_placement(cfg, cluster, use_gpu=True)
    assert plan.total_gpus == 3 and plan.per_node_gpus == (3,)
    node_id = cluster.nodes[0].node_id

    policy = ModelGroup("policy", 1, use_gpu=True, threads_per_rank=1, timeout=120,
                        placements=plan.rank_placements("policy"))
    where = get_with_timeout(policy.actors[0].__ray_call__.remote(
        lambda self: (ray.get_runtime_context().get_node_id(),
                      {k: v for k, v in ray.get_runtime_context().get_assigned_resources().items()
                       if k in ("GPU", "CPU")})), 120, "asking the policy rank where it runs")
    assert where == (node_id, dict(plan.group("policy").bundles[0]))

    @ray.remote
    class Engine:
        def placement(self):
            group = ray.util.get_current_placement_group()
            return ray.get_runtime_context().get_node_id(), group.bundle_specs if group else None

    engine_placement = plan.rank_placement("vllm", 0)
    engine = Engine.options(**actor_options(engine_placement)).remote()
    node, bundles = get_with_timeout(engine.placement.remote(), 120, "starting the stand-in engine")
    assert node == node_id
    assert bundles == [dict(b) for b in engine_placement.bundles] == [{"GPU": 1, "CPU": 1}] * 2
    # all 3 logical GPUs are now held by the plan's actors: nothing else fits
    assert ray.available_resources().get("GPU", 0) == 0
