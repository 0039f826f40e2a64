"""`python -m benchmarks.run [--quick]`: how much of the machine KnowRL turns into work.

Measures, on one model and one set of requests, and writes `results.json` plus a table:
1. rollout efficiency: tokens/s of a KnowRL engine actor (Ray + vLLM) on a classification rollout
   versus `vllm.LLM.generate` called in this process on the same requests;
2. training efficiency: tokens/s of the DeepSpeed policy worker (one rank) versus a plain torch
   forward/backward/AdamW loop on the same micro-batches and the same loss;
3. iteration breakdown: one short KnowRL run through the real CLI; wall time per phase and the
   overhead (iteration time not inside any phase);
4. peer: the classification workload (tasks x n samples, consensus reward, one optimizer step
   per rollout) through our CLI and through TRL's `GRPOTrainer` (`benchmarks/peer_trl.py`),
   samples per second after a warm-up step; skipped with a note when `trl` is not installed
   (`pip install -r requirements-bench.txt`);
5. scaling (`--scaling`, not in the default run): iteration time against tasks per iteration,
   samples per task and policy ranks, weight-sync time, peak memory (PSS of the run's process tree);
6. overlap (`--only overlap`, not in the default run): steady iteration time with and without
   `--overlap_introspection`.
`--quick` uses a tiny random model (under 3 minutes); the default is the embedded SmolLM2-135M.
`--only rollout,training,iteration,peer,scaling,overlap` picks parts.
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
                   zero_stages: tuple[int, ...] = (2, 0)) -> dict:
    """Plain torch once, then the DeepSpeed worker at each ZeRO stage (2 is the default flag;
    on one rank ZeRO-1/2 shard over a single process, so 0 is what one rank should use)."""
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

    torch_step()
    start = time.perf_counter()
    for _ in range(repeats):
        torch_step()
    torch_s = (time.perf_counter() - start) / repeats
    model = optimizer = None  # free the torch copy before DeepSpeed loads its own

    per_stage = {}
    for stage in zero_stages:
        ray.init(num_cpus=threads, include_dashboard=False, log_to_driver=False)
        try:
            group = ModelGroup("policy", 1, use_gpu=False, threads_per_rank=threads, timeout=900)
            group.call_all("init_model", model_path, trainable=True, zero_stage=stage, bf16=False, seed=0,
                           micro_batch_size=len(batches[0]["sequences"]), learning_rate=1e-6)
            step = [{"micro_batches": batches, "normalizer": normalizer}]
            kwargs = dict(clip_eps=0.2, temperature=1.0, use_kl_loss=False, kl_coef=0.0, kl_estimator="k1")
            group.call_all("train_steps", step, **kwargs)
            start = time.perf_counter()
            group.call_all("train_steps", step * repeats, **kwargs)
            ds_s = (time.perf_counter() - start) / repeats
        finally:
            ray.shutdown()
        per_stage[f"zero{stage}"] = {"deepspeed_tokens_per_s": tokens / ds_s, "ratio": torch_s / ds_s}
    return {"micro_batches": len(batches), "tokens_per_step": tokens, "torch_tokens_per_s": tokens / torch_s,
            "deepspeed": per_stage, "goal": ">= 0.9"}


def bench_iteration(model_path: str, quick: bool) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import tiny_train_command

    with tempfile.TemporaryDirectory() as tmp:
        size = [] if quick else ["--rollout_batch_size", "8", "--n_samples_per_prompt", "6",
                                 "--generate_max_len", "24", "--introspection_max_len", "160",
                                 "--train_batch_size", "24", "--micro_train_batch_size", "6",
                                 "--micro_rollout_batch_size", "12", "--temperature", "0.8",
                                 "--min_group_reward", "0.2", "--max_group_reward", "0.9"]
        argv = tiny_train_command(model_path, tmp, "--num_iterations", "2", *size)
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True)
        rows = [json.loads(line) for line in (Path(tmp) / "logs" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    phases = {k.split("/", 1)[1]: v for k, v in last.items() if k.startswith("timing/") and k != "timing/iteration"}
    overhead = last["timing/iteration"] - sum(phases.values())
    return {"iteration": last["iteration"], "seconds": last["timing/iteration"], "phases": phases,
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


def bench_peer(model_path: str, prompt_texts: list[str], quick: bool, trl_from: str | None = None,
               share_prompt_prefix: bool = True) -> dict:
    """Samples/s of our loop (classification through update, introspection excluded: TRL has no
    such phase) against TRL GRPOTrainer on the same shape. `trl_from` reuses the TRL block of an
    earlier results.json (TRL takes ~15 minutes on SmolLM2 here). Our side scores and trains each
    task's prompt once for its n answers (`--share_prompt_prefix`, exact) unless told not to."""
    tasks, n, max_tokens, steps = (8, 4, 16, 3) if quick else (16, 4, 64, 3)
    micro = min(4, tasks) * n
    flags = ["--num_iterations", str(steps), "--rollout_batch_size", str(tasks), "--n_samples_per_prompt", str(n),
             "--generate_max_len", str(max_tokens), "--train_batch_size", str(tasks * n),
             "--micro_train_batch_size", str(micro), "--micro_rollout_batch_size", str(micro),
             "--introspection_prompts", "2", "--tasks_per_introspection", "4", "--introspection_max_len", "96",
             "--actor_learning_rate", "1e-6",
             # the algorithm GRPOTrainer runs: group-normalised advantages, k3 KL in the loss, beta 1e-4
             "--advantage_estimator", "grpo", "--use_kl_loss", "--kl_estimator", "k3", "--init_kl_coef", "1e-4"]
    if share_prompt_prefix:
        flags.append("--share_prompt_prefix")
    rows = run_cli(model_path, flags)[1:]
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
        theirs = json.loads(Path(trl_from).read_text())["peer"]["trl"]
        theirs["reused_from"] = trl_from
        return {"knowrl": ours, "trl": theirs, "ratio": ours["samples_per_s"] / theirs["samples_per_s"],
                "goal": ">= 2", "shape": {"tasks": tasks, "n": n, "max_new_tokens": max_tokens}}
    if importlib.util.find_spec("trl") is None:
        return {"knowrl": ours, "trl": None, "note": "trl is not installed: pip install -r requirements-bench.txt"}
    from benchmarks.peer_trl import bench_trl
    from openrlhf.knowrl.prompts import DEFAULT_ANSWER_PREFIX

    theirs = bench_trl(model_path, prompt_texts, n, max_tokens, tasks, steps, DEFAULT_ANSWER_PREFIX,
                       os.cpu_count() or 1)
    return {"knowrl": ours, "trl": theirs, "ratio": ours["samples_per_s"] / theirs["samples_per_s"],
            "goal": ">= 2", "shape": {"tasks": tasks, "n": n, "max_new_tokens": max_tokens}}


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
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny random model, a few minutes")
    parser.add_argument("--output", default="benchmarks/results.json", help="where to write the JSON results")
    parser.add_argument("--only", default="rollout,training,iteration,peer",
                        help="comma-separated parts to run: rollout, training, iteration, peer, scaling, overlap")
    parser.add_argument("--scaling", action="store_true", help="add the scaling sweeps (long)")
    parser.add_argument("--trl_from", default=None, help="reuse the TRL numbers of an earlier results.json")
    parser.add_argument("--no_share_prompt_prefix", action="store_true",
                        help="peer: run our side with the padded layout (every answer recomputes its prompt)")
    args = parser.parse_args(argv)
    parts = set(args.only.split(",")) | ({"scaling"} if args.scaling else set())
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
    if "rollout" in parts:
        results["rollout"] = bench_rollout(model_path, requests, shape["n"], shape["max_tokens"])
    if "training" in parts:
        batches, tokens = micro_batches(tokenizer, requests, shape["response_len"], shape["micro"], shape["count"])
        results["training"] = bench_training(model_path, batches, tokens, shape["repeats"])
    if "iteration" in parts:
        results["iteration"] = bench_iteration(model_path, args.quick)
    if "peer" in parts:
        texts = [tokenizer.decode(r) for r in requests]
        results["peer"] = bench_peer(model_path, texts, args.quick, args.trl_from, not args.no_share_prompt_prefix)
    if "scaling" in parts:
        results["scaling"] = bench_scaling(model_path, args.quick)
    if "overlap" in parts:
        results["overlap"] = bench_overlap(model_path, args.quick)
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
        print(f"iteration {i['seconds']:.1f}s, overhead {i['overhead_s']:.2f}s = {100 * i['overhead_share']:.1f}% "
              f"(goal {i['goal']}); phases " + ", ".join(f"{k} {v:.1f}s" for k, v in i["phases"].items()))
    if "peer" in results:
        p = results["peer"]
        line = f"peer      KnowRL {p['knowrl']['samples_per_s']:.2f} samples/s"
        if p.get("trl"):
            line += f" vs TRL GRPOTrainer {p['trl']['samples_per_s']:.2f}: ratio {p['ratio']:.2f} (goal {p['goal']})"
        else:
            line += f"; {p['note']}"
        print(line)
    if "overlap" in results:
        o = results["overlap"]
        print(f"overlap   introspection during the update: iteration {o['sequential']['iteration_s']:.1f}s -> "
              f"{o['overlapped']['iteration_s']:.1f}s ({o['speedup']:.2f}x)")
    for key, row in results.get("scaling", {}).items():
        print(f"scaling   {key:<28} iteration {row['iteration_s']:.1f}s, weight sync {row['weight_sync_s']:.2f}s, "
              f"peak PSS {row['peak_pss_gb']:.1f} GB")


if __name__ == "__main__":
    sys.exit(main())
