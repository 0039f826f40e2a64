"""A real two-node Ray cluster on one machine (a head raylet and a worker raylet, CPU only):
the driver connects by address, the placement plan pins one policy rank to each node, and the
KnowRL loop completes across them (gloo between the nodes' processes)."""

import json
import os
import subprocess
import sys

import pytest

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
    from tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    logs = tmp_path / "logs"
    argv = [sys.executable, "-m", "openrlhf.cli.train_knowrl", "--pretrain", model,
            "--ray_address", two_node_cluster.address,
            "--actor_num_nodes", "2", "--actor_num_gpus_per_node", "1", "--init_kl_coef", "0",
            "--save_path", str(tmp_path / "model"), "--ckpt_path", str(tmp_path / "ckpt"), "--log_dir", str(logs),
            "--num_iterations", "1", "--rollout_batch_size", "2", "--n_samples_per_prompt", "2",
            "--introspection_prompts", "2", "--tasks_per_introspection", "2", "--prompt_max_len", "768",
            "--generate_max_len", "8", "--introspection_max_len", "24", "--train_batch_size", "4",
            "--micro_train_batch_size", "2", "--min_group_reward", "0", "--max_group_reward", "1",
            "--actor_timeout", "600"]
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
