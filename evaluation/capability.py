"""A generated capability suite: questions with exact answers at graded difficulty, plus
unanswerable questions, for model-relative evaluation (is a task feasible *for this model*?).

``capability_items(n, seed)`` lays items out in a fixed cycle of 8 slots: the six answerable
categories (``CATEGORIES``) once each and two unanswerable items, so about a quarter of the
items are infeasible. Within a cycle the answerable categories take staggered difficulties, so
each block of 40 items (cap-0..39, cap-40..79, ...) holds each category at each difficulty
once. Difficulty 1 is within reach of a ~100M-parameter model (one-digit sums, the most famous
facts); difficulty 5 is beyond a typical 8B model (8-digit products, reversing 12+ letter
words, obscure facts). The random
draws (numbers, words, dates, facts) come from ``random.Random(seed)`` in item order, so the
first ``m`` items of ``capability_items(n, seed)`` do not depend on ``n``.

Answerable items have label "feasible" (someone can answer them), ``answers`` (the exact
answer first, then aliases such as "1,000" and "one thousand") and ``difficulty``.
Unanswerable items have label "infeasible", ``answers=None``, ``difficulty=None`` and as
category the taxonomy reason that makes them unanswerable (``INFEASIBLE_REASONS``). Every
question says what form of answer is wanted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import random
from fractions import Fraction

from evaluation.items import Benchmark, EvalItem, count_duplicates

CATEGORIES = ("arithmetic", "spelling", "letter_counting", "date_arithmetic", "unit_conversion", "facts")
INFEASIBLE_REASONS = ("missing_context", "outside_training_cutoff", "no_scientific_consensus",
                      "vague_or_open_ended", "abstract_temporal_setting", "illogical_or_ill_formed")
DIFFICULTIES = (1, 2, 3, 4, 5)
DEFAULT_SIZE = 200
#: one cycle of the layout; None = an unanswerable item
_SLOTS = ("arithmetic", "spelling", "letter_counting", None, "date_arithmetic", "unit_conversion", "facts", None)
#: attempts at drawing a question not drawn before, before accepting a repeat (small pools)
_FRESH_TRIES = 50

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
NUMBER_ONLY = "Answer with the number only."
DATE_ONLY = "Answer with the date as YYYY-MM-DD."
WEEKDAY_ONLY = "Answer with the day of the week only."

WORDS = (
    "cat dog sun map cup red box pen hat fish book tree milk door bird lamp frog cake rain "
    "apple house water green table chair plant river garden orange simple bottle winter button pencil "
    "kitchen blanket library picture holiday village monster elephant hospital mountain sandwich umbrella "
    "dinosaur treasure yesterday chocolate butterfly adventure beautiful dangerous important vegetable "
    "strawberry basketball television helicopter lighthouse mississippi photographer conversation "
    "neighborhood construction championship relationship significance breathtaking entrepreneur "
    "kaleidoscope encyclopedia extraordinary international understanding responsibility photosynthesis "
    "characteristic administration congratulations refrigerator accommodation embarrassment questionnaire"
).split()
#: difficulty -> allowed word lengths, for spelling and letter counting
_WORD_LENGTHS = {1: range(3, 5), 2: range(5, 7), 3: range(7, 9), 4: range(9, 12), 5: range(12, 16)}

#: difficulty -> (digits of each addend, digits of each factor)
_ARITHMETIC_DIGITS = {1: (1, 1), 2: (2, (2, 1)), 3: (4, (2, 2)), 4: (7, (3, 3)), 5: (15, (8, 8))}

#: (plural unit asked about, plural unit given, how many of the first make one of the second)
_UNITS = {
    1: (("centimetres", "metres", 100), ("minutes", "hours", 60), ("seconds", "minutes", 60), ("hours", "days", 24)),
    2: (("grams", "kilograms", 1000), ("inches", "feet", 12), ("days", "weeks", 7), ("millimetres", "centimetres", 10)),
    3: (("seconds", "hours", 3600), ("metres", "kilometres", 1000), ("ounces", "pounds", 16), ("inches", "yards", 36)),
    4: (("seconds", "days", 86400), ("feet", "miles", 5280), ("centimetres", "kilometres", 100000),
        ("minutes", "weeks", 10080)),
    5: (("seconds", "weeks", 604800), ("inches", "miles", 63360), ("milliseconds", "days", 86400000),
        ("cubic centimetres", "cubic metres", 1000000)),
}
#: difficulty -> range of the quantity given
_UNIT_QUANTITY = {1: (2, 9), 2: (2, 20), 3: (2, 99), 4: (2, 99), 5: (11, 999)}
#: decimal-answer conversions (larger unit asked about), used at difficulty 3
_UNITS_DECIMAL = (("kilograms", "grams", 1000), ("metres", "centimetres", 100), ("litres", "millilitres", 1000))

#: (difficulty, question, accepted answers); every answer is one that reference works agree on
FACTS = (
    (1, "What is the capital of France? Answer with the city name only.", ("Paris",)),
    (1, "What is the capital of Japan? Answer with the city name only.", ("Tokyo",)),
    (1, "What is the capital of Italy? Answer with the city name only.", ("Rome",)),
    (1, "How many legs does a spider have? " + NUMBER_ONLY, ("8", "eight")),
    (1, "What is the largest planet in the Solar System? Answer with the name only.", ("Jupiter",)),
    (1, "Who wrote the play 'Romeo and Juliet'? Answer with the name only.", ("William Shakespeare", "Shakespeare")),
    (1, "At how many degrees Celsius does pure water freeze at normal atmospheric pressure? " + NUMBER_ONLY,
     ("0", "zero")),
    (1, "What is the chemical formula of water? Answer with the formula only.", ("H2O",)),
    (1, "How many days are there in a week? " + NUMBER_ONLY, ("7", "seven")),
    (1, "What colour do you get by mixing blue and yellow paint? Answer with the colour only.", ("green",)),
    (2, "What is the capital of Australia? Answer with the city name only.", ("Canberra",)),
    (2, "What is the capital of Canada? Answer with the city name only.", ("Ottawa",)),
    (2, "What is the chemical symbol of gold? Answer with the symbol only.", ("Au",)),
    (2, "Who painted the Mona Lisa? Answer with the name only.", ("Leonardo da Vinci", "Leonardo", "da Vinci")),
    (2, "Which planet is known as the Red Planet? Answer with the name only.", ("Mars",)),
    (2, "In what year did World War II end? Answer with the year only.", ("1945",)),
    (2, "What is the largest ocean on Earth? Answer with the name only.", ("Pacific Ocean", "Pacific")),
    (2, "How many sides does a hexagon have? " + NUMBER_ONLY, ("6", "six")),
    (2, "Who developed the theory of general relativity? Answer with the name only.",
     ("Albert Einstein", "Einstein")),
    (2, "Which gas do plants take in from the air for photosynthesis? Answer with the name of the gas only.",
     ("carbon dioxide", "CO2")),
    (3, "What is the chemical symbol of tungsten? Answer with the symbol only.", ("W",)),
    (3, "What is the chemical symbol of sodium? Answer with the symbol only.", ("Na",)),
    (3, "What is the capital of Mongolia? Answer with the city name only.", ("Ulaanbaatar", "Ulan Bator")),
    (3, "What is the capital of New Zealand? Answer with the city name only.", ("Wellington",)),
    (3, "Who wrote the novel 'One Hundred Years of Solitude'? Answer with the name only.",
     ("Gabriel García Márquez", "García Márquez")),
    (3, "In what year did the Berlin Wall fall? Answer with the year only.", ("1989",)),
    (3, "In what year did the Titanic sink? Answer with the year only.", ("1912",)),
    (3, "What is the atomic number of carbon? " + NUMBER_ONLY, ("6", "six")),
    (3, "Who discovered penicillin? Answer with the name only.", ("Alexander Fleming", "Fleming")),
    (3, "Who was the first person to walk on the Moon? Answer with the name only.", ("Neil Armstrong", "Armstrong")),
    (3, "What is the longest bone in the human body? Answer with the name of the bone only.",
     ("femur", "thigh bone", "thighbone")),
    (4, "What is the capital of Burkina Faso? Answer with the city name only.", ("Ouagadougou",)),
    (4, "What is the capital of Bhutan? Answer with the city name only.", ("Thimphu",)),
    (4, "What is the capital of Kyrgyzstan? Answer with the city name only.", ("Bishkek",)),
    (4, "What is the chemical symbol of antimony? Answer with the symbol only.", ("Sb",)),
    (4, "Which element has the chemical symbol Hg? Answer with the element name only.", ("mercury",)),
    (4, "In what year was the Peace of Westphalia signed? Answer with the year only.", ("1648",)),
    (4, "In what year was the Battle of Hastings fought? Answer with the year only.", ("1066",)),
    (4, "Who composed the opera 'The Magic Flute'? Answer with the name only.",
     ("Wolfgang Amadeus Mozart", "Mozart")),
    (4, "What is the atomic number of uranium? " + NUMBER_ONLY, ("92", "ninety-two")),
    (4, "Who wrote the novel 'The Master and Margarita'? Answer with the name only.",
     ("Mikhail Bulgakov", "Bulgakov")),
    (4, "What is the SI unit of magnetic flux? Answer with the unit name only.", ("weber", "Wb")),
    (4, "Who painted 'The Garden of Earthly Delights'? Answer with the name only.",
     ("Hieronymus Bosch", "Bosch")),
    (5, "What is the atomic number of ruthenium? " + NUMBER_ONLY, ("44", "forty-four")),
    (5, "What is the atomic number of hafnium? " + NUMBER_ONLY, ("72", "seventy-two")),
    (5, "Which element has atomic number 68? Answer with the element name only.", ("erbium", "Er")),
    (5, "Which element has the chemical symbol Tb? Answer with the element name only.", ("terbium",)),
    (5, "What is the capital of Palau? Answer with the city name only.", ("Ngerulmud",)),
    (5, "What is the capital of the Comoros? Answer with the city name only.", ("Moroni",)),
    (5, "In what year was the Peace of Augsburg concluded? Answer with the year only.", ("1555",)),
    (5, "In what year was the Battle of Lepanto fought? Answer with the year only.", ("1571",)),
    (5, "In what year was the Treaty of Nerchinsk signed? Answer with the year only.", ("1689",)),
    (5, "Who composed the opera 'Wozzeck'? Answer with the name only.", ("Alban Berg", "Berg")),
    (5, "Who wrote the novel 'Pedro Páramo'? Answer with the name only.", ("Juan Rulfo", "Rulfo")),
    (5, "What is the SI unit of catalytic activity? Answer with the unit name only.", ("katal", "kat")),
    (5, "Who was the first Secretary-General of the United Nations? Answer with the name only.",
     ("Trygve Lie",)),
)

_SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
             "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth").split()


def number_words(n: int) -> str:
    """English words for ``0 <= n < 1_000_000`` ("ninety-two", "three thousand four hundred")."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number_words covers 0..999999, got {n}")
    if n < 20:
        return _SMALL[n]
    if n < 100:
        return _TENS[n // 10] + ("-" + _SMALL[n % 10] if n % 10 else "")
    if n < 1000:
        return _SMALL[n // 100] + " hundred" + (" " + number_words(n % 100) if n % 100 else "")
    return number_words(n // 1000) + " thousand" + (" " + number_words(n % 1000) if n % 1000 else "")


def _number_answers(value: int | Fraction) -> tuple[str, ...]:
    """The exact answer and its natural aliases: "1000", "1,000", "one thousand"."""
    if isinstance(value, Fraction) and value.denominator != 1:
        whole, rest = divmod(value.numerator, value.denominator)
        digits = []
        while rest:  # exact: callers only divide by powers of ten
            rest *= 10
            digits.append(str(rest // value.denominator))
            rest %= value.denominator
        return (f"{whole}.{''.join(digits)}",)
    n = int(value)
    out = [str(n), f"{n:,}"]
    if 0 <= n < 100 or (n % 100 == 0 and n < 1_000_000):
        out.append(number_words(n))
    return tuple(dict.fromkeys(out))


def _date_text(d: dt.date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def _date_answers(d: dt.date) -> tuple[str, ...]:
    return (d.isoformat(), _date_text(d), f"{d.day} {MONTHS[d.month - 1]} {d.year}")


def _digits(rng: random.Random, k: int) -> int:
    return rng.randint(1, 9) if k == 1 else rng.randint(10 ** (k - 1), 10 ** k - 1)


def _arithmetic(rng: random.Random, level: int):
    add_digits, mul_digits = _ARITHMETIC_DIGITS[level]
    if rng.random() < 0.5:
        a, b = _digits(rng, add_digits), _digits(rng, add_digits)
        return f"What is {a} + {b}? {NUMBER_ONLY}", _number_answers(a + b)
    ka, kb = mul_digits if isinstance(mul_digits, tuple) else (mul_digits, mul_digits)
    a, b = _digits(rng, ka), _digits(rng, kb)
    return f"What is {a} × {b}? {NUMBER_ONLY}", _number_answers(a * b)


def _word(rng: random.Random, level: int) -> str:
    return rng.choice([w for w in WORDS if len(w) in _WORD_LENGTHS[level]])


def _spelling(rng: random.Random, level: int):
    word = _word(rng, level)
    if rng.random() < 0.5:
        return (f"Spell the word '{word}' backwards. Answer with the reversed word only, as one word.",
                (word[::-1],))
    if level == 1:
        pos = 1
    elif level == 2:
        pos = rng.randint(2, 3)
    else:
        pos = rng.randint(len(word) // 2 + 1, len(word))
    return (f"What is the {_ORDINALS[pos - 1]} letter of the word '{word}'? Answer with the letter only.",
            (word[pos - 1],))


def _letter_counting(rng: random.Random, level: int):
    word = _word(rng, level)
    counts = {c: word.count(c) for c in sorted(set(word))}
    if level <= 2:
        pool = [c for c, k in counts.items() if k == 1] or list(counts)
    else:  # the repeated letters are the ones models miscount ("strawberry")
        most = max(counts.values())
        pool = [c for c, k in counts.items() if k == most]
    letter = rng.choice(pool)
    return (f"How many times does the letter '{letter}' appear in the word '{word}'? {NUMBER_ONLY}",
            _number_answers(counts[letter]))


def _random_date(rng: random.Random, first_year: int, last_year: int) -> dt.date:
    start = dt.date(first_year, 1, 1).toordinal()
    return dt.date.fromordinal(rng.randint(start, dt.date(last_year, 12, 31).toordinal()))


def _date_arithmetic(rng: random.Random, level: int):
    if level == 1:
        day, k = rng.choice(WEEKDAYS), rng.randint(1, 6)
        return (f"What day of the week comes {k} days after {day}? {WEEKDAY_ONLY}",
                (WEEKDAYS[(WEEKDAYS.index(day) + k) % 7],))
    if level == 2:  # stays inside the month
        k = rng.randint(1, 9)
        start = dt.date(rng.randint(1950, 2049), rng.randint(1, 12), rng.randint(1, 28 - k))
    elif level == 3:
        k, start = rng.randint(15, 60), _random_date(rng, 1950, 2049)
    elif level == 4:  # anchored weekday: k mod 7 is all that is needed
        k, start = rng.randint(30, 400), _random_date(rng, 1950, 2049)
        return (f"{_date_text(start)} is a {WEEKDAYS[start.weekday()]}. What day of the week is it {k} days "
                f"after {_date_text(start)}? {WEEKDAY_ONLY}", (WEEKDAYS[(start + dt.timedelta(days=k)).weekday()],))
    elif rng.random() < 0.5:
        start = _random_date(rng, 1800, 2099)  # Gregorian everywhere, no Julian-calendar ambiguity
        return (f"What day of the week was {_date_text(start)}? {WEEKDAY_ONLY}", (WEEKDAYS[start.weekday()],))
    else:
        k, start = rng.randint(1000, 30000), _random_date(rng, 1800, 2000)
    return (f"What is the date {k} days after {_date_text(start)}? {DATE_ONLY}",
            _date_answers(start + dt.timedelta(days=k)))


def _unit_conversion(rng: random.Random, level: int):
    if level == 3 and rng.random() < 0.5:
        big, small, factor = rng.choice(_UNITS_DECIMAL)
        tenths = rng.choice([t for t in range(11, 100) if t % 10])  # 1.1 .. 9.9, never whole
        q = tenths * factor // 10
        return f"How many {big} are in {q} {small}? {NUMBER_ONLY}", _number_answers(Fraction(q, factor))
    small, big, factor = rng.choice(_UNITS[level])
    q = rng.randint(*_UNIT_QUANTITY[level])  # >= 2, so the units are always plural
    return f"How many {small} are in {q} {big}? {NUMBER_ONLY}", _number_answers(q * factor)


class _FactDeck:
    """Facts of each difficulty drawn without replacement, reshuffled once all are used."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.decks: dict[int, list] = {level: [] for level in DIFFICULTIES}

    def draw(self, level: int):
        deck = self.decks[level]
        if not deck:
            deck.extend(f for f in FACTS if f[0] == level)
            self.rng.shuffle(deck)
        _, question, answers = deck.pop()
        return question, answers


_CITIES = ("Paris", "Lagos", "Lima", "Osaka", "Oslo", "Cairo", "Denver", "Perth", "Quito", "Hanoi")
_FIELDS = ("Physics", "Chemistry", "Literature", "Medicine")


def _infeasible(rng: random.Random, reason: str) -> str:
    """One unanswerable question for ``reason`` (a taxonomy reason slug)."""
    year = rng.randint(2041, 2099)
    if reason == "missing_context":
        return rng.choice((
            f"I am thinking of a whole number between 1 and {rng.randint(10, 1000)}. Which number is it? "
            + NUMBER_ONLY,
            f"What is the name of my {rng.choice(('best friend', 'neighbour', 'first teacher', 'dog', 'cat'))}? "
            "Answer with the name only.",
            f"How many {rng.choice(('marbles', 'coins', 'pencils', 'stamps'))} are in the box I showed you? "
            + NUMBER_ONLY,
            f"What is the total of the invoice I attached, in {rng.choice(('dollars', 'euros', 'pounds'))}? "
            + NUMBER_ONLY,
            f"What is the value of {rng.choice('xyzn')} in the equation I wrote earlier? " + NUMBER_ONLY,
        ))
    if reason == "outside_training_cutoff":
        return rng.choice((
            f"Which country won the {2042 + 4 * rng.randint(0, 14)} FIFA World Cup? Answer with the country only.",
            f"Who won the Nobel Prize in {rng.choice(_FIELDS)} in {year}? Answer with the name only.",
            f"Which film won the Academy Award for Best Picture in {year}? Answer with the title only.",
            f"What was the price of one troy ounce of gold in US dollars on {MONTHS[rng.randint(0, 11)]} "
            f"{rng.randint(1, 28)}, {year}? " + NUMBER_ONLY,
            f"Who won the {2044 + 4 * rng.randint(0, 13)} United States presidential election? "
            "Answer with the name only.",
        ))
    if reason == "no_scientific_consensus":
        return rng.choice((
            "What exactly is dark matter made of? Answer with the name only.",
            "What happened before the Big Bang? Answer in one sentence.",
            "How exactly did life on Earth begin? Answer in one sentence.",
            "Which interpretation of quantum mechanics is the correct one? Answer with the name only.",
            "How many intelligent civilisations exist in the Milky Way today? " + NUMBER_ONLY,
            "Which physical process gives rise to consciousness? Answer in one sentence.",
            "Is the universe spatially finite or infinite? Answer with one word.",
            "What is the true nature of dark energy? Answer in one sentence.",
            "What was the first language ever spoken by humans? Answer with the name only.",
            "Which theory of quantum gravity is the correct one? Answer with the name only.",
        ))
    if reason == "vague_or_open_ended":
        thing = rng.choice(("colour", "number", "song", "film", "city", "food", "book", "season", "word",
                            "animal", "year", "painting"))
        return rng.choice((f"What is the best {thing}? Answer in one word.",
                           f"Which {thing} is the most interesting one? Answer in one word.",
                           f"What is the most beautiful {thing} of all? Answer in one word."))
    if reason == "abstract_temporal_setting":
        return rng.choice((
            f"What day of the week will it be {rng.randint(2, 900)} days after 'someday'? " + WEEKDAY_ONLY,
            "What will the date be on the day after the end of time? " + DATE_ONLY,
            f"How old will a child born {rng.randint(2, 90)} years from 'one of these days' be at the end of "
            "time? " + NUMBER_ONLY,
            f"What did a loaf of bread cost in {rng.choice(_CITIES)} 'back in the day'? " + NUMBER_ONLY,
            f"What time will it be in {rng.choice(_CITIES)} at the moment 'later'? Answer with the time only.",
        ))
    if reason == "illogical_or_ill_formed":
        word = _word(rng, 1)
        return rng.choice((
            f"What is the date {rng.randint(1, 60)} days after February 30, {rng.randint(1950, 2049)}? "
            + DATE_ONLY,
            f"What is {rng.randint(2, 9999)} divided by zero? " + NUMBER_ONLY,
            f"What is the {_ORDINALS[rng.randint(len(word), 19)]} letter of the word '{word}'? "
            "Answer with the letter only.",
            "What is the largest prime number? " + NUMBER_ONLY,
            "What is the last digit of pi? Answer with the digit only.",
            "What is the largest even whole number? " + NUMBER_ONLY,
        ))
    raise ValueError(f"no unanswerable template for reason {reason!r}")


_MAKERS = {"arithmetic": _arithmetic, "spelling": _spelling, "letter_counting": _letter_counting,
           "date_arithmetic": _date_arithmetic, "unit_conversion": _unit_conversion}


def capability_items(n: int, seed: int = 0) -> list[EvalItem]:
    """``n`` capability items generated from ``seed`` (see the module docstring for the layout).

    Item ``i`` has ``source_id == f"cap-{i}"``. Same ``(n, seed)`` -> the same list; the first
    ``m`` items do not depend on ``n``. Raises ValueError when ``n < 1``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the capability suite needs n >= 1 items, got {n!r}")
    rng = random.Random(seed)
    facts = _FactDeck(rng)
    seen: set[str] = set()
    items: list[EvalItem] = []
    n_infeasible = 0
    for i in range(n):
        cycle, slot = divmod(i, len(_SLOTS))
        category = _SLOTS[slot]
        if category is None:
            reason = INFEASIBLE_REASONS[n_infeasible % len(INFEASIBLE_REASONS)]
            n_infeasible += 1
            for _ in range(_FRESH_TRIES):
                task = _infeasible(rng, reason)
                if task not in seen:
                    break
            items.append(EvalItem(task, "infeasible", reason, f"cap-{i}"))
        else:
            level = DIFFICULTIES[(cycle + CATEGORIES.index(category)) % len(DIFFICULTIES)]
            if category == "facts":
                task, answers = facts.draw(level)
            else:
                for _ in range(_FRESH_TRIES):
                    task, answers = _MAKERS[category](rng, level)
                    if task not in seen:
                        break
            items.append(EvalItem(task, "feasible", category, f"cap-{i}", answers=answers, difficulty=level))
        seen.add(task)
    return items


def items_sha256(items: list[EvalItem]) -> str:
    """SHA-256 of the items as canonical JSON (identifies a generated suite in reports)."""
    blob = json.dumps([dataclasses.asdict(it) for it in items], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def capability_benchmark(n: int = DEFAULT_SIZE, seed: int = 0) -> Benchmark:
    """The capability suite as a ``Benchmark`` named "capability" (path "capability:<n>")."""
    items = capability_items(n, seed)
    return Benchmark(name="capability", path=f"capability:{n}", format="capability", sha256=items_sha256(items),
                     items=items, n_total=n, n_duplicates=count_duplicates(items)[0])


__all__ = ["CATEGORIES", "INFEASIBLE_REASONS", "DIFFICULTIES", "DEFAULT_SIZE", "FACTS", "WORDS", "WEEKDAYS",
           "MONTHS", "number_words", "capability_items", "items_sha256", "capability_benchmark"]
