"""One rank of a model group: the trainable policy or the frozen reference, under DeepSpeed.

A `ModelWorker` lives in its own Ray actor (one per GPU, or one per CPU process). It owns the HF
model wrapped by a DeepSpeed engine, and answers three kinds of call from the controller:
score sequences (log-probs of the response tokens), train on a list of optimizer steps, and
export weights (to the rollout engines, to a DeepSpeed checkpoint, to an HF folder).
"""

from __future__ import annotations

import datetime
import os
import random
from contextlib import contextmanager, nullcontext
from functools import partial

import numpy as np
import torch

from openrlhf.algorithms import kl_loss, policy_loss
from openrlhf.trainer.lora import LoraSettings, MergedWeight, add_lora, is_lora, merged_weights
from openrlhf.trainer.rendezvous import join_store, open_store
from openrlhf.trainer.strategy import deepspeed_config
from openrlhf.trainer.weight_sync import ParamMeta, SharedBucket, WeightSyncGroup, plan_buckets
from openrlhf.utils.dtypes import policy_dtype


def attention_backend(flash_attn: bool) -> str:
    """flash-attention 2 when asked for and usable (CUDA and the flash_attn package), else SDPA."""
    if flash_attn and torch.cuda.is_available():
        import importlib.util

        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
    return "sdpa"


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """log-softmax of `logits` (in fp32, divided by the sampling temperature) at `targets`."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def response_logprobs(model, sequences: torch.Tensor, attention_mask: torch.Tensor, response_width: int,
                      temperature: float = 1.0) -> torch.Tensor:
    """log π(response token | prefix) for every response column: [B, T]."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    # Only the last T+1 positions' logits are needed; skipping the prompt's vocabulary projection
    # saves most of the memory on a 49k-token vocabulary.
    logits = model(input_ids=sequences, attention_mask=attention_mask, position_ids=position_ids,
                   logits_to_keep=response_width + 1, use_cache=False).logits[:, :-1]
    return token_logprobs(logits, sequences[:, -response_width:], temperature)


def packed_response_logprobs(model, sequences: torch.Tensor, attention_mask: torch.Tensor, response_width: int,
                             temperature: float = 1.0) -> torch.Tensor:
    """The same [B, T] result as `response_logprobs`, computed on one padding-free row.

    Each row's real tokens (one contiguous run: left-padded prompt, then the response) are laid
    back to back, with position ids restarting at 0 per sequence and no attention mask, which HF
    models read as packed sequences (flash-attention's varlen kernel, or a block-diagonal mask
    for SDPA), so no compute goes to padding. Only the positions that predict response tokens
    reach the vocabulary projection. Every row needs a non-empty prompt (the loop's always have one).
    Without flash-attention the block-diagonal mask is dense in the packed length, so packing
    pays off only with flash-attn's varlen kernel.
    """
    batch, width = sequences.shape
    device = sequences.device
    prompt_width = width - response_width
    real = attention_mask.bool()
    lengths = real.sum(1)
    response_lengths = real[:, prompt_width:].sum(1)
    starts = lengths.cumsum(0) - lengths
    packed = sequences[real].unsqueeze(0)
    # one device-to-host copy for the per-row loops below, not one per row
    lengths_host, response_host = lengths.tolist(), response_lengths.tolist()
    positions = torch.cat([torch.arange(n, device=device) for n in lengths_host]).unsqueeze(0)
    rows = torch.repeat_interleave(torch.arange(batch, device=device), response_lengths)
    cols = torch.cat([torch.arange(n, device=device) for n in response_host])
    # the token at packed index i is predicted by the logits at i - 1
    predictors = (starts + lengths - response_lengths - 1).repeat_interleave(response_lengths) + cols
    logits = model(input_ids=packed, position_ids=positions, attention_mask=None, logits_to_keep=predictors,
                   use_cache=False).logits[0]
    token_logp = token_logprobs(logits, packed[0, predictors + 1], temperature)
    out = torch.zeros((batch, response_width), dtype=token_logp.dtype, device=device)
    return out.index_put((rows, cols), token_logp)


# Answer-length groups per micro-batch in the shared-prefix scorer: on CPU most of the gain of
# grouping comes with the first 2-3 groups (measurements in benchmarks/README.md); more groups gain
# within noise and small groups use a GPU's matrix units poorly.
ANSWER_BUCKETS = 3
ADAPTER_DIR = "adapter"   # where save_hf puts a LoRA adapter inside the exported folder


def length_buckets(lengths: list[int], max_buckets: int) -> list[list[int]]:
    """Row indices grouped into at most `max_buckets` runs of similar length, chosen to minimise
    the padded area (rows x longest length, summed over groups); a split is made only where it
    saves area. Groups come out shortest first, each ordered by length."""
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sorted_lengths = [max(1, lengths[i]) for i in order]
    n, k = len(order), max(1, min(max_buckets, len(order)))
    inf = float("inf")
    # area[j][i]: least padded area of the i shortest rows in j groups; cut[j][i]: where the last group starts
    area = [[inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    area[0][0] = 0
    for j in range(1, k + 1):
        for i in range(1, n + 1):
            for start in range(j - 1, i):
                candidate = area[j - 1][start] + (i - start) * sorted_lengths[i - 1]
                if candidate < area[j][i]:
                    area[j][i], cut[j][i] = candidate, start
    groups = min(range(1, k + 1), key=lambda j: (area[j][n], j))
    bounds, end = [], n
    for j in range(groups, 0, -1):
        bounds.append((cut[j][end], end))
        end = cut[j][end]
    return [order[a:b] for a, b in reversed(bounds)]


def shared_prefix_response_logprobs(model, sequences: torch.Tensor, attention_mask: torch.Tensor,
                                    response_width: int, temperature: float = 1.0,
                                    answer_buckets: int = 1) -> torch.Tensor:
    """The same [B, T] result as `response_logprobs`, with each distinct prompt run once.

    KnowRL scores n answers to every task, and the classification prompt is several times longer
    than an answer, so most of a padded forward goes to recomputing the same prompt. Here the
    distinct prompts of the micro-batch run once with a KV cache, the cache is copied to every
    row that shares the prompt, and only the responses run on top of it. The copy is an
    index_select, so gradients of all rows flow back into the one prompt forward. Needs the
    model's KV cache in the forward (HF turns it off under gradient checkpointing in training).

    Answers vary in length (a label, or a label plus a sentence), so with `answer_buckets` > 1
    the answer forward runs once per group of similar-length answers (`length_buckets`), each
    group padded only to its own longest. The number of forwards then depends on the data, which
    ZeRO-3 cannot have (every rank must run the same forwards): keep 1 there. Columns past a
    row's group width come back as 0 (they are padding).
    """
    from transformers import DynamicCache

    prompt_width = sequences.shape[1] - response_width
    prompt_ids, prompt_mask = sequences[:, :prompt_width], attention_mask[:, :prompt_width]
    device = sequences.device
    # rows are the same prompt when their real tokens and padding agree (pad ids may differ)
    key = torch.cat([prompt_ids * prompt_mask, prompt_mask], dim=1)
    _, owner = torch.unique(key, dim=0, return_inverse=True)
    first = torch.full((int(owner.max()) + 1,), len(owner), device=device)
    first = first.scatter_reduce(0, owner, torch.arange(len(owner), device=device), reduce="amin")
    distinct_mask = prompt_mask[first]
    prefix = model(input_ids=prompt_ids[first], attention_mask=distinct_mask,
                   position_ids=(distinct_mask.long().cumsum(-1) - 1).clamp(min=0), use_cache=True,
                   logits_to_keep=1)
    prompt_lengths = distinct_mask.long().sum(1)[owner]
    answer_lengths = attention_mask[:, prompt_width:].long().sum(1).tolist()
    if answer_buckets > 1:
        groups = length_buckets(answer_lengths, answer_buckets)
    else:
        groups = [list(range(len(answer_lengths)))]
    pieces, placed = [], []
    for group in groups:
        rows = torch.as_tensor(group, device=device)
        width = response_width if len(groups) == 1 else max(1, max(answer_lengths[i] for i in group))
        # each group gets its own copy of the prompts' cache, one entry per row
        cache = DynamicCache([(keys.index_select(0, owner[rows]), values.index_select(0, owner[rows]), *rest)
                              for keys, values, *rest in prefix.past_key_values])
        answers = sequences[rows, prompt_width:prompt_width + width]
        positions = prompt_lengths[rows].unsqueeze(1) + torch.arange(width, device=device)
        logits = model(input_ids=answers, attention_mask=attention_mask[rows, :prompt_width + width],
                       past_key_values=cache, position_ids=positions, use_cache=True,
                       logits_to_keep=width).logits
        # the logits at the last prompt position predict the first response token
        logits = torch.cat([prefix.logits[owner[rows]], logits[:, :-1]], dim=1)
        pieces.append(torch.nn.functional.pad(token_logprobs(logits, answers, temperature),
                                              (0, response_width - width)))
        placed.extend(group)
    logp = torch.cat(pieces)
    if len(groups) == 1:
        return logp
    return logp[torch.as_tensor(placed, device=device).argsort()]


class ModelWorker:
    """One rank of a policy or reference group, as a Ray actor: a DeepSpeed engine on an HF causal LM that
    scores log-probabilities, trains and hands its weights to the vLLM engines."""
    def __init__(self, rank: int, world_size: int, threads: int | None):
        if threads:
            torch.set_num_threads(threads)
        self.rank = rank
        self.world_size = world_size
        self.engine = None
        self.score = self.train_score = response_logprobs

    def open_rendezvous(self, host: str | None = None) -> tuple[str, int]:
        """Rank 0: open the group's rendezvous store on a port the OS picks, held until this worker
        is gone, and return where the other ranks reach it: (host, port). `host` defaults to this
        node's IP as Ray sees it."""
        import ray

        host = host or ray.util.get_node_ip_address()
        # the timeout is replaced by the process group's in init_distributed
        self.rendezvous_store = open_store(host, self.world_size, timeout_s=600.0)
        return host, self.rendezvous_store.port

    def node_id(self) -> str:
        """The Ray NodeID this rank runs on (for log_dir/placement.json)."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def set_rendezvous(self, master_addr: str, master_port: int) -> None:
        """Every rank: where rank 0's store listens (`open_rendezvous`), for `init_distributed`."""
        self.rendezvous = (master_addr, master_port)
        local_rank = os.environ.get("LOCAL_RANK", "0")
        # Nothing binds MASTER_PORT (the store holds it); DeepSpeed's CPU shared-memory allreduce
        # names its segments after MASTER_ADDR/MASTER_PORT, which makes them unique per group.
        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.world_size), LOCAL_RANK=local_rank)

    def init_distributed(self, backend: str, timeout: datetime.timedelta) -> None:
        """Form this group's default torch.distributed process group ("gloo" or "nccl") on the
        rendezvous store: rank 0's own, a connection to it on the other ranks. DeepSpeed then finds
        the group formed and uses it. `timeout` bounds the rendezvous and every collective.
        A process that already has a default group (a second worker in one test process) keeps it,
        as DeepSpeed does."""
        if torch.distributed.is_initialized():
            return
        host, port = self.rendezvous
        if self.rank == 0:
            store = self.rendezvous_store
            store.set_timeout(timeout)
        else:
            store = join_store(host, port, self.world_size, timeout.total_seconds())
        kwargs = {}
        if backend == "nccl" and self.world_size > 1:
            # bind the group to this rank's GPU, as DeepSpeed's own init does
            kwargs["device_id"] = torch.device("cuda", torch.cuda.current_device())
        torch.distributed.init_process_group(backend, store=store, rank=self.rank, world_size=self.world_size,
                                             timeout=timeout, **kwargs)

    def init_model(self, model_path: str, *, trainable: bool, zero_stage: int, bf16: bool, seed: int,
                   micro_batch_size: int, learning_rate: float = 0.0, weight_decay: float = 0.0,
                   adam_betas: tuple[float, float] = (0.9, 0.95), max_norm: float = 1.0,
                   gradient_checkpointing: bool = False, lr_warmup_steps: int = 0,
                   trust_remote_code: bool = False, flash_attn: bool = False, packing_samples: bool = False,
                   share_prompt_prefix: bool = False,
                   adam_offload: bool = False, lora: LoraSettings | None = None) -> int:
        """Form the group's process group (gloo on CPU, NCCL on GPU) and wrap the HF model at `model_path` in
        DeepSpeed with ZeRO `zero_stage`: trainable (AdamW with `learning_rate`, `weight_decay`,
        `adam_betas`, gradient clipping at `max_norm`, `lr_warmup_steps` of warm-up) or frozen (reference).
        `lora`: train a LoRA adapter (`trainer/lora.py`) instead of the whole model; the base weights
        stay frozen. Returns the model's parameter count (adapter included)."""
        import deepspeed
        from deepspeed.constants import default_pg_timeout
        from transformers import AutoModelForCausalLM

        use_gpu = torch.cuda.is_available()
        if use_gpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        backend = "nccl" if use_gpu else "gloo"
        self.init_distributed(backend, default_pg_timeout)
        deepspeed.init_distributed(dist_backend=backend, timeout=default_pg_timeout)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=policy_dtype(bf16), trust_remote_code=trust_remote_code,
                                                     attn_implementation=attention_backend(flash_attn))
        model.config.use_cache = False
        if lora is not None:
            model = add_lora(model, lora)
            if gradient_checkpointing:
                # the frozen embedding's output needs a grad for checkpointed blocks to backpropagate
                model.enable_input_require_grads()
        config = deepspeed_config(zero_stage=zero_stage, bf16=bf16, micro_batch_size=micro_batch_size,
                                  max_norm=max_norm, trainable=trainable, adam_offload=adam_offload)
        self.trainable = trainable
        if packing_samples:
            self.score = packed_response_logprobs
        elif share_prompt_prefix:
            self.score = partial(shared_prefix_response_logprobs,
                                 answer_buckets=1 if zero_stage == 3 else ANSWER_BUCKETS)
        else:
            self.score = response_logprobs
        # HF drops the KV cache under gradient checkpointing in training, which sharing needs
        self.train_score = response_logprobs if share_prompt_prefix and gradient_checkpointing else self.score
        if trainable:
            if gradient_checkpointing:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if adam_offload:
                # DeepSpeed steps offloaded states with its own CPU Adam (a C++ op compiled at first use).
                from deepspeed.ops.adam import DeepSpeedCPUAdam

                optimizer = DeepSpeedCPUAdam(trainable_params(model), lr=learning_rate, betas=adam_betas,
                                             weight_decay=weight_decay, adamw_mode=True)
            else:
                # A plain torch AdamW: DeepSpeed's fused Adam would compile an op at first use.
                optimizer = torch.optim.AdamW(trainable_params(model), lr=learning_rate, betas=adam_betas,
                                              weight_decay=weight_decay)
            warmup = max(0, lr_warmup_steps)
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
            self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                                   config=config)
            self.engine.train()
        else:
            self.engine, *_ = deepspeed.initialize(model=model, config=config)
            self.engine.eval()
        return sum(p.numel() for p in model.parameters())

    @property
    def device(self) -> torch.device:
        """The device the DeepSpeed engine runs on."""
        return self.engine.device

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items()}

    @staticmethod
    def _placeholder() -> dict:
        """A one-row batch with an empty action mask for a rank that has no rows in this
        micro-batch: it still runs forward/backward, so ZeRO's collectives stay in step, and
        adds zero loss."""
        zeros = torch.zeros((1, 1))
        return {"sequences": torch.zeros((1, 2), dtype=torch.long), "attention_mask": torch.ones((1, 2), dtype=torch.long),
                "action_mask": zeros, "old_logp": zeros, "ref_logp": zeros, "advantages": zeros}

    @torch.no_grad()
    def compute_logprobs(self, micro_batches: list[dict], temperature: float = 1.0,
                         disable_adapter: bool = False) -> list[torch.Tensor | None]:
        """Score each micro-batch; an empty one (None) still runs a forward so ZeRO-3 stays in step.
        `disable_adapter`: score with the LoRA adapter switched off, i.e. as the frozen base model
        (the reference policy, exactly, without loading a second copy)."""
        self.engine.eval()
        results = []
        off = self.engine.module.disable_adapter() if disable_adapter else nullcontext()
        with off:
            for mb in micro_batches:
                batch = self._to_device(mb if mb is not None else self._placeholder())
                logp = self.score(self.engine, batch["sequences"], batch["attention_mask"],
                                  batch["action_mask"].shape[1], temperature)
                results.append(logp.float().cpu() if mb is not None else None)
        if self.trainable:
            self.engine.train()
        return results

    def train_steps(self, steps: list[dict], *, clip_eps: float, temperature: float, use_kl_loss: bool,
                    kl_coef: float, kl_estimator: str) -> list[dict]:
        """Run optimizer steps. Each step is {"micro_batches": [dict|None], "normalizer": float}."""
        self.engine.train()
        stats_per_step = []
        for step in steps:
            totals = {"policy_loss": 0.0, "kl_loss": 0.0, "clip_frac": 0.0, "approx_kl": 0.0}
            real = 0
            for mb in step["micro_batches"]:
                batch = self._to_device(mb if mb is not None else self._placeholder())
                mask = batch["action_mask"]
                logp = self.train_score(self.engine, batch["sequences"], batch["attention_mask"], mask.shape[1],
                                        temperature)
                # no old log-probs: this step's policy is the behaviour policy (ratio exactly 1)
                old_logp = batch["old_logp"] if "old_logp" in batch else logp.detach()
                loss, stats = policy_loss(logp, old_logp, batch["advantages"], mask,
                                          clip_eps=clip_eps, normalizer=step["normalizer"])
                if use_kl_loss:
                    kl_term = kl_loss(logp, batch["ref_logp"], mask, kl_estimator, normalizer=step["normalizer"])
                    loss = loss + kl_coef * kl_term
                    totals["kl_loss"] += kl_term.item()
                self.engine.backward(loss, scale_wrt_gas=False)
                if mb is not None:
                    real += 1
                    totals["policy_loss"] += loss.item()
                    totals["clip_frac"] += stats["clip_frac"]
                    totals["approx_kl"] += stats["approx_kl"]
            self.engine.step()
            grad_norm = self.engine.get_global_grad_norm()
            stats_per_step.append({
                "policy_loss": totals["policy_loss"],
                "kl_loss": totals["kl_loss"],
                "clip_frac": totals["clip_frac"] / max(1, real),
                "approx_kl": totals["approx_kl"] / max(1, real),
                "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
                "lr": self.engine.get_lr()[0],
            })
        return stats_per_step

    def _gathered(self, params=None):
        """Under ZeRO-3, a context in which `params` (default: all) are whole on every rank."""
        if getattr(self.engine, "zero_optimization_stage", lambda: 0)() == 3:
            import deepspeed

            params = list(self.engine.module.parameters()) if params is None else params
            return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
        return nullcontext()

    def weight_metadata(self) -> list[ParamMeta]:
        """HF name, full shape and dtype of every weight the engines get, in broadcast order (with
        LoRA: the base model's weights, adapters merged in)."""
        return [ParamMeta(w.name, tuple(getattr(w.base, "ds_shape", w.base.shape)), str(w.base.dtype))
                for w in merged_weights(self.engine.module)]

    @contextmanager
    def _bucket_values(self, weights: list[MergedWeight]):
        """A context yielding the values of `weights` (merged with their adapters), whole on every rank."""
        with self._gathered([p for w in weights for p in w.params]), torch.no_grad():
            yield [w.value() for w in weights]

    def open_weight_sync(self, world_size: int, timeout_s: float, host: str | None = None) -> tuple[str, int]:
        """Rank 0 only: open the weight-sync group's store on a port the OS picks, held while the
        group lives, and return where the engines reach it: (host, port)."""
        import ray

        host = host or ray.util.get_node_ip_address()
        self.sync_store = open_store(host, world_size, timeout_s)
        return host, self.sync_store.port

    def init_weight_sync(self, world_size: int, timeout_s: float) -> None:
        """Rank 0 only: join the weight-sync group as its source (rank 0), on the store
        `open_weight_sync` opened; returns once every engine worker has joined."""
        self.sync_group = WeightSyncGroup(self.sync_store, 0, world_size, torch.cuda.is_available(), timeout_s)

    def broadcast_weights(self, bucket_bytes: int) -> None:
        """Every rank calls this (ZeRO-3 gathers each bucket collectively); rank 0 sends."""
        weights = merged_weights(self.engine.module)
        for bucket in plan_buckets(self.weight_metadata(), bucket_bytes):
            with self._bucket_values([weights[i] for i in bucket]) as tensors:
                if self.rank == 0:
                    self.sync_group.send_bucket(tensors)

    def export_bucket(self, index: int, bucket_bytes: int) -> tuple:
        """Colocated sync: a flat copy of bucket `index` (gathered under ZeRO-3; every rank calls
        this), kept alive here until the next bucket; returns its handle for the engines."""
        weights = merged_weights(self.engine.module)
        bucket = [weights[i] for i in plan_buckets(self.weight_metadata(), bucket_bytes)[index]]
        self.release_exported()
        with self._bucket_values(bucket) as tensors:
            flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        self.exported = SharedBucket(flat, f"sync-{os.getpid()}-{index}")
        return self.exported.handle

    def release_exported(self) -> None:
        """Free the shared-memory bucket last exported for a colocated weight sync, once every engine has
        copied it."""
        if getattr(self, "exported", None) is not None:
            self.exported.release()
        self.exported = None

    def peak_rss_bytes(self) -> int:
        """This rank's process's peak resident memory so far, in bytes (Linux getrusage)."""
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def save_checkpoint(self, ckpt_dir: str, tag: str) -> None:
        """Save this rank's DeepSpeed state (weights, optimizer, scheduler) under `ckpt_dir`/`tag`."""
        self.engine.save_checkpoint(ckpt_dir, tag=tag)

    def load_checkpoint(self, ckpt_dir: str, tag: str) -> None:
        """Load this rank's DeepSpeed state saved under `ckpt_dir`/`tag`."""
        self.engine.load_checkpoint(ckpt_dir, tag=tag)

    def save_hf(self, path: str, tokenizer_path: str) -> None:
        """Write an HF folder on rank 0 (weights gathered under ZeRO-3). With LoRA: the merged
        model (loads with AutoModelForCausalLM) and the adapter in PEFT's format in `path`/adapter
        (adapter_config.json, adapter_model.safetensors; loads with PeftModel)."""
        from transformers import AutoTokenizer

        module = self.engine.module
        with self._gathered(), torch.no_grad():
            if self.rank == 0:
                if is_lora(module):
                    state = {w.name: w.value().detach().cpu().clone() for w in merged_weights(module)}
                    module.get_base_model().save_pretrained(path, state_dict=state)
                    module.save_pretrained(os.path.join(path, ADAPTER_DIR))
                else:
                    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
                    module.save_pretrained(path, state_dict=state)
                AutoTokenizer.from_pretrained(tokenizer_path).save_pretrained(path)



def trainable_params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters the optimizer steps (all of them, or a LoRA adapter's)."""
    return [p for p in model.parameters() if p.requires_grad]
