"""Tests for openrlhf/knowrl/validate_prompts.py: every problem reported, with file and line."""

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openrlhf.knowrl.prompts import (
    CLASSIFICATION_FILE,
    DEFAULT_PROMPTS_DIR,
    INTROSPECTION_FILE,
    rouge_l_f,
    rouge_l_tokens,
    token_masks,
)
from openrlhf.knowrl.taxonomy import REASON_TO_TYPE, TAXONOMY
from openrlhf.knowrl.validate_prompts import Problem, validate_prompts_dir

REPO = Path(__file__).resolve().parents[1]

GOOD = [
    {"task": "What is the capital city of France, in one word?", "label": "feasible", "type": "capability_boundary"},
    {"task": "Summarise the attached PDF report in three bullet points.", "label": "infeasible",
     "type": "contextual_awareness", "reason": "missing_context", "small_model": True},
    {"task": "Who will win the football world cup held four years from now?", "label": "infeasible",
     "reason": "outside_training_cutoff"},
    {"task": "Add 15 and 27 and tell me the result, please.", "label": "feasible", "small_model": True},
]


def make_dir(tmp_path, lines, intro=None, cls=None):
    """A prompts folder with the shipped templates (or the given text) and a seed file."""
    d = tmp_path / "prompts"
    d.mkdir()
    for name, text in ((INTROSPECTION_FILE, intro), (CLASSIFICATION_FILE, cls)):
        if text is None:
            shutil.copy(DEFAULT_PROMPTS_DIR / name, d / name)
        else:
            (d / name).write_text(text, encoding="utf-8")
    if isinstance(lines, bytes):
        (d / "seed_tasks.jsonl").write_bytes(lines)
    else:
        (d / "seed_tasks.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def good_lines():
    return [json.dumps(o) for o in GOOD]


def errors_at(report, path, line):
    return [p for p in report.errors if p.path == str(path) and p.line == line]


# ------------------------------------------------------------------------------------------
# The shipped folder
# ------------------------------------------------------------------------------------------


def test_shipped_folder_is_clean():
    report = validate_prompts_dir(DEFAULT_PROMPTS_DIR)
    assert report.ok, report.format_problems()
    assert report.warnings == [], report.format_problems()
    c = report.counts
    assert c["label"]["feasible"] >= 50 and c["label"]["infeasible"] >= 50
    assert c["small_model"]["feasible"] >= 12 and c["small_model"]["infeasible"] >= 12
    assert set(c["type"]) >= set(TAXONOMY)


def test_summary_table_lists_every_type_and_reason(tmp_path):
    # Even types with no task at all get a row.
    report = validate_prompts_dir(make_dir(tmp_path, good_lines()))
    table = report.format_table()
    for kind, reasons in TAXONOMY.items():
        assert kind in table
        for reason in reasons:
            assert reason in table
    assert "total" in table and "small_model" in table
    small_row = next(line for line in table.splitlines() if line.startswith("small_model"))
    assert small_row.split()[1:] == ["1", "1", "2"]
    total_row = next(line for line in table.splitlines() if line.startswith("total"))
    assert total_row.split()[1:] == ["2", "2", "4"]
    c = report.counts
    assert c["label_type"][("infeasible", "temporal_perception")] == 1  # type inferred from reason
    assert c["label_type"][("feasible", None)] == 1
    assert c["reason"]["missing_context"] == 1


# ------------------------------------------------------------------------------------------
# One broken line: right severity, message and line number
# ------------------------------------------------------------------------------------------

BROKEN = {
    "bad_json": ('{"task": "Name three colours of the rainbow.", "label": ', "bad JSON"),
    "not_object": ('["Name three colours of the rainbow.", "feasible"]', "expected a JSON object, got list"),
    "unknown_label": ('{"task": "Name three colours of the rainbow.", "label": "maybe"}', "unknown label 'maybe'"),
    "unknown_type": ('{"task": "Name three colours of the rainbow.", "label": "feasible", "type": "ambiguous"}',
                     "unknown type 'ambiguous'"),
    "unknown_reason": ('{"task": "Who will win the next election in my town?", "label": "infeasible", '
                       '"reason": "too_hard"}', "unknown reason 'too_hard'"),
    "mismatch": ('{"task": "Who will win the next election in my town?", "label": "infeasible", '
                 '"type": "ambiguity", "reason": "outside_training_cutoff"}',
                 "reason 'outside_training_cutoff' does not belong to type 'ambiguity'"),
    "no_reason": ('{"task": "Who will win the next election in my town?", "label": "infeasible", '
                  '"type": "temporal_perception"}', "infeasible task without 'reason'"),
    "missing_task": ('{"label": "feasible"}', "missing 'task'"),
    "misspelt_key": ('{"task": "Who will win the next election in my town?", "label": "infeasible", '
                     '"reasn": "outside_training_cutoff"}', "unknown key 'reasn'"),
    "small_model_not_bool": ('{"task": "Name three colours of the rainbow.", "label": "feasible", '
                             '"small_model": "yes"}', "'small_model' must be true or false, got 'yes'"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_line_reported_with_line_number(tmp_path, case):
    bad, expected = BROKEN[case]
    lines = good_lines()
    lines.insert(1, bad)  # line 2
    d = make_dir(tmp_path, lines)
    report = validate_prompts_dir(d)
    seeds = d / "seed_tasks.jsonl"
    errs = errors_at(report, seeds, 2)
    assert len(errs) == 1 and expected in errs[0].message, report.format_problems()
    assert len(report.errors) == 1, report.format_problems()  # the other lines are fine
    assert f"{seeds}:2: error: " in report.format_problems()


def test_small_model_true_and_false_are_accepted(tmp_path):
    lines = good_lines() + [json.dumps({"task": "Name three colours of the rainbow.", "label": "feasible",
                                        "small_model": False})]
    report = validate_prompts_dir(make_dir(tmp_path, lines))
    assert report.ok, report.format_problems()
    assert report.counts["small_model"] == {"feasible": 1, "infeasible": 1}


def test_exact_duplicate_names_earlier_line(tmp_path):
    dup = dict(GOOD[0], task="  what is the capital city of FRANCE,   in one word?")
    d = make_dir(tmp_path, good_lines() + [json.dumps(dup)])
    report = validate_prompts_dir(d)
    seeds = d / "seed_tasks.jsonl"
    [err] = report.errors
    assert err.line == 5 and "duplicate task" in err.message and f"{seeds}:1" in err.message


def test_exact_duplicate_across_files(tmp_path):
    d = make_dir(tmp_path, good_lines())
    (d / "more.jsonl").write_text(json.dumps(GOOD[2]) + "\n", encoding="utf-8")
    report = validate_prompts_dir(d)
    [err] = report.errors
    # more.jsonl is read first (name order), so seed_tasks.jsonl:3 is the repeat.
    assert err.path == str(d / "seed_tasks.jsonl") and err.line == 3 and f"{d / 'more.jsonl'}:1" in err.message


def test_near_duplicate_is_a_warning_naming_both_lines(tmp_path):
    near = dict(GOOD[1], task="Summarise the attached PDF report in four bullet points.")
    d = make_dir(tmp_path, good_lines() + [json.dumps(near)])
    report = validate_prompts_dir(d)
    seeds = d / "seed_tasks.jsonl"
    assert report.ok
    [w] = [p for p in report.warnings if "near-duplicate" in p.message]
    assert w.path == str(seeds) and w.line == 5 and f"{seeds}:2" in w.message and "ROUGE-L" in w.message


def test_empty_file(tmp_path):
    d = make_dir(tmp_path, b"\n  \n")
    report = validate_prompts_dir(d)
    [err] = report.errors
    assert err.path == str(d / "seed_tasks.jsonl") and err.line is None and "empty file" in err.message


def test_invalid_utf8_on_line_2(tmp_path):
    lines = [ln.encode() for ln in good_lines()]
    lines.insert(1, b'{"task": "Caf\xe9 menu: list three drinks.", "label": "feasible"}')
    d = make_dir(tmp_path, b"\n".join(lines) + b"\n")
    report = validate_prompts_dir(d)
    [err] = report.errors
    assert err.line == 2 and "not valid UTF-8" in err.message
    assert report.counts["label"]["feasible"] == 2  # the lines after it were still read


def test_missing_seed_path_and_dir_without_jsonl(tmp_path):
    d = make_dir(tmp_path, good_lines())
    report = validate_prompts_dir(d, seeds=tmp_path / "nope.jsonl")
    assert [e.message.split(" —")[0] for e in report.errors] == ["no such seed file or directory"]
    empty = tmp_path / "empty"
    empty.mkdir()
    report = validate_prompts_dir(d, seeds=empty)
    assert "no *.jsonl" in report.errors[0].message


def test_seeds_argument_overrides_folder(tmp_path):
    d = make_dir(tmp_path, ["not json"])
    other = tmp_path / "other.jsonl"
    other.write_text("\n".join(good_lines()) + "\n", encoding="utf-8")
    assert validate_prompts_dir(d, seeds=other).ok


def test_many_problems_in_one_file_are_all_reported(tmp_path):
    lines = [
        json.dumps(GOOD[0]),                                    # 1 ok
        "{oops",                                                # 2 bad JSON
        json.dumps(GOOD[1]),                                    # 3 ok
        '"just a string"',                                      # 4 not an object
        json.dumps(dict(GOOD[2], label="perhaps")),             # 5 unknown label
        json.dumps(GOOD[0]),                                    # 6 duplicate of 1
        json.dumps(dict(GOOD[3], small_model=1)),               # 7 non-bool small_model
        json.dumps({"task": "Tiny?", "label": "feasible"}),     # 8 too short (warning)
    ]
    d = make_dir(tmp_path, lines, cls="Judge {job}\n")
    report = validate_prompts_dir(d)
    seeds = str(d / "seed_tasks.jsonl")
    assert sorted(p.line for p in report.errors if p.path == seeds) == [2, 4, 5, 6, 7]
    assert any(p.line == 8 and "5 characters" in p.message for p in report.warnings)
    cls_errors = {p.message.split(" —")[0] for p in report.errors if p.path.endswith(CLASSIFICATION_FILE)}
    assert cls_errors == {"unknown placeholder {job}", "missing placeholder {task}"}
    assert not report.ok


# ------------------------------------------------------------------------------------------
# Set-level warnings
# ------------------------------------------------------------------------------------------


def test_set_warnings_balance_coverage_and_size(tmp_path):
    lines = good_lines() + [json.dumps({"task": f"Tell me a fact about the number {n} in one sentence.",
                                        "label": "feasible"}) for n in (7, 12, 99)]
    d = make_dir(tmp_path, lines)
    report = validate_prompts_dir(d)
    assert report.ok
    msgs = [p.message for p in report.warnings if p.line is None]
    assert any("labels unbalanced: 5 feasible vs 2 infeasible" in m for m in msgs)
    assert any("only 5 feasible tasks" in m and "50+50" in m for m in msgs)
    assert any("only 2 infeasible tasks" in m for m in msgs)
    uncovered = [m for m in msgs if m.startswith("no infeasible task for reason")]
    assert len(uncovered) == len(REASON_TO_TYPE) - 2
    assert not any("missing_context" in m for m in uncovered)


def test_long_task_warning(tmp_path):
    lines = good_lines() + [json.dumps({"task": "Explain this. " + "word " * 80, "label": "feasible"})]
    report = validate_prompts_dir(make_dir(tmp_path, lines))
    assert any(p.line == 5 and "outside 20-300" in p.message for p in report.warnings)


def test_near_duplicate_check_is_fast(tmp_path):
    # Worst case: 150 long tasks over a 5-word vocabulary, every pair needs its LCS.
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5)]
    tasks = [" ".join(rng.choices(vocab, k=40)) for _ in range(150)]
    f = tmp_path / "s.jsonl"
    f.write_text("\n".join(json.dumps({"task": t, "label": "feasible"}) for t in tasks) + "\n", encoding="utf-8")
    start = time.perf_counter()
    report = validate_prompts_dir(DEFAULT_PROMPTS_DIR, seeds=f)
    assert time.perf_counter() - start < 1.0
    assert len(report.counts["label"]) == 1 and report.counts["label"]["feasible"] == 150


def _lcs_reference(a, b):
    """The textbook dynamic programme, to check the bit-parallel LCS the one ROUGE-L uses."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def test_bit_parallel_rouge_l_matches_the_textbook_lcs():
    rng = random.Random(1)
    for _ in range(2000):
        a = rng.choices("abcdef", k=rng.randint(1, 30))
        b = rng.choices("abcdef", k=rng.randint(1, 30))
        expected = 2.0 * _lcs_reference(a, b) / (len(a) + len(b))
        assert rouge_l_tokens(a, b) == pytest.approx(expected)
        assert rouge_l_tokens(a, b, token_masks(b)) == pytest.approx(expected)
        assert rouge_l_f(" ".join(a), " ".join(b)) == pytest.approx(expected)


# ------------------------------------------------------------------------------------------
# Templates
# ------------------------------------------------------------------------------------------


def test_template_missing_task_placeholder(tmp_path):
    d = make_dir(tmp_path, good_lines(), cls="Is this feasible?\nLabel: feasible or infeasible\n")
    [err] = validate_prompts_dir(d).errors
    assert err == Problem("error", str(d / CLASSIFICATION_FILE), None, err.message)
    assert err.message.split(" —")[0] == "missing placeholder {task}"


def test_template_unknown_placeholder_line(tmp_path):
    intro = "<!-- {comment} is fine -->\nExamples:\n{examples}\nWrite {num_tasks} {foo} tasks that are {target}\nTask:\n"
    d = make_dir(tmp_path, good_lines(), intro=intro)
    [err] = validate_prompts_dir(d).errors
    assert err.path == str(d / INTROSPECTION_FILE) and err.line == 4 and "unknown placeholder {foo}" in err.message


def test_template_unreadable(tmp_path):
    d = make_dir(tmp_path, good_lines())
    (d / INTROSPECTION_FILE).unlink()
    (d / CLASSIFICATION_FILE).write_bytes(b"Judge:\n{task}\n\xff\nLabel:\n")
    errs = {p.path: p for p in validate_prompts_dir(d).errors}
    assert "not found" in errs[str(d / INTROSPECTION_FILE)].message
    bad = errs[str(d / CLASSIFICATION_FILE)]
    assert bad.line == 3 and "not valid UTF-8" in bad.message


def test_template_without_answer_marker_warns(tmp_path):
    d = make_dir(tmp_path, good_lines(), cls="Can you do this?\n{task}\nSay yes or no.\n")
    report = validate_prompts_dir(d)
    assert report.ok and any("'Label:'" in p.message for p in report.warnings)


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------


def run_cli(*args, module="openrlhf.knowrl.prompts"):
    pre = ["validate"] if module == "openrlhf.knowrl.prompts" else []
    return subprocess.run([sys.executable, "-m", module, *pre, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_shipped_folder_exits_0():
    for module in ("openrlhf.knowrl.prompts", "openrlhf.knowrl.validate_prompts"):
        r = run_cli(module=module)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "0 error(s)" in r.stdout
        for kind in TAXONOMY:
            assert kind in r.stdout
    assert run_cli("--strict").returncode == 0


def test_cli_errors_exit_1(tmp_path):
    lines = good_lines()
    lines.insert(2, "{oops")
    d = make_dir(tmp_path, lines)
    r = run_cli(d)
    assert r.returncode == 1
    assert f"{d / 'seed_tasks.jsonl'}:3: error: bad JSON" in r.stdout
    assert r.stdout.index(":3: error:") < r.stdout.index("type / reason")  # problems, then table


def test_cli_warnings_exit_0_or_1_with_strict(tmp_path):
    d = make_dir(tmp_path, good_lines())  # loads fine, but far fewer than 50+50 tasks
    r = run_cli(d)
    assert r.returncode == 0 and ": warning: only 2 feasible tasks" in r.stdout
    assert run_cli(d, "--strict").returncode == 1
    assert run_cli("--strict", module="openrlhf.knowrl.validate_prompts").returncode == 0


def test_cli_seeds_option_and_usage(tmp_path):
    d = make_dir(tmp_path, ["{oops"])
    assert run_cli(d).returncode == 1
    assert run_cli(d, "--seeds", DEFAULT_PROMPTS_DIR / "seed_tasks.jsonl").returncode == 0
    r = subprocess.run([sys.executable, "-m", "openrlhf.knowrl.prompts"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
