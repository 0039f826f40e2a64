"""A planning estimate of GPU memory per rank for a KnowRL layout: an estimate, not a measurement.

`model_size_from_config` counts the parameters of a Llama/Qwen2/Qwen3/Mistral-style decoder from
its HF `config.json` (as a dict) without loading weights. `estimate_memory` turns that, the run
flags and a placement plan into GiB per GPU for each role and warns when a role looks too big.

Assumptions (all rough; real usage also depends on the allocator, the kernels and the versions):

* Bytes per value: 2 with `bf16`, 4 otherwise (fp32 training).
* Policy weights, gradients and optimizer states follow DeepSpeed ZeRO over the policy world
  size W: stage >= 1 shards the optimizer states, >= 2 also the gradients, 3 also the weights.
  Gradients are held in the training dtype. AdamW keeps m and v in fp32 (8 bytes/param); in bf16
  it also keeps an fp32 master copy of the weights (4 more, 12 in all); with `adam_offload` those
  live in CPU memory and count 0 here. ZeRO-3's transient
  all-gather of one layer's weights during forward/backward is not counted.
* Activations for one micro-batch of `micro_train_batch_size` sequences of
  `prompt_max_len + generate_max_len` tokens: `ACTIVATION_VALUES_PER_LAYER` hidden-sized values per
  token per layer (~34 bytes/token/hidden per layer in 16 bit for a GPT block, Korthikanti et al.
  2022, raised for the wider SwiGLU MLP; attention scores are not stored, as SDPA/flash attention
  recompute them). With `gradient_checkpointing` only each layer's input is kept plus one layer's
  full activations during recomputation: values = layers + ACTIVATION_VALUES_PER_LAYER instead of
  layers x ACTIVATION_VALUES_PER_LAYER, roughly the full figure divided by the layer count.
* Logits: the policy keeps logits only for the response columns (`logits_to_keep`), so one
  micro-batch costs micro x (generate_max_len + 1) x vocab x 4 bytes (fp32) x `LOGITS_COPIES`
  (the fp32 logits and their log-softmax are alive together). The reference does the same with
  `micro_rollout_batch_size` (falling back to `micro_train_batch_size`), without gradients.
* Reference: weights in the training dtype, sharded over the reference world size under ZeRO-3,
  whole otherwise; it has no gradients or optimizer.
* vLLM: it claims `vllm_gpu_memory_utilization x gpu_memory_gib` of each of its GPUs; of that, the
  weights take params x bytes / TP and the rest is KV cache (vLLM's own activation workspace and
  CUDA graphs also come out of it and are not split out here). KV bytes per token =
  2 (K and V) x layers x kv_heads x head_dim x bytes / TP.
* In bf16, DeepSpeed also holds an fp32 copy of the gradients (4 bytes/param, sharded like the
  optimizer states) during the optimizer step; activations and logits are gone by then, so the
  policy total counts the larger of the two, not both. Checked on one H100 (benchmarks/README.md,
  "GPU smoke", one rank, seed-README shapes): the measured ZeRO-2 peaks of a 0.5B and a 3B
  Qwen2-shaped model were 1 % and 8 % above this total (DeepSpeed's communication buckets and
  fragmentation are not counted); with `adam_offload` the total was 12 % and 36 % above the peak.
* LoRA (`lora_rank` r > 0): gradients, optimizer states and their fp32 copies exist only for the
  adapter, r x (in + out) parameters per targeted linear layer (`lora_params`); the policy's
  weights are the frozen base plus the adapter. The adapter's own activations are not counted.
* Every role adds `RUNTIME_OVERHEAD_GIB` for the CUDA context, NCCL buffers and fragmentation.
* With a colocated plan the roles share each GPU, so their totals are added up and that sum is
  compared with `gpu_memory_gib`. On a CPU plan the figures are RAM per process (vLLM's KV cache
  is `vllm_cpu_kvcache_gb`) and nothing is compared with a GPU size.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

GIB = 1024 ** 3
ACTIVATION_VALUES_PER_LAYER = 24
LOGITS_COPIES = 2
RUNTIME_OVERHEAD_GIB = 1.0
ADAM_STATE_BYTES = 8        # fp32 m and v
MASTER_WEIGHT_BYTES = 4     # fp32 copy of bf16 weights kept by the optimizer


@dataclass(frozen=True)
class ModelSize:
    """The sizes of a causal LM that the estimate needs (from its config.json): parameter count, hidden size,
    layers, attention and KV heads, head dimension, vocabulary, MLP width, tied embeddings."""
    params: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    intermediate: int
    tie_embeddings: bool


def _require(config: dict, key: str):
    if config.get(key) is None:
        raise ValueError(f"model config has no {key!r}: only Llama/Qwen2/Mistral-style decoder configs are supported")
    return config[key]


def model_size_from_config(config_dict: dict) -> ModelSize:
    """Parameter count of a dense Llama-style decoder, computed from its HF config.

    Counts the token embedding, per layer q/k/v/o projections (grouped-query attention; q/k/v biases
    for Qwen2 or `attention_bias`, which also adds the o bias), the SwiGLU MLP (gate, up, down;
    biases with `mlp_bias`), two RMSNorms per layer (plus Qwen3's per-head q/k norms), the final
    norm and the lm_head unless tied to the embedding. A missing `tie_word_embeddings` counts as
    untied, the default of these model families.
    """
    config = config_dict.get("text_config") or config_dict
    if any(config.get(k) for k in ("num_experts", "num_local_experts", "n_routed_experts")):
        raise ValueError("mixture-of-experts configs are not supported by the memory estimate")
    model_type = str(config.get("model_type", config_dict.get("model_type", ""))).lower()
    hidden = int(_require(config, "hidden_size"))
    layers = int(_require(config, "num_hidden_layers"))
    heads = int(_require(config, "num_attention_heads"))
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    vocab = int(_require(config, "vocab_size"))
    intermediate = int(_require(config, "intermediate_size"))
    tie = bool(config.get("tie_word_embeddings", False))
    attention_bias = bool(config.get("attention_bias", False))
    qkv_bias = attention_bias or model_type == "qwen2"
    mlp_bias = bool(config.get("mlp_bias", False))

    q_width, kv_width = heads * head_dim, kv_heads * head_dim
    attention = hidden * q_width + 2 * hidden * kv_width + q_width * hidden
    if qkv_bias:
        attention += q_width + 2 * kv_width
    if attention_bias:
        attention += hidden
    mlp = 3 * hidden * intermediate + ((2 * intermediate + hidden) if mlp_bias else 0)
    norms = 2 * hidden + (2 * head_dim if model_type == "qwen3" else 0)
    params = vocab * hidden + layers * (attention + mlp + norms) + hidden + (0 if tie else vocab * hidden)
    return ModelSize(params, hidden, layers, heads, kv_heads, head_dim, vocab, intermediate, tie)


LINEAR_SHAPES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_params(size: ModelSize, rank: int, target_modules: str = "all-linear") -> int:
    """Trainable parameters of a rank-`rank` LoRA adapter on the Llama-style linear layers named in
    `target_modules` (comma-separated, or "all-linear" = all seven of `LINEAR_SHAPES`): r x (in +
    out) per layer and per decoder block. Names outside `LINEAR_SHAPES` count nothing here (the
    CLI has already checked them against the model)."""
    q_width, kv_width = size.heads * size.head_dim, size.kv_heads * size.head_dim
    in_out = {"q_proj": size.hidden + q_width, "k_proj": size.hidden + kv_width, "v_proj": size.hidden + kv_width,
              "o_proj": q_width + size.hidden, "gate_proj": size.hidden + size.intermediate,
              "up_proj": size.hidden + size.intermediate, "down_proj": size.intermediate + size.hidden}
    names = LINEAR_SHAPES if target_modules.strip() == "all-linear" else [
        t.strip() for t in target_modules.split(",")]
    return size.layers * rank * sum(in_out.get(n, 0) for n in names)


def model_size_from_path(model_path: str) -> ModelSize:
    """`model_size_from_config` on the config.json of a local HF model folder."""
    with open(os.path.join(model_path, "config.json")) as f:
        return model_size_from_config(json.load(f))


@dataclass(frozen=True)
class RoleMemory:
    """Memory per GPU of one role (policy, reference or vLLM), item by item, in GiB."""
    name: str                               # "policy", "reference" or "vllm"
    items: tuple[tuple[str, float], ...]    # (what, GiB per GPU)
    world: int                              # ranks (policy/reference) or TP (vllm) the role is spread over
    # groups of items never alive at the same time: the total counts only the largest group
    exclusive: tuple[tuple[str, ...], ...] = ()

    @property
    def total_gib(self) -> float:
        """GiB per GPU at the peak: every item, except that of each group of items never alive together only
        the largest group counts."""
        grouped = {name for group in self.exclusive for name in group}
        values = dict(self.items)
        always = sum(v for k, v in self.items if k not in grouped)
        return always + max((sum(values[k] for k in group) for group in self.exclusive), default=0.0)

    def item(self, what: str) -> float:
        """GiB per GPU of item `what`. Raises KeyError for an item the role does not have."""
        return dict(self.items)[what]


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory estimate of a run: its roles, the GPU size (GiB) they are compared with, and the vLLM KV
    cache in tokens per engine."""
    roles: tuple[RoleMemory, ...]
    gpu_memory_gib: float
    colocated: bool = False
    on_gpu: bool = True
    kv_cache_tokens: int = 0                # tokens the vLLM KV cache holds per engine
    sequence_len: int = 0
    params: int = 0                         # the model's parameters
    trainable_params: int = 0               # those the policy trains (fewer with LoRA)

    def role(self, name: str) -> RoleMemory | None:
        """The role called `name`, or None (no reference without KL)."""
        return next((r for r in self.roles if r.name == name), None)

    @property
    def colocated_total_gib(self) -> float:
        """GiB per GPU of all roles together (what one GPU holds when they are colocated)."""
        return sum(r.total_gib for r in self.roles)

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line per problem on GPU: a role (or the colocated roles together) larger than the GPU, or no
        room for a vLLM KV cache; () on CPU."""
        if not self.on_gpu:
            return ()
        out = []
        if self.colocated:
            if self.colocated_total_gib > self.gpu_memory_gib:
                out.append(f"colocated roles need ~{self.colocated_total_gib:.1f} GiB per GPU, more than the "
                           f"{self.gpu_memory_gib:g} GiB GPU")
        else:
            for r in self.roles:
                if r.total_gib > self.gpu_memory_gib:
                    out.append(f"{r.name} needs ~{r.total_gib:.1f} GiB per GPU, more than the "
                               f"{self.gpu_memory_gib:g} GiB GPU")
        vllm = self.role("vllm")
        if vllm is not None and vllm.item("KV cache") <= 0:
            out.append("vLLM weights do not fit in its gpu_memory_utilization share: no room for a KV cache")
        return tuple(out)

    def describe(self) -> str:
        """The estimate as printed at start and by --dry_run: GiB per GPU (per process on CPU) of each role
        and its items, the KV cache capacity, and the warnings."""
        unit = "GPU" if self.on_gpu else "process"
        lines = [f"[knowrl] memory estimate per {unit} (GiB; a rough planning figure, not a measurement):"]
        for r in self.roles:
            spread = f"TP {r.world}" if r.name == "vllm" else f"{r.world} rank(s)"
            parts = ", ".join(f"{what} {gib:.1f}" for what, gib in r.items)
            lines.append(f"  {r.name:<10} {r.total_gib:6.1f}  ({spread}: {parts})")
        if self.colocated and self.on_gpu:
            lines.append(f"  {'colocated':<10} {self.colocated_total_gib:6.1f}  (all roles on each GPU)")
        if self.kv_cache_tokens and self.sequence_len:
            lines.append(f"  vLLM KV cache holds ~{self.kv_cache_tokens:,} tokens per engine "
                         f"(~{self.kv_cache_tokens // self.sequence_len} sequences of {self.sequence_len} tokens)")
        if self.trainable_params and self.trainable_params != self.params:
            lines.append(f"  LoRA: the policy trains {self.trainable_params:,} of {self.params:,} parameters "
                         f"({100 * self.trainable_params / self.params:.2f} %); gradients and optimizer states "
                         f"only for those")
        lines.extend(f"  WARNING: {w}" for w in self.warnings)
        return "\n".join(lines)


def _world(plan, cfg, name: str) -> int:
    group = plan.group(name) if plan is not None else None
    if group is not None:
        return group.per_node if name == "vllm" else group.ranks
    if name == "policy":
        return int(cfg.actor_num_nodes) * int(cfg.actor_num_gpus_per_node)
    if name == "reference":
        return int(cfg.ref_num_nodes) * int(cfg.ref_num_gpus_per_node)
    return int(cfg.vllm_tensor_parallel_size)


def _needs_reference(cfg, plan) -> bool:
    if plan is not None:
        return plan.group("reference") is not None
    flag = getattr(cfg, "needs_reference", None)
    return bool(getattr(cfg, "init_kl_coef", 1.0) > 0) if flag is None else bool(flag)


def estimate_memory(size: ModelSize, cfg, plan=None, gpu_memory_gib: float = 80.0) -> MemoryEstimate:
    """GiB per GPU for the policy, reference and vLLM roles (see the module doc for every assumption).

    `cfg` needs bf16, zero_stage, gradient_checkpointing, micro_train_batch_size, prompt_max_len,
    generate_max_len and vllm_gpu_memory_utilization (plus the layout flags when `plan` is None).
    `plan` is a `PlacementPlan` (world sizes, colocation, CPU or GPU); None reads the flags.
    """
    value_bytes = 2 if cfg.bf16 else 4
    stage = int(cfg.zero_stage)
    on_gpu = plan.use_gpu if plan is not None else True
    colocated = bool(plan.colocated) if plan is not None else bool(getattr(cfg, "colocate_all_models", False))
    seq = int(cfg.prompt_max_len) + int(cfg.generate_max_len)
    micro = int(cfg.micro_train_batch_size)
    logit_cols = int(cfg.generate_max_len) + 1
    p = size.params

    world = _world(plan, cfg, "policy")
    rank = int(getattr(cfg, "lora_rank", 0) or 0)
    trainable = lora_params(size, rank, getattr(cfg, "target_modules", "all-linear")) if rank > 0 else p
    weights = (p + (trainable if rank > 0 else 0)) * value_bytes / (world if stage >= 3 else 1)
    grads = trainable * value_bytes / (world if stage >= 2 else 1)
    optim_per_param = ADAM_STATE_BYTES + (MASTER_WEIGHT_BYTES if value_bytes == 2 else 0)
    # --adam_offload keeps the AdamW states and master weights in CPU memory
    optim = 0.0 if getattr(cfg, "adam_offload", False) else trainable * optim_per_param / (world if stage >= 1 else 1)
    values_per_token = (size.layers + ACTIVATION_VALUES_PER_LAYER if cfg.gradient_checkpointing
                        else size.layers * ACTIVATION_VALUES_PER_LAYER)
    activations = micro * seq * size.hidden * value_bytes * values_per_token
    logits = micro * logit_cols * size.vocab * 4 * LOGITS_COPIES
    # bf16 mixed precision: DeepSpeed copies the gradients to fp32 for the optimizer step (sharded
    # from stage 1 on; on the CPU with --adam_offload). It exists while the step runs, when the
    # activations and logits of the last micro-batch are already freed.
    fp32_grads = 0.0 if value_bytes == 4 or getattr(cfg, "adam_offload", False) else \
        trainable * 4 / (world if stage >= 1 else 1)
    roles = [RoleMemory("policy", (("weights", weights / GIB), ("gradients", grads / GIB),
                                   ("optimizer", optim / GIB), ("activations", activations / GIB),
                                   ("logits", logits / GIB), ("fp32 gradients", fp32_grads / GIB),
                                   ("runtime", RUNTIME_OVERHEAD_GIB)), world,
                        exclusive=(("activations", "logits"), ("fp32 gradients",)))]

    if _needs_reference(cfg, plan):
        ref_world = _world(plan, cfg, "reference")
        ref_weights = p * value_bytes / (ref_world if stage >= 3 else 1)
        ref_micro = int(getattr(cfg, "micro_rollout_batch_size", micro) or micro)
        ref_logits = ref_micro * logit_cols * size.vocab * 4 * LOGITS_COPIES
        roles.append(RoleMemory("reference", (("weights", ref_weights / GIB), ("logits", ref_logits / GIB),
                                              ("runtime", RUNTIME_OVERHEAD_GIB)), ref_world))

    tp = _world(plan, cfg, "vllm")
    vllm_weights = p * value_bytes / tp / GIB
    if on_gpu:
        kv = float(cfg.vllm_gpu_memory_utilization) * gpu_memory_gib - vllm_weights
    else:
        kv = float(getattr(cfg, "vllm_cpu_kvcache_gb", 1))
    kv_per_token = 2 * size.layers * size.kv_heads * size.head_dim * value_bytes / tp
    kv_tokens = int(max(kv, 0.0) * GIB / kv_per_token)
    roles.append(RoleMemory("vllm", (("weights", vllm_weights), ("KV cache", max(kv, 0.0)),
                                     ("runtime", RUNTIME_OVERHEAD_GIB)), tp))
    return MemoryEstimate(tuple(roles), float(gpu_memory_gib), colocated, on_gpu, kv_tokens, seq, p, trainable)
