"""GPU smoke benchmark: the parts of the KnowRL training path that run on one GPU without vLLM or Ray.

The GPU machine this project is sometimes lent has torch and CUDA but neither vLLM nor Ray, so
this checks the GPU-only code paths of the DeepSpeed policy worker directly (the same
`ModelWorker` class the Ray actors wrap) and records what they cost:

1. kernels: response log-probs in bf16 against fp32, and the PPO-clip and KL losses on the GPU
   against the same call on the CPU;
2. policy update: `ModelWorker.train_steps` in bf16 under each requested variant (ZeRO-2, ZeRO-3,
   with `--packing_samples` and/or `--adam_offload`; gradient checkpointing, flash attention when
   installed, else SDPA) on a randomly initialised model built from a config (about 0.5B
   parameters by default), each in a fresh process, with a plain torch loop on the same
   micro-batches beside them: step time, tokens/s, peak memory, and whether every parameter moved;
3. reference scoring: `compute_logprobs` tokens/s;
4. weight export: the bucketed ZeRO-3 gather plus the NCCL broadcast through `WeightSyncGroup`
   (a one-member group: one GPU cannot hold a second NCCL rank, so this times the sender's side),
   and `save_hf` consolidating the ZeRO-3 shards into an HF folder that reloads with equal weights;
5. the memory planner's policy estimate for the same shapes beside the measured peak.

`python -m benchmarks.gpu_smoke --output gpu_smoke.json` (see `scripts/gpu_smoke.sh`). It needs a
CUDA device; DeepSpeed may come from carried wheels. The timed steps follow one warm-up step.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from types import SimpleNamespace

import torch

from openrlhf.algorithms import kl_loss, policy_loss
from openrlhf.trainer.model_worker import ModelWorker, attention_backend, response_logprobs
from openrlhf.utils.memory_plan import estimate_memory, model_size_from_config

# Qwen2.5-0.5B's shape (494M parameters, tied embeddings), built with random weights.
QWEN05B = dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
               num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096,
               tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1000000.0)
# Qwen2.5-3B's shape (3.1B parameters, tied embeddings)
QWEN3B = dict(QWEN05B, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
              num_key_value_heads=2)
TINY = dict(QWEN05B, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=1024)


def build_model(shape: dict, path: str, dtype: torch.dtype) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def make_micro_batches(count: int, micro: int, prompt_len: int, response_len: int, vocab: int,
                       seed: int) -> list[dict]:
    """Left-padded prompts of varying length followed by a fixed-width response, as the loop builds."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    width = prompt_len + response_len
    for _ in range(count):
        sequences = torch.randint(3, vocab, (micro, width), generator=gen)
        attention = torch.ones((micro, width), dtype=torch.long)
        for row in range(micro):
            pad = int(torch.randint(0, prompt_len // 4 + 1, (1,), generator=gen))
            attention[row, :pad] = 0
            sequences[row, :pad] = 0
        action = torch.ones((micro, response_len))
        action[:, response_len - response_len // 8:] = 0       # some responses end early
        batches.append({"sequences": sequences, "attention_mask": attention, "action_mask": action,
                        "advantages": torch.randn(micro, 1).sign()})
    return batches


def kernel_checks(device: torch.device) -> dict:
    """bf16 log-probs against fp32 on a tiny model; GPU losses against CPU losses."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**TINY), dtype=torch.float32).to(device).eval()
    mb = make_micro_batches(1, 4, 64, 32, TINY["vocab_size"], seed=1)[0]
    seq, attn = mb["sequences"].to(device), mb["attention_mask"].to(device)
    with torch.no_grad():
        fp32 = response_logprobs(model, seq, attn, 32)
        bf16 = response_logprobs(model.to(torch.bfloat16), seq, attn, 32)
    gen = torch.Generator().manual_seed(2)
    logp, old, ref = (torch.randn(4, 32, generator=gen) * 0.1 - 3 for _ in range(3))
    adv, mask = torch.randn(4, 1, generator=gen), (torch.rand(4, 32, generator=gen) > 0.2).float()
    results = {}
    for name, dev in (("cpu", torch.device("cpu")), ("gpu", device)):
        lp = logp.detach().to(dev).requires_grad_(True)
        loss, _ = policy_loss(lp, old.to(dev), adv.to(dev), mask.to(dev), clip_eps=0.2)
        kl = kl_loss(lp, ref.to(dev), mask.to(dev), "k3")
        (loss + 0.1 * kl).backward()
        results[name] = (float(loss.detach()), float(kl.detach()), lp.grad.cpu())
    return {
        "logprob_bf16_vs_fp32_max_abs_diff": float((fp32 - bf16.float()).abs().max()),
        "logprob_fp32_mean": float(fp32.mean()),
        "policy_loss_gpu_minus_cpu": results["gpu"][0] - results["cpu"][0],
        "kl_loss_gpu_minus_cpu": results["gpu"][1] - results["cpu"][1],
        "loss_grad_max_abs_diff": float((results["gpu"][2] - results["cpu"][2]).abs().max()),
    }


def param_fingerprint(worker: ModelWorker) -> dict[str, torch.Tensor]:
    with worker._gathered():
        return {n: p.detach().float().cpu().clone() for n, p in worker.engine.module.named_parameters()}


def in_fresh_process(fn, *args):
    """Run one measurement in a new process: DeepSpeed keeps references (hooks, process group) after
    `engine.destroy()`, which would inflate the next variant's peak memory."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def timed(fn, repeats: int) -> tuple[float, object]:
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = None
    for _ in range(repeats):
        result = fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats, result


def policy_update(model_path: str, variant: str, args, batches: list[dict], tokens_per_step: int,
                  tokenizer_path: str | None) -> dict:
    """One worker variant: "zero2", "zero3", optionally with "+packing" and/or "+offload"."""
    stage_name, *options = variant.split("+")
    zero_stage = int(stage_name.removeprefix("zero"))
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    worker = ModelWorker(rank=0, world_size=1, threads=None)
    worker.set_rendezvous(*worker.open_rendezvous("127.0.0.1"))
    start = time.perf_counter()
    worker.init_model(model_path, trainable=True, zero_stage=zero_stage, bf16=True, seed=0,
                      micro_batch_size=args.micro_batch, learning_rate=args.lr, gradient_checkpointing=True,
                      flash_attn=True, packing_samples="packing" in options, adam_offload="offload" in options)
    init_s = time.perf_counter() - start
    before = param_fingerprint(worker)

    scored = worker.compute_logprobs(batches)     # warm-up of the scoring path
    score_s, scored = timed(lambda: worker.compute_logprobs(batches), 2)
    for mb, logp in zip(batches, scored):
        mb["old_logp"] = logp
        mb["ref_logp"] = logp
    normalizer = float(sum(mb["action_mask"].sum() for mb in batches))
    step = {"micro_batches": batches, "normalizer": normalizer}
    kwargs = dict(clip_eps=0.2, temperature=1.0, use_kl_loss=True, kl_coef=1e-3, kl_estimator="k3")
    worker.train_steps([step], **kwargs)          # warm-up step
    step_s, stats = timed(lambda: worker.train_steps([step], **kwargs), args.steps)
    peak_train = torch.cuda.max_memory_allocated() / 2**30

    after = param_fingerprint(worker)
    unchanged = [n for n in before if torch.equal(before[n], after[n])]

    sync = {}
    if zero_stage == 3 and not options:
        worker.open_weight_sync(1, 120.0, host="127.0.0.1")
        worker.init_weight_sync(1, 120.0)
        bucket = 256 * 2**20
        worker.broadcast_weights(bucket)
        sync_s, _ = timed(lambda: worker.broadcast_weights(bucket), 3)
        sync = {"gather_and_broadcast_s": sync_s, "bucket_mb": bucket // 2**20,
                "weights_gib": sum(v.numel() * 2 for v in after.values()) / 2**30}
        if tokenizer_path:
            out = tempfile.mkdtemp(prefix="knowrl_hf_")
            start = time.perf_counter()
            worker.save_hf(out, tokenizer_path)
            sync["save_hf_s"] = time.perf_counter() - start
            from transformers import AutoModelForCausalLM

            reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
            diffs = [float((p.detach().float() - after[n]).abs().max()) for n, p in reloaded.named_parameters()]
            sync["save_hf_reload_max_abs_diff"] = max(diffs)
            sync["save_hf_params_reloaded"] = len(diffs)

    result = {
        "variant": variant,
        "zero_stage": zero_stage,
        "attention": attention_backend(True),
        "init_s": init_s,
        "step_s": step_s,
        "train_tokens_per_s": tokens_per_step / step_s,
        "score_s": score_s,
        "score_tokens_per_s": tokens_per_step / score_s,
        "peak_memory_gib": peak_train,
        "params": len(before),
        "params_unchanged": unchanged,
        "last_step": stats[0],
        **sync,
    }
    return result


def torch_update(model_path: str, args, batches: list[dict], tokens_per_step: int) -> dict:
    """The same step as a plain torch loop: bf16 weights, AdamW, gradient checkpointing."""
    from transformers import AutoModelForCausalLM

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16,
                                                 attn_implementation=attention_backend(True)).cuda()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95))
    normalizer = float(sum(mb["action_mask"].sum() for mb in batches))

    def step():
        for mb in batches:
            b = {k: v.cuda() for k, v in mb.items()}
            logp = response_logprobs(model, b["sequences"], b["attention_mask"], b["action_mask"].shape[1])
            loss, _ = policy_loss(logp, b["old_logp"], b["advantages"], b["action_mask"], clip_eps=0.2,
                                  normalizer=normalizer)
            loss = loss + 1e-3 * kl_loss(logp, b["ref_logp"], b["action_mask"], "k3", normalizer=normalizer)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    step_s, _ = timed(step, args.steps)
    peak = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.empty_cache()
    return {"step_s": step_s, "train_tokens_per_s": tokens_per_step / step_s, "peak_memory_gib": peak}


def planned_policy_gib(shape: dict, args, zero_stage: int, adam_offload: bool) -> float:
    cfg = SimpleNamespace(bf16=True, zero_stage=zero_stage, gradient_checkpointing=True, adam_offload=adam_offload,
                          micro_train_batch_size=args.micro_batch, prompt_max_len=args.prompt_len,
                          generate_max_len=args.response_len, vllm_gpu_memory_utilization=0.5,
                          actor_num_nodes=1, actor_num_gpus_per_node=1, ref_num_nodes=1, ref_num_gpus_per_node=1,
                          vllm_tensor_parallel_size=1, init_kl_coef=0.0)
    estimate = estimate_memory(model_size_from_config(shape), cfg)
    policy = next(role for role in estimate.roles if role.name == "policy")
    # the planner adds a fixed runtime allowance (CUDA context, NCCL) that torch's allocator never sees
    return sum(gib for part, gib in policy.items if part != "runtime")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="gpu_smoke.json", help="where to write the JSON results")
    parser.add_argument("--shape", choices=("qwen0.5b", "qwen3b", "tiny"), default="qwen0.5b",
                        help="model shape built with random weights")
    parser.add_argument("--micro_batch", type=int, default=2, help="sequences per micro-batch")
    parser.add_argument("--micro_batches", type=int, default=4, help="micro-batches per optimizer step")
    parser.add_argument("--prompt_len", type=int, default=512, help="prompt tokens per sequence (left-padded)")
    parser.add_argument("--response_len", type=int, default=512, help="response tokens per sequence")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps after one warm-up")
    parser.add_argument("--lr", type=float, default=1e-5,
                        help="learning rate; bf16 copies of weights near 1.0 (norm scales) move only once the "
                             "fp32 master copy has moved by half a bf16 step (2^-9), so small rates leave them equal")
    parser.add_argument("--variants", default="zero2,zero3,zero2+packing,zero2+offload",
                        help="comma-separated worker variants: zero0-3, each optionally +packing (padding-free "
                             "micro-batches) and/or +offload (--adam_offload)")
    parser.add_argument("--tokenizer", default=os.environ.get("KNOWRL_SMOKE_TOKENIZER"),
                        help="a tokenizer folder for the save_hf check (skipped when absent)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_smoke: no CUDA device is visible; run this on a GPU machine (scripts/gpu_smoke.sh)")
        return 2
    import deepspeed
    import transformers

    device = torch.device("cuda")
    shape = {"qwen0.5b": QWEN05B, "qwen3b": QWEN3B, "tiny": TINY}[args.shape]
    result: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(0),
        "gpu_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30,
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda, "deepspeed": deepspeed.__version__,
                     "transformers": transformers.__version__},
        "shape": args.shape,
        "micro_batch": args.micro_batch, "micro_batches": args.micro_batches,
        "prompt_len": args.prompt_len, "response_len": args.response_len,
    }
    result["kernels"] = kernel_checks(device)
    print("kernels:", json.dumps(result["kernels"]), flush=True)

    model_dir = tempfile.mkdtemp(prefix="knowrl_smoke_model_")
    result["params"] = build_model(shape, model_dir, torch.bfloat16)
    batches = make_micro_batches(args.micro_batches, args.micro_batch, args.prompt_len, args.response_len,
                                 shape["vocab_size"], seed=3)
    tokens_per_step = int(sum(mb["attention_mask"].sum() for mb in batches))
    result["tokens_per_step"] = tokens_per_step
    result["deepspeed"] = []
    for variant in (v.strip() for v in args.variants.split(",") if v.strip()):
        run = in_fresh_process(policy_update, model_dir, variant, args, [dict(mb) for mb in batches],
                               tokens_per_step, args.tokenizer)
        run["planned_policy_gib"] = planned_policy_gib(shape, args, run["zero_stage"], "offload" in variant)
        result["deepspeed"].append(run)
        print(f"{variant}:", json.dumps({k: v for k, v in run.items() if k != "params_unchanged"}), flush=True)
    # the torch loop scores the initial weights itself, as the worker did before its first step
    scored = [dict(mb) for mb in batches]
    with torch.no_grad():
        from transformers import AutoModelForCausalLM

        ref = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).cuda().eval()
        for mb in scored:
            logp = response_logprobs(ref, mb["sequences"].cuda(), mb["attention_mask"].cuda(),
                                     mb["action_mask"].shape[1]).cpu()
            mb["old_logp"], mb["ref_logp"] = logp, logp
    del ref
    result["torch"] = in_fresh_process(torch_update, model_dir, args, scored, tokens_per_step)
    print("torch:", json.dumps(result["torch"]), flush=True)
    for run in result["deepspeed"]:
        run["ratio_to_torch"] = run["train_tokens_per_s"] / result["torch"]["train_tokens_per_s"]

    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
