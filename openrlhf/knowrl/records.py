"""What an iteration leaves behind: its task groups, written to log_dir/iterations/, the
rollout/, knowrl/ and train/ metrics of its row in metrics.jsonl, and its console line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from openrlhf.algorithms import masked_mean
from openrlhf.knowrl.introspection import Task
from openrlhf.rollout.vllm_engine import Generation
from openrlhf.utils.jsonl import write_jsonl_atomic


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
    target: str | None = None        # the label its samples are rewarded for agreeing with (consensus.py)
    target_share: float = 0.0        # share of its samples giving the target

    @property
    def mean_reward(self) -> float:
        return sum(self.rewards) / len(self.rewards) if self.rewards else 0.0


def write_records(cfg, iteration: int, groups: list[TaskGroup], introspection_log: list[dict]) -> None:
    """cfg.log_dir/iterations/iter_NNNN.jsonl (one row per task group) and
    iter_NNNN_introspection.jsonl (one row per task-writing prompt), each written whole
    (temporary file, then rename): a kill mid-write never leaves a torn record file."""
    folder = os.path.join(cfg.log_dir, "iterations")
    os.makedirs(folder, exist_ok=True)
    write_jsonl_atomic(os.path.join(folder, f"iter_{iteration:04d}.jsonl"), ({
        "iteration": iteration, "task": g.task.text, "source": g.task.source,
        "gen_label": g.task.gen_label, "type": g.task.type, "reason": g.task.reason,
        "majority": g.majority, "agreement": g.agreement, "target": g.target, "mean_reward": g.mean_reward,
        "kept": g.kept, "joined_pool": g.joined_pool,
        "answer_prefix": cfg.answer_prefix,
        "samples": [{"text": s.text, "label": lab, "reward": r, "finished": s.finished}
                    for s, lab, r in zip(g.samples, g.labels, g.rewards)],
    } for g in groups))
    write_jsonl_atomic(os.path.join(folder, f"iter_{iteration:04d}_introspection.jsonl"),
                       ({"iteration": iteration, **entry} for entry in introspection_log))


def iteration_metrics(groups: list[TaskGroup], kept: list[TaskGroup], tasks: list[Task],
                      introspection_log: list[dict], pool_size: int, introspection_prompts: int) -> dict:
    """The rollout/* and knowrl/* metrics of one iteration (shares in [0, 1], counts).

    `groups`: the classified groups, `kept` those inside the reward band, `tasks` every task of
    the iteration (a task whose prompt was too long has no group), `introspection_log` one record
    per task-writing prompt sent, `introspection_prompts` how many were built (--introspection_prompts)."""
    labels = [lab for g in groups for lab in g.labels]
    rewards = [r for g in groups for r in g.rewards]
    majorities = [g.majority for g in groups if g.majority is not None]
    return {
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
        "knowrl/pool_size": pool_size,
        # the log has one entry per task-writing prompt sent, classify one group per task
        "knowrl/introspection_prompts_too_long": introspection_prompts - len(introspection_log),
        "knowrl/classification_prompts_too_long": len(tasks) - len(groups),
    }


def train_metrics(step_stats: list[dict], exp) -> dict:
    """The train/* metrics of one update: `step_stats` holds each optimizer step's losses (token
    means), clip fraction, grad norm and lr; `exp` the Experience it trained on."""
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


def progress_line(iteration: int, num_iterations: int, metrics: dict, kept: int, groups: int, pool: int) -> str:
    """The one console line of a finished iteration."""
    return (f"[knowrl] iter {iteration}/{num_iterations}  agreement {metrics['rollout/agreement']:.3f}  "
            f"reward {metrics['rollout/reward']:.3f}  unparseable {metrics['rollout/unparseable_rate']:.2f}  "
            f"kept {kept}/{groups} groups  pool {pool}  "
            f"kl {metrics.get('train/kl', 0.0):.2e}  loss {metrics.get('train/policy_loss', 0.0):+.4f}  "
            f"({metrics['timing/iteration']:.1f}s)")
