"""`python -m benchmarks.run [--quick]`: how much of the machine KnowRL turns into work.

Measures, on one model and one set of requests, and writes `results.json` plus a table:
1. rollout efficiency: tokens/s of a KnowRL engine actor (Ray + vLLM) on a classification rollout
   versus `vllm.LLM.generate` called in this process on the same requests;
2. training efficiency: tokens/s of the DeepSpeed policy worker (one rank; `--zero_stages`)
   versus a plain torch forward/backward/AdamW loop on the same micro-batches and the same loss,
   their steps taken in turn;
3. iteration breakdown: the wall time per phase of the last iteration of a short KnowRL run
   through the real CLI, and the overhead (iteration time not inside any phase); the run is the
   peer part's own (one run serves both);
4. peer: the classification workload (tasks x n samples, consensus reward, one optimizer step
   per rollout; `--peer_tasks`) through our CLI and through TRL's `GRPOTrainer`
   (`benchmarks/peer_trl.py`), samples per second after a warm-up step; skipped with a note when
   `trl` is not installed (`pip install -r requirements-bench.txt`);
5. scaling (`--scaling`, not in the default run): iteration time against tasks per iteration,
   samples per task and policy ranks, weight-sync time and peak memory (PSS of the run's process
   tree) of those runs, and the weight sync alone against model size;
6. overlap (`--only overlap`, not in the default run): steady iteration time with and without
   `--overlap_introspection`;
7. lora (`--only lora`, not in the default run): the policy worker's update tokens/s and peak
   memory with and without a rank-16 LoRA adapter (`--lora_rank`).
`--quick` uses a tiny random model (under 3 minutes); the default is the embedded SmolLM2-135M
(under 15 minutes on a 2-core machine). `--only rollout,training,iteration,peer,scaling,overlap,lora`
picks parts; `results["part_wall_s"]` records how long each took.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def classification_requests(tokenizer, count: int) -> list[list[int]]:
    from openrlhf.knowrl.prompts import (
        DEFAULT_ANSWER_PREFIX,
        DEFAULT_PROMPTS_DIR,
        build_classification_prompt,
        chat_prompt,
        load_seed_tasks,
        load_templates,
    )

    templates = load_templates(DEFAULT_PROMPTS_DIR)
    tasks = [s.task for s in load_seed_tasks(DEFAULT_PROMPTS_DIR)][:count]
    texts = [chat_prompt(tokenizer, build_classification_prompt(templates, t), DEFAULT_ANSWER_PREFIX) for t in tasks]
    return [tokenizer(t, add_special_tokens=False).input_ids for t in texts]


def generated_tokens(results) -> int:
    return sum(len(s["token_ids"]) for per_prompt in results for s in per_prompt)


def bench_rollout(model_path: str, requests: list[list[int]], n: int, max_tokens: int) -> dict:
    import ray

    from openrlhf.rollout.vllm_engine import LLMEngineActor, create_vllm_engines

    # ignore_eos makes both sides generate exactly max_tokens per sample: equal work to compare.
    sampling = {"temperature": 1.0, "max_tokens": max_tokens, "ignore_eos": True}
    threads = os.cpu_count()
    direct = LLMEngineActor(model_path, seed=0, max_model_len=1024, use_gpu=False, threads=threads)
    direct.generate(requests[:2], sampling, n)
    start = time.perf_counter()
    tokens = generated_tokens(direct.generate(requests, sampling, n))
    direct_s = time.perf_counter() - start
    del direct

    ray.init(num_cpus=threads, include_dashboard=False, log_to_driver=False)
    try:
        (engine,) = create_vllm_engines(1, model_path, seed=0, max_model_len=1024, use_gpu=False, threads=threads)
        ray.get(engine.generate.remote(requests[:2], sampling, n))
        start = time.perf_counter()
        actor_tokens = generated_tokens(ray.get(engine.generate.remote(requests, sampling, n)))
        actor_s = time.perf_counter() - start
    finally:
        ray.shutdown()
    return {"requests": len(requests), "n": n, "max_tokens": max_tokens,
            "direct_tokens_per_s": tokens / direct_s, "actor_tokens_per_s": actor_tokens / actor_s,
            "ratio": (actor_tokens / actor_s) / (tokens / direct_s), "goal": ">= 0.9"}


def micro_batches(tokenizer, requests, response_len: int, micro: int, count: int):
    from openrlhf.trainer.experience import build_experience

    responses = [[tokenizer.eos_token_id] * response_len for _ in requests]
    exp = build_experience(requests, responses, [float(i % 2) for i in range(len(requests))], tokenizer.pad_token_id)
    exp.old_logp = -torch_module().ones_like(exp.action_mask)
    exp.advantages = torch_module().randn(exp.action_mask.shape, generator=torch_module().Generator().manual_seed(0))
    batches = [exp.select(list(range(i, i + micro))) for i in range(0, min(len(exp), count * micro), micro)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    return batches, tokens


def torch_module():
    import torch

    return torch


def bench_training(model_path: str, batches: list[dict], tokens: int, repeats: int,
                   zero_stages: tuple[int, ...] = (0,)) -> dict:
    """A plain torch loop in this process against the DeepSpeed policy worker at each ZeRO stage
    (one rank), their optimizer steps taken in turn (torch, each stage, torch, ...) so that a
    drift in the machine's speed hits all of them alike; one warm-up round. On one rank ZeRO-1/2
    only shard over a single process, so stage 0 is the one-rank setting (`--zero_stages 0,2`
    adds the flag's default)."""
    import ray
    import torch
    from transformers import AutoModelForCausalLM

    from openrlhf.algorithms import policy_loss
    from openrlhf.trainer.actor_group import ModelGroup
    from openrlhf.trainer.model_worker import response_logprobs

    threads = os.cpu_count()
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    normalizer = float(sum(b["action_mask"].sum() for b in batches))

    def torch_step():
        for b in batches:
            logp = response_logprobs(model, b["sequences"], b["attention_mask"], b["action_mask"].shape[1])
            loss, _ = policy_loss(logp, b["old_logp"], b["advantages"], b["action_mask"], normalizer=normalizer)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step = [{"micro_batches": batches, "normalizer": normalizer}]
    kwargs = dict(clip_eps=0.2, temperature=1.0, use_kl_loss=False, kl_coef=0.0, kl_estimator="k1")
    ray.init(num_cpus=threads, include_dashboard=False, log_to_driver=False)
    try:
        groups = {}
        for stage in zero_stages:
            groups[stage] = ModelGroup(f"policy-zero{stage}", 1, use_gpu=False, threads_per_rank=threads, timeout=900)
            groups[stage].call_all("init_model", model_path, trainable=True, zero_stage=stage, bf16=False, seed=0,
                                   micro_batch_size=len(batches[0]["sequences"]), learning_rate=1e-6)
        runners = {"torch": torch_step, **{stage: (lambda g=g: g.call_all("train_steps", step, **kwargs))
                                           for stage, g in groups.items()}}
        seconds = {name: 0.0 for name in runners}
        for round_ in range(1 + repeats):
            for name, run in runners.items():
                began = time.perf_counter()
                run()
                if round_:
                    seconds[name] += (time.perf_counter() - began) / repeats
    finally:
        ray.shutdown()
    torch_s = seconds.pop("torch")
    per_stage = {f"zero{stage}": {"deepspeed_tokens_per_s": tokens / s, "ratio": torch_s / s}
                 for stage, s in seconds.items()}
    return {"micro_batches": len(batches), "tokens_per_step": tokens, "torch_tokens_per_s": tokens / torch_s,
            "deepspeed": per_stage, "rounds_timed": repeats, "goal": ">= 0.9"}


def bench_lora(model_path: str, batches: list[dict], tokens: int, repeats: int, rank: int = 16) -> dict:
    """The policy worker's update with and without a LoRA adapter (rank `rank`, all linear
    layers, alpha 2r), ZeRO-0, one rank each, steps taken in turn (full, LoRA, full, ...) after a
    warm-up round: tokens/s and the peak RSS of each worker process (`ModelWorker.peak_rss_bytes`)."""
    import ray

    from openrlhf.trainer.actor_group import ModelGroup
    from openrlhf.trainer.lora import LoraSettings

    threads = os.cpu_count()
    normalizer = float(sum(b["action_mask"].sum() for b in batches))
    step = [{"micro_batches": batches, "normalizer": normalizer}]
    kwargs = dict(clip_eps=0.2, temperature=1.0, use_kl_loss=False, kl_coef=0.0, kl_estimator="k1")
    ray.init(num_cpus=threads, include_dashboard=False, log_to_driver=False)
    try:
        groups, params = {}, {}
        for name, lora in (("full", None), (f"lora_r{rank}", LoraSettings(rank, 2.0 * rank))):
            groups[name] = ModelGroup(f"policy-{name}", 1, use_gpu=False, threads_per_rank=threads, timeout=900)
            params[name] = groups[name].call_all("init_model", model_path, trainable=True, zero_stage=0, bf16=False,
                                                 seed=0, micro_batch_size=len(batches[0]["sequences"]),
                                                 learning_rate=1e-6, lora=lora)[0]
        seconds = {name: 0.0 for name in groups}
        for round_ in range(1 + repeats):
            for name, group in groups.items():
                began = time.perf_counter()
                group.call_all("train_steps", step, **kwargs)
                if round_:
                    seconds[name] += (time.perf_counter() - began) / repeats
        peak = {name: group.call_all("peak_rss_bytes")[0] for name, group in groups.items()}
    finally:
        ray.shutdown()
    return {"tokens_per_step": tokens, "rounds_timed": repeats, "threads": threads,
            **{name: {"tokens_per_s": tokens / s, "peak_rss_gib": peak[name] / 2**30, "parameters": params[name]}
               for name, s in seconds.items()}}


def bench_iteration(rows: list[dict]) -> dict:
    """Phase breakdown of the last iteration of a KnowRL run (the peer part's own run)."""
    last = rows[-1]
    phases = {k.split("/", 1)[1]: v for k, v in last.items() if k.startswith("timing/") and k != "timing/iteration"}
    overhead = last["timing/iteration"] - sum(phases.values())
    return {"iteration": last["iteration"], "of": len(rows), "seconds": last["timing/iteration"], "phases": phases,
            "overhead_s": overhead, "overhead_share": overhead / last["timing/iteration"], "goal": "<= 0.10"}


def bench_overlap(model_path: str, quick: bool) -> dict:
    """Mean time of the steady iterations (2 and 3 of 4: each finds its tasks written and starts
    the next one's) with and without --overlap_introspection, on the iteration benchmark's shape."""
    size = ["--rollout_batch_size", "4", "--generate_max_len", "16", "--introspection_max_len", "48"] if quick else [
        "--rollout_batch_size", "8", "--n_samples_per_prompt", "6", "--generate_max_len", "24",
        "--introspection_max_len", "160", "--train_batch_size", "24", "--micro_train_batch_size", "6",
        "--micro_rollout_batch_size", "12", "--temperature", "0.8", "--min_group_reward", "0.0",
        "--max_group_reward", "1.0"]
    results = {}
    for name, extra in (("sequential", []), ("overlapped", ["--overlap_introspection"])):
        rows = run_cli(model_path, ["--num_iterations", "4", *size, *extra])[1:3]
        results[name] = {
            "iteration_s": sum(r["timing/iteration"] for r in rows) / len(rows),
            "phases": {k.split("/", 1)[1]: sum(r.get(k, 0.0) for r in rows) / len(rows)
                       for k in sorted({k for r in rows for k in r if k.startswith("timing/")})
                       if k != "timing/iteration"}}
        print(f"overlap {name}: {results[name]}", flush=True)
    results["speedup"] = results["sequential"]["iteration_s"] / results["overlapped"]["iteration_s"]
    return results


def run_cli(model_path: str, flags: list[str]) -> list[dict]:
    """A KnowRL run through the real CLI; its metrics rows. Peak RSS of the whole process tree is
    sampled from /proc while it runs."""
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import tiny_train_command

    with tempfile.TemporaryDirectory() as tmp:
        argv = tiny_train_command(model_path, tmp, *flags)
        log = Path(tmp) / "run.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
            peak = 0
            while proc.poll() is None:
                peak = max(peak, tree_pss_bytes(proc.pid))
                time.sleep(0.5)
        output = log.read_text()
        if proc.returncode:
            raise RuntimeError(f"benchmark run failed ({' '.join(flags)}):\n{output[-3000:]}")
        rows = [json.loads(line) for line in (Path(tmp) / "logs" / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row["peak_pss_gb"] = peak / 1e9
    return rows


def tree_pss_bytes(pid: int) -> int:
    """Proportional set size of a process and all its descendants (the CLI, the Ray processes it
    started and their actors): shared pages are split between the processes that map them."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
        except (OSError, StopIteration):
            continue
    return total


def peer_shape(quick: bool, tasks: int | None) -> dict:
    return {"tasks": tasks or (8 if quick else 4), "n": 4, "max_new_tokens": 16 if quick else 64, "steps": 3}


def run_knowrl_peer_side(model_path: str, shape: dict, share_prompt_prefix: bool = True) -> list[dict]:
    """The classification workload through our CLI with the algorithm GRPOTrainer runs
    (group-normalised advantages, k3 KL in the loss, beta 1e-4); its metrics rows. Each task's
    prompt is scored and trained once for its n answers (`--share_prompt_prefix`, exact) unless
    told not to."""
    tasks, n = shape["tasks"], shape["n"]
    micro = min(4, tasks) * n
    flags = ["--num_iterations", str(shape["steps"]), "--rollout_batch_size", str(tasks),
             "--n_samples_per_prompt", str(n), "--generate_max_len", str(shape["max_new_tokens"]),
             "--train_batch_size", str(tasks * n), "--micro_train_batch_size", str(micro),
             "--micro_rollout_batch_size", str(micro), "--introspection_prompts", "2",
             "--tasks_per_introspection", "4", "--introspection_max_len", "96", "--actor_learning_rate", "1e-6",
             "--advantage_estimator", "grpo", "--use_kl_loss", "--kl_estimator", "k3", "--init_kl_coef", "1e-4"]
    if share_prompt_prefix:
        flags.append("--share_prompt_prefix")
    return run_cli(model_path, flags)


def check_trl_from(path: str, shape: dict) -> str | None:
    """Why an earlier results.json cannot stand in for this run's TRL side, or None."""
    try:
        stored = json.loads(Path(path).read_text())["peer"]
    except (OSError, ValueError, KeyError) as exc:
        return f"--trl_from {path}: not a results.json with a peer part ({exc})"
    if not stored.get("trl"):
        return f"--trl_from {path}: its peer part has no TRL measurement"
    keys = ("tasks", "n", "max_new_tokens")
    theirs = {k: stored.get("shape", {}).get(k) for k in keys}
    if theirs != {k: shape[k] for k in keys}:
        return (f"--trl_from {path} measured {theirs}, this run is {({k: shape[k] for k in keys})}: "
                f"pass --peer_tasks {theirs['tasks']} or drop --trl_from")
    return None


def bench_peer(model_path: str, prompt_texts: list[str], rows: list[dict], shape: dict,
               trl_from: str | None = None, share_prompt_prefix: bool = True) -> dict:
    """Samples/s of our loop (classification through update, introspection excluded: TRL has no
    such phase) against TRL GRPOTrainer on the same shape, after one warm-up iteration/step.
    `trl_from` reuses the TRL block of an earlier results.json of the same shape."""
    tasks, n = shape["tasks"], shape["n"]
    rows = rows[1:]
    ours_s = [r["timing/iteration"] - r.get("timing/introspection", 0.0) for r in rows]
    ours = {"framework": "knowrl", "share_prompt_prefix": share_prompt_prefix, "iterations_timed": len(rows),
            "iteration_s_without_introspection": ours_s,
            "samples_per_step": tasks * n, "samples_per_s": tasks * n * len(rows) / sum(ours_s),
            "mean_completion_tokens": sum(r["train/response_length"] for r in rows) / len(rows),
            "phases": {k.split("/", 1)[1]: sum(r[k] for r in rows) / len(rows) for k in rows[0]
                       if k.startswith("timing/") and k != "timing/iteration"},
            "peak_pss_gb": rows[0]["peak_pss_gb"]}
    import importlib.util

    if trl_from:
        stored = json.loads(Path(trl_from).read_text())
        # the day matters: the same machine's speed drifts (2x between 2026-11-23 and 2026-12-01)
        theirs = dict(stored["peer"]["trl"], reused_from=trl_from, measured_on=stored.get("date", "unknown"))
    elif importlib.util.find_spec("trl") is None:
        return {"knowrl": ours, "trl": None, "shape": shape,
                "note": "trl is not installed: pip install -r requirements-bench.txt"}
    else:
        from benchmarks.peer_trl import bench_trl
        from openrlhf.knowrl.prompts import DEFAULT_ANSWER_PREFIX

        theirs = bench_trl(model_path, prompt_texts, n, shape["max_new_tokens"], tasks, shape["steps"],
                           DEFAULT_ANSWER_PREFIX, os.cpu_count() or 1)
    return {"knowrl": ours, "trl": theirs, "ratio": ours["samples_per_s"] / theirs["samples_per_s"],
            "goal": ">= 2", "shape": shape}


def bench_scaling(model_path: str, quick: bool) -> dict:
    """Mean time of iterations 2.. of short runs, one knob at a time around a base shape."""
    base = {"rollout_batch_size": 8, "n_samples_per_prompt": 4, "actor_num_gpus_per_node": 1}
    common = ["--num_iterations", "2", "--generate_max_len", "16" if quick else "32",
              "--introspection_prompts", "2", "--tasks_per_introspection", "4",
              "--introspection_max_len", "48" if quick else "96", "--micro_train_batch_size", "4",
              "--micro_rollout_batch_size", "8"]
    shapes = [dict(base, rollout_batch_size=4), base, dict(base, rollout_batch_size=16),
              dict(base, n_samples_per_prompt=2), dict(base, n_samples_per_prompt=8),
              dict(base, actor_num_gpus_per_node=2)]
    results = {}
    for shape in shapes:
        flags = common + [x for k, v in shape.items() for x in (f"--{k}", str(v))]
        flags += ["--train_batch_size", str(shape["rollout_batch_size"] * shape["n_samples_per_prompt"])]
        rows = run_cli(model_path, flags)[1:]
        key = f"tasks={shape['rollout_batch_size']} n={shape['n_samples_per_prompt']} " \
              f"ranks={shape['actor_num_gpus_per_node']}"
        results[key] = {
            "iteration_s": sum(r["timing/iteration"] for r in rows) / len(rows),
            "weight_sync_s": sum(r.get("timing/weight_sync", 0.0) for r in rows) / len(rows),
            "samples": shape["rollout_batch_size"] * shape["n_samples_per_prompt"],
            "peak_pss_gb": rows[0]["peak_pss_gb"]}
        print(f"scaling {key}: {results[key]}", flush=True)
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import build_tiny_model

    cache = Path(tempfile.gettempdir())
    models = {"tiny (1 layer, hidden 64)": build_tiny_model(cache / "knowrl-bench-tiny"),
              "tiny (4 layers, hidden 1024)": build_tiny_model(cache / "knowrl-bench-tiny-1024", num_layers=4,
                                                               num_heads=16)}
    if not quick:
        models["SmolLM2-135M"] = model_path
    return {"shapes": results, "weight_sync": bench_weight_sync(models)}


PARTS = ("rollout", "training", "iteration", "peer", "scaling", "overlap", "lora")


def bench_weight_sync(models: dict[str, str], repeats: int = 3) -> dict:
    """Policy rank 0 (ZeRO-0) to one vLLM engine over the gloo sync group, in the CLI's default
    256 MB buckets: seconds per full sync against the bytes sent, one model at a time."""
    import ray

    from openrlhf.rollout.vllm_engine import create_vllm_engines
    from openrlhf.trainer.actor_group import ModelGroup
    from openrlhf.trainer.weight_sync import broadcast_policy_to_engines, connect_policy_to_engines

    threads = os.cpu_count()
    bucket = 256 * 1024 * 1024
    results = {}
    for name, path in models.items():
        ray.init(num_cpus=threads, include_dashboard=False, log_to_driver=False)
        try:
            engines = create_vllm_engines(1, path, seed=0, max_model_len=512, use_gpu=False, threads=threads)
            policy = ModelGroup("policy", 1, use_gpu=False, threads_per_rank=threads, timeout=900)
            policy.call_all("init_model", path, trainable=False, zero_stage=0, bf16=False, seed=0, micro_batch_size=1)
            metadata = connect_policy_to_engines(policy, engines, timeout=900)
            broadcast_policy_to_engines(policy, engines, metadata, bucket, timeout=900)
            start = time.perf_counter()
            for _ in range(repeats):
                broadcast_policy_to_engines(policy, engines, metadata, bucket, timeout=900)
            seconds = (time.perf_counter() - start) / repeats
        finally:
            ray.shutdown()
        size = sum(m.nbytes for m in metadata)
        results[name] = {"parameters": sum(int(torch_module().Size(m.shape).numel()) for m in metadata),
                         "bytes": size, "sync_s": seconds,
                         "gb_per_s": size / seconds / 1e9}
        print(f"weight sync {name}: {results[name]}", flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny random model, a few minutes")
    parser.add_argument("--output", default="benchmarks/results.json", help="where to write the JSON results")
    parser.add_argument("--only", default="rollout,training,iteration,peer",
                        help="comma-separated parts to run: rollout, training, iteration, peer, scaling, overlap, lora")
    parser.add_argument("--scaling", action="store_true", help="add the scaling sweeps (long)")
    parser.add_argument("--trl_from", default=None, help="reuse the TRL numbers of an earlier results.json")
    parser.add_argument("--no_share_prompt_prefix", action="store_true",
                        help="peer: run our side with the padded layout (every answer recomputes its prompt)")
    parser.add_argument("--peer_tasks", type=int, default=None,
                        help="peer and iteration: tasks per rollout (4 samples each; default 4, --quick 8). "
                             "16 is the shape of the published peer figures; TRL then takes ~20 minutes alone")
    parser.add_argument("--zero_stages", default="0",
                        help="training: comma-separated ZeRO stages of the DeepSpeed worker to measure, e.g. 0,2")
    args = parser.parse_args(argv)
    parts = set(args.only.split(",")) | ({"scaling"} if args.scaling else set())
    if parts - set(PARTS):
        parser.error(f"--only: unknown part(s) {', '.join(sorted(parts - set(PARTS)))}; pick from {', '.join(PARTS)}")
    try:
        zero_stages = tuple(int(x) for x in args.zero_stages.split(","))
    except ValueError:
        zero_stages = ()
    if not zero_stages or set(zero_stages) - {0, 1, 2, 3}:
        parser.error(f"--zero_stages {args.zero_stages!r}: give stages 0-3 separated by commas, e.g. 0,2")
    if args.peer_tasks is not None and (args.peer_tasks < 1 or (args.peer_tasks > 4 and args.peer_tasks % 4)):
        parser.error(f"--peer_tasks {args.peer_tasks}: use 1-4 or a multiple of 4 (TRL steps in micro-batches "
                     f"of 4 tasks)")
    peer = peer_shape(args.quick, args.peer_tasks)
    if args.trl_from and "peer" in parts and (problem := check_trl_from(args.trl_from, peer)):
        parser.error(problem)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    from openrlhf.rollout.vllm_engine import vllm_env

    for key, value in vllm_env(False, 1).items():
        os.environ.setdefault(key, value)
    from transformers import AutoTokenizer

    if args.quick:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_model import build_tiny_model

        model_path = build_tiny_model(Path(tempfile.gettempdir()) / "knowrl-bench-tiny")
        shape = dict(requests=16, n=4, max_tokens=32, response_len=16, micro=4, count=4, repeats=2)
    else:
        from openrlhf.utils.embedded_model import ensure_embedded_model

        model_path = str(ensure_embedded_model())
        shape = dict(requests=16, n=4, max_tokens=64, response_len=24, micro=4, count=4, repeats=2)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    requests = classification_requests(tokenizer, shape["requests"])
    results = {"machine": {"host": socket.gethostname(), "cpus": os.cpu_count(), "platform": platform.platform()},
               "date": time.strftime("%Y-%m-%d %H:%M:%S"), "model": model_path, "quick": args.quick}
    texts = [tokenizer.decode(r) for r in requests]
    peer_rows: list[dict] = []

    def peer_side() -> list[dict]:
        """One KnowRL run serves both the iteration breakdown and the peer comparison."""
        if not peer_rows:
            peer_rows.extend(run_knowrl_peer_side(model_path, peer, not args.no_share_prompt_prefix))
        return peer_rows

    runners = {
        "rollout": lambda: bench_rollout(model_path, requests, shape["n"], shape["max_tokens"]),
        "training": lambda: bench_training(model_path, *micro_batches(tokenizer, requests, shape["response_len"],
                                                                      shape["micro"], shape["count"]),
                                           shape["repeats"], zero_stages),
        "iteration": lambda: bench_iteration(peer_side()),
        "peer": lambda: bench_peer(model_path, texts, peer_side(), peer, args.trl_from,
                                   not args.no_share_prompt_prefix),
        "scaling": lambda: bench_scaling(model_path, args.quick),
        "overlap": lambda: bench_overlap(model_path, args.quick),
        "lora": lambda: bench_lora(model_path, *micro_batches(tokenizer, requests, shape["response_len"],
                                                              shape["micro"], shape["count"]), shape["repeats"]),
    }
    results["part_wall_s"] = {}
    for name, runner in runners.items():
        if name in parts:
            began = time.perf_counter()
            results[name] = runner()
            results["part_wall_s"][name] = time.perf_counter() - began
            print(f"{name} done in {results['part_wall_s'][name]:.0f} s", flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    print_table(results)
    print(f"wrote {args.output}")
    return 0


def print_table(results: dict) -> None:
    if "rollout" in results:
        r = results["rollout"]
        print(f"rollout   actor {r['actor_tokens_per_s']:.0f} tok/s vs direct vLLM {r['direct_tokens_per_s']:.0f} "
              f"tok/s: ratio {r['ratio']:.2f} (goal {r['goal']})")
    if "training" in results:
        t = results["training"]
        for stage, d in t["deepspeed"].items():
            print(f"training  DeepSpeed {stage} {d['deepspeed_tokens_per_s']:.0f} tok/s vs plain torch "
                  f"{t['torch_tokens_per_s']:.0f} tok/s: ratio {d['ratio']:.2f} (goal {t['goal']})")
    if "iteration" in results:
        i = results["iteration"]
        print(f"iteration {i['iteration']} of {i['of']}: {i['seconds']:.1f}s, overhead {i['overhead_s']:.2f}s = {100 * i['overhead_share']:.1f}% "
              f"(goal {i['goal']}); phases " + ", ".join(f"{k} {v:.1f}s" for k, v in i["phases"].items()))
    if "peer" in results:
        p = results["peer"]
        shape = p["shape"]
        line = (f"peer      {shape['tasks']} tasks x {shape['n']} samples, <= {shape['max_new_tokens']} tokens: "
                f"KnowRL {p['knowrl']['samples_per_s']:.2f} samples/s")
        if p.get("trl"):
            line += f" vs TRL GRPOTrainer {p['trl']['samples_per_s']:.2f}: ratio {p['ratio']:.2f} (goal {p['goal']})"
            if p["trl"].get("reused_from"):
                line += (f"; TRL reused from {p['trl']['reused_from']}, measured {p['trl'].get('measured_on', 'unknown')}: "
                         f"a ratio against another day's TRL is not the goal's measure")
        else:
            line += f"; {p['note']}"
        print(line)
    if "lora" in results:
        for name, row in results["lora"].items():
            if isinstance(row, dict):
                print(f"lora      {name:<8} update {row['tokens_per_s']:.0f} tokens/s, peak RSS {row['peak_rss_gib']:.2f} GiB")
    if "overlap" in results:
        o = results["overlap"]
        print(f"overlap   introspection during the update: iteration {o['sequential']['iteration_s']:.1f}s -> "
              f"{o['overlapped']['iteration_s']:.1f}s ({o['speedup']:.2f}x)")
    for key, row in results.get("scaling", {}).get("shapes", {}).items():
        print(f"scaling   {key:<28} iteration {row['iteration_s']:.1f}s, weight sync {row['weight_sync_s']:.2f}s, "
              f"peak PSS {row['peak_pss_gb']:.1f} GB")
    for key, row in results.get("scaling", {}).get("weight_sync", {}).items():
        print(f"sync      {key:<28} {row['parameters'] / 1e6:.1f}M parameters, {row['bytes'] / 1e6:.0f} MB: "
              f"{row['sync_s']:.3f}s ({row['gb_per_s']:.2f} GB/s)")


if __name__ == "__main__":
    sys.exit(main())
