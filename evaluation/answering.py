"""The model answers benchmark questions itself: the ground truth of "feasible *for this model*".

KnowRL asks a model whether a task is feasible for itself. A benchmark's label says whether a
question is answerable by someone; whether *this* model can answer it is measured here, as in
Kadavath et al. 2022 ("Language Models (Mostly) Know What They Know", P(IK)): the model answers
each question that has gold answers (one greedy answer plus K samples, from the editable
``knowrl_prompts/answer.md``), the answers are graded with ``evaluation.grading.grade_answer``,
and an item is **feasible for the model** when its greedy answer is correct. Items without gold
answers whose dataset label is infeasible are infeasible for every model; feasible items
without gold answers have no model-relative label (None) and are left out of those metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

from openrlhf.knowrl.prompts import build_answer_prompt

from evaluation.grading import grade_answer

#: Assistant prefill of every answer (as ``Label:`` is for classification answers).
DEFAULT_QA_PREFIX = "Answer:"


def model_relative_label(dataset_label: str, has_answers: bool, answer_correct: bool | None) -> str | None:
    """``feasible``/``infeasible`` for this model, or None when it cannot be known.

    - gold answers present: feasible iff the greedy answer is correct;
    - no gold answers, dataset label infeasible (unanswerable/unknown): infeasible;
    - no gold answers, dataset label feasible: None (nothing to grade the model's answer with).
    """
    if has_answers:
        return "feasible" if answer_correct else "infeasible"
    return "infeasible" if dataset_label == "infeasible" else None


def answer_and_grade(clf, template: str, questions: Sequence[str], golds: Sequence[Sequence[str]], *,
                     samples: int, temperature: float, max_tokens: int, f1_threshold: float,
                     qa_prefix: str = DEFAULT_QA_PREFIX) -> list[dict]:
    """Answer each question greedily and ``samples`` more times at ``temperature``; grade them.

    ``clf``: an ``evaluation.engine.Classifier`` (its ``chat`` and ``generate``). ``golds[i]``:
    the accepted answers of question i (non-empty). Returns, per question,
    ``{"model_answers": [greedy, *samples], "answer_correct": bool (the greedy answer),
    "answer_correct_share": float in [0, 1] over all 1 + samples answers}``. Answers are graded
    without the prefill; a cut answer (length limit) is graded as it stands.
    """
    if len(questions) != len(golds):
        raise ValueError(f"{len(questions)} questions but {len(golds)} gold answer lists")
    if not questions:
        return []
    prompts = [clf.chat(build_answer_prompt(template, q), qa_prefix) for q in questions]
    greedy = clf.generate(prompts, n=1, temperature=0.0, max_tokens=max_tokens)
    sampled = (clf.generate(prompts, n=samples, temperature=temperature, max_tokens=max_tokens)
               if samples > 0 else [[] for _ in prompts])
    rows = []
    for gold, first, rest in zip(golds, greedy, sampled):
        texts = [c.text.strip() for c in (*first, *rest)]
        correct = [grade_answer(t, gold, f1_threshold=f1_threshold) for t in texts]
        rows.append({"model_answers": texts, "answer_correct": correct[0],
                     "answer_correct_share": sum(correct) / len(correct)})
    return rows
