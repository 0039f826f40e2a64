"""--early_stop's label-free watch: a fixed set of held-out tasks, written by the starting model
and never trained on, classified again after every iteration.

Their predicted-feasible rate and mean self-agreement are logged as monitor/heldout_*; the stop
rule and the checkpoint score are `pseudo_labels.EarlyStop`. This module keeps the tasks, the
rule's state and the best iteration so far, and carries them over a resume; the loop does the
engine work (writing and classifying the tasks, exporting the best model).
"""

from __future__ import annotations

from dataclasses import asdict

from openrlhf.knowrl.introspection import Task
from openrlhf.knowrl.pseudo_labels import EarlyStop, collapse_monitors
from openrlhf.knowrl.records import TaskGroup

RATE, AGREEMENT = "monitor/heldout_feasible_rate", "monitor/heldout_self_agreement"


class HeldOutMonitor:
    """The held-out tasks and the early-stop state of one run (`cfg`: its KnowRLConfig)."""

    def __init__(self, cfg):
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
