"""The KnowRL controller: the whole method, one iteration at a time, readable top to bottom.

    for each iteration:
        1. introspection   the policy writes new tasks it judges feasible / infeasible for itself
        2. classification  each task gets n answers to "is this feasible for you?"
        3. reward          the group's answers are scored together (consensus by default)
        4. filter          groups whose mean reward lies outside the band carry little signal
        5. pool            generated tasks with high agreement become few-shot examples
        6. experience      old and reference log-probs, KL, advantages (Reinforce++ by default)
        7. update          PPO-clip steps on the policy (DeepSpeed, one Ray actor per rank)
        8. weight sync     the new policy weights go to every vLLM engine
        9. records, metrics, checkpoint

With --overlap_introspection, step 1 of the next iteration starts on the engines after step 5
and runs while steps 6-7 run on the policy: its tasks are written one update behind.

What it simplifies: engines and model groups are plain Ray actors pinned to the nodes of the
placement plan, not Ray placement groups.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field

import ray
import torch
from tqdm import tqdm

from openrlhf.algorithms import compute_kl, get_advantage_estimator, masked_mean
from openrlhf.knowrl.checkpoint import (
    checkpoint_tag,
    find_resume_point,
    resume_settings,
    rotate_checkpoints,
    saved_settings,
    settings_mismatch,
    write_state,
)
from openrlhf.knowrl.config import KnowRLConfig
from openrlhf.knowrl.pool import TaskPool
from openrlhf.knowrl.prompts import (
    PromptTemplates,
    SeedTask,
    build_classification_prompt,
    build_introspection_prompt,
    chat_prompt,
    parse_answer,
    tasks_from_answer,
)
from openrlhf.knowrl.report import write_report
from openrlhf.knowrl.reward import RewardFunctionError, RewardGroup, agreement, compute_rewards, majority_label
from openrlhf.knowrl.taxonomy import LABELS, REASON_TO_TYPE
from openrlhf.rollout.vllm_engine import (
    EngineDied,
    Generation,
    PendingGeneration,
    collect_from_engines,
    create_vllm_engines,
    engine_dtype,
    generate_on_engines,
    submit_to_engines,
)
from openrlhf.trainer.actor_group import ModelGroup
from openrlhf.trainer.placement import PlacementPlan
from openrlhf.trainer.weight_sync import (
    broadcast_policy_to_engines,
    connect_policy_to_engines,
    share_policy_with_engines,
)
from openrlhf.trainer.experience import Experience, build_experience, optimizer_steps, rank_micro_batches
from openrlhf.utils.jsonl import write_jsonl_atomic
from openrlhf.utils.ray_utils import get_with_timeout
from openrlhf.utils.tracking import MetricsLogger, PhaseTimer, RunProgress


@dataclass
class Task:
    text: str
    gen_label: str              # the label the task was written for (or its seed/pool label)
    type: str | None
    reason: str | None
    source: str                 # generated | seed | pool


@dataclass
class TaskGroup:
    """One task and its n classification answers."""

    task: Task
    prompt: str
    samples: list[Generation] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    majority: str | None = None
    agreement: float = 0.0
    kept: bool = False
    joined_pool: bool = False

    @property
    def mean_reward(self) -> float:
        return sum(self.rewards) / len(self.rewards) if self.rewards else 0.0


@dataclass
class NextIntrospection:
    """The next iteration's task-writing, started on the engines before this iteration's update
    (--overlap_introspection). `rng` is that iteration's generator, carried over to it."""

    iteration: int
    rng: random.Random
    targets: list[tuple[str, str | None]]
    generation: PendingGeneration
    result: tuple[list[Task], list[dict]] | None = None


class KnowRLTrainer:
    def __init__(self, cfg: KnowRLConfig, model_path: str, tokenizer, seeds: list[SeedTask],
                 templates: PromptTemplates, reward_fn, use_gpu: bool, plan: PlacementPlan | None = None):
        self.cfg = cfg
        self.model_path = model_path
        self.tokenizer = tokenizer
        self.seeds = seeds
        self.templates = templates
        self.reward_fn = reward_fn
        self.use_gpu = use_gpu
        # Policy and reference scoring passes run at once on GPUs (devices of their own); on CPU
        # both would share the same cores, so one after the other.
        self.concurrent_scoring = use_gpu
        self.plan = plan
        self.pool = TaskPool(cfg.pool_max_size, cfg.pool_agreement_threshold)
        self.advantage_fn = get_advantage_estimator(cfg.advantage_estimator)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.engines: list = []
        self.engine_restarts = 0
        self.policy: ModelGroup | None = None
        self.reference: ModelGroup | None = None
        self.logger: MetricsLogger | None = None
        self.next_introspection: NextIntrospection | None = None
        self.warned_too_long: set[str] = set()   # prompt kinds already warned about (fitting_prompts)
        self.last_checkpoint = 0          # the iteration of the newest checkpoint this run saved or resumed

    # ------------------------------------------------------------------ setup
    def start(self) -> None:
        cfg = self.cfg
        cpus = int(ray.available_resources().get("CPU", os.cpu_count() or 1)) or 1
        if self.use_gpu:
            engine_threads = policy_threads = ref_threads = None
        else:
            engine_threads = cpus
            policy_threads = max(1, cpus // cfg.actor_world_size)
            ref_threads = max(1, cpus // cfg.ref_world_size)
        t0 = time.perf_counter()
        self.engine_args = dict(
            model_path=self.model_path, seed=cfg.seed,
            max_model_len=cfg.prompt_max_len + max(cfg.generate_max_len, cfg.introspection_max_len),
            use_gpu=self.use_gpu, tensor_parallel_size=cfg.vllm_tensor_parallel_size,
            gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, dtype=engine_dtype(cfg.bf16),
            enforce_eager=cfg.enforce_eager, threads=engine_threads, kv_cache_gb=cfg.vllm_cpu_kvcache_gb,
            trust_remote_code=cfg.trust_remote_code, ready_timeout=cfg.actor_timeout)
        self.engine_nodes = self.planned_nodes("vllm") or [None] * cfg.vllm_num_engines
        self.engines = create_vllm_engines(cfg.vllm_num_engines, node_ids=self.engine_nodes, **self.engine_args)
        common = dict(zero_stage=cfg.zero_stage, bf16=cfg.bf16, seed=cfg.seed,
                      trust_remote_code=cfg.trust_remote_code, flash_attn=cfg.flash_attn,
                      packing_samples=cfg.packing_samples, share_prompt_prefix=cfg.share_prompt_prefix)
        self.policy = ModelGroup("policy", cfg.actor_world_size, use_gpu=self.use_gpu,
                                 threads_per_rank=policy_threads, timeout=cfg.actor_timeout,
                                 node_ids=self.planned_nodes("policy"))
        init_refs = self.policy.call_all_async(
            "init_model", self.model_path, trainable=True, micro_batch_size=cfg.micro_train_batch_size,
            learning_rate=cfg.actor_learning_rate, weight_decay=cfg.l2, max_norm=cfg.max_norm,
            gradient_checkpointing=cfg.gradient_checkpointing, lr_warmup_steps=cfg.lr_warmup_steps,
            adam_offload=cfg.adam_offload, **common)
        if cfg.needs_reference:
            self.reference = ModelGroup("reference", cfg.ref_world_size, use_gpu=self.use_gpu,
                                        threads_per_rank=ref_threads, timeout=cfg.actor_timeout,
                                        node_ids=self.planned_nodes("reference"))
            init_refs += self.reference.call_all_async(
                "init_model", self.model_path, trainable=False, micro_batch_size=cfg.micro_rollout_batch_size,
                **common)
        get_with_timeout(init_refs, cfg.actor_timeout, "initialising the policy and reference models")
        self.weight_metadata = self.connect_engines()
        self.record_placement()
        print(f"[knowrl] {len(self.engines)} vLLM engine(s), {cfg.actor_world_size} policy rank(s), "
              f"{cfg.ref_world_size if self.reference else 0} reference rank(s) ready in "
              f"{time.perf_counter() - t0:.1f}s; weights reach the engines "
              f"{'through shared memory (colocated)' if cfg.colocate_all_models else 'over a sync group'}; "
              f"engines and policy in {self.engine_args['dtype']}", flush=True)
        self.logger = MetricsLogger(cfg.log_dir, cfg.use_tensorboard, cfg.use_wandb, cfg.wandb_project,
                                    cfg.wandb_run_name, config=cfg.public_dict())

    def connect_engines(self) -> list:
        """The parameter list to sync; the sync group too, unless colocated (handles, no group)."""
        if self.cfg.colocate_all_models:
            return get_with_timeout(self.policy.actors[0].weight_metadata.remote(), self.cfg.actor_timeout,
                                    "reading the policy's parameter list")
        return connect_policy_to_engines(self.policy, self.engines, self.cfg.actor_timeout)

    def planned_nodes(self, group: str) -> list[str | None] | None:
        return self.plan.node_ids(group) if self.plan else None

    def record_placement(self) -> None:
        """Where every actor actually runs (Ray node ids), in log_dir/placement.json."""
        groups = {"policy": self.policy.actors, "reference": self.reference.actors if self.reference else [],
                  "vllm": self.engines}
        placed = {name: get_with_timeout([a.node_id.remote() for a in actors], self.cfg.actor_timeout,
                                         f"locating the {name} actors")
                  for name, actors in groups.items()}
        os.makedirs(self.cfg.log_dir, exist_ok=True)
        with open(os.path.join(self.cfg.log_dir, "placement.json"), "w") as f:
            json.dump(placed, f, indent=1)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> list[dict]:
        history = []
        self.train_seconds = 0.0
        self.stop_after_iteration: str | None = None
        done = self.resume() if self.cfg.load_checkpoint else 0
        self.progress = RunProgress(self.cfg.num_iterations, done)
        iteration = done + 1
        while iteration <= self.cfg.num_iterations and not self.out_of_time():
            start = time.perf_counter()
            try:
                history.append(self.run_iteration(iteration))
            except RewardFunctionError as exc:
                raise RuntimeError(f"{exc}; {self.checkpoint_before_reward_error(iteration)}") from exc
            self.train_seconds += time.perf_counter() - start
            last = iteration == self.cfg.num_iterations or self.out_of_time() or self.stop_after_iteration
            if last or (self.cfg.save_steps > 0 and iteration % self.cfg.save_steps == 0):
                self.save_checkpoint(iteration)
            if self.stop_after_iteration:
                raise RuntimeError(f"{self.stop_after_iteration}; the last complete iteration is checkpointed: "
                                   f"resume with --load_checkpoint")
            if self.out_of_time() and iteration < self.cfg.num_iterations:
                print(f"[knowrl] --max_train_minutes {self.cfg.max_train_minutes:g} reached after iteration "
                      f"{iteration} ({self.train_seconds / 60:.1f} min of iterations)", flush=True)
            iteration += 1
        self.progress.close()
        self.save_hf()
        self.logger.close()
        report = write_report(self.cfg.log_dir, ckpt_path=self.cfg.ckpt_path, save_path=self.cfg.save_path)
        print(f"[knowrl] run report: {report}", flush=True)
        return history

    def checkpoint_before_reward_error(self, iteration: int) -> str:
        """The reward runs before the update, so the policy and pool still hold the end of
        `iteration` - 1: checkpoint that (unless it is saved already) and say how to go on."""
        if iteration == 1:
            return "fix it and rerun (no iteration had completed, nothing to resume)"
        if self.last_checkpoint != iteration - 1:
            self.save_checkpoint(iteration - 1)
        return (f"fix it, then rerun with --load_checkpoint to continue from iteration {iteration} "
                f"({checkpoint_tag(iteration - 1)} is saved in {self.cfg.ckpt_path})")

    def out_of_time(self) -> bool:
        return self.cfg.max_train_minutes > 0 and self.train_seconds >= 60 * self.cfg.max_train_minutes

    def iteration_rng(self, iteration: int) -> random.Random:
        return random.Random(self.cfg.seed * 100_003 + iteration)

    def run_iteration(self, iteration: int) -> dict:
        cfg = self.cfg
        timer = PhaseTimer(on_phase=self.progress.phase)
        start = time.perf_counter()

        ahead, self.next_introspection = self.next_introspection, None
        with timer("introspection"):
            if ahead is not None and ahead.iteration == iteration and ahead.result is not None:
                rng = ahead.rng
                tasks, introspection_log = ahead.result
            else:
                ahead = None
                rng = self.iteration_rng(iteration)
                self.reseed_engines(iteration)
                tasks, introspection_log = self.introspect(iteration, rng)
        with timer("classification"):
            groups = self.classify(tasks, iteration)
        with timer("reward"):
            for group in groups:
                self.score(group, iteration)
        kept = [g for g in groups if cfg.min_group_reward <= g.mean_reward <= cfg.max_group_reward]
        for g in kept:
            g.kept = True
        # the pool depends on the answers only, so it grows before the next tasks are written
        for g in groups:
            if g.task.source == "generated":
                g.joined_pool = self.pool.offer(g.task.text, g.majority, g.agreement, iteration,
                                                g.task.type, g.task.reason)
        if cfg.overlap_introspection and iteration < cfg.num_iterations:
            self.next_introspection = self.start_introspection(iteration + 1)

        train_stats: dict = {}
        if kept:
            with timer("experience"):
                experience = self.make_experience(kept)
            with timer("update"):
                train_stats = self.update(experience, rng)
        if self.next_introspection is not None:
            with timer("introspection_wait"):
                self.finish_introspection(self.next_introspection)
        if kept:
            with timer("weight_sync"):
                self.sync_weights(iteration, updated=True)

        with timer("records"):
            self.write_records(iteration, groups, introspection_log)
        metrics = self.summarise(groups, kept, tasks, introspection_log, train_stats)
        metrics["knowrl/introspection_ahead"] = float(ahead is not None)
        metrics.update({f"timing/{k}": v for k, v in timer.seconds.items()})
        metrics["timing/iteration"] = time.perf_counter() - start
        self.logger.log(iteration, metrics)
        line = (f"[knowrl] iter {iteration}/{cfg.num_iterations}  agreement {metrics['rollout/agreement']:.3f}  "
                f"reward {metrics['rollout/reward']:.3f}  unparseable {metrics['rollout/unparseable_rate']:.2f}  "
                f"kept {len(kept)}/{len(groups)} groups  pool {len(self.pool)}  "
                f"kl {metrics.get('train/kl', 0.0):.2e}  loss {metrics.get('train/policy_loss', 0.0):+.4f}  "
                f"({metrics['timing/iteration']:.1f}s)")
        self.progress.finish_iteration(line, metrics, len(kept), len(groups))
        return metrics

    # ------------------------------------------------------------------ 1. introspection
    def encode(self, prompt: str) -> list[int]:
        """Token ids of a chat-formatted prompt. The chat template already wrote any BOS, so the
        engines get ids, not text (vLLM would add special tokens a second time)."""
        return self.tokenizer(prompt, add_special_tokens=False, verbose=False).input_ids

    def few_shot_examples(self, rng: random.Random) -> list[SeedTask]:
        candidates = self.seeds + self.pool.as_seeds()
        per_label = max(1, self.cfg.few_shot_examples // 2)
        chosen = []
        for label in LABELS:
            same = [s for s in candidates if s.label == label]
            chosen += rng.sample(same, min(per_label, len(same)))
        rng.shuffle(chosen)
        return chosen

    def introspect(self, iteration: int, rng: random.Random) -> tuple[list[Task], list[dict]]:
        targets, prompts = self.introspection_requests(iteration, rng)
        outputs = self.generate(prompts, self.introspection_sampling(), 1, iteration)
        return self.introspection_tasks(targets, outputs, rng)

    def start_introspection(self, iteration: int) -> NextIntrospection:
        """Send iteration `iteration`'s task-writing requests to the engines and return at once:
        the engines write while the policy updates, with the weights from before that update."""
        rng = self.iteration_rng(iteration)
        self.reseed_engines(iteration)
        targets, prompts = self.introspection_requests(iteration, rng)
        generation = submit_to_engines(self.engines, prompts, self.introspection_sampling(), 1,
                                       self.cfg.actor_timeout)
        return NextIntrospection(iteration, rng, targets, generation)

    def finish_introspection(self, ahead: NextIntrospection) -> None:
        """Wait for the tasks started by `start_introspection`. If an engine died meanwhile, the
        tasks are dropped: the next iteration writes its own after the weight sync restarts it."""
        try:
            outputs = collect_from_engines(ahead.generation, self.cfg.actor_timeout)
        except EngineDied as exc:
            print(f"[knowrl] {exc}: iteration {ahead.iteration} will write its tasks itself", flush=True)
            return
        ahead.result = self.introspection_tasks(ahead.targets, outputs, ahead.rng)

    def introspection_sampling(self) -> dict:
        return {"temperature": self.cfg.introspection_temperature, "top_p": 1.0,
                "max_tokens": self.cfg.introspection_max_len}

    def introspection_requests(self, iteration: int, rng: random.Random
                               ) -> tuple[list[tuple[str, str | None]], list[list[int]]]:
        """The (label, reason) each task-writing prompt asks for, and the prompts' token ids."""
        cfg = self.cfg
        reasons = sorted(REASON_TO_TYPE)
        targets = []
        for j in range(cfg.introspection_prompts):
            label = LABELS[(j + iteration) % 2]
            targets.append((label, rng.choice(reasons) if label == "infeasible" else None))
        prompts = [chat_prompt(self.tokenizer, build_introspection_prompt(
            self.templates, self.few_shot_examples(rng), label, reason, cfg.tasks_per_introspection),
            cfg.introspection_prefix) for label, reason in targets]
        encoded = [self.encode(p) for p in prompts]
        fits = self.fitting_prompts("introspection", encoded, iteration)
        targets = [t for t, ok in zip(targets, fits) if ok]
        return targets, [ids for ids, ok in zip(encoded, fits) if ok]

    def fitting_prompts(self, kind: str, encoded: list[list[int]], iteration: int) -> list[bool]:
        """Which prompts fit --prompt_max_len; the loop drops the others. `summarise` counts the
        drops every iteration (knowrl/<kind>_prompts_too_long); the first drop of each kind is
        also printed, once per run, since a growing pool can lengthen prompts mid-run."""
        fits = [len(ids) <= self.cfg.prompt_max_len for ids in encoded]
        if all(fits) or kind in self.warned_too_long:
            return fits
        self.warned_too_long.add(kind)
        if kind == "introspection":
            what, effect, fix = "task-writing", "write no tasks", "or lower --few_shot_examples"
        else:
            what, effect, fix = "classification", "leave their tasks unclassified", "or lower --max_task_chars"
        tqdm.write(f"[knowrl] warning: iteration {iteration}: {fits.count(False)} of {len(fits)} {what} prompts "
                   f"are longer than --prompt_max_len {self.cfg.prompt_max_len} (up to "
                   f"{max(len(ids) for ids in encoded)} tokens) and {effect}: raise --prompt_max_len {fix}; "
                   f"knowrl/{kind}_prompts_too_long counts them (warned once)")
        return fits

    def introspection_tasks(self, targets: list[tuple[str, str | None]], outputs: list[list[Generation]],
                            rng: random.Random) -> tuple[list[Task], list[dict]]:
        """Parse and filter the written tasks (an answer cut at --introspection_max_len loses the
        task it was cut in: dropped as 'truncated'); top up from seeds and pool when too few."""
        cfg = self.cfg
        existing = [s.task for s in self.seeds] + [e.task for e in self.pool.entries]
        tasks: list[Task] = []
        log = []
        for (label, reason), out in zip(targets, outputs):
            text = cfg.introspection_prefix + out[0].text
            kept, dropped = tasks_from_answer(text, out[0].finished, existing + [t.text for t in tasks],
                                              cfg.min_task_chars, cfg.max_task_chars, cfg.rouge_threshold)
            kind = REASON_TO_TYPE.get(reason) if reason else None
            tasks += [Task(t, label, kind, reason, "generated") for t in kept]
            log.append({"target_label": label, "reason": reason, "output": text, "finished": out[0].finished,
                        "kept": kept, "dropped": [{"task": t, "why": why} for t, why in dropped]})
        rng.shuffle(tasks)
        tasks = tasks[:cfg.rollout_batch_size]
        if cfg.fill_from_seeds and len(tasks) < cfg.rollout_batch_size:
            used = {t.text for t in tasks}
            spare = [s for s in self.seeds + self.pool.as_seeds() if s.task not in used]
            for s in rng.sample(spare, min(len(spare), cfg.rollout_batch_size - len(tasks))):
                tasks.append(Task(s.task, s.label, s.type, s.reason, s.source))
        return tasks, log

    def reseed_engines(self, iteration: int, only: int | None = None) -> None:
        """Each engine's sampler starts every iteration from a seed of (run seed, iteration,
        engine): a resumed run samples what the uninterrupted run sampled. A dead engine is left
        to `generate`, which restarts it."""
        for i, engine in enumerate(self.engines):
            if only is not None and i != only:
                continue
            try:
                get_with_timeout(engine.reseed.remote(self.cfg.seed * 1_000_003 + iteration * 101 + i),
                                 self.cfg.actor_timeout, f"seeding vLLM engine {i}")
            except ray.exceptions.RayActorError:
                pass

    def generate(self, prompts: list[list[int]], sampling: dict, n: int, iteration: int) -> list[list[Generation]]:
        """Generate on the engines, retrying after restarting an engine that died."""
        while True:
            try:
                return generate_on_engines(self.engines, prompts, sampling, n, self.cfg.actor_timeout)
            except EngineDied as exc:
                self.restart_engine(exc, iteration)

    def restart_engine(self, exc: EngineDied, iteration: int, can_checkpoint: bool = True) -> None:
        """Replace a dead engine (up to --max_engine_restarts over the run): a new actor on the
        same node, a new weight-sync group, the current weights. Past the limit, checkpoint the
        last complete iteration (when the policy still holds exactly its state) and stop.
        `can_checkpoint`: False once the policy holds this iteration's update (the death came in
        the post-update sync); then the iteration is finished and checkpointed under its own
        number before the run stops (fit), never under iteration - 1."""
        if self.engine_restarts >= self.cfg.max_engine_restarts:
            message = (f"{exc}; {self.engine_restarts} restart(s) already used (--max_engine_restarts "
                       f"{self.cfg.max_engine_restarts})")
            if not can_checkpoint:
                # The update is done: finish this iteration's records, checkpoint it, then stop (fit).
                self.stop_after_iteration = message
                return
            if iteration == 1:
                raise RuntimeError(f"{message}; no iteration had completed, so there is nothing to resume "
                                   f"from") from exc
            if self.last_checkpoint != iteration - 1:
                self.save_checkpoint(iteration - 1)
            raise RuntimeError(f"{message}; the last complete iteration is checkpointed: resume with "
                               f"--load_checkpoint") from exc
        self.engine_restarts += 1
        print(f"[knowrl] {exc}: restarting it ({self.engine_restarts}/{self.cfg.max_engine_restarts})", flush=True)
        ray.kill(self.engines[exc.index], no_restart=True)
        (self.engines[exc.index],) = create_vllm_engines(
            1, node_ids=[self.engine_nodes[exc.index]],
            **{**self.engine_args, "seed": self.engine_args["seed"] + 1000 * self.engine_restarts})
        self.weight_metadata = self.connect_engines()
        # a death in this sync must know whether the policy already holds this iteration's update
        self.sync_weights(iteration, updated=not can_checkpoint)
        self.reseed_engines(iteration, only=exc.index)

    # ------------------------------------------------------------------ 2. classification
    def classify(self, tasks: list[Task], iteration: int) -> list[TaskGroup]:
        cfg = self.cfg
        groups = [TaskGroup(task=t, prompt=chat_prompt(self.tokenizer, build_classification_prompt(
            self.templates, t.text), cfg.answer_prefix)) for t in tasks]
        encoded = [self.encode(g.prompt) for g in groups]
        fits = self.fitting_prompts("classification", encoded, iteration)
        groups = [g for g, ok in zip(groups, fits) if ok]
        sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.generate_max_len}
        outputs = self.generate([ids for ids, ok in zip(encoded, fits) if ok], sampling, cfg.n_samples_per_prompt,
                                iteration)
        for group, samples in zip(groups, outputs):
            group.samples = samples
            group.labels = [parse_answer(s.text, cfg.answer_prefix, s.finished) for s in samples]
        return groups

    # ------------------------------------------------------------------ 3. reward
    def score(self, group: TaskGroup, iteration: int) -> None:
        """Rewards, majority and agreement of one group. Raises ``RewardFunctionError`` naming
        --reward_func, the iteration and the task when the reward function fails."""
        reward_group = RewardGroup(task=group.task.text, gen_label=group.task.gen_label, labels=group.labels,
                                   texts=[s.text for s in group.samples])
        group.rewards = compute_rewards(self.reward_fn, reward_group, source=self.cfg.reward_func,
                                        iteration=iteration)
        group.majority, _ = majority_label(group.labels)
        group.agreement = agreement(group.labels)

    # ------------------------------------------------------------------ 5. experience
    def make_experience(self, kept: list[TaskGroup]) -> Experience:
        cfg = self.cfg
        samples = [s for g in kept for s in g.samples]
        rewards = [r for g in kept for r in g.rewards]
        exp = build_experience([s.prompt_token_ids for s in samples], [s.token_ids for s in samples], rewards,
                               self.pad_token_id)
        kl_in_reward = 0.0 if cfg.use_kl_loss else cfg.init_kl_coef
        scorers = {"old_logp": self.policy if self.needs_old_logprobs(len(exp)) else None,
                   "ref_logp": self.reference}
        passes = {name: group for name, group in scorers.items() if group is not None}
        pending = {}
        for name, group in passes.items():
            pending[name] = self.submit_scoring(group, exp)
            if not self.concurrent_scoring:
                setattr(exp, name, self.collect_scoring(group, exp, *pending.pop(name)))
        for name, (plan, refs) in pending.items():
            setattr(exp, name, self.collect_scoring(passes[name], exp, plan, refs))
        if exp.old_logp is not None and exp.ref_logp is not None:
            exp.kl = compute_kl(exp.old_logp, exp.ref_logp, cfg.kl_estimator, exp.action_mask)
        else:
            exp.kl = torch.zeros_like(exp.action_mask)
        exp.advantages, exp.returns = self.advantage_fn(exp.rewards, exp.kl, exp.action_mask,
                                                        cfg.n_samples_per_prompt, kl_in_reward, cfg.gamma)
        return exp

    def needs_old_logprobs(self, samples: int) -> bool:
        """The behaviour policy's log-probs are needed for KL in the reward, or for the PPO ratio
        once a step has changed the weights. With one optimizer step per rollout and no KL in the
        reward the policy being trained IS the behaviour policy, the ratio is exactly 1, and the
        training forward's own detached log-probs stand in: a whole scoring pass saved."""
        cfg = self.cfg
        kl_in_reward = not cfg.use_kl_loss and cfg.init_kl_coef > 0
        return kl_in_reward or cfg.max_epochs > 1 or samples > cfg.train_batch_size

    def submit_scoring(self, group: ModelGroup, exp: Experience) -> tuple[list, list]:
        """Start a log-prob pass of `group` over `exp`; returns the micro-batch plan and the refs."""
        plan = rank_micro_batches(len(exp), group.world_size, self.cfg.micro_rollout_batch_size,
                                  contiguous=self.cfg.share_prompt_prefix)
        per_rank = [([exp.select(idx) if idx else None for idx in rank_plan],) for rank_plan in plan]
        return plan, group.submit_all("compute_logprobs", self.cfg.temperature, per_rank_args=per_rank)

    def collect_scoring(self, group: ModelGroup, exp: Experience, plan: list, refs: list) -> torch.Tensor:
        results = group.collect(refs, "compute_logprobs")
        out = torch.zeros_like(exp.action_mask)
        for rank_plan, rank_results in zip(plan, results):
            for idx, logp in zip(rank_plan, rank_results):
                if idx:
                    out[torch.as_tensor(idx), :logp.shape[1]] = logp
        return out * exp.action_mask

    # ------------------------------------------------------------------ 6. update
    def update(self, exp: Experience, rng: random.Random) -> dict:
        cfg = self.cfg
        world = self.policy.world_size
        step_stats = []
        for _ in range(cfg.max_epochs):
            if cfg.share_prompt_prefix:
                # shuffle whole tasks, so a task's answers share micro-batches (and one prompt forward)
                tasks = [list(range(i, min(i + cfg.n_samples_per_prompt, len(exp))))
                         for i in range(0, len(exp), cfg.n_samples_per_prompt)]
                rng.shuffle(tasks)
                order = [i for task in tasks for i in task]
            else:
                order = list(range(len(exp)))
                rng.shuffle(order)
            per_rank_steps: list[list[dict]] = [[] for _ in range(world)]
            for step in optimizer_steps(len(order), cfg.train_batch_size):
                rows = [order[i] for i in step]
                # Token-mean over the whole optimizer step; DeepSpeed averages gradients over ranks,
                # so each rank divides by the step's tokens / world size.
                normalizer = float(exp.action_mask[torch.as_tensor(rows)].sum()) / world
                plan = rank_micro_batches(len(rows), world, cfg.micro_train_batch_size,
                                          contiguous=cfg.share_prompt_prefix)
                for rank, rank_plan in enumerate(plan):
                    per_rank_steps[rank].append({
                        "micro_batches": [exp.select([rows[i] for i in idx]) if idx else None for idx in rank_plan],
                        "normalizer": normalizer})
            results = self.policy.call_all(
                "train_steps", per_rank_args=[(steps,) for steps in per_rank_steps], clip_eps=cfg.eps_clip,
                temperature=cfg.temperature, use_kl_loss=cfg.use_kl_loss, kl_coef=cfg.init_kl_coef,
                kl_estimator=cfg.kl_estimator)
            # Each rank's losses are its tokens' sums over (step tokens / ranks): their mean over
            # ranks is the step's exact token mean. Grad norm and lr are global already.
            for per_rank in zip(*results):
                step_stats.append({key: sum(r[key] for r in per_rank) / world for key in per_rank[0]})
        mean = lambda key: sum(s[key] for s in step_stats) / len(step_stats)  # noqa: E731
        return {
            "train/policy_loss": mean("policy_loss"),
            "train/kl_loss": mean("kl_loss"),
            "train/clip_frac": mean("clip_frac"),
            "train/grad_norm": mean("grad_norm"),
            "train/lr": step_stats[-1]["lr"],
            "train/optimizer_steps": len(step_stats),
            "train/old_logprobs_scored": float(exp.old_logp is not None),
            # without a scoring pass the KL estimate comes from the loss (token mean over each step)
            "train/kl": float(masked_mean(exp.kl, exp.action_mask)) if exp.old_logp is not None and
            exp.ref_logp is not None else mean("kl_loss"),
            "train/advantage_abs": float(masked_mean(exp.advantages.abs(), exp.action_mask)),
            "train/response_length": float(exp.action_mask.sum(1).mean()),
        }

    # ------------------------------------------------------------------ 8. weight sync
    def sync_weights(self, iteration: int, updated: bool = False) -> None:
        """`updated`: the policy already holds this iteration's update, so it no longer matches
        the end of iteration - 1 and must not be checkpointed under that name."""
        try:
            sync = share_policy_with_engines if self.cfg.colocate_all_models else broadcast_policy_to_engines
            sync(self.policy, self.engines, self.weight_metadata, self.cfg.weight_sync_bucket_mb * 2**20,
                 self.cfg.actor_timeout)
        except EngineDied as exc:
            self.restart_engine(exc, iteration, can_checkpoint=not updated)   # the restart ends with a full sync

    # ------------------------------------------------------------------ 9. records and checkpoints
    def write_records(self, iteration: int, groups: list[TaskGroup], introspection_log: list[dict]) -> None:
        """log_dir/iterations/iter_NNNN.jsonl (one row per task group) and
        iter_NNNN_introspection.jsonl (one row per task-writing prompt), each written whole
        (temporary file, then rename): a kill mid-write never leaves a torn record file."""
        folder = os.path.join(self.cfg.log_dir, "iterations")
        os.makedirs(folder, exist_ok=True)
        write_jsonl_atomic(os.path.join(folder, f"iter_{iteration:04d}.jsonl"), ({
            "iteration": iteration, "task": g.task.text, "source": g.task.source,
            "gen_label": g.task.gen_label, "type": g.task.type, "reason": g.task.reason,
            "majority": g.majority, "agreement": g.agreement, "mean_reward": g.mean_reward,
            "kept": g.kept, "joined_pool": g.joined_pool,
            "answer_prefix": self.cfg.answer_prefix,
            "samples": [{"text": s.text, "label": lab, "reward": r, "finished": s.finished}
                        for s, lab, r in zip(g.samples, g.labels, g.rewards)],
        } for g in groups))
        write_jsonl_atomic(os.path.join(folder, f"iter_{iteration:04d}_introspection.jsonl"),
                           ({"iteration": iteration, **entry} for entry in introspection_log))

    def summarise(self, groups, kept, tasks, introspection_log, train_stats) -> dict:
        labels = [lab for g in groups for lab in g.labels]
        rewards = [r for g in groups for r in g.rewards]
        majorities = [g.majority for g in groups if g.majority is not None]
        metrics = {
            "rollout/agreement": sum(g.agreement for g in groups) / max(1, len(groups)),
            "rollout/reward": sum(rewards) / max(1, len(rewards)),
            "rollout/unparseable_rate": sum(lab is None for lab in labels) / max(1, len(labels)),
            "rollout/feasible_share": sum(lab == "feasible" for lab in labels) / max(1, len(labels)),
            "rollout/majority_feasible_share": sum(m == "feasible" for m in majorities) / max(1, len(majorities)),
            "rollout/gen_label_consistency": sum(g.majority == g.task.gen_label for g in groups) / max(1, len(groups)),
            "knowrl/tasks_written": sum(len(e["kept"]) + len(e["dropped"]) for e in introspection_log),
            "knowrl/tasks_generated": sum(len(e["kept"]) for e in introspection_log),
            "knowrl/tasks_classified": len(groups),
            "knowrl/tasks_from_seeds": sum(t.source != "generated" for t in tasks),
            "knowrl/groups_kept": len(kept),
            "knowrl/pool_size": len(self.pool),
            # introspection_log has one entry per task-writing prompt sent, classify one group per task
            "knowrl/introspection_prompts_too_long": self.cfg.introspection_prompts - len(introspection_log),
            "knowrl/classification_prompts_too_long": len(tasks) - len(groups),
        }
        metrics.update(train_stats)
        return metrics

    def save_checkpoint(self, iteration: int) -> None:
        """DeepSpeed state first, then (fsynced) the loop state with the run's resume settings and
        a manifest of the files: a tag folder without the state file is an interrupted save and is
        never resumed from. Older complete checkpoints rotate out; this one never does."""
        tag = checkpoint_tag(iteration)
        folder = os.path.join(self.cfg.ckpt_path, tag)
        # A folder of this tag from before a resume (damaged, or passed over) must not lend its
        # old state file to a save that is then interrupted.
        shutil.rmtree(folder, ignore_errors=True)
        self.policy.call_all("save_checkpoint", self.cfg.ckpt_path, tag)
        write_state(folder, {"iteration": iteration, "train_seconds": self.train_seconds,
                             "pool": self.pool.state_dict(), "settings": resume_settings(self.cfg, self.model_path),
                             "config": self.cfg.public_dict()})
        rotate_checkpoints(self.cfg.ckpt_path, self.cfg.max_ckpt_num, current=tag)
        self.last_checkpoint = iteration
        print(f"[knowrl] checkpoint {folder}", flush=True)

    def resume(self) -> int:
        """Restore the newest complete, intact checkpoint; return the iteration it ended (0: none).
        Damaged newer checkpoints are named and passed over; settings that differ from the
        checkpoint's stop the run before anything is loaded (the CLI checks this before Ray too)."""
        point = find_resume_point(self.cfg.ckpt_path)
        for tag, why in point.skipped:
            print(f"[knowrl] warning: checkpoint {os.path.join(self.cfg.ckpt_path, tag)} is damaged ({why}): "
                  f"skipping it", flush=True)
        if point.tag is None:
            print(f"[knowrl] --load_checkpoint: no complete checkpoint in {self.cfg.ckpt_path}, starting fresh",
                  flush=True)
            self.logger.drop_after(0)
            return 0
        diff = settings_mismatch(saved_settings(point.state), resume_settings(self.cfg, self.model_path))
        if diff:
            raise RuntimeError(f"--load_checkpoint: {point.tag} was saved with another setup ({'; '.join(diff)})")
        state = point.state
        self.policy.call_all("load_checkpoint", self.cfg.ckpt_path, point.tag)
        self.pool.load_state_dict(state["pool"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.last_checkpoint = state["iteration"]
        self.logger.drop_after(state["iteration"])
        self.sync_weights(state["iteration"] + 1)
        print(f"[knowrl] resumed from {os.path.join(self.cfg.ckpt_path, point.tag)} after iteration "
              f"{state['iteration']}", flush=True)
        return state["iteration"]

    def save_hf(self) -> None:
        self.policy.call_all("save_hf", self.cfg.save_path, self.model_path)
        print(f"[knowrl] trained model saved to {self.cfg.save_path}", flush=True)
