"""Grading a model's free-text answer against gold answers (aliases) for model-relative evaluation.

The normalisation follows the convention of the SQuAD v1.1 official evaluation script
(Rajpurkar et al. 2016, "SQuAD: 100,000+ Questions for Machine Comprehension of Text"), also
used for TriviaQA (Joshi et al. 2017): lower-case, strip punctuation, drop the articles
a/an/the, collapse whitespace; exact match and bag-of-tokens F1 on the normalised text.
Deliberate refinements, each because the plain script mis-grades short factual answers:

* Unicode is NFKD-folded and accents stripped ("Zürich" == "zurich", "García" == "garcia").
* Numbers: thousands separators are joined ("1,000" == "1 000" == "1000"), a decimal point
  between digits is kept ("3.5" is not "35"), trailing decimal zeros and leading integer
  zeros are dropped ("2.50" == "2.5", "3.0" == "3", "03" == "3"), and a leading minus stays.
* Punctuation between words becomes a space instead of vanishing ("7×8=56" is "7 8 56", not
  "7856"; "Jean-Paul" == "Jean Paul"); apostrophes and a period between letters vanish
  ("U.S." == "US", "O'Neil" == "ONeil").
* An article is dropped only before another word: a final "a" is the letter, not an article
  ("the letter a" -> "letter a").
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

#: a normalised alias with at most this many tokens is "short": it is credited when it occurs
#: as a whole-token run inside a sentence-shaped prediction ("The capital is Paris." for "Paris")
SHORT_ALIAS_TOKENS = 3

_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
    "thousand million billion trillion".split())
_ARTICLES = frozenset(("a", "an", "the"))
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")
_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:[, ]\d{3})+(?!\d|[, ]\d)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_PREAMBLE = re.compile(r"^\s*(?:(?:the\s+)?(?:final\s+|short\s+)?answer(?:\s+is)?|a)\s*:\s*", re.IGNORECASE)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr vs etc mt ft no fig approx".split())
_SENTENCE_END = re.compile(r"([.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_LIST_SPLIT = re.compile(r"[,;/|]")


def _fold(text: str) -> str:
    """NFKD-decompose, drop combining marks (accents), case-fold."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _canonical_number(tok: str) -> str:
    """'03' -> '3', '2.50' -> '2.5', '3.0' -> '3', '-0' -> '0'; other tokens unchanged."""
    if not _NUMBER.fullmatch(tok):
        return tok
    sign, body = ("-", tok[1:]) if tok.startswith("-") else ("", tok)
    whole, _, frac = body.partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    out = whole + ("." + frac if frac else "")
    return out if out == "0" else sign + out


def normalize_answer(text: str) -> str:
    """Normalise an answer for comparison (see the module docstring for the convention).

    Args:
        text: any answer text.
    Returns:
        Lower-case tokens joined by single spaces; "" when nothing is left.
    Raises:
        TypeError: ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_answer expects a str, got {type(text).__name__}")
    s = _fold(text).translate(_DASHES)
    s = _THOUSANDS.sub(lambda m: re.sub(r"[, ]", "", m.group()), s)
    s = re.sub(r"(?<=\d)\.(?=\d)", "\0", s)  # protect decimal points from the punctuation pass
    s = re.sub(r"(?<!\S)-(?=\d)", "\1", s)  # and a leading minus
    s = re.sub(r"['\u2019`]", "", s)
    s = re.sub(r"(?<=[^\W\d_])\.(?=[^\W\d_])", "", s)  # U.S. -> US.
    s = "".join(ch if ch.isalnum() or ch.isspace() or ch in "\0\1" else " " for ch in s)
    s = s.replace("\0", ".").replace("\1", "-")
    tokens = [_canonical_number(t) for t in s.split()]
    kept = [t for i, t in enumerate(tokens) if not (t in _ARTICLES and i + 1 < len(tokens))]
    return " ".join(kept)


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD-style F1 between the bags of normalised tokens of ``prediction`` and ``gold``.

    Returns a value in [0, 1]; 1.0 when both normalise to nothing, 0.0 when only one does.
    """
    return _f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def _f1(pred: list[str], ref: list[str]) -> float:
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def first_answer_line(prediction: str) -> str:
    """The part of a generated answer that is graded: the first sentence of the first
    non-empty line, after dropping a ``<think>...</think>`` block and an answer preamble
    ("Answer:", "Final answer:", "A:"). Later sentences are explanation and may name other
    candidates, so they are not graded. Returns "" for an empty prediction.

    A sentence ends at ``.``, ``!`` or ``?`` followed by whitespace and a capital letter or
    digit; a decimal point, an initial ("U.S. Army") or a common abbreviation ("Dr. Smith")
    does not end one.
    """
    text = _THINK.sub(" ", prediction)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _PREAMBLE.sub("", line, count=1).strip()
    for m in _SENTENCE_END.finditer(line):
        before = line[: m.start()]
        core = re.search(r"[\w.]*$", before).group().rstrip(".")
        if ((len(core) == 1 and core.isalpha()) or re.fullmatch(r"(?:[^\W\d_]\.)+[^\W\d_]", core)
                or core.lower() in _ABBREVIATIONS):
            continue  # an initial, a dotted abbreviation or a title, not a sentence end
        return line[: m.start() + 1].strip()
    return line


def _is_number(tok: str) -> bool:
    return bool(_NUMBER.fullmatch(tok))


def _exact_tokens(tokens: list[str]) -> list[str]:
    """Tokens that must be matched exactly, never approximately: numbers and number words."""
    return [t for t in tokens if _is_number(t) or t in _NUMBER_WORDS]


def _is_subsequence(needle: list[str], hay: list[str]) -> bool:
    it = iter(hay)
    return all(tok in it for tok in needle)


def _contains_run(hay: list[str], run: list[str]) -> bool:
    n = len(run)
    return any(hay[i:i + n] == run for i in range(len(hay) - n + 1))


def is_candidate_list(answer: str) -> bool:
    """True when ``answer`` (one graded sentence) offers several candidates instead of one:
    it contains the word "or" ("Paris or Lyon"), or it splits into three or more parts on
    ``, ; / |`` outside numbers ("Paris, London, Berlin"). Such an answer gets no F1 or
    containment credit from ``grade_answer``; it can still match an alias exactly."""
    folded = _THOUSANDS.sub(lambda m: re.sub(r"[, ]", "", m.group()), _fold(answer))
    if re.search(r"\bor\b", folded):
        return True
    parts = [p for p in _LIST_SPLIT.split(folded) if p.strip()]
    return len(parts) >= 3


def grade_answer(prediction: str, golds: Sequence[str], *, f1_threshold: float = 0.5) -> bool:
    """Whether ``prediction`` answers correctly, given the accepted gold answers (aliases).

    Only ``first_answer_line(prediction)`` is graded. It is correct against an alias when:

    1. exact match: both normalise to the same text; or
    2. for a purely numeric alias ("56", "1,000"): the *last* number in the graded sentence
       equals it ("7 × 8 = 56" is right, "56 × 2 = 112" is not; the GSM8K convention, Cobbe
       et al. 2021). Numeric aliases get no F1 or containment credit; or
    3. token F1 (``token_f1``) >= ``f1_threshold``, provided the alias's numbers and number
       words occur in the sentence in the same order (F1 must not credit "March 16, 2024" for
       "March 15, 2024" nor "one hundred" for "one thousand"); or
    4. containment: the alias is short (at most ``SHORT_ALIAS_TOKENS`` normalised tokens) and
       occurs as a whole-token run in the normalised sentence. Long aliases never get
       containment credit: a sentence that merely embeds part of a long answer is graded by
       F1 alone.

    Rules 3 and 4 do not apply when the sentence is a candidate list (``is_candidate_list``):
    "Paris, London, Berlin" or "Paris or Lyon" hedges, so only an exact match credits it.

    Args:
        prediction: the model's answer text (may be a sentence or several lines).
        golds: accepted answers; aliases that normalise to "" are ignored.
        f1_threshold: the F1 needed for credit by rule 3, in (0, 1].
    Returns:
        True when any alias credits the prediction.
    Raises:
        ValueError: ``golds`` is empty (or only has blank aliases), or ``f1_threshold`` is
            outside (0, 1].
        TypeError: ``golds`` is a single str instead of a sequence of aliases.
    """
    if isinstance(golds, str):
        raise TypeError("golds must be a sequence of aliases, not one str: wrap it as [gold]")
    if not 0 < f1_threshold <= 1:
        raise ValueError(f"f1_threshold must be in (0, 1], got {f1_threshold}")
    refs = [r for r in (normalize_answer(g) for g in golds) if r]
    if not refs:
        raise ValueError("grade_answer needs at least one non-blank gold answer, got "
                         f"{list(golds)!r}")
    sentence = first_answer_line(prediction)
    pred = normalize_answer(sentence)
    pred_tokens = pred.split()
    if not pred_tokens:
        return False
    numbers = [t for t in pred_tokens if _is_number(t)]
    listing = is_candidate_list(sentence)
    for ref in refs:
        ref_tokens = ref.split()
        if pred == ref:
            return True
        if len(ref_tokens) == 1 and _is_number(ref):
            if numbers and numbers[-1] == ref:
                return True
            continue
        if listing:
            continue
        if (_f1(pred_tokens, ref_tokens) >= f1_threshold
                and _is_subsequence(_exact_tokens(ref_tokens), pred_tokens)):
            return True
        if len(ref_tokens) <= SHORT_ALIAS_TOKENS and _contains_run(pred_tokens, ref_tokens):
            return True
    return False


__all__ = ["SHORT_ALIAS_TOKENS", "normalize_answer", "token_f1", "first_answer_line", "is_candidate_list",
           "grade_answer"]
