"""Prompt-prefix sharing: each distinct prompt of a micro-batch runs once and its answers run on
its KV cache; log-probs and gradients must equal the padded layout's.

Real HF Llama models (tiny, random, fp32) on the CPU.
"""

from functools import partial

import pytest
import torch

from openrlhf.trainer.experience import build_experience
from openrlhf.trainer.model_worker import length_buckets, response_logprobs, shared_prefix_response_logprobs
from test_packing import tiny_llama


def grouped_batch(shuffle: bool = False):
    """Three tasks of different prompt lengths with 3, 2 and 3 answers (one empty), as the loop
    builds them; `shuffle` interleaves the tasks' rows as a sample-level shuffle would."""
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 97, (n,), generator=gen).tolist() for n in (5, 11, 3)]
    rows = [0, 0, 0, 1, 1, 2, 2, 2]
    responses = [torch.randint(3, 97, (n,), generator=gen).tolist() for n in (4, 1, 9, 0, 6, 2, 5, 3)]
    order = [5, 0, 3, 7, 1, 4, 2, 6] if shuffle else list(range(8))
    return build_experience([prompts[rows[i]] for i in order], [responses[i] for i in order], [1.0] * 8,
                            pad_token_id=0)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("buckets", [1, 3])
def test_shared_prefix_logprobs_equal_padded(attn, shuffle, buckets):
    model = tiny_llama(attn)
    exp = grouped_batch(shuffle)
    width = exp.action_mask.shape[1]
    with torch.no_grad():
        padded = response_logprobs(model, exp.sequences, exp.attention_mask, width, temperature=0.7)
        shared = shared_prefix_response_logprobs(model, exp.sequences, exp.attention_mask, width, temperature=0.7,
                                                 answer_buckets=buckets)
    mask = exp.action_mask.bool()
    assert shared.shape == padded.shape
    assert torch.allclose(shared[mask], padded[mask], atol=1e-5), (shared - padded)[mask].abs().max()


@pytest.mark.parametrize("buckets", [1, 3])
def test_shared_prefix_gradients_equal_padded(buckets):
    exp = grouped_batch(shuffle=True)
    width = exp.action_mask.shape[1]
    weights = torch.linspace(-1.0, 1.0, exp.action_mask.numel()).view_as(exp.action_mask)
    grads = []
    for fn in (response_logprobs, partial(shared_prefix_response_logprobs, answer_buckets=buckets)):
        model = tiny_llama("sdpa").train()
        logp = fn(model, exp.sequences, exp.attention_mask, width)
        (logp * weights * exp.action_mask).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        assert grads[0][name].abs().sum() > 0, name
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-5), name


def test_one_distinct_prompt_runs_the_prompt_once():
    """All rows share one prompt: the prompt forward sees one row, the answer forward all rows."""
    model = tiny_llama("sdpa")
    exp = build_experience([[5, 6, 7, 8, 9, 10]] * 4, [[11, 12], [13], [14, 15, 16], [17]], [0.0] * 4, 0)
    seen = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        shared_prefix_response_logprobs(model, exp.sequences, exp.attention_mask, exp.action_mask.shape[1])
    hook.remove()
    assert seen == [(1, 6), (4, 3)]


def test_shared_prefix_placeholder_row():
    """The one-row placeholder a rank runs when it has no data goes through the shared path too."""
    model = tiny_llama("sdpa")
    sequences, attention = torch.zeros((1, 2), dtype=torch.long), torch.ones((1, 2), dtype=torch.long)
    out = shared_prefix_response_logprobs(model, sequences, attention, 1)
    assert out.shape == (1, 1) and torch.isfinite(out).all()


def test_answers_run_in_length_groups_padded_to_their_own_longest():
    """Answers of lengths 1, 1, 2, 9 in two groups: the short ones padded to 2, the long one alone."""
    model = tiny_llama("sdpa")
    exp = build_experience([[5, 6, 7]] * 4, [[11], [12, 13], [14] * 9, [15]], [0.0] * 4, 0)
    seen = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        out = shared_prefix_response_logprobs(model, exp.sequences, exp.attention_mask, exp.action_mask.shape[1],
                                              answer_buckets=2)
    hook.remove()
    assert seen == [(1, 3), (3, 2), (1, 9)]
    assert out.shape == (4, 9) and (out[[0, 1, 3], 2:] == 0).all()


def test_length_buckets_minimise_padding():
    lengths = [30, 2, 3, 31, 2, 64, 3, 29]
    assert length_buckets(lengths, 1) == [[1, 4, 2, 6, 7, 0, 3, 5]]
    assert length_buckets(lengths, 2) == [[1, 4, 2, 6], [7, 0, 3, 5]]
    assert length_buckets(lengths, 3) == [[1, 4, 2, 6], [7, 0, 3], [5]]
    # no split where it saves nothing: equal lengths stay one group whatever the cap
    assert length_buckets([5, 5, 5], 3) == [[0, 1, 2]]
    assert length_buckets([0, 4], 2) == [[0], [1]]
    assert length_buckets([], 2) == []
