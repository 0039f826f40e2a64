"""Padding-free (packed) scoring gives the same log-probs and gradients as the padded layout.

Real HF Llama models (tiny, random, fp32) on the CPU; the packed path relies on transformers
reading restarted position ids without an attention mask as separate sequences.
"""

import pytest
import torch

from openrlhf.trainer.experience import build_experience
from openrlhf.trainer.model_worker import packed_response_logprobs, response_logprobs


def tiny_llama(attn: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         attn_implementation=attn)
    return LlamaForCausalLM(config).eval()


def ragged_batch():
    """Prompts and responses of different lengths, one empty response, as the loop builds them."""
    gen = torch.Generator().manual_seed(1)
    prompt_lens, response_lens = [5, 11, 3, 8, 7], [4, 1, 9, 0, 6]
    prompts = [torch.randint(3, 97, (n,), generator=gen).tolist() for n in prompt_lens]
    responses = [torch.randint(3, 97, (n,), generator=gen).tolist() for n in response_lens]
    return build_experience(prompts, responses, [1.0] * 5, pad_token_id=0)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logprobs_equal_padded(attn):
    model = tiny_llama(attn)
    exp = ragged_batch()
    width = exp.action_mask.shape[1]
    with torch.no_grad():
        padded = response_logprobs(model, exp.sequences, exp.attention_mask, width)
        packed = packed_response_logprobs(model, exp.sequences, exp.attention_mask, width)
    mask = exp.action_mask.bool()
    assert packed.shape == padded.shape
    assert torch.allclose(packed[mask], padded[mask], atol=1e-5), (packed - padded)[mask].abs().max()
    assert (packed[~mask] == 0).all()
    # a packed row must not see the previous sequence: shifting the batch order changes nothing
    order = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        shuffled = packed_response_logprobs(model, exp.sequences[order], exp.attention_mask[order], width)
    assert torch.allclose(shuffled[mask[order]], packed[order][mask[order]], atol=1e-5)


def test_packed_gradients_equal_padded():
    exp = ragged_batch()
    width = exp.action_mask.shape[1]
    grads = []
    for fn in (response_logprobs, packed_response_logprobs):
        model = tiny_llama("sdpa")
        logp = fn(model, exp.sequences, exp.attention_mask, width, temperature=0.7)
        (logp * exp.action_mask).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-5), name


def test_packing_placeholder_row():
    """The one-row placeholder a rank runs when it has no data must go through the packed path."""
    model = tiny_llama("sdpa")
    sequences, attention = torch.zeros((1, 2), dtype=torch.long), torch.ones((1, 2), dtype=torch.long)
    out = packed_response_logprobs(model, sequences, attention, 1)
    assert out.shape == (1, 1) and torch.isfinite(out).all()
