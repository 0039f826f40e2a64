"""A real two-node Ray cluster on one machine (a head raylet and a worker raylet, CPU only):
the driver connects by address, the placement plan pins one policy rank to each node, and the
KnowRL loop completes across them (gloo between the nodes' processes)."""

import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.e2e   # starts Ray, vLLM or DeepSpeed (see pytest.ini)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def two_node_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": 300 * 2**20,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=2, object_store_memory=300 * 2**20)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_loop_runs_across_two_nodes(tmp_path, two_node_cluster):
    from tiny_model import build_tiny_model, tiny_train_command

    model = build_tiny_model(tmp_path / "tiny")
    logs = tmp_path / "logs"
    argv = tiny_train_command(model, tmp_path, "--ray_address", two_node_cluster.address, "--num_iterations", "1",
                              "--actor_num_nodes", "2", "--actor_num_gpus_per_node", "1", "--init_kl_coef", "0")
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "cluster: 2 node(s)" in proc.stdout
    assert "iter 1/1" in proc.stdout
    placed = json.loads((logs / "placement.json").read_text())
    import ray

    ray.init(address=two_node_cluster.address)
    try:
        node_ids = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    finally:
        ray.shutdown()
    assert len(node_ids) == 2
    assert len(placed["policy"]) == 2 and set(placed["policy"]) == node_ids, "one policy rank on each node"
    assert placed["reference"] == []
    assert (tmp_path / "model" / "config.json").is_file()
