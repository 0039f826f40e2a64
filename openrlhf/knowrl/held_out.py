"""--early_stop's label-free watch: a fixed set of held-out tasks, written by the starting model
and never trained on, classified again after every iteration.

Their predicted-feasible rate and mean self-agreement are logged as monitor/heldout_*; the stop
rule and the checkpoint score are `pseudo_labels.EarlyStop`. This module keeps the tasks, the
rule's state and the best iteration so far, and carries them over a resume; the engine work is
the loop's (its task writer and classifier are passed in), as is exporting the best model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict

from openrlhf.knowrl.introspection import Task
from openrlhf.knowrl.pseudo_labels import EarlyStop, collapse_monitors
from openrlhf.knowrl.records import TaskGroup
from openrlhf.knowrl.task_writer import TaskWriter
from openrlhf.utils.jsonl import write_jsonl_atomic

RATE, AGREEMENT = "monitor/heldout_feasible_rate", "monitor/heldout_self_agreement"


class HeldOutMonitor:
    """The held-out tasks and the early-stop state of one run (`cfg`: its KnowRLConfig)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.tasks: list[Task] = []
        self.rule = EarlyStop(band=cfg.feasible_rate_bounds, max_agreement=cfg.max_self_agreement,
                              patience=cfg.patience)
        self.best_iteration = 0           # 0: no iteration checked yet
        self.best_score = float("-inf")

    @staticmethod
    def measure(groups: list[TaskGroup]) -> dict[str, float]:
        """{RATE: share of parseable answers saying feasible, AGREEMENT: mean majority share}
        over the classified held-out `groups` (a key is absent when it is undefined)."""
        found = collapse_monitors([g.labels for g in groups], [None] * len(groups), [False] * len(groups),
                                  [None] * len(groups))
        values = {RATE: found["predicted_feasible_rate"], AGREEMENT: found["self_agreement"]}
        return {k: v for k, v in values.items() if v is not None}

    def write(self, writer: TaskWriter, classify: Callable[[list[Task], int], list[TaskGroup]],
              iteration_rng: Callable) -> None:
        """The starting model writes the held-out tasks with `writer` (log_dir/held_out_tasks.jsonl,
        its answers in held_out_introspection.jsonl; up to 3 rounds of prompts for twice
        --monitor_tasks, as some tasks are dropped) and `classify` answers them once: the
        reference of the stop rule. If it writes none, early stopping is off for the run (said once)."""
        cfg = self.cfg
        prompts = -(-2 * cfg.monitor_tasks // cfg.tasks_per_introspection)
        tasks, log = [], []
        for round_ in range(3):
            more, more_log = writer.write(-round_, iteration_rng(-round_), prompts, held_out=True)
            tasks += [t for t in more if t.text not in {x.text for x in tasks}][:cfg.monitor_tasks - len(tasks)]
            log += more_log
            if len(tasks) >= cfg.monitor_tasks:
                break
        write_jsonl_atomic(os.path.join(cfg.log_dir, "held_out_introspection.jsonl"), log)
        write_jsonl_atomic(os.path.join(cfg.log_dir, "held_out_tasks.jsonl"), (asdict(t) for t in tasks))
        if not tasks:
            print("[knowrl] warning: --early_stop: the starting model wrote no usable held-out task (see "
                  f"{cfg.log_dir}/held_out_introspection.jsonl); early stopping is off for this run", flush=True)
            return
        measures = self.start(tasks, classify(tasks, 0))
        print(f"[knowrl] --early_stop: {len(tasks)} held-out tasks written by the starting model; "
              + ", ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in measures.items()), flush=True)

    def start(self, tasks: list[Task], groups: list[TaskGroup]) -> dict[str, float]:
        """Keep the held-out `tasks` and take the starting model's answers (`groups`) as the band
        rule's reference; returns their measures."""
        self.tasks = tasks
        measures = self.measure(groups)
        self.rule.start(measures.get(RATE))
        return measures

    def check(self, iteration: int, measures: dict[str, float]) -> tuple[str | None, bool]:
        """After `iteration`: (the reason to stop or None, whether this iteration is the best so far
        by `EarlyStop.score` and should be exported to --save_path)."""
        reason = self.rule.check(measures.get(RATE), measures.get(AGREEMENT))
        score = self.rule.score(measures.get(RATE))
        improved = score > self.best_score
        if improved:
            self.best_iteration, self.best_score = iteration, score
        return reason, improved

    def state_dict(self) -> dict:
        return {"tasks": [asdict(t) for t in self.tasks], "rule": self.rule.state_dict(),
                "best_iteration": self.best_iteration, "best_score": self.best_score}

    def load_state_dict(self, state: dict) -> None:
        self.tasks = [Task(**t) for t in state["tasks"]]
        self.rule.load_state_dict(state["rule"])
        self.best_iteration, self.best_score = int(state["best_iteration"]), float(state["best_score"])
