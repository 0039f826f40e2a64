"""Batch layout and the per-rank split the trainer relies on (pure Python/torch, fast)."""

import pytest
import torch

from openrlhf.trainer.experience import build_experience, optimizer_steps, rank_micro_batches


def test_build_experience_layout():
    exp = build_experience([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], [1.0, 0.0], pad_token_id=0)
    # prompts are left-padded to width 3, responses right-padded to width 3
    assert exp.sequences.tolist() == [[5, 6, 7, 1, 2, 0], [0, 0, 8, 3, 4, 9]]
    assert exp.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert exp.action_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert exp.prompt_width == 3
    assert exp.rewards.tolist() == [1.0, 0.0]


def test_build_experience_empty_response_keeps_a_column():
    exp = build_experience([[1, 2]], [[]], [0.5], pad_token_id=0)
    assert exp.action_mask.shape == (1, 1) and exp.action_mask.sum() == 0


def test_build_experience_rejects_mismatched_lists():
    with pytest.raises(ValueError):
        build_experience([[1]], [[1], [2]], [0.0], pad_token_id=0)


def test_select_rows():
    exp = build_experience([[1], [2], [3]], [[4], [5], [6]], [0.0, 1.0, 2.0], pad_token_id=0)
    exp.old_logp = torch.tensor([[-1.0], [-2.0], [-3.0]])
    rows = exp.select([2, 0])
    assert rows["sequences"].tolist() == [[3, 6], [1, 4]]
    assert rows["old_logp"].tolist() == [[-3.0], [-1.0]]
    assert "ref_logp" not in rows


@pytest.mark.parametrize("contiguous", [False, True])
@pytest.mark.parametrize("items,world,micro", [(7, 2, 2), (1, 2, 4), (8, 2, 2), (5, 3, 1), (0, 2, 2)])
def test_rank_micro_batches_cover_items_once_with_equal_counts(items, world, micro, contiguous):
    plan = rank_micro_batches(items, world, micro, contiguous)
    assert len(plan) == world
    counts = {len(rank) for rank in plan}
    assert len(counts) == 1, "every rank must run the same number of micro-batches"
    flat = [i for rank in plan for mb in rank for i in mb]
    assert sorted(flat) == list(range(items))
    assert all(len(mb) <= micro for rank in plan for mb in rank)


def test_contiguous_dealing_keeps_neighbours_together():
    # 3 tasks x 4 answers on 2 ranks: each rank's micro-batches hold whole tasks where they fit
    assert rank_micro_batches(12, 2, 4, contiguous=True) == [[[0, 1, 2, 3], [4, 5]], [[6, 7, 8, 9], [10, 11]]]
    assert rank_micro_batches(12, 2, 4)[0][0] == [0, 2, 4, 6]


def test_optimizer_steps_last_step_smaller():
    assert optimizer_steps(5, 2) == [[0, 1], [2, 3], [4]]
    assert optimizer_steps(4, 4) == [[0, 1, 2, 3]]
    assert optimizer_steps(0, 4) == []


def test_select_trims_shared_padding_but_keeps_response_alignment():
    exp = build_experience([[5, 6, 7], [8], [9, 9]], [[1, 2, 3], [4], [6]], [0.0, 1.0, 0.5], pad_token_id=0)
    exp.old_logp = torch.arange(9, dtype=torch.float32).view(3, 3)
    rows = exp.select([1, 2])
    # rows 1 and 2 need prompt columns from index 1 and one response column
    assert rows["sequences"].tolist() == [[0, 8, 4], [9, 9, 6]]
    assert rows["attention_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    assert rows["action_mask"].tolist() == [[1], [1]]
    assert rows["old_logp"].tolist() == [[3.0], [6.0]]
    full = exp.select([0, 1, 2])
    assert full["sequences"].shape == exp.sequences.shape


def test_plan_buckets_groups_by_dtype_and_size():
    from openrlhf.trainer.weight_sync import ParamMeta, plan_buckets

    f32, bf16 = "torch.float32", "torch.bfloat16"
    metas = [ParamMeta("a", (4,), f32), ParamMeta("b", (4,), f32), ParamMeta("c", (10,), f32),
             ParamMeta("d", (2,), bf16), ParamMeta("e", (2,), bf16), ParamMeta("f", (3,), f32)]
    # 32 bytes per bucket: a+b (32 B) fit together, c (40 B) stands alone, d+e share, f stands alone
    assert plan_buckets(metas, 32) == [[0, 1], [2], [3, 4], [5]]
    assert plan_buckets(metas, 10**9) == [[0, 1, 2], [3, 4], [5]]
