"""A continuous confidence from the label token: P(feasible) read off the next-token distribution.

A classification answer is prefilled with the answer prefix (``Label:``), so the first token the
model writes carries its decision. Instead of counting how many of K samples say "infeasible",
the label token's probability gives a calibrated, continuous confidence per item, as in the
P(True)/P(IK) probes of Kadavath et al. 2022, "Language Models (Mostly) Know What They Know"
(arXiv:2207.05221), which read the probability a model puts on an answer token.

* ``find_label_tokens`` works out, for one tokenizer, which token ids decide between the two
  labels right after the prefix (and what common text, if any, comes before them);
* ``p_feasible`` turns the log-probabilities of those tokens into
  ``P(feasible) = P(F) / (P(F) + P(I))``, normalised over the two labels.

Shared by training and evaluation; depends only on ``openrlhf.knowrl.prompts``/``taxonomy``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from openrlhf.knowrl.prompts import DEFAULT_ANSWER_PREFIX
from openrlhf.knowrl.taxonomy import LABELS

__all__ = ["LabelTokenError", "LabelTokens", "LABEL_VARIANTS", "find_label_tokens", "p_feasible"]

FEASIBLE, INFEASIBLE = LABELS

#: How a model plausibly writes each label right after ``Label:``, most likely first. The first
#: pair is the primary one: it fixes the decisive position (and so any prefill).
LABEL_VARIANTS: tuple[tuple[str, str], ...] = (
    (" feasible", " infeasible"),
    ("feasible", "infeasible"),
    (" Feasible", " Infeasible"),
)


class LabelTokenError(ValueError):
    """No token of this tokenizer decides between the two labels; the message is one line."""


@dataclass(frozen=True)
class LabelTokens:
    """The token ids that decide the label at one position after the answer prefix.

    ``feasible`` / ``infeasible``: vocabulary ids (disjoint, each non-empty) whose probability
    counts for that label at the decisive position. ``prefill_ids`` are the tokens both labels
    begin with (usually none; e.g. ``(" ",)`` for a character-level tokenizer), to append to the
    prompt's token ids before reading the next-token distribution; ``prefill`` is their text.
    """

    feasible: tuple[int, ...]
    infeasible: tuple[int, ...]
    prefill_ids: tuple[int, ...] = ()
    prefill: str = ""

    @property
    def token_ids(self) -> list[int]:
        """Every decisive id of both labels, sorted (what to ask the engine's log-probs for)."""
        return sorted(set(self.feasible) | set(self.infeasible))


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def _tokenizer_name(tokenizer) -> str:
    return getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__


def _continuation_ids(tokenizer, context_ids: list[int], context: str, variant: str) -> list[int]:
    """The ids of ``variant`` as the tokenizer writes it right after ``context``.

    Tokenising ``context + variant`` and removing the context's own ids keeps the in-context form
    (a leading space folded into the word, as byte-level BPE does). When the joint tokenisation
    merges across the boundary, the context's ids are no longer its prefix and a model that already
    has the context cannot write that form; the variant's own tokenisation is used instead.
    """
    joint = _ids(tokenizer, context + variant)
    if joint[:len(context_ids)] == context_ids:
        return joint[len(context_ids):]
    return _ids(tokenizer, variant)


def find_label_tokens(tokenizer, prompt_text_before_label: str | None = None) -> LabelTokens:
    """Which tokens decide between "feasible" and "infeasible" after the answer prefix.

    ``tokenizer``: a Hugging Face tokenizer (called with ``add_special_tokens=False``).
    ``prompt_text_before_label``: the text the label follows, i.e. a classification prompt ending
    with the answer prefix (default: ``DEFAULT_ANSWER_PREFIX`` alone); only its last tokens matter.

    Each variant of ``LABEL_VARIANTS`` is tokenised in that context. The primary pair
    (" feasible", " infeasible") sets the decisive position: the first token where its two id
    sequences differ (the tokens before it become ``prefill_ids``). Every other variant that starts
    with the same prefill adds its token at that position, unless that token's text could also
    begin a variant of the other label (e.g. a bare " " before "Feasible"), or it is the unknown
    token. Only canonical tokenisations count: a model spelling " infeasible" as " in"+"feasible"
    is not seen.

    Returns ``LabelTokens``. Raises ``LabelTokenError`` (one line naming the tokenizer; confidence
    then falls back to the share of samples) when no token decides: one label's ids are a prefix
    of the other's, the primary decisive token is ambiguous or unknown, or a token ends up on both
    sides.
    """
    context = DEFAULT_ANSWER_PREFIX if prompt_text_before_label is None else prompt_text_before_label
    name = _tokenizer_name(tokenizer)

    def fail(why: str) -> LabelTokenError:
        return LabelTokenError(f"tokenizer {name}: no token decides between 'feasible' and 'infeasible' after "
                               f"{context[-20:]!r} ({why}); confidence falls back to the share of samples")

    context_ids = _ids(tokenizer, context)
    context_text = tokenizer.decode(context_ids)
    unk = getattr(tokenizer, "unk_token_id", None)

    def text_of(ids: list[int]) -> str:
        # Decoding after the context keeps a leading space that decoders strip at the start of text.
        return tokenizer.decode(context_ids + ids)[len(context_text):]

    variants = {label: [] for label in LABELS}
    for pair in LABEL_VARIANTS:
        for label, text in zip(LABELS, pair):
            variants[label].append((text, _continuation_ids(tokenizer, context_ids, context, text)))

    (_, f_ids), (_, i_ids) = variants[FEASIBLE][0], variants[INFEASIBLE][0]
    common = 0
    while common < min(len(f_ids), len(i_ids)) and f_ids[common] == i_ids[common]:
        common += 1
    if common == min(len(f_ids), len(i_ids)):
        raise fail(f"{LABEL_VARIANTS[0][0]!r} and {LABEL_VARIANTS[0][1]!r} tokenise to "
                   f"{f_ids} and {i_ids}, one a prefix of the other")
    prefill_ids = f_ids[:common]

    decisive: dict[str, set[int]] = {label: set() for label in LABELS}
    for label in LABELS:
        other = INFEASIBLE if label == FEASIBLE else FEASIBLE
        other_texts = [t for t, _ in variants[other]]
        for rank, (text, ids) in enumerate(variants[label]):
            if ids[:common] != prefill_ids or len(ids) <= common:
                continue
            token = ids[common]
            written = text_of(ids[:common + 1])
            ambiguous = token == unk or any(t.startswith(written) for t in other_texts)
            if ambiguous and rank == 0:
                raise fail(f"the first token of {text!r} ({written!r}) could also begin the other label")
            if not ambiguous:
                decisive[label].add(token)
    shared = decisive[FEASIBLE] & decisive[INFEASIBLE]
    if shared:
        raise fail(f"token id(s) {sorted(shared)} would count for both labels")
    return LabelTokens(feasible=tuple(sorted(decisive[FEASIBLE])), infeasible=tuple(sorted(decisive[INFEASIBLE])),
                       prefill_ids=tuple(prefill_ids), prefill=text_of(prefill_ids))


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


def p_feasible(logprobs: Mapping[int, float], tokens: LabelTokens) -> float | None:
    """P(feasible) in [0, 1] from one position's log-probabilities.

    ``logprobs``: ``{token_id: natural-log probability}`` at the decisive position (the engine's
    raw, temperature-free values); other ids in it are ignored. Each label's probability is the sum
    over its decisive ids present in ``logprobs``; the result is ``P(F) / (P(F) + P(I))``, computed
    in log space so tiny probabilities do not underflow. An absent id counts as probability 0, so
    the value is exact only when every decisive id is present (ask the engine for exactly
    ``tokens.token_ids``). Returns ``None`` when neither label has a present id with non-zero
    probability.
    """
    f = [logprobs[t] for t in tokens.feasible if t in logprobs]
    i = [logprobs[t] for t in tokens.infeasible if t in logprobs]
    lf = _logsumexp(f) if f else -math.inf
    li = _logsumexp(i) if i else -math.inf
    if lf == -math.inf and li == -math.inf:
        return None
    if li == -math.inf:
        return 1.0
    # logistic of the log-odds: stable for either sign
    d = lf - li
    return 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))
