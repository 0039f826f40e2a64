"""The placement plan: script layouts, refusals with their reasons, CPU, unknown cluster, and that
the plan's printed resources are the Ray options its actors are launched with."""

import itertools
import random
from types import SimpleNamespace

import pytest

from openrlhf.knowrl.config import KnowRLConfig
from openrlhf.trainer.placement import (
    ClusterResources,
    LayoutError,
    NodeResources,
    _pack,
    launch_text,
    plan_placement,
)
from openrlhf.utils import ray_utils
from openrlhf.utils.ray_utils import RankPlacement, actor_options

GPU_BUNDLE = {"GPU": 1, "CPU": 1}


def layout(**overrides):
    """The 1x8 layout of scripts/train_knowrl_gpu.sh, as a duck-typed config."""
    fields = dict(actor_num_nodes=1, actor_num_gpus_per_node=4, ref_num_nodes=1, ref_num_gpus_per_node=2,
                  vllm_num_engines=2, vllm_tensor_parallel_size=1, colocate_all_models=False, needs_reference=True)
    fields.update(overrides)
    return SimpleNamespace(**fields)


def layout_2x8():
    return layout(actor_num_nodes=2, ref_num_gpus_per_node=4, vllm_num_engines=4)


def cluster(num_nodes, gpus, cpus=64):
    return ClusterResources.uniform(num_nodes, gpus, cpus)


def test_script_layout_1x8_fills_one_node():
    plan = plan_placement(layout(), cluster(1, 8), use_gpu=True)
    policy, reference, vllm = (plan.group(g) for g in ("policy", "reference", "vllm"))
    assert [g.name for g in plan.groups] == ["policy", "reference", "vllm"]
    assert policy.bundles == (GPU_BUNDLE,) * 4 and policy.nodes == (0,) * 4 and policy.ranks == 4
    assert reference.bundles == (GPU_BUNDLE,) * 2 and reference.nodes == (0, 0)
    assert vllm.bundles == (GPU_BUNDLE,) * 2 and vllm.nodes == (0, 0) and vllm.ranks == 2
    assert plan.total_gpus == 8 and plan.per_node_gpus == (8,)
    text = plan.describe()
    for word in ("policy", "reference", "vllm", "total 8 GPU"):
        assert word in text


def test_script_layout_1x8_on_two_nodes_packs_the_first():
    plan = plan_placement(layout(), cluster(2, 8), use_gpu=True)
    assert plan.per_node_gpus == (8, 0) and plan.total_gpus == 8


def test_script_layout_2x8():
    plan = plan_placement(layout_2x8(), cluster(2, 8), use_gpu=True)
    policy, reference, vllm = (plan.group(g) for g in ("policy", "reference", "vllm"))
    assert policy.ranks == 8 and policy.nodes == (0, 0, 0, 0, 1, 1, 1, 1)
    assert reference.nodes == (0, 0, 0, 0)
    assert vllm.ranks == 4 and vllm.nodes == (1, 1, 1, 1)
    assert all(b == GPU_BUNDLE for g in plan.groups for b in g.bundles)
    assert plan.total_gpus == 16 and plan.per_node_gpus == (8, 8)


def test_real_config_object_is_accepted():
    cfg = KnowRLConfig(actor_num_gpus_per_node=4, ref_num_gpus_per_node=2, vllm_num_engines=2)
    assert plan_placement(cfg, cluster(1, 8), use_gpu=True).total_gpus == 8
    no_kl = KnowRLConfig(actor_num_gpus_per_node=4, vllm_num_engines=2, init_kl_coef=0.0)
    plan = plan_placement(no_kl, cluster(1, 8), use_gpu=True)
    assert plan.group("reference") is None and plan.total_gpus == 6
    assert "none (KL off" in plan.describe()


@pytest.mark.parametrize("cfg, nodes, needed, have", [
    (layout(), cluster(1, 4), 8, 4),
    (layout_2x8(), cluster(1, 8), 16, 8),
])
def test_too_small_cluster_names_the_shortfall(cfg, nodes, needed, have):
    with pytest.raises(LayoutError) as err:
        plan_placement(cfg, nodes, use_gpu=True)
    msg = str(err.value)
    assert f"needs {needed} GPUs" in msg and f"has {have}" in msg and f"short by {needed - have}" in msg
    assert "\n" not in msg


def test_policy_needing_more_nodes_with_k_gpus_than_exist():
    # 16 GPUs in total, but only one node has 4.
    nodes = ClusterResources((NodeResources(4, 64), NodeResources(2, 64), NodeResources(2, 64),
                              NodeResources(2, 64), NodeResources(2, 64), NodeResources(2, 64),
                              NodeResources(2, 64)))
    with pytest.raises(LayoutError, match=r"policy needs 4 GPUs on each of 2 nodes but only 1 node"):
        plan_placement(layout(actor_num_nodes=2, needs_reference=False), nodes, use_gpu=True)


def test_tp_larger_than_any_node_refused():
    cfg = layout(actor_num_gpus_per_node=2, ref_num_gpus_per_node=2, vllm_num_engines=1, vllm_tensor_parallel_size=4)
    with pytest.raises(LayoutError, match=r"--vllm_tensor_parallel_size 4 needs 4 GPUs on one node but the largest "
                                          r"node has 2"):
        plan_placement(cfg, cluster(4, 2), use_gpu=True)


def test_engine_tp_gpus_stay_on_one_node():
    cfg = layout(actor_num_gpus_per_node=2, needs_reference=False, vllm_num_engines=3, vllm_tensor_parallel_size=2)
    plan = plan_placement(cfg, cluster(2, 4), use_gpu=True)
    vllm = plan.group("vllm")
    for engine in range(3):
        assert len({vllm.nodes[i] for i in vllm.rank_bundles(engine)}) == 1
    assert plan.per_node_gpus == (4, 4)


def test_groups_that_do_not_fit_together_are_refused():
    cfg = layout(actor_num_gpus_per_node=3, ref_num_gpus_per_node=3, vllm_num_engines=1, vllm_tensor_parallel_size=2)
    with pytest.raises(LayoutError, match=r"do not fit together.*vLLM engine 0 needs 2 GPU\(s\) on one node"):
        plan_placement(cfg, cluster(2, 4), use_gpu=True)


def test_search_finds_a_placement_the_greedy_order_misses():
    # Fullest-fit would put the single policy rank on the 1-GPU node, leaving the 2-node reference
    # group without a second node.
    nodes = ClusterResources((NodeResources(1, 8), NodeResources(3, 8)))
    cfg = layout(actor_num_gpus_per_node=1, ref_num_nodes=2, ref_num_gpus_per_node=1, vllm_num_engines=1)
    plan = plan_placement(cfg, nodes, use_gpu=True)
    assert plan.group("policy").nodes == (1,)
    assert plan.group("reference").nodes == (0, 1)
    assert plan.per_node_gpus == (1, 3)


def test_pack_agrees_with_brute_force():
    def brute(places, units):
        def rec(i, free):
            if i == len(units):
                return True
            count, need = units[i]
            for combo in itertools.combinations(range(len(free)), count):
                if all(free[j] >= need for j in combo):
                    rest = list(free)
                    for j in combo:
                        rest[j] -= need
                    if rec(i + 1, rest):
                        return True
            return False
        return rec(0, list(places))

    rng = random.Random(0)
    for _ in range(400):
        places = tuple(rng.randint(0, 8) for _ in range(rng.randint(1, 4)))
        units = [(rng.randint(1, 3), rng.randint(1, 5)) for _ in range(rng.randint(1, 4))]
        result = _pack(places, units)
        assert (result is not None) == brute(places, units), (places, units)
        if result is not None:
            free = list(places)
            for (count, need), nodes in zip(units, result):
                assert len(set(nodes)) == count
                for j in nodes:
                    free[j] -= need
            assert min(free) >= 0


def test_gpu_ranks_need_a_cpu_each():
    with pytest.raises(LayoutError, match=r"node 0 has 8 GPUs but 4 CPUs"):
        plan_placement(layout(), cluster(1, 8, cpus=4), use_gpu=True)


def test_counts_below_one_refused():
    with pytest.raises(LayoutError, match=r"--vllm_num_engines is 0"):
        plan_placement(layout(vllm_num_engines=0), None, use_gpu=True)
    with pytest.raises(LayoutError, match=r"--ref_num_gpus_per_node is 0"):
        plan_placement(layout(ref_num_gpus_per_node=0), cluster(1, 8), use_gpu=True)
    # Without a reference its flags are not read.
    plan_placement(layout(ref_num_gpus_per_node=0, needs_reference=False), cluster(1, 8), use_gpu=True)


def test_colocation_on_gpu_refused():
    cfg = layout(actor_num_gpus_per_node=4, ref_num_gpus_per_node=4, vllm_num_engines=2, vllm_tensor_parallel_size=2,
                 colocate_all_models=True)
    for nodes in (cluster(1, 8), None):
        with pytest.raises(LayoutError, match=r"--colocate_all_models on GPUs is not implemented.*drop the flag"):
            plan_placement(cfg, nodes, use_gpu=True)


def test_cpu_layout_on_one_node():
    cfg = layout(actor_num_gpus_per_node=2, ref_num_gpus_per_node=1, vllm_num_engines=1)
    nodes = ClusterResources((NodeResources(gpus=0, cpus=2),))
    plan = plan_placement(cfg, nodes, use_gpu=False)
    assert not plan.use_gpu and plan.total_gpus == 0 and plan.per_node_gpus == (0,)
    policy = plan.group("policy")
    assert policy.ranks == 2 and policy.nodes == (0, 0)
    assert all(b == {"CPU": 0} for g in plan.groups for b in g.bundles)
    assert "CPU" in plan.describe()


def test_cpu_refusals():
    nodes = ClusterResources((NodeResources(gpus=0, cpus=2),))
    with pytest.raises(LayoutError, match=r"--vllm_tensor_parallel_size 2 needs GPUs.*"
                                          r"set --vllm_tensor_parallel_size 1"):
        plan_placement(layout(vllm_tensor_parallel_size=2), nodes, use_gpu=False)
    with pytest.raises(LayoutError, match=r"policy asks for 2 nodes .* cluster has 1 alive node"):
        plan_placement(layout(actor_num_nodes=2, actor_num_gpus_per_node=1), nodes, use_gpu=False)
    # Many CPU ranks may share one node.
    plan_placement(layout(actor_num_gpus_per_node=8, ref_num_gpus_per_node=8, vllm_num_engines=4), nodes, use_gpu=False)


def test_unknown_cluster_checks_only_flags():
    # TP 4 with 2 policy GPUs per node is not a rule: nothing is known about the nodes.
    cfg = layout(actor_num_gpus_per_node=2, vllm_num_engines=1, vllm_tensor_parallel_size=4)
    plan = plan_placement(cfg, None, use_gpu=True)
    assert plan.total_gpus == 8 and plan.per_node_gpus == ()
    assert all(n is None for g in plan.groups for n in g.nodes)
    assert "cluster unknown" in plan.describe()
    cpu = plan_placement(layout(actor_num_nodes=3), None, use_gpu=False)
    assert cpu.group("policy").ranks == 12 and "cluster unknown" in cpu.describe()


def test_from_ray_nodes_ignores_dead_nodes():
    ray_nodes = [
        {"NodeID": "a" * 56, "Alive": True, "NodeManagerAddress": "10.0.0.1",
         "Resources": {"CPU": 96.0, "GPU": 8.0, "memory": 1e12, "node:10.0.0.1": 1.0,
                       "node:__internal_head__": 1.0, "accelerator_type:H100": 1.0}},
        {"NodeID": "b" * 56, "Alive": False, "NodeManagerAddress": "10.0.0.2",
         "Resources": {"CPU": 96.0, "GPU": 8.0}},
        {"NodeID": "c" * 56, "Alive": True, "NodeManagerAddress": "10.0.0.3",
         "Resources": {"CPU": 96.0, "GPU": 8.0, "node:10.0.0.3": 1.0}},
        {"NodeID": "d" * 56, "Alive": True, "NodeManagerAddress": "10.0.0.4",
         "Resources": {"CPU": 16.0, "node:10.0.0.4": 1.0}},
    ]
    res = ClusterResources.from_ray_nodes(ray_nodes)
    assert [(n.gpus, n.cpus) for n in res.nodes] == [(8, 96), (8, 96), (0, 16)]
    assert [n.address for n in res.nodes] == ["10.0.0.1", "10.0.0.3", "10.0.0.4"]
    assert res.total_gpus == 16
    plan = plan_placement(layout_2x8(), res, use_gpu=True)
    assert plan.per_node_gpus == (8, 8, 0)



@pytest.fixture
def recorded_groups(monkeypatch):
    """Placement groups `actor_options` asks for, recorded instead of created: creating one needs
    a running Ray (tests/test_placement_launch.py creates real ones)."""
    made = []

    def record(bundles, strategy, bundle_label_selector=None):
        made.append(SimpleNamespace(bundle_specs=bundles, strategy=strategy, selector=bundle_label_selector))
        return made[-1]

    monkeypatch.setattr(ray_utils, "placement_group", record)
    return made


def launched_resources(placement: RankPlacement) -> list[dict]:
    """The resources `actor_options` launches a rank with, as bundles: its own num_gpus/num_cpus,
    or the bundles of the placement group it asks for."""
    options = actor_options(placement)
    group = getattr(options["scheduling_strategy"], "placement_group", None)
    if group is not None:
        assert options["num_gpus"] == options["num_cpus"] == 0, "the engine actor itself sits in bundle 0"
        return [dict(b) for b in group.bundle_specs]
    return [{k: v for k, v in (("GPU", options["num_gpus"]), ("CPU", options["num_cpus"])) if v or k == "CPU"}]


@pytest.mark.parametrize("cfg, nodes, use_gpu", [
    (layout(), cluster(1, 8), True),
    (layout(actor_num_gpus_per_node=2, needs_reference=False, vllm_num_engines=3, vllm_tensor_parallel_size=2),
     cluster(2, 4), True),
    (layout(actor_num_gpus_per_node=2, ref_num_gpus_per_node=1, vllm_num_engines=2), cluster(1, 0, cpus=2), False),
])
def test_printed_plan_is_what_actors_are_launched_with(cfg, nodes, use_gpu, recorded_groups):
    plan = plan_placement(cfg, nodes, use_gpu=use_gpu)
    text = plan.describe()
    for g in plan.groups:
        line = next(line for line in text.splitlines() if line.strip().startswith(g.name))
        for rank in range(g.ranks):
            placement = plan.rank_placement(g.name, rank)
            assert launched_resources(placement) == list(g.bundles[i] for i in g.rank_bundles(rank))
            assert line.endswith(launch_text(placement))
    gpus_launched = sum(b.get("GPU", 0) for g in plan.groups for r in range(g.ranks)
                        for b in launched_resources(plan.rank_placement(g.name, r)))
    assert gpus_launched == plan.total_gpus


def test_tensor_parallel_engine_is_sized_and_pinned(recorded_groups):
    hex_ids = ["a" * 56, "b" * 56]
    ids = ClusterResources(tuple(NodeResources(4, 64, node_id=h) for h in hex_ids))
    cfg = layout(actor_num_gpus_per_node=2, needs_reference=False, vllm_num_engines=3, vllm_tensor_parallel_size=2)
    plan = plan_placement(cfg, ids, use_gpu=True)
    assert "each a placement group of 2 x {GPU: 1, CPU: 1} on one node" in plan.describe()
    vllm = plan.group("vllm")
    for engine in range(3):
        placement = plan.rank_placement("vllm", engine)
        node = hex_ids[vllm.nodes[vllm.rank_bundles(engine)[0]]]
        assert len(placement.bundles) == 2 and placement.node_id == node
        strategy = actor_options(placement)["scheduling_strategy"]
        assert strategy.placement_group_capture_child_tasks and strategy.placement_group_bundle_index == 0
        group = recorded_groups[-1]
        assert group.strategy == "STRICT_PACK" and group.selector == [{"ray.io/node-id": node}] * 2
    policy = actor_options(plan.rank_placement("policy", 0))["scheduling_strategy"]
    assert policy.node_id == hex_ids[plan.group("policy").nodes[0]] and policy.soft is False
