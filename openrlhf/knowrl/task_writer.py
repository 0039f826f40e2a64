"""Step 1 of the loop, introspection: the policy (on the vLLM engines) writes the iteration's
tasks. Builds the task-writing prompts from seeds and pool, sends them, reads the answers into
tasks; with --overlap_introspection it starts the next iteration's writing before the update
and collects it after. What a request asks for and how an answer is read is `introspection.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from openrlhf.knowrl.introspection import Task, introspection_targets, pick_examples, tasks_for_iteration
from openrlhf.knowrl.pool import TaskPool
from openrlhf.knowrl.prompt_budget import PromptBudget
from openrlhf.knowrl.prompts import PromptTemplates, SeedTask, build_introspection_prompt, chat_prompt
from openrlhf.rollout.engine_pool import EnginePool
from openrlhf.rollout.vllm_engine import PendingGeneration
from openrlhf.utils.errors import EngineDied

Targets = list[tuple[str, str | None]]   # (label, reason) each task-writing prompt asks for


@dataclass
class NextIntrospection:
    """An iteration's task-writing started ahead (--overlap_introspection). `rng` is that
    iteration's generator, carried over to it; `result` is (tasks, log) once the answers are read."""

    iteration: int
    rng: random.Random
    targets: Targets
    generation: PendingGeneration
    result: tuple[list[Task], list[dict]] | None = None


class TaskWriter:
    """Writes tasks with the engines (`engines` is set once they are started). `cfg`: the run's
    KnowRLConfig; `seeds` and `pool` give the few-shot examples; `prompts` encodes and applies
    --prompt_max_len."""

    def __init__(self, cfg, tokenizer, templates: PromptTemplates, seeds: list[SeedTask], pool: TaskPool,
                 prompts: PromptBudget):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.templates = templates
        self.seeds = seeds
        self.pool = pool
        self.prompts = prompts
        self.engines: EnginePool | None = None
        self.sampling = {"temperature": cfg.introspection_temperature, "top_p": 1.0,
                         "max_tokens": cfg.introspection_max_len}   # vLLM sampling of task writing
        self.ahead: NextIntrospection | None = None

    def requests(self, iteration: int, rng: random.Random, count: int | None = None) -> tuple[Targets, list[list[int]]]:
        """The (label, reason) each of `count` (default --introspection_prompts) task-writing
        prompts asks for, and the prompts' token ids; prompts over --prompt_max_len are left out
        (with their targets)."""
        cfg = self.cfg
        targets = introspection_targets(count or cfg.introspection_prompts, iteration, rng)
        per_label = max(1, cfg.few_shot_examples // 2)
        encoded = [self.prompts.encode(chat_prompt(self.tokenizer, build_introspection_prompt(
            self.templates, pick_examples(self.seeds + self.pool.as_seeds(), per_label, rng), label, reason,
            cfg.tasks_per_introspection), cfg.introspection_prefix)) for label, reason in targets]
        fits = self.prompts.fitting("introspection", encoded, iteration)
        return [t for t, ok in zip(targets, fits) if ok], [ids for ids, ok in zip(encoded, fits) if ok]

    def tasks(self, targets: Targets, outputs: list, rng: random.Random,
              held_out: bool = False) -> tuple[list[Task], list[dict]]:
        """The tasks of the answers `outputs[i][0]` to `targets[i]` and one log record per answer
        (`introspection.tasks_for_iteration`)."""
        return tasks_for_iteration(targets, outputs, rng, self.seeds + self.pool.as_seeds(), self.cfg, held_out)

    def write(self, iteration: int, rng: random.Random, count: int | None = None,
              held_out: bool = False) -> tuple[list[Task], list[dict]]:
        """Write `iteration`'s tasks now: reseed the engines, send `count` prompts, read the answers."""
        self.engines.reseed(iteration)
        targets, prompts = self.requests(iteration, rng, count)
        outputs = self.engines.generate(prompts, self.sampling, 1, iteration)
        return self.tasks(targets, outputs, rng, held_out)

    def take_ahead(self, iteration: int) -> tuple[random.Random, list[Task], list[dict]] | None:
        """(rng, tasks, log) of `iteration` when they were written ahead and arrived, else None."""
        ahead, self.ahead = self.ahead, None
        if ahead is None or ahead.iteration != iteration or ahead.result is None:
            return None
        return (ahead.rng, *ahead.result)

    def start_ahead(self, iteration: int, rng: random.Random) -> None:
        """Send `iteration`'s requests and return at once: the engines write while the policy
        updates, with the weights from before that update."""
        self.engines.reseed(iteration)
        targets, prompts = self.requests(iteration, rng)
        self.ahead = NextIntrospection(iteration, rng, targets, self.engines.submit(prompts, self.sampling, 1))

    def finish_ahead(self) -> None:
        """Wait for the tasks started by `start_ahead`. If an engine died meanwhile, they are
        dropped: the next iteration writes its own after the weight sync restarts the engine."""
        ahead = self.ahead
        try:
            outputs = self.engines.collect(ahead.generation)
        except EngineDied as exc:
            print(f"[knowrl] {exc}: iteration {ahead.iteration} will write its tasks itself", flush=True)
            return
        ahead.result = self.tasks(ahead.targets, outputs, ahead.rng)
