"""The update moves the policy the right way: a real DeepSpeed policy worker (one rank, gloo, CPU)
on a tiny model, fed a consensus-rewarded group, raises the majority answer's log-probability and
lowers the minority's; every parameter that receives gradient changes."""

import pytest
import torch

from openrlhf.algorithms import get_advantage_estimator
from openrlhf.knowrl.prompts import chat_prompt
from openrlhf.knowrl.reward import RewardGroup, consensus
from openrlhf.trainer.experience import build_experience
from openrlhf.trainer.model_worker import ModelWorker

pytestmark = pytest.mark.e2e   # starts Ray, vLLM or DeepSpeed (see pytest.ini)


@pytest.fixture(scope="module")
def process_group():
    """One gloo group for both workers below: DeepSpeed keeps handles to the first one."""
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module", params=["padded", "shared_prompt"])
def worker(request, tmp_path_factory, process_group):
    """The padded layout, and prompt sharing with answers in length groups (ZeRO-2 allows them)."""
    from tiny_model import build_tiny_model

    model_dir = build_tiny_model(tmp_path_factory.mktemp("tiny_learn") / "model")
    w = ModelWorker(rank=0, world_size=1, threads=2)
    w.set_rendezvous(*w.open_rendezvous("127.0.0.1"))
    w.init_model(model_dir, trainable=True, zero_stage=2, bf16=False, seed=0, micro_batch_size=4,
                 learning_rate=3e-3, max_norm=10.0, share_prompt_prefix=request.param == "shared_prompt")
    w.model_dir = model_dir
    return w


def test_consensus_update_raises_majority_logprob(worker):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(worker.model_dir)
    prompt = tok(chat_prompt(tok, "Can you add 2 and 3?"), add_special_tokens=False).input_ids
    answers = ["Label: feasible", "Label: feasible", "Label: feasible", "Label: infeasible"]
    responses = [tok(a, add_special_tokens=False).input_ids + [tok.eos_token_id] for a in answers]
    group = RewardGroup.from_texts("Can you add 2 and 3?", None, answers)
    rewards = consensus(group)
    assert rewards == [1.0, 1.0, 1.0, 0.0]

    exp = build_experience([prompt] * 4, responses, rewards, pad_token_id=tok.pad_token_id)
    before = dict((n, p.detach().clone()) for n, p in worker.engine.module.named_parameters())

    def sequence_logp():
        (logp,) = worker.compute_logprobs([exp.select([0, 1, 2, 3])])
        return (logp * exp.action_mask).sum(1)

    start = sequence_logp()
    estimator = get_advantage_estimator("reinforce")
    for _ in range(5):
        exp.old_logp = worker.compute_logprobs([exp.select([0, 1, 2, 3])])[0]
        zeros = torch.zeros_like(exp.old_logp)
        exp.advantages, exp.returns = estimator(exp.rewards, zeros, exp.action_mask, 4, 0.0, 1.0)
        stats = worker.train_steps([{"micro_batches": [exp.select([0, 1, 2, 3])],
                                     "normalizer": float(exp.action_mask.sum())}],
                                   clip_eps=0.2, temperature=1.0, use_kl_loss=False, kl_coef=0.0, kl_estimator="k1")
        assert stats[0]["grad_norm"] > 0
    end = sequence_logp()
    assert end[0] > start[0] + 0.1, (start, end)     # the majority answer became more likely
    assert end[3] < start[3] - 0.1, (start, end)     # the minority answer became less likely

    changed = [n for n, p in worker.engine.module.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert len(changed) == len(before), set(before) - set(changed)



def test_rank_without_rows_runs_a_placeholder(worker):
    """A rank that gets no rows still runs its forward/backward (ZeRO needs every rank in step)
    and contributes no gradient. (The optimizer step itself may still move weights through
    Adam's momentum; in a real run another rank always has rows in the same step.)"""
    assert worker.compute_logprobs([None]) == [None]
    stats = worker.train_steps([{"micro_batches": [None], "normalizer": 1.0}], clip_eps=0.2, temperature=1.0,
                               use_kl_loss=True, kl_coef=0.1, kl_estimator="k3")
    assert stats[0]["policy_loss"] == 0.0
    assert stats[0]["grad_norm"] == 0.0
