"""evaluation/benchmarks.py: each loader on a small file in its original format, error
messages, name lookup through $KNOWRL_BENCHMARKS_DIR and balanced subsampling."""

import collections
import json

import pytest

from evaluation.benchmarks import (
    BENCHMARKS_ENV,
    BenchmarkError,
    EvalItem,
    balanced_subsample,
    load_benchmark,
    sniff_format,
)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


SELFAWARE = {
    "dataset_name": "SelfAware",
    "quantity": 2337,
    "example": [
        {"question_id": 1, "question": "What form of entertainment is 'Slow Poke'?", "answer": ["song"],
         "answerable": True, "source": "hotpot_train"},
        {"question_id": 2, "question": "Who wrote Hamlet?", "answer": ["Shakespeare"], "answerable": True,
         "source": "squadqa_dev"},
        {"question_id": 3, "question": "What will I dream about tonight?", "answer": None, "answerable": False,
         "source": "SelfAware"},
    ],
}
KUQ = [
    {"question": "What existed before the big bang?", "answer": ["unknown"], "unknown": True, "source": "turk",
     "category": "unsolved problem"},
    {"question": "What is done with Hindus after they die?", "answer": ["cremated"], "unknown": False,
     "source": "squad"},
    {"question": "Are moms better than dads?", "answer": ["debatable"], "unknown": True, "source": "turk",
     "category": "controversial"},
]
LOD = [
    {"id": "a1", "task": "Summarise the attached PDF.", "llm": "gpt-4o", "gen_label": "Infeasible",
     "gen_self_knowledge_type": "Contextual Awareness", "gen_reason": "Missing Context", "cls_label": "Infeasible"},
    {"id": "a2", "task": "Write a haiku about autumn.", "llm": "gpt-4o", "gen_label": "Feasible",
     "gen_self_knowledge_type": "Functional Ceiling", "gen_reason": None, "cls_label": "Feasible"},
]
OURS = [
    {"task": "Prove the Goldbach conjecture.", "label": "infeasible", "category": "insufficient_domain_expertise"},
    {"task": "What is 2 + 2?", "label": "Feasible", "category": "capability_boundary"},
    {"task": "Translate the voicemail my landlord left me.", "label": "infeasible", "reason": "missing_context"},
]


def test_selfaware(tmp_path):
    p = tmp_path / "SelfAware.json"
    p.write_text(json.dumps(SELFAWARE, indent=4))
    b = load_benchmark(str(p))
    assert b.format == "selfaware" and b.name == "selfaware" and b.n_total == 3 and len(b.sha256) == 64
    assert b.items[0] == EvalItem("What form of entertainment is 'Slow Poke'?", "feasible", "hotpot", "1",
                                  answers=("song",))
    assert b.items[1].category == "squadqa" and b.items[1].answers == ("Shakespeare",)
    assert b.items[2].label == "infeasible" and b.items[2].category == "selfaware" and b.items[2].answers is None


def test_kuq(tmp_path):
    b = load_benchmark(str(write_jsonl(tmp_path / "knowns_unknowns.jsonl", KUQ)))
    assert b.format == "kuq" and b.name == "kuq"
    assert [i.label for i in b.items] == ["infeasible", "feasible", "infeasible"]
    assert [i.category for i in b.items] == ["unsolved_problem", "known", "controversial"]
    assert b.items[1].source_id == "L2"


def test_line_of_duty(tmp_path):
    b = load_benchmark(str(write_jsonl(tmp_path / "tasks.jsonl", LOD)))
    assert b.format == "line_of_duty" and b.name == "line_of_duty"
    assert b.items[0] == EvalItem("Summarise the attached PDF.", "infeasible", "contextual_awareness", "a1")
    assert b.items[1].label == "feasible" and b.items[1].category == "capability_boundary"


def test_our_jsonl(tmp_path):
    p = write_jsonl(tmp_path / "mine.jsonl", OURS)
    with open(p, "a") as f:
        f.write("\n   \n")  # blank lines are fine
    b = load_benchmark(str(p))
    assert b.format == "knowrl" and b.name == "mine" and len(b.items) == 3
    assert b.items[1].label == "feasible"
    assert b.items[2].category == "missing_context"


def test_heldout_quick_loads():
    b = load_benchmark("evaluation/data/heldout_quick.jsonl")
    assert b.format == "knowrl" and len(b.items) == 48
    assert collections.Counter(i.label for i in b.items) == {"feasible": 24, "infeasible": 24}


@pytest.mark.parametrize("line, what", [
    ('{"task": "Do X.", "label": "maybe"}', "unknown label 'maybe'"),
    ('{"label": "feasible"}', "missing 'task'"),
    ('{"task": "Do X.", "label": "feasible"', "bad JSON"),
    ('["task", "label"]', "expected a JSON object"),
    ('{"task": "   ", "label": "feasible"}', "'task' must be a non-empty string"),
])
def test_bad_line_names_file_and_line(tmp_path, line, what):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(OURS[0]) + "\n\n" + line + "\n")
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(str(p))
    msg = str(e.value)
    assert msg.startswith(f"{p}:3: ") and what in msg and " — " in msg and "\n" not in msg
    assert e.value.line == 3


def test_bad_kuq_and_lod_lines(tmp_path):
    rows = KUQ + [{"question": "Is it?", "unknown": "yes"}]
    with pytest.raises(BenchmarkError, match=r"kuq.jsonl:4: 'unknown' must be true or false"):
        load_benchmark(str(write_jsonl(tmp_path / "kuq.jsonl", rows)))
    rows = LOD + [{"id": "x", "task": "Do it.", "gen_label": "Maybe"}]
    with pytest.raises(BenchmarkError, match=r"lod.jsonl:3: unknown gen_label 'Maybe'"):
        load_benchmark(str(write_jsonl(tmp_path / "lod.jsonl", rows)))


def test_bad_selfaware_item_names_line(tmp_path):
    data = json.loads(json.dumps(SELFAWARE))
    data["example"][2]["answerable"] = "no"
    p = tmp_path / "SelfAware.json"
    p.write_text(json.dumps(data, indent=4))
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(str(p))
    lines = p.read_text().splitlines()
    assert "example[2]" in str(e.value) and "'answerable' must be true or false" in str(e.value)
    assert lines[e.value.line - 1].strip() == "{" and '"question_id": 3' in lines[e.value.line]


def test_missing_and_named(tmp_path, monkeypatch):
    with pytest.raises(BenchmarkError, match="no such benchmark file"):
        load_benchmark(str(tmp_path / "nope.jsonl"))
    monkeypatch.delenv(BENCHMARKS_ENV, raising=False)
    with pytest.raises(BenchmarkError, match=BENCHMARKS_ENV):
        load_benchmark("kuq")
    monkeypatch.setenv(BENCHMARKS_ENV, str(tmp_path))
    with pytest.raises(BenchmarkError, match="benchmark 'selfaware' not found"):
        load_benchmark("selfaware")
    (tmp_path / "kuq").mkdir()
    write_jsonl(tmp_path / "kuq" / "knowns_unknowns.jsonl", KUQ)
    b = load_benchmark("kuq")
    assert b.name == "kuq" and len(b.items) == 3


def test_sniff_unknown_format(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"foo": 1}\n')
    with pytest.raises(BenchmarkError, match="unknown benchmark format"):
        sniff_format(p)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(BenchmarkError, match="empty"):
        load_benchmark(str(tmp_path / "empty.jsonl"))


def _items(n_f, n_i):
    return [EvalItem(f"f{i}", "feasible") for i in range(n_f)] + [EvalItem(f"i{i}", "infeasible") for i in range(n_i)]


def test_balanced_subsample():
    items = _items(30, 10)
    sub = balanced_subsample(items, 10, seed=1)
    assert collections.Counter(i.label for i in sub) == {"feasible": 5, "infeasible": 5}
    assert sub == balanced_subsample(items, 10, seed=1)  # seeded
    assert sub != balanced_subsample(items, 10, seed=2)
    assert [items.index(i) for i in sub] == sorted(items.index(i) for i in sub)  # file order kept
    # odd N: infeasible gets the extra one
    assert collections.Counter(i.label for i in balanced_subsample(items, 7)) == {"feasible": 3, "infeasible": 4}
    # a short label gives all it has, the other fills up
    short = balanced_subsample(items, 30, seed=0)
    assert collections.Counter(i.label for i in short) == {"feasible": 20, "infeasible": 10}
    assert balanced_subsample(items, None) == items and balanced_subsample(items, 100) == items
    with pytest.raises(ValueError):
        balanced_subsample(items, 0)


# ----------------------------------------------------------------------------- issue #19, item 13


def test_selfaware_minified_and_jsonl_exports_load_like_the_original(tmp_path):
    """Before: a one-line SelfAware.json small enough to parse whole, and a JSONL export of its
    items, were both 'unknown benchmark format'."""
    indented = tmp_path / "SelfAware.json"
    indented.write_text(json.dumps(SELFAWARE, indent=4))
    original = load_benchmark(str(indented))
    minified = tmp_path / "selfaware_min.json"
    minified.write_text(json.dumps(SELFAWARE, separators=(",", ":")))
    assert minified.read_text().count("\n") == 0
    export = write_jsonl(tmp_path / "selfaware_export.jsonl", SELFAWARE["example"])
    for path in (minified, export):
        assert sniff_format(path) == "selfaware"
        b = load_benchmark(str(path))
        assert b.format == "selfaware" and b.items == original.items, path


def test_selfaware_jsonl_export_bad_line_names_file_and_line(tmp_path):
    rows = json.loads(json.dumps(SELFAWARE["example"]))
    rows[1]["answerable"] = "yes"
    p = write_jsonl(tmp_path / "export.jsonl", rows)
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(str(p))
    assert str(e.value).startswith(f"{p}:2: 'answerable' must be true or false") and e.value.line == 2


def test_duplicate_questions_are_counted_and_warned_about(tmp_path, capsys):
    """Before: repeated questions loaded silently, each scored as a separate item."""
    data = json.loads(json.dumps(SELFAWARE))
    again = dict(data["example"][1], question_id=4, question="  who WROTE   hamlet?")
    clash = dict(data["example"][2], question_id=5, answerable=True)
    data["example"] += [again, clash]
    p = tmp_path / "SelfAware.json"
    p.write_text(json.dumps(data))
    b = load_benchmark(str(p))
    assert b.n_total == 5 and len(b.items) == 5 and b.n_duplicates == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"[eval] warning: {p}: 2 of 5 items repeat an earlier item's text")
    assert "1 of these texts carry both labels" in err and "'who WROTE   hamlet?'" in err

    b = load_benchmark(str(write_jsonl(tmp_path / "kuq.jsonl", KUQ)))
    assert b.n_duplicates == 0 and capsys.readouterr().err == ""


def test_gold_answers_are_read_from_every_format(tmp_path):
    ours = tmp_path / "ours.jsonl"
    ours.write_text("\n".join(json.dumps(r) for r in [
        {"task": "2 + 2?", "label": "feasible", "answer": "4"},
        {"task": "Capital of Peru?", "label": "feasible", "answer": ["Lima", " lima ", ""]},
        {"task": "Tomorrow's lottery numbers?", "label": "infeasible", "answer": "12 34"},
        {"task": "Describe a cloud.", "label": "feasible"}]) + "\n")
    assert [it.answers for it in load_benchmark(str(ours)).items] == [("4",), ("Lima", "lima"), None, None]
    kuq = tmp_path / "kuq.jsonl"
    kuq.write_text(json.dumps({"question": "Who wrote Emma?", "answer": ["Jane Austen"], "unknown": False}) + "\n"
                   + json.dumps({"question": "Is there life on Europa?", "answer": ["Nobody knows yet."],
                                 "unknown": True}) + "\n")
    assert [it.answers for it in load_benchmark(str(kuq), fmt="kuq").items] == [("Jane Austen",), None]


def test_malformed_gold_answer_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"task": "a?", "label": "feasible", "answer": "x"}) + "\n"
                 + json.dumps({"task": "b?", "label": "feasible", "answer": [1, 2]}) + "\n")
    with pytest.raises(BenchmarkError, match=r"bad\.jsonl:2: 'answer' must be a string or a list of strings"):
        load_benchmark(str(p))
