"""Intrinsic self-consistency: the model writes tasks it labels feasible/infeasible for itself,
then classifies each one K times in a fresh context.

``generate_tasks`` uses the shared introspection template (``build_introspection_prompt``) and
task reader (``tasks_from_answer``: parse, drop a task cut by the length limit, filter), as
training does, cycling over the taxonomy reasons so
that every type is asked for (for feasible tasks the reason is the limit they sit close to).
``intrinsic_metrics`` scores the classifications against the generation label:
consistency (majority = generation label; unparseable counts as inconsistent), mean
agreement, overconfidence (generated infeasible, classified feasible, over generated
infeasible), conservatism (generated feasible, classified infeasible, over generated
feasible), each overall and per taxonomy type.
"""

from __future__ import annotations

import math
import random

from openrlhf.knowrl.prompts import (
    DEFAULT_INTROSPECTION_PREFIX,
    SeedTask,
    build_introspection_prompt,
    tasks_from_answer,
)
from openrlhf.knowrl.taxonomy import LABELS, REASON_TO_TYPE

from evaluation.metrics import NEG, POS, mean_agreement, safe_div, vote


def pick_examples(seeds: list[SeedTask], reason: str | None, rng: random.Random, per_label: int = 2) -> list[SeedTask]:
    """``per_label`` seed examples of each label, one of them with ``reason`` when there is one."""
    chosen: list[SeedTask] = []
    if reason is not None:
        same = [s for s in seeds if s.reason == reason]
        if same:
            chosen.append(rng.choice(same))
    for label in LABELS:
        pool = [s for s in seeds if s.label == label and s not in chosen]
        need = per_label - sum(1 for s in chosen if s.label == label)
        chosen += rng.sample(pool, max(0, min(need, len(pool))))
    rng.shuffle(chosen)
    return chosen


def generate_tasks(clf, templates, seeds: list[SeedTask], n_per_label: int, *, seed: int, temperature: float = 1.0,
                   max_tokens: int = 256, tasks_per_prompt: int = 4, max_rounds: int = 3) -> tuple[list[dict], list[dict]]:
    """Ask ``clf`` for ``n_per_label`` new tasks of each label. Returns ``(tasks, log)``: tasks as
    ``{"task", "label", "reason", "type"}`` (fewer when the model does not produce enough usable
    ones in ``max_rounds`` rounds), log as one record per introspection prompt."""
    rng = random.Random(seed)
    reasons = sorted(REASON_TO_TYPE)
    per_prompt = max(1, min(tasks_per_prompt, n_per_label))
    got: dict[str, list[dict]] = {lab: [] for lab in LABELS}
    existing = [s.task for s in seeds]
    log: list[dict] = []
    cursor = {lab: 0 for lab in LABELS}
    for rnd in range(max_rounds):
        targets = []
        for label in LABELS:
            need = n_per_label - len(got[label])
            # Ask for twice what is missing: most small-model answers yield few usable tasks, and
            # one wide batch costs far less than another sequential round.
            for _ in range(2 * math.ceil(need / per_prompt) if need > 0 else 0):
                targets.append((label, reasons[cursor[label] % len(reasons)]))
                cursor[label] += 1
        if not targets:
            break
        prompts = [clf.chat(build_introspection_prompt(templates, pick_examples(seeds, r, rng), lab, r, per_prompt),
                            DEFAULT_INTROSPECTION_PREFIX) for lab, r in targets]
        outs = clf.generate(prompts, n=1, temperature=temperature, max_tokens=max_tokens)
        print(f"[eval] intrinsic round {rnd + 1}: {len(targets)} introspection prompts", flush=True)
        for (label, reason), out in zip(targets, outs):
            text = DEFAULT_INTROSPECTION_PREFIX + out[0].text
            kept, dropped = tasks_from_answer(text, out[0].finished, existing)
            room = n_per_label - len(got[label])
            kept = kept[:max(room, 0)]
            for t in kept:
                got[label].append({"task": t, "label": label, "reason": reason, "type": REASON_TO_TYPE[reason]})
                existing.append(t)
            log.append({"round": rnd, "target_label": label, "reason": reason, "output": text,
                        "finished": out[0].finished, "kept": kept,
                        "dropped": [{"task": t, "why": why} for t, why in dropped]})
    return got["feasible"] + got["infeasible"], log


def intrinsic_metrics(gold: list[str], sample_labels: list[list[str | None]], types: list[str | None]) -> dict:
    """Consistency, mean agreement, overconfidence and conservatism, overall and per type."""

    def block(idx: list[int]) -> dict:
        g = [gold[i] for i in idx]
        s = [sample_labels[i] for i in idx]
        p = [vote(x) for x in s]
        n_inf = sum(1 for x in g if x == POS)
        n_feas = len(g) - n_inf
        return {
            "n": len(g),
            "n_generated_infeasible": n_inf,
            "n_generated_feasible": n_feas,
            "consistency": safe_div(sum(1 for a, b in zip(g, p) if a == b), len(g)),
            "mean_agreement": mean_agreement(s),
            "overconfidence": safe_div(sum(1 for a, b in zip(g, p) if a == POS and b == NEG), n_inf),
            "conservatism": safe_div(sum(1 for a, b in zip(g, p) if a == NEG and b == POS), n_feas),
            "unparseable_rate": safe_div(sum(1 for b in p if b is None), len(g)),
        }

    out = block(list(range(len(gold))))
    per_type: dict[str, list[int]] = {}
    for i, t in enumerate(types):
        per_type.setdefault(t or "none", []).append(i)
    out["per_type"] = {t: block(per_type[t]) for t in sorted(per_type)}
    return out
