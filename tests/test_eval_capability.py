"""evaluation/capability.py: the generated capability suite. Every answer is recomputed here
independently of the generator (int arithmetic, string reversal and counting, datetime, a
unit table of its own), plus layout, determinism and load_benchmark("capability:N")."""

import collections
import datetime as dt
import re
from fractions import Fraction

import pytest

from evaluation.benchmarks import BenchmarkError, load_benchmark
from evaluation.capability import (
    CATEGORIES,
    FACTS,
    INFEASIBLE_REASONS,
    capability_items,
    items_sha256,
    number_words,
)
from evaluation.grading import grade_answer
from openrlhf.knowrl.taxonomy import REASON_TO_TYPE

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ORDINAL = {w: i for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth eleventh "
                                      "twelfth thirteenth fourteenth fifteenth".split(), start=1)}
# size of one unit in a base unit of its dimension (ms, mm, inch, gram, ounce, ml)
UNIT = {"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000,
        "week": 604_800_000, "millimetre": 1, "centimetre": 10, "metre": 1000, "kilometre": 1_000_000,
        "inch": 1, "foot": 12, "yard": 36, "mile": 63_360, "gram": 1, "kilogram": 1000, "ounce": 1, "pound": 16,
        "millilitre": 1, "litre": 1000, "cubic centimetre": 1, "cubic metre": 1_000_000}


def singular(unit: str) -> str:
    return {"feet": "foot", "inches": "inch"}.get(unit, unit[:-1])


def date_of(text: str) -> dt.date:
    return dt.datetime.strptime(text, "%B %d, %Y").date()


def recompute(item) -> str:
    """The exact answer of an answerable item, derived from its question text alone."""
    q = item.task
    if item.category == "arithmetic":
        a, op, b = re.match(r"What is (\d+) ([+×]) (\d+)\? Answer with the number only\.$", q).groups()
        return str(int(a) + int(b) if op == "+" else int(a) * int(b))
    if item.category == "spelling":
        m = re.match(r"Spell the word '([a-z]+)' backwards\.", q)
        if m:
            return "".join(reversed(m.group(1)))
        nth, word = re.match(r"What is the (\w+) letter of the word '([a-z]+)'\?", q).groups()
        return word[ORDINAL[nth] - 1]
    if item.category == "letter_counting":
        letter, word = re.match(r"How many times does the letter '([a-z])' appear in the word '([a-z]+)'\?", q).groups()
        return str(word.count(letter))
    if item.category == "date_arithmetic":
        if m := re.match(r"What day of the week comes (\d+) days after (\w+)\?", q):
            return DAYS[(DAYS.index(m.group(2)) + int(m.group(1))) % 7]
        if m := re.match(r"(\w+ \d+, \d{4}) is a (\w+)\. What day of the week is it (\d+) days after \1\?", q):
            start = date_of(m.group(1))
            assert DAYS[start.weekday()] == m.group(2), q  # the anchor the question states is true
            return DAYS[(start + dt.timedelta(days=int(m.group(3)))).weekday()]
        if m := re.match(r"What day of the week was (\w+ \d+, \d{4})\?", q):
            return DAYS[date_of(m.group(1)).weekday()]
        k, start = re.match(r"What is the date (\d+) days after (\w+ \d+, \d{4})\?", q).groups()
        return (date_of(start) + dt.timedelta(days=int(k))).isoformat()
    if item.category == "unit_conversion":
        to, qty, frm = re.match(r"How many ([a-z ]+) are in (\d+) ([a-z ]+)\?", q).groups()
        value = Fraction(int(qty) * UNIT[singular(frm)], UNIT[singular(to)])
        return str(value.numerator) if value.denominator == 1 else str(float(value))
    if item.category == "facts":
        return next(answers[0] for level, question, answers in FACTS if question == q and level == item.difficulty)
    raise AssertionError(f"unknown category {item.category}")


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_answer_recomputed(seed):
    items = capability_items(400, seed)
    for it in items:
        if it.label == "feasible":
            assert it.answers and it.answers[0] == recompute(it), it
            assert grade_answer(it.answers[0], it.answers), it
            assert all(grade_answer(alias, it.answers) for alias in it.answers), it


def test_aliases_are_natural():
    items = {it.task: it for it in capability_items(400, 0) if it.answers}
    numeric = [it for it in items.values() if it.answers[0].isdigit() and it.category != "facts"]  # not years
    big = [it for it in numeric if int(it.answers[0]) >= 1000]
    assert big and all(f"{int(it.answers[0]):,}" in it.answers for it in big)
    small = [it for it in numeric if int(it.answers[0]) < 100]
    assert small and all(number_words(int(it.answers[0])) in it.answers for it in small)
    dates = [it for it in items.values() if re.fullmatch(r"\d{4}-\d\d-\d\d", it.answers[0])]
    assert dates and all(dt.date.fromisoformat(it.answers[0]).strftime("%B") in it.answers[1] for it in dates)
    assert number_words(1000) == "one thousand" and number_words(92) == "ninety-two"
    assert number_words(3400) == "three thousand four hundred"


def test_layout_labels_categories_difficulties():
    items = capability_items(200, 0)
    assert [it.source_id for it in items] == [f"cap-{i}" for i in range(200)]
    labels = collections.Counter(it.label for it in items)
    assert labels["infeasible"] == 50 and labels["feasible"] == 150
    cells = collections.Counter((it.category, it.difficulty) for it in items if it.label == "feasible")
    assert set(cells) == {(c, d) for c in CATEGORIES for d in range(1, 6)}
    assert set(cells.values()) == {5}  # evenly spread
    reasons = collections.Counter(it.category for it in items if it.label == "infeasible")
    assert set(reasons) == set(INFEASIBLE_REASONS) and max(reasons.values()) - min(reasons.values()) <= 1
    assert all(r in REASON_TO_TYPE for r in INFEASIBLE_REASONS)
    for it in items:
        assert re.search(r"Answer (with|in) ", it.task), it.task  # says what form of answer is wanted
        if it.label == "infeasible":
            assert it.answers is None and it.difficulty is None
    assert len({it.task for it in items}) == len(items)  # no repeated question
    # a small suite still has every category and both labels
    head = capability_items(8, 0)
    assert {it.category for it in head if it.label == "feasible"} == set(CATEGORIES)
    assert {it.label for it in head} == {"feasible", "infeasible"}


def test_difficulty_grows():
    items = capability_items(400, 0)
    arith = collections.defaultdict(list)
    words = collections.defaultdict(list)
    for it in items:
        if it.category == "arithmetic":
            arith[it.difficulty].append(max(len(x) for x in re.findall(r"\d+", it.task)))
        if it.category in ("spelling", "letter_counting"):
            words[it.difficulty].append(len(re.search(r"word '([a-z]+)'", it.task).group(1)))
    assert max(arith[1]) == 1 and min(arith[5]) >= 8
    assert max(words[1]) <= 4 and min(words[5]) >= 12
    assert {level for level, _, _ in FACTS} == {1, 2, 3, 4, 5}


def test_deterministic_and_seeded():
    a, b = capability_items(120, 3), capability_items(120, 3)
    assert a == b and items_sha256(a) == items_sha256(b)
    other = capability_items(120, 4)
    assert [it.task for it in other] != [it.task for it in a] and items_sha256(other) != items_sha256(a)
    assert capability_items(200, 3)[:120] == a  # a prefix does not depend on n
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError):
            capability_items(bad)


def test_load_benchmark_capability():
    b = load_benchmark("capability:50")
    assert (b.name, b.format, b.path, b.n_total, len(b.items)) == ("capability", "capability", "capability:50", 50, 50)
    assert b.items == capability_items(50, 0) and b.sha256 == items_sha256(b.items) and b.n_duplicates == 0
    assert load_benchmark("capability:50", seed=1).sha256 != b.sha256
    default = load_benchmark("capability", seed=2)
    assert default.path == "capability:200" and default.items == capability_items(200, 2)
    for bad in ("capability:0", "capability:abc", "capability:-5"):
        with pytest.raises(BenchmarkError, match="capability:N with N a whole number"):
            load_benchmark(bad)
    with pytest.raises(BenchmarkError, match="drop --format"):
        load_benchmark("capability:5", fmt="kuq")


def test_file_named_capability_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "capability").write_text('{"task": "t", "label": "feasible"}\n', encoding="utf-8")
    b = load_benchmark("capability")
    assert b.format == "knowrl" and len(b.items) == 1
