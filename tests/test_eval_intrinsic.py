"""evaluation/intrinsic.py and evaluation/report.py with a scripted fake model (no vLLM):
task generation through the shared introspection prompt/parser, scoring of the records, and
rescoring reproducing the same metrics."""

import json

from evaluation import report as R
from evaluation.engine import Completion
from evaluation.intrinsic import generate_tasks
from openrlhf.knowrl.introspection import pick_examples
from openrlhf.knowrl.prompts import DEFAULT_PROMPTS_DIR, load_seed_tasks, load_templates
from openrlhf.knowrl.taxonomy import REASON_TO_TYPE


DISTINCT = [
    "Explain how photosynthesis turns sunlight into sugar for a ten-year-old.",
    "List three causes of the French Revolution with one sentence each.",
    "Convert 72 degrees Fahrenheit to Celsius and show the formula used.",
    "Write a limerick about a cat who learns to play the violin.",
    "Describe the rules of chess castling, including when it is not allowed.",
    "Summarise the plot of Romeo and Juliet in exactly five sentences.",
    "Give a recipe for pancakes that needs no eggs or milk at all.",
    "Compare the climates of Norway and Egypt across the four seasons.",
    "Translate 'good morning, how are you' into Spanish and Italian.",
    "Outline a weekly budget for a student earning 800 euros per month.",
    "Name the planets of the solar system ordered by their distance from the sun.",
    "Suggest five names for a bakery that specialises in sourdough bread.",
    "Explain why the sky looks blue during the day but red at sunset.",
    "Draft a polite email asking a landlord to repair a leaking tap.",
    "Calculate the area of a circle whose radius is seven centimetres.",
    "Describe what a binary search does and when it cannot be used.",
]


class FakeClassifier:
    """Writes numbered tasks for introspection prompts; answers classification prompts with a
    fixed label pattern."""

    def __init__(self):
        self.calls = []
        self.counter = 0

    def chat(self, text, assistant_prefix=""):
        return "<user>" + text + "<assistant>" + assistant_prefix

    def generate(self, prompts, *, n, temperature, max_tokens):
        self.calls.append((len(prompts), n))
        out = []
        for p in prompts:
            if "NEW tasks" in p:
                lines = []
                for _ in range(2):
                    lines.append("Task: " + DISTINCT[self.counter % len(DISTINCT)])
                    self.counter += 1
                text = "\n".join(lines)
                if p.endswith("Task:"):  # the prompt prefilled the first marker; continue after it
                    text = text[len("Task:"):]
                out.append([Completion(text, True)] * n)
            else:
                answers = ["Label: infeasible\nReason: x", "Label: feasible"][:n] + ["garbage"] * max(0, n - 2)
                out.append([Completion(a, True) for a in answers])
        return out


def test_generate_and_score_intrinsic():
    templates = load_templates(DEFAULT_PROMPTS_DIR)
    seeds = load_seed_tasks(DEFAULT_PROMPTS_DIR / "seed_tasks.jsonl")
    clf = FakeClassifier()
    tasks, log = generate_tasks(clf, templates, seeds, 3, seed=0, max_tokens=64, tasks_per_prompt=2)
    assert len(tasks) == 6
    assert sum(t["label"] == "infeasible" for t in tasks) == 3
    assert all(t["type"] == REASON_TO_TYPE[t["reason"]] for t in tasks)
    assert len({t["task"] for t in tasks}) == 6  # duplicates filtered
    assert log and all({"target_label", "reason", "output", "kept", "dropped"} <= set(x) for x in log)
    assert len(clf.calls) == 1  # one oversampled round was enough

    from openrlhf.knowrl.prompts import parse_label

    records = []
    answers = clf.generate(["classify"] * len(tasks), n=3, temperature=1.0, max_tokens=8)
    for i, (t, outs) in enumerate(zip(tasks, answers)):
        samples = [{"text": x.text, "label": parse_label(x.text)} for x in outs]
        item = {"task": t["task"], "label": t["label"], "category": t["reason"], "source_id": f"gen{i}"}
        records.append(R.make_record(R.INTRINSIC, i, item, samples, reason=t["reason"], type=t["type"]))
    scores = R.score_records(records)
    m = scores["intrinsic"]
    # every task: samples [infeasible, feasible, None] -> tie -> first parseable = infeasible
    assert m["n"] == 6 and m["consistency"] == 0.5
    assert m["overconfidence"] == 0.0 and m["conservatism"] == 1.0
    assert m["mean_agreement"] == 0.0
    assert set(m["per_type"]) == {t["type"] for t in tasks}
    assert "intrinsic self-consistency" in R.format_table(scores)

    # predictions.jsonl round trip reproduces the metrics exactly
    rows = [json.loads(json.dumps(r)) for r in records]
    assert json.loads(json.dumps(R.score_records(rows))) == json.loads(json.dumps(scores))


def test_pick_examples_includes_reason():
    import random

    seeds = load_seed_tasks(DEFAULT_PROMPTS_DIR / "seed_tasks.jsonl")
    ex = pick_examples(seeds, 2, random.Random(0), reason="missing_context")
    assert any(s.reason == "missing_context" for s in ex)
    assert sum(s.label == "feasible" for s in ex) == 2 and sum(s.label == "infeasible" for s in ex) == 2


def test_compare_records_and_reparse():
    def recs(labels):
        out = []
        for i, (gold, lab) in enumerate(labels):
            out.append(R.make_record("b", i, {"task": f"t{i}", "label": gold}, [{"text": f"Label: {lab}" if lab else "??",
                                                                              "label": lab}]))
        return out

    golds = ["infeasible", "feasible"] * 5
    a = recs([(g, "feasible") for g in golds])
    b = recs([(g, g) for g in golds])
    cmp = R.compare_records(a, b, n_boot=200, seed=1)
    acc = cmp["benchmarks"]["b"]["metrics"]["accuracy"]
    assert acc["A"] == 0.5 and acc["B"] == 1.0 and acc["estimate"] == 0.5
    assert acc["ci_low"] <= 0.5 <= acc["ci_high"]
    assert "95% CI" in R.format_compare(cmp, "a", "b")
    import pytest

    with pytest.raises(ValueError, match="different items"):
        R.compare_records(a, recs([(g, g) for g in reversed(golds)]))
    # reparse: a stored label that disagrees with the text is fixed
    a[0]["samples"][0]["label"] = None
    assert R.reparse(a) == 1 and a[0]["prediction"] == "feasible"


def test_compare_intrinsic_has_unpaired_bootstrap_ci():
    def recs(pairs):
        return [R.make_record(R.INTRINSIC, i, {"task": f"own task {i}", "label": gold},
                              [{"text": f"Label: {lab}", "label": lab}] * 3) for i, (gold, lab) in enumerate(pairs)]

    golds = ["infeasible", "feasible"] * 6
    a = recs([(g, "infeasible") for g in golds])            # says infeasible to everything
    b = recs([(g, g) for g in golds[:10]])                    # its own, differently sized task set
    cmp = R.compare_records(a, b, n_boot=300, seed=2)
    cons = cmp["intrinsic"]["consistency"]
    assert cons["A"] == 0.5 and cons["B"] == 1.0 and cons["estimate"] == 0.5
    assert cons["ci_low"] <= 0.5 <= cons["ci_high"] and cons["ci_high"] <= 1.0
    assert "n_valid" in cons and cmp["intrinsic"]["n"] == {"A": 12, "B": 10}
    assert "unpaired bootstrap CI" in R.format_compare(cmp, "a", "b")
