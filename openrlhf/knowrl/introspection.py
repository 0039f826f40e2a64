"""Introspection requests and answers, shared by training (`knowrl/loop.py`) and evaluation
(`evaluation/intrinsic.py`): which label and reason each task-writing prompt asks for, which
example tasks it shows, and how the tasks of an answer are read, filtered and logged.

Building the prompt text itself is `prompts.build_introspection_prompt`; reading one answer is
`prompts.tasks_from_answer` (a task cut by the length limit is dropped as 'truncated').
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from openrlhf.knowrl.prompts import SeedTask, tasks_from_answer
from openrlhf.knowrl.taxonomy import LABELS, REASON_TO_TYPE


@dataclass
class Task:
    """One task to classify in an iteration."""

    text: str
    gen_label: str              # the label the task was written for (or its seed/pool label)
    type: str | None
    reason: str | None
    source: str                 # generated | seed | pool


def introspection_targets(count: int, iteration: int, rng: random.Random) -> list[tuple[str, str | None]]:
    """The (label, reason) each of an iteration's `count` task-writing prompts asks for: labels
    alternate, starting with `LABELS[iteration % 2]`; each infeasible one names a reason drawn
    from the taxonomy with `rng`, a feasible one none."""
    reasons = sorted(REASON_TO_TYPE)
    targets = []
    for j in range(count):
        label = LABELS[(j + iteration) % 2]
        targets.append((label, rng.choice(reasons) if label == "infeasible" else None))
    return targets


def pick_examples(candidates: list[SeedTask], per_label: int, rng: random.Random,
                  reason: str | None = None) -> list[SeedTask]:
    """`per_label` example tasks of each label from `candidates` (fewer when a label has fewer),
    in a random order. With `reason`, one of them has that reason when any candidate does."""
    chosen: list[SeedTask] = []
    if reason is not None:
        same = [s for s in candidates if s.reason == reason]
        if same:
            chosen.append(rng.choice(same))
    for label in LABELS:
        pool = [s for s in candidates if s.label == label and s not in chosen]
        need = per_label - sum(1 for s in chosen if s.label == label)
        chosen += rng.sample(pool, max(0, min(need, len(pool))))
    rng.shuffle(chosen)
    return chosen


def read_task_answer(output, label: str, reason: str | None, prefix: str, existing: list[str],
                     min_chars: int = 20, max_chars: int = 300,
                     rouge_threshold: float = 0.7) -> tuple[list[str], dict]:
    """The usable tasks of one task-writing answer and its log record.

    `output`: the sampled answer, with `.text` (without the prefill `prefix`) and `.finished`
    (False when cut by the length limit). `existing`: task texts a new task must not repeat
    (ROUGE-L above `rouge_threshold`); `min_chars`/`max_chars` bound a task's length in
    characters. Returns (kept task texts, record); the record holds `target_label`, `reason`,
    `output` (prefill included), `finished`, `kept` and `dropped` (`{"task", "why"}` each)."""
    text = prefix + output.text
    kept, dropped = tasks_from_answer(text, output.finished, existing, min_chars, max_chars, rouge_threshold)
    return kept, {"target_label": label, "reason": reason, "output": text, "finished": output.finished,
                  "kept": kept, "dropped": [{"task": t, "why": why} for t, why in dropped]}


def tasks_for_iteration(targets: list[tuple[str, str | None]], outputs: list, rng: random.Random,
                        known: list[SeedTask], cfg, held_out: bool = False) -> tuple[list[Task], list[dict]]:
    """An iteration's tasks from its task-writing answers: `outputs[i][0]` answers `targets[i]`.

    Every answer's tasks are read against `known` (seeds and pool) and the tasks kept so far;
    they are shuffled with `rng` and cut to --rollout_batch_size; with --fill_from_seeds, too few
    are topped up with a sample of `known` not already there. With --intent_weight > 0 both
    written-for labels come in equal numbers. `held_out`: --early_stop's held-out set instead,
    --monitor_tasks generated tasks, both labels equally, never topped up. Returns (tasks, one log record per
    answer, see `read_task_answer`). `cfg`: the run's KnowRLConfig."""
    existing = [s.task for s in known]
    tasks: list[Task] = []
    log = []
    for (label, reason), out in zip(targets, outputs):
        kept, record = read_task_answer(out[0], label, reason, cfg.introspection_prefix,
                                        existing + [t.text for t in tasks], cfg.min_task_chars,
                                        cfg.max_task_chars, cfg.rouge_threshold)
        kind = REASON_TO_TYPE.get(reason) if reason else None
        tasks += [Task(t, label, kind, reason, "generated") for t in kept]
        log.append(record)
    rng.shuffle(tasks)
    # --intent_weight rewards agreeing with the written-for label: both labels in equal numbers
    count = cfg.monitor_tasks if held_out else cfg.rollout_batch_size
    quota = label_quota(count) if cfg.intent_weight > 0 or held_out else None
    tasks = take(tasks, count, quota)
    if cfg.fill_from_seeds and not held_out and len(tasks) < count:
        used = {t.text for t in tasks}
        spare = [Task(s.task, s.label, s.type, s.reason, s.source) for s in known if s.task not in used]
        rng.shuffle(spare)
        if quota is not None:
            quota = {label: quota[label] - sum(t.gen_label == label for t in tasks) for label in LABELS}
        tasks += take(spare, count - len(tasks), quota)
    return tasks, log


def label_quota(count: int) -> dict[str, int]:
    """`count` split over the two labels, the odd one to the first."""
    return {label: count // 2 + (j < count % 2) for j, label in enumerate(LABELS)}


def take(tasks: list[Task], count: int, quota: dict[str, int] | None) -> list[Task]:
    """The first `count` tasks, with at most `quota[label]` of each written-for label when given."""
    if quota is None:
        return tasks[:count]
    taken = {label: 0 for label in LABELS}
    out = []
    for t in tasks:
        if len(out) < count and taken.get(t.gen_label, 0) < quota.get(t.gen_label, 0):
            taken[t.gen_label] += 1
            out.append(t)
    return out
