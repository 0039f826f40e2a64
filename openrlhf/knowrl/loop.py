"""The KnowRL controller: the whole method, one iteration at a time, readable top to bottom.

    for each iteration:
        1. introspection   the policy writes new tasks it judges feasible / infeasible for itself
        2. classification  each task gets n answers to "is this feasible for you?"
        3. reward          the group's answers are scored together (consensus by default)
        4. filter          groups whose mean reward lies outside the band carry little signal
                       (targets, filter and label balance: consensus.py, --pseudo_label ...)
        5. pool            generated tasks with high agreement become few-shot examples
        6. experience      old and reference log-probs, KL, advantages (Reinforce++ by default)
        7. update          PPO-clip steps on the policy (DeepSpeed, one Ray actor per rank)
        8. weight sync     the new policy weights go to every vLLM engine
        9. records, metrics, checkpoint

With --overlap_introspection, step 1 of the next iteration starts on the engines after step 5
and runs while steps 6-7 run on the policy: its tasks are written one update behind.

Around the method: the engines (restarts, reseeding, weight sync) are `rollout/engine_pool.py`;
starting the actors `actors.py`; writing tasks on the engines `task_writer.py` (requests and
answers `introspection.py`); targets, filter and label balance `consensus.py`; prompt
lengths `prompt_budget.py`; spreading a batch over ranks `rank_batches.py`; files and metrics
`records.py`; saving and resuming `checkpoint.py`.
"""

from __future__ import annotations

import random
import time

import torch

from openrlhf.algorithms import compute_kl, get_advantage_estimator
from openrlhf.analysis.run_report import write_report
from openrlhf.knowrl.actors import launch_actors
from openrlhf.knowrl.checkpoint import RunCheckpoints
from openrlhf.knowrl.config import KnowRLConfig
from openrlhf.knowrl.consensus import ConsensusTargets
from openrlhf.knowrl.held_out import HeldOutMonitor
from openrlhf.knowrl.in_training_eval import InTrainingEval
from openrlhf.knowrl.introspection import Task
from openrlhf.knowrl.pool import TaskPool
from openrlhf.knowrl.prompt_budget import PromptBudget
from openrlhf.knowrl.prompts import (
    PromptTemplates,
    SeedTask,
    build_classification_prompt,
    chat_prompt,
    parse_answer,
)
from openrlhf.knowrl.rank_batches import epoch_order, score_logprobs, train_step_batches
from openrlhf.knowrl.records import TaskGroup, iteration_metrics, progress_line, train_metrics, write_records
from openrlhf.knowrl.reward import RewardFunctionError, RewardGroup, agreement, compute_rewards, majority_label
from openrlhf.knowrl.task_writer import TaskWriter
from openrlhf.rollout.engine_pool import EnginePool
from openrlhf.trainer.actor_group import ModelGroup
from openrlhf.trainer.experience import Experience, build_experience
from openrlhf.trainer.placement import PlacementPlan
from openrlhf.utils.errors import EngineRestartsExhausted
from openrlhf.utils.tracking import MetricsLogger, PhaseTimer, RunProgress


class StoppedAfterUpdate(RuntimeError):
    """The iteration is complete (its records and metrics are written) but the run cannot go on:
    the post-update weight sync ran out of engine restarts, or its --eval_steps evaluation failed.
    `fit` checkpoints it under its own number, then stops."""


class KnowRLTrainer:
    """Runs KnowRL: `start()` launches the engines and the policy/reference ranks on Ray (which
    must be initialised), `fit()` runs the iterations and saves the model.

    cfg: the run's settings. model_path: the resolved --pretrain folder or hub id. tokenizer: its
    Hugging Face tokenizer. seeds: the labelled seed tasks. templates: the prompt templates.
    reward_fn: the group reward (`reward.get_reward_func`). use_gpu: engines and ranks on GPUs.
    plan: the placement plan whose nodes the actors are pinned to (None: Ray places them).
    """

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
        self.consensus = ConsensusTargets(cfg)      # targets, filter, label balance (and their state)
        self.held_out = HeldOutMonitor(cfg)         # --early_stop's held-out tasks and stop rule
        self.evaluator = InTrainingEval(cfg, model_path)   # --eval_steps
        self.advantage_fn = get_advantage_estimator(cfg.advantage_estimator)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.engines: EnginePool | None = None
        self.policy: ModelGroup | None = None
        self.reference: ModelGroup | None = None
        self.logger: MetricsLogger | None = None
        self.progress: RunProgress | None = None
        self.prompts = PromptBudget(tokenizer, cfg.prompt_max_len)   # token ids, --prompt_max_len drops
        self.writer = TaskWriter(cfg, tokenizer, templates, seeds, self.pool, self.prompts)   # step 1
        self.train_seconds = 0.0          # time spent in iterations, resumed ones included
        self.checkpoints: RunCheckpoints | None = None

    # ------------------------------------------------------------------ setup
    def start(self) -> None:
        """Start the engines, the policy (and reference) ranks and the weight-sync group
        (`actors.launch_actors`, which also writes log_dir/placement.json), open the metrics logger."""
        cfg = self.cfg
        self.engines, self.policy, self.reference = launch_actors(cfg, self.model_path, self.use_gpu, self.plan)
        self.writer.engines = self.engines
        self.checkpoints = RunCheckpoints(cfg, self.model_path, self.policy, {   # the state a checkpoint holds
            "pool": self.pool, "consensus": self.consensus, "held_out": self.held_out, "eval": self.evaluator})
        self.logger = MetricsLogger(cfg.log_dir, cfg.use_tensorboard, cfg.use_wandb, cfg.wandb_project,
                                    cfg.wandb_run_name, config=cfg.public_dict())

    # ------------------------------------------------------------------ the loop
    def fit(self) -> list[dict]:
        """Run iterations (after the resumed one with --load_checkpoint) up to --num_iterations or
        --max_train_minutes, checkpointing every --save_steps and at the end; then save the model
        to --save_path and write the run report. Returns each iteration's metrics.

        Raises RuntimeError with one line for the user when the reward function fails or the
        engines die past --max_engine_restarts; the last complete iteration is checkpointed first."""
        cfg = self.cfg
        history = []
        done = 0
        if cfg.load_checkpoint:
            done, self.train_seconds = self.checkpoints.resume(self.logger, self.engines)
        if cfg.early_stop and not self.held_out.tasks:
            self.held_out.write(self.writer, self.classify, self.iteration_rng)
        self.progress = RunProgress(cfg.num_iterations, done)
        iteration = done + 1
        stop_reason = None
        while iteration <= cfg.num_iterations and not self.out_of_time() and stop_reason is None:
            start = time.perf_counter()
            try:
                history.append(self.run_iteration(iteration))
            except (RewardFunctionError, EngineRestartsExhausted) as exc:
                advice = self.checkpoints.save_before_update(iteration, isinstance(exc, RewardFunctionError),
                                                             self.train_seconds)
                raise RuntimeError(f"{exc}; {advice}") from exc
            except StoppedAfterUpdate as exc:
                self.train_seconds += time.perf_counter() - start
                self.checkpoints.save(iteration, self.train_seconds)
                raise RuntimeError(f"{exc}; the last complete iteration is checkpointed: "
                                   f"resume with --load_checkpoint") from exc
            self.train_seconds += time.perf_counter() - start
            if self.held_out.tasks:
                stop_reason = self.early_stop_check(iteration, history[-1])
            if iteration == cfg.num_iterations or self.out_of_time() or stop_reason is not None or (
                    cfg.save_steps > 0 and iteration % cfg.save_steps == 0):
                self.checkpoints.save(iteration, self.train_seconds)
            if self.out_of_time() and iteration < cfg.num_iterations:
                print(f"[knowrl] --max_train_minutes {cfg.max_train_minutes:g} reached after iteration "
                      f"{iteration} ({self.train_seconds / 60:.1f} min of iterations)", flush=True)
            iteration += 1
        self.progress.close()
        if stop_reason is not None:
            print(f"[knowrl] --early_stop after iteration {iteration - 1}: {stop_reason}", flush=True)
        if self.evaluator.best is not None:
            print(f"[knowrl] {cfg.save_path} holds iteration {self.evaluator.best['iteration']}, the best by "
                  f"--eval_metric {cfg.eval_metric} ({self.evaluator.best['value']:.4f})", flush=True)
        elif self.held_out.best_iteration and not cfg.eval_metric:
            print(f"[knowrl] {cfg.save_path} holds iteration {self.held_out.best_iteration}, the closest to the "
                  f"middle of --feasible_rate_band on the held-out tasks", flush=True)
        else:
            self.policy.call_all("save_hf", cfg.save_path, self.model_path)
            print(f"[knowrl] trained model saved to {cfg.save_path}", flush=True)
        self.logger.close()
        report = write_report(cfg.log_dir, ckpt_path=cfg.ckpt_path, save_path=cfg.save_path)
        print(f"[knowrl] run report: {report}", flush=True)
        return history

    def run_iteration(self, iteration: int) -> dict:
        """One iteration of the method (steps 1-9 above); returns its metrics (the row logged to
        metrics.jsonl). Raises `RewardFunctionError` or `EngineRestartsExhausted` before the
        update (the policy and pool then hold the end of iteration - 1), `StoppedAfterUpdate`
        once the iteration is complete but its weights could not reach the engines or its
        evaluation failed."""
        cfg = self.cfg
        timer = PhaseTimer(on_phase=self.progress.phase)
        start = time.perf_counter()

        with timer("introspection"):
            ahead = self.writer.take_ahead(iteration)
            if ahead is not None:
                rng, tasks, introspection_log = ahead
            else:
                rng = self.iteration_rng(iteration)
                tasks, introspection_log = self.writer.write(iteration, rng)
        with timer("classification"):
            groups = self.classify(tasks, iteration)
        with timer("reward"):
            self.consensus.assign(groups, iteration)
            for group in groups:
                self.score(group, iteration)
        for g in groups:
            g.kept = self.consensus.keep(g)
        kept = [g for g in groups if g.kept]
        trained = self.consensus.select(kept)   # kept, or label-balanced with groups that waited
        # the pool depends on the answers only, so it grows before the next tasks are written
        for g in groups:
            if g.task.source == "generated":
                g.joined_pool = self.pool.offer(g.task.text, *self.consensus.pool_label(g), iteration,
                                                g.task.type, g.task.reason)
        if cfg.overlap_introspection and iteration < cfg.num_iterations:
            self.writer.start_ahead(iteration + 1, self.iteration_rng(iteration + 1))

        train_stats: dict = {}
        if trained:
            with timer("experience"):
                experience = self.make_experience(trained)
            with timer("update"):
                train_stats = self.update(experience, rng)
        if self.writer.ahead is not None:
            with timer("introspection_wait"):
                self.writer.finish_ahead()
        stop = None   # the update is done: a failure from here on finishes the iteration, then stops (fit)
        if trained:
            with timer("weight_sync"):
                try:
                    self.engines.sync_weights(iteration)
                except EngineRestartsExhausted as exc:
                    stop = exc

        with timer("records"):
            write_records(self.cfg, iteration, groups, introspection_log)
        metrics = iteration_metrics(groups, kept, tasks, introspection_log, len(self.pool), cfg.introspection_prompts)
        metrics.update(train_stats)
        metrics.update(self.consensus.monitors(groups, trained))
        if self.held_out.tasks and stop is None:
            with timer("held_out"):
                metrics.update(self.held_out.measure(self.classify(self.held_out.tasks, iteration)))
        if self.evaluator.due(iteration) and stop is None:
            with timer("eval"):
                try:
                    metrics.update(self.evaluator.run(iteration, self.policy))
                except RuntimeError as exc:
                    stop = exc
        metrics["knowrl/introspection_ahead"] = float(ahead is not None)
        metrics.update({f"timing/{k}": v for k, v in timer.seconds.items()})
        metrics["timing/iteration"] = time.perf_counter() - start
        self.logger.log(iteration, metrics)
        line = progress_line(iteration, cfg.num_iterations, metrics, len(kept), len(groups), len(self.pool))
        self.progress.finish_iteration(line, metrics, len(kept), len(groups))
        if stop is not None:
            raise StoppedAfterUpdate(str(stop)) from stop
        return metrics

    def out_of_time(self) -> bool:
        """--max_train_minutes (0: no limit) is spent, counting iteration time only."""
        return self.cfg.max_train_minutes > 0 and self.train_seconds >= 60 * self.cfg.max_train_minutes

    def iteration_rng(self, iteration: int) -> random.Random:
        """The iteration's own generator (task targets, examples, shuffles): a function of
        (--seed, iteration), so a resumed run draws what the uninterrupted run drew."""
        return random.Random(self.cfg.seed * 100_003 + iteration)

    # ------------------------------------------------------------------ 2. classification
    def classify(self, tasks: list[Task], iteration: int) -> list[TaskGroup]:
        """One group per task whose classification prompt fits, with --n_samples_per_prompt
        answers and their parsed labels (None: no label before the answer ended or was cut)."""
        cfg = self.cfg
        groups = [TaskGroup(task=t, prompt=chat_prompt(self.tokenizer, build_classification_prompt(
            self.templates, t.text), cfg.answer_prefix)) for t in tasks]
        encoded = [self.prompts.encode(g.prompt) for g in groups]
        fits = self.prompts.fitting("classification", encoded, iteration)
        groups = [g for g, ok in zip(groups, fits) if ok]
        sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.generate_max_len}
        outputs = self.engines.generate([ids for ids, ok in zip(encoded, fits) if ok], sampling,
                                        cfg.n_samples_per_prompt, iteration)
        for group, samples in zip(groups, outputs):
            group.samples = samples
            group.labels = [parse_answer(s.text, cfg.answer_prefix, s.finished) for s in samples]
        return groups

    # ------------------------------------------------------------------ 3. reward
    def score(self, group: TaskGroup, iteration: int) -> None:
        """Rewards (against `group.target` when --pseudo_label/--intent_weight ask for it, from
        --reward_func otherwise), majority and agreement of one group. Raises ``RewardFunctionError`` naming
        --reward_func, the iteration and the task when the reward function fails."""
        if self.cfg.target_rewards:
            group.rewards = self.consensus.rewards(group)
        else:
            reward_group = RewardGroup(task=group.task.text, gen_label=group.task.gen_label, labels=group.labels,
                                       texts=[s.text for s in group.samples])
            group.rewards = compute_rewards(self.reward_fn, reward_group, source=self.cfg.reward_func,
                                            iteration=iteration)
        group.majority, _ = majority_label(group.labels)
        group.agreement = agreement(group.labels)

    # ------------------------------------------------------------------ 6. experience
    def make_experience(self, kept: list[TaskGroup]) -> Experience:
        """The kept groups' samples as one batch of B = (groups x n) rows, padded to T response
        tokens: old (when needed) and reference log-probs [B, T], KL [B, T] (zeros without both),
        advantages and returns [B, T] from --advantage_estimator."""
        cfg = self.cfg
        samples = [s for g in kept for s in g.samples]
        rewards = [r for g in kept for r in g.rewards]
        exp = build_experience([s.prompt_token_ids for s in samples], [s.token_ids for s in samples], rewards,
                               self.pad_token_id)
        passes = {"old_logp": (self.policy, {})} if cfg.needs_old_logprobs(len(exp)) else {}
        if self.reference is not None:
            passes["ref_logp"] = (self.reference, {})
        elif cfg.needs_ref_logprobs:   # LoRA: the frozen base, i.e. the policy with its adapter off
            passes["ref_logp"] = (self.policy, {"disable_adapter": True})
        scored = score_logprobs(passes, exp, cfg.micro_rollout_batch_size, cfg.temperature, cfg.share_prompt_prefix,
                                self.concurrent_scoring)
        for name, logp in scored.items():
            setattr(exp, name, logp)
        if exp.old_logp is not None and exp.ref_logp is not None:
            exp.kl = compute_kl(exp.old_logp, exp.ref_logp, cfg.kl_estimator, exp.action_mask)
        else:
            exp.kl = torch.zeros_like(exp.action_mask)
        exp.advantages, exp.returns = self.advantage_fn(exp.rewards, exp.kl, exp.action_mask,
                                                        cfg.n_samples_per_prompt, cfg.kl_coef_in_reward, cfg.gamma)
        return exp

    # ------------------------------------------------------------------ 7. update
    def update(self, exp: Experience, rng: random.Random) -> dict:
        """--max_epochs passes of PPO-clip optimizer steps over `exp` (--train_batch_size rows a
        step, shuffled with `rng`), split over the policy ranks; returns the train/* metrics
        (losses are token means, averaged over steps)."""
        cfg = self.cfg
        world = self.policy.world_size
        step_stats = []
        for _ in range(cfg.max_epochs):
            order = epoch_order(len(exp), cfg.n_samples_per_prompt, cfg.share_prompt_prefix, rng)
            per_rank_steps = train_step_batches(exp, order, world, cfg.train_batch_size, cfg.micro_train_batch_size,
                                                cfg.share_prompt_prefix)
            results = self.policy.call_all(
                "train_steps", per_rank_args=[(steps,) for steps in per_rank_steps], clip_eps=cfg.eps_clip,
                temperature=cfg.temperature, use_kl_loss=cfg.use_kl_loss, kl_coef=cfg.init_kl_coef,
                kl_estimator=cfg.kl_estimator)
            # Each rank's losses are its tokens' sums over (step tokens / ranks): their mean over
            # ranks is the step's exact token mean. Grad norm and lr are global already.
            for per_rank in zip(*results):
                step_stats.append({key: sum(r[key] for r in per_rank) / world for key in per_rank[0]})
        return train_metrics(step_stats, exp)

    # ------------------------------------------------------------------ --early_stop
    def early_stop_check(self, iteration: int, metrics: dict) -> str | None:
        """Apply the stop rule to this iteration's held-out measures; export the model to
        --save_path when it is the best so far. Returns the reason to stop, or None."""
        reason, improved = self.held_out.check(iteration, metrics)
        if improved and not self.cfg.eval_metric:   # --eval_metric picks --save_path instead
            self.policy.call_all("save_hf", self.cfg.save_path, self.model_path)
        return reason
