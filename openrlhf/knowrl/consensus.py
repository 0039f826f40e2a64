"""The consensus step of one run: which label each task group is rewarded for agreeing with,
which groups train, and how an update is balanced over the two labels.

`--pseudo_label`, `--group_filter`, `--class_balance` and `--intent_weight` applied to an
iteration's `TaskGroup`s, with what carries over from one iteration to the next (the running
feasible prior, the groups waiting for their balance partner) and the `monitor/*` metrics that
show a collapse as it happens. The math (targets, rewards, filter, queue) is pure and lives in
`pseudo_labels.py`; the defaults (majority, band, no balance, no intent term) are the published
method, whose rewards come from --reward_func as before.
"""

from __future__ import annotations

import random
from dataclasses import asdict

from openrlhf.knowrl.introspection import Task
from openrlhf.knowrl.pseudo_labels import (
    BalancedQueue,
    FeasiblePrior,
    batch_targets,
    collapse_monitors,
    keep_group,
    target_rewards,
)
from openrlhf.knowrl.records import TaskGroup
from openrlhf.rollout.vllm_engine import Generation


class ConsensusTargets:
    """Targets, filter and balance of one run (`cfg`: its KnowRLConfig).

    Per iteration: `assign(groups)` sets each group's `target`; the loop scores the groups
    (`rewards(group)` when `cfg.target_rewards`, --reward_func otherwise); `keep(group)` is the
    filter; `select(kept)` returns the groups this update trains (with --class_balance groups
    equally many per target, the rest waiting); `monitors(groups)` the monitor/* metrics."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.prior = FeasiblePrior(cfg.prior_momentum)
        self.queue = BalancedQueue() if cfg.class_balance == "groups" else None
        self.starved = False      # the last select() had kept groups but none to balance them

    def assign(self, groups: list[TaskGroup], iteration: int) -> None:
        """Set `group.target` for a batch (`pseudo_labels.batch_targets`; `aligned` also folds the
        batch into the running prior) and `group.target_share`, the share of its n samples that
        give the target (0 without a target). --permute_targets shuffles the targets over the
        batch with a generator of (--seed, iteration), the same after a resume."""
        targets = batch_targets(self.cfg.pseudo_label, [g.labels for g in groups], self.prior, self.cfg.target_prior)
        if self.cfg.permute_targets:
            random.Random(self.cfg.seed * 100_003 + iteration + 7).shuffle(targets)
        for group, target in zip(groups, targets):
            group.target = target
            group.target_share = (sum(lab == target for lab in group.labels) / len(group.labels)
                                  if target is not None and group.labels else 0.0)

    def rewards(self, group: TaskGroup) -> list[float]:
        """(1-w)*[label == target] + w*[label == the label the task was written for], per sample."""
        return target_rewards(group.labels, group.target, group.task.gen_label, self.cfg.intent_weight)

    def keep(self, group: TaskGroup) -> bool:
        """--group_filter: `band` (mean reward within [--min_group_reward, --max_group_reward]) or
        `nondegenerate` (the rewards are not all equal)."""
        return keep_group(group.rewards, self.cfg.group_filter, (self.cfg.min_group_reward, self.cfg.max_group_reward))

    def select(self, kept: list[TaskGroup]) -> list[TaskGroup]:
        """The groups the update trains: `kept` itself, or with --class_balance groups k of each
        target label (k: the smaller of the two queues, this iteration's groups added to what
        waited). Sets `starved` when there were groups to train but k is 0."""
        if self.queue is None:
            self.starved = False
            return kept
        batch = self.queue.take(kept, lambda g: g.target)
        self.starved = not batch and any(self.queue.waiting().values())
        return batch

    def pool_label(self, group: TaskGroup) -> tuple[str | None, float]:
        """(label, agreement) the task would join the few-shot pool with: its target and the
        share of samples giving it. With --intent_weight > 0 only a task whose target is the
        label it was written for is offered ((None, 0) otherwise)."""
        if self.cfg.intent_weight > 0 and group.target != group.task.gen_label:
            return None, 0.0
        return group.target, group.target_share

    def monitors(self, groups: list[TaskGroup], trained: list[TaskGroup]) -> dict[str, float]:
        """monitor/* of one iteration (`pseudo_labels.collapse_monitors` over all classified
        groups; `trained` are those the update used), the running prior, the waiting groups per
        label and whether the update starved. Undefined shares are left out."""
        found = collapse_monitors([g.labels for g in groups], [g.target for g in groups],
                                  [g.kept for g in groups], [g.task.gen_label for g in groups])
        out = {f"monitor/{k}": v for k, v in found.items() if v is not None}
        if trained:
            out["monitor/trained_feasible_share"] = sum(g.target == "feasible" for g in trained) / len(trained)
        out["monitor/trained_groups"] = float(len(trained))
        this_iteration = {id(g) for g in groups}
        out["monitor/trained_from_earlier_iterations"] = float(sum(id(g) not in this_iteration for g in trained))
        if self.cfg.pseudo_label == "aligned":
            out["monitor/feasible_prior"] = self.prior.current
        if self.queue is not None:
            out.update({f"monitor/waiting_{label}": float(n) for label, n in self.queue.waiting().items()})
            out["monitor/starved"] = float(self.starved)
        return out

    # -------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """The prior and the waiting groups (their samples' token ids included), as JSON types."""
        waiting = {} if self.queue is None else {label: [group_to_dict(g) for g in q]
                                                  for label, q in self.queue.queues.items()}
        return {"prior": self.prior.state_dict(), "waiting": waiting}

    def load_state_dict(self, state: dict) -> None:
        self.prior.load_state_dict(state["prior"])
        if self.queue is not None:
            for label, groups in state.get("waiting", {}).items():
                self.queue.queues[label].extend(group_from_dict(g) for g in groups)


def group_to_dict(group: TaskGroup) -> dict:
    """A TaskGroup as JSON types (sample log-probs left out: the trainer never reads them)."""
    return {"task": asdict(group.task), "prompt": group.prompt, "labels": group.labels, "rewards": group.rewards,
            "majority": group.majority, "agreement": group.agreement, "target": group.target,
            "target_share": group.target_share,
            "samples": [{**asdict(s), "logprobs": None} for s in group.samples]}


def group_from_dict(data: dict) -> TaskGroup:
    """The inverse of `group_to_dict`."""
    return TaskGroup(task=Task(**data["task"]), prompt=data["prompt"],
                     samples=[Generation(**s) for s in data["samples"]], labels=data["labels"],
                     rewards=data["rewards"], majority=data["majority"], agreement=data["agreement"],
                     kept=True, target=data["target"], target_share=data["target_share"])
