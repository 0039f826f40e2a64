"""Intrinsic self-consistency: the model writes tasks it labels feasible/infeasible for itself,
then classifies each one K times in a fresh context.

``generate_tasks`` uses training's introspection template (``build_introspection_prompt``),
example picker and answer reader (``openrlhf.knowrl.introspection``: parse, drop a task cut by
the length limit, filter, log), cycling over the taxonomy reasons so that every type is asked
for (for feasible tasks the reason is the limit they sit close to).
``intrinsic_metrics`` scores the classifications against the generation label:
consistency (majority = generation label; unparseable counts as inconsistent), mean
agreement, overconfidence (generated infeasible, classified feasible, over generated
infeasible), conservatism (generated feasible, classified infeasible, over generated
feasible), each overall and per taxonomy type.
"""

from __future__ import annotations

import math
import random

from openrlhf.knowrl.introspection import pick_examples, read_task_answer
from openrlhf.knowrl.prompts import DEFAULT_INTROSPECTION_PREFIX, SeedTask, build_introspection_prompt
from openrlhf.knowrl.taxonomy import LABELS, REASON_TO_TYPE

from evaluation.metrics import NEG, POS, mean_agreement, safe_div, vote


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
        prompts = [clf.chat(build_introspection_prompt(templates, pick_examples(seeds, 2, rng, reason=r), lab, r,
                                                       per_prompt), DEFAULT_INTROSPECTION_PREFIX)
                   for lab, r in targets]
        outs = clf.generate(prompts, n=1, temperature=temperature, max_tokens=max_tokens)
        print(f"[eval] intrinsic round {rnd + 1}: {len(targets)} introspection prompts", flush=True)
        for (label, reason), out in zip(targets, outs):
            kept, record = read_task_answer(out[0], label, reason, DEFAULT_INTROSPECTION_PREFIX, existing)
            kept = record["kept"] = kept[:max(n_per_label - len(got[label]), 0)]
            for t in kept:
                got[label].append({"task": t, "label": label, "reason": reason, "type": REASON_TO_TYPE[reason]})
                existing.append(t)
            log.append({"round": rnd, **record})
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
