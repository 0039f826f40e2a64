"""Anti-collapse targets, filter, balance, rewards and monitors on hand-built groups
(openrlhf/knowrl/pseudo_labels.py); every expected value is worked out in the comments."""

import random

import pytest

from openrlhf.knowrl.pseudo_labels import (
    BalancedQueue,
    EarlyStop,
    FeasiblePrior,
    aligned_targets,
    batch_targets,
    collapse_monitors,
    keep_group,
    majority_targets,
    median_targets,
    prior_corrected,
    smoothed_feasible_share,
    target_rewards,
)

F, I, N = "feasible", "infeasible", None
# A model biased to "infeasible": 4 groups of 4 answers, feasible counts 0, 1, 2, 0
BIASED = [[I, I, I, I], [F, I, I, I], [F, F, I, I], [I, I, N, I]]


def test_smoothed_share():
    assert smoothed_feasible_share([I, I, I, I]) == pytest.approx(0.5 / 5)   # (0 + 1/2) / (4 + 1)
    assert smoothed_feasible_share([F, I, I, I]) == pytest.approx(1.5 / 5)
    assert smoothed_feasible_share([I, I, N, I]) == pytest.approx(0.5 / 4)   # None left out
    assert smoothed_feasible_share([N, N]) == 0.5


def test_prior_correction_reduces_to_comparing_with_the_prior():
    assert prior_corrected(0.3, 0.3) == pytest.approx(0.5)
    assert prior_corrected(0.31, 0.3) > 0.5 > prior_corrected(0.29, 0.3)
    # q t / pi / (q t / pi + (1-q)(1-t)/(1-pi)) with q=0.2, pi=0.5, t=0.8: 0.32 / (0.32 + 0.32) ... by hand
    q, pi, t = 0.2, 0.5, 0.8
    assert prior_corrected(q, pi, t) == pytest.approx((q * t / pi) / (q * t / pi + (1 - q) * (1 - t) / (1 - pi)))
    with pytest.raises(ValueError):
        prior_corrected(0.5, 0.0)


def test_majority_collapses_to_the_bias_but_aligned_and_median_rank_tasks():
    assert majority_targets(BIASED) == [I, I, None, I]          # a tie gives no target
    # shares 0.1, 0.3, 0.5, 0.125; prior 0.25: feasible where q > 0.25
    assert aligned_targets(BIASED, prior=0.25) == [I, F, F, I]
    # median of (0.1, 0.3, 0.5, 0.125) = 0.2125: above it -> feasible
    assert median_targets(BIASED) == [I, F, F, I]
    assert median_targets([[N, N], [F, I]]) == [None, I]        # one present share equals the median
    assert aligned_targets([[N, N]], prior=0.3) == [None]


def test_batch_targets_folds_the_batch_into_the_running_prior():
    prior = FeasiblePrior(momentum=0.9)
    targets = batch_targets("aligned", BIASED, prior)
    mean = (0.1 + 0.3 + 0.5 + 0.125) / 4                         # the first batch sets pi
    assert prior.value == pytest.approx(mean) and targets == aligned_targets(BIASED, mean)
    batch_targets("aligned", [[F, F, F, F]], prior)              # share 0.9
    assert prior.value == pytest.approx(0.9 * mean + 0.1 * 0.9)
    restored = FeasiblePrior()
    restored.load_state_dict(prior.state_dict())
    assert restored.current == prior.current
    with pytest.raises(ValueError, match="unknown --pseudo_label"):
        batch_targets("mode", BIASED)


def test_a_constant_classifier_cannot_satisfy_aligned_targets():
    """Under majority targets answering "infeasible" everywhere earns full reward; under aligned
    targets about half the tasks of a batch get the other label, so it cannot."""
    rng = random.Random(0)
    batch = [[F if rng.random() < p else I for _ in range(8)] for p in [0.02 * k for k in range(20)]]
    constant = [I] * 8
    for targets in (aligned_targets(batch, prior=FeasiblePrior().update(
            [smoothed_feasible_share(b) for b in batch])), median_targets(batch)):
        mean_reward = sum(sum(target_rewards(constant, t)) / 8 for t in targets) / len(targets)
        assert 0.3 < mean_reward < 0.8
    assert all(t in (I, None) for t in majority_targets(batch)[:10])


def test_rewards_with_intent_weight():
    assert target_rewards([F, I, N], F) == [1.0, 0.0, 0.0]
    assert target_rewards([F, I, N], F, intended=I, intent_weight=0.5) == [0.5, 0.5, 0.0]
    assert target_rewards([F, I], None, intended=F, intent_weight=0.25) == [0.25, 0.0]
    assert target_rewards([F, I], I, intended=None, intent_weight=0.5) == [0.0, 1.0]   # unknown intent: off
    with pytest.raises(ValueError):
        target_rewards([F], F, intent_weight=1.5)


def test_group_filter():
    assert keep_group([1, 0, 0, 0], "nondegenerate") and keep_group([0.5, 0.0], "nondegenerate")
    assert not keep_group([1, 1, 1, 1], "nondegenerate") and not keep_group([0, 0], "nondegenerate")
    assert keep_group([1, 1, 0, 0], "band", (0.2, 0.9)) and not keep_group([1, 1, 1, 1], "band", (0.2, 0.9))
    assert not keep_group([], "band")
    with pytest.raises(ValueError):
        keep_group([1, 0], "loose")


def test_balanced_queue_takes_equal_numbers_and_keeps_the_surplus():
    q = BalancedQueue()
    got = q.take(["f1", "f2", "f3", "i1"], lambda g: F if g[0] == "f" else I)
    assert sorted(got) == ["f1", "i1"] and q.waiting() == {F: 2, I: 0}
    assert q.take([], lambda g: None) == []                       # starved: nothing to pair
    got = q.take(["i2", "i3", "x"], lambda g: {"i": I}.get(g[0]))  # untargeted "x" is ignored
    assert sorted(got) == ["f2", "f3", "i2", "i3"] and q.waiting() == {F: 0, I: 0}
    capped = BalancedQueue(max_per_label=1, max_waiting=2)
    # at most 2 wait per label: f1 is dropped when f3 arrives; one of each is taken
    assert sorted(capped.take(["f1", "f2", "f3", "i1", "i2"], lambda g: F if g[0] == "f" else I)) == ["f2", "i1"]
    assert capped.waiting() == {F: 1, I: 1}


def test_monitors_by_hand():
    m = collapse_monitors(BIASED, [I, F, F, I], [True, True, False, True], [I, I, F, None])
    assert m["predicted_feasible_rate"] == pytest.approx(3 / 15)    # 3 F of 15 parseable
    # agreements: 4/4, 3/4, tie -> 0, 3/4 (None counts in n)
    assert m["self_agreement"] == pytest.approx((1 + 0.75 + 0 + 0.75) / 4)
    assert m["kept_share"] == pytest.approx(3 / 4)
    assert m["target_feasible_share"] == pytest.approx(2 / 4)
    assert m["intent_agreement"] == pytest.approx(2 / 3)            # (I,I) yes, (F,I) no, (F,F) yes
    assert collapse_monitors([], [], [], [])["self_agreement"] is None


def test_early_stop_band_patience_and_score():
    stop = EarlyStop(band=(0.2, 0.8), max_agreement=0.95, patience=2)
    assert stop.check(0.5, 0.97) is None
    assert "self-agreement above 0.95 for 2 checks" in stop.check(0.5, 0.99)
    stop = EarlyStop(patience=2)
    assert stop.check(0.5, 0.97) is None and stop.check(0.5, 0.90) is None and stop.check(0.5, 0.97) is None
    # a model that starts at 0.04 (0.16 below the band) is not stopped for staying there ...
    stop = EarlyStop(patience=2)
    stop.start(0.04)
    assert stop.check(0.05, 0.5) is None and stop.check(0.03, 0.5) is None   # within the 0.02 tolerance
    # ... but is when it drifts farther away for `patience` checks in a row
    assert stop.check(0.01, 0.5) is None
    assert "farther from it than at the start for 2 checks" in stop.check(0.0, 0.5)
    # back towards the band resets the count
    stop = EarlyStop(patience=2)
    stop.start(0.5)
    assert stop.check(0.1, 0.5) is None and stop.check(0.3, 0.5) is None and stop.check(0.1, 0.5) is None
    assert stop.check(0.9, 0.5) is not None
    restored = EarlyStop(patience=2)
    restored.load_state_dict(stop.state_dict())
    assert restored.state_dict() == stop.state_dict()


def test_early_stop_counts_a_rate_that_crosses_to_the_other_side_of_the_band():
    # the full-budget A1 run: the model starts at ~0.05 (0.15 below the band) and ends at ~0.97
    # (0.17 above it): not farther than at the start, yet a collapse to the other answer
    stop = EarlyStop(patience=2)
    stop.start(0.05)
    assert stop.drifted(0.97) and not stop.drifted(0.81) and not stop.drifted(0.5)
    assert stop.check(0.97, 0.9) is None
    assert "on its other side than at the start for 2 checks" in stop.check(0.96, 0.9)
    # the same side still needs to be farther than at the start; above the band, mirrored
    assert not stop.drifted(0.04) and stop.drifted(0.02)
    above = EarlyStop(patience=1)
    above.start(0.9)
    assert not above.drifted(0.91) and above.drifted(0.15) and above.check(0.1, 0.5) is not None
    # a checkpoint written before the side was recorded keeps the distance rule alone
    old = EarlyStop(patience=1)
    old.load_state_dict({"start_distance": 0.15, "drift_checks": 0, "high_agreement_checks": 0})
    assert old.start_side is None and not old.drifted(0.96) and old.drifted(1.0)
    restored = EarlyStop()
    restored.load_state_dict(stop.state_dict())
    assert restored.start_side == -1 and restored.drifted(0.97)


def test_checkpoint_score_is_closeness_to_the_band_middle():
    stop = EarlyStop(band=(0.2, 0.8))
    assert stop.score(0.5) == pytest.approx(1.0) and stop.score(0.2) == pytest.approx(0.0)
    assert stop.score(0.0) < stop.score(0.1) < stop.score(0.4) and stop.score(None) == float("-inf")
