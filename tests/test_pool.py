"""The task pool: agreement threshold, no duplicates, FIFO bound, 0 = no growth, state round trip."""

from openrlhf.knowrl.pool import TaskPool


def test_threshold_duplicates_and_unparsed_majority():
    pool = TaskPool(max_size=10, agreement_threshold=0.75)
    assert pool.offer("Summarise this paragraph in one sentence.", "feasible", 0.8, 1)
    assert not pool.offer("Summarise this paragraph in one sentence.", "feasible", 1.0, 2), "no duplicates"
    assert not pool.offer("Predict next week's lottery numbers.", "infeasible", 0.5, 1), "below the threshold"
    assert not pool.offer("Something unparsed.", None, 1.0, 1), "no majority label"
    assert len(pool) == 1


def test_feasible_entries_drop_the_generation_reason():
    pool = TaskPool(max_size=10, agreement_threshold=0.5)
    pool.offer("Translate 'cat' into French.", "feasible", 1.0, 1, type="skill", reason="real_time_data")
    pool.offer("What will the weather be in Oslo in 2040?", "infeasible", 1.0, 1, type="knowledge",
               reason="future_events")
    seeds = pool.as_seeds()
    assert seeds[0].reason is None and seeds[1].reason == "future_events"
    assert {s.source for s in seeds} == {"pool"}


def test_fifo_bound_and_zero_means_no_growth():
    pool = TaskPool(max_size=2, agreement_threshold=0.5)
    for i in range(4):
        pool.offer(f"Task number {i} written by the model.", "feasible", 1.0, i)
    assert [e.iteration for e in pool.entries] == [2, 3], "the oldest entries leave first"
    frozen = TaskPool(max_size=0, agreement_threshold=0.5)
    assert not frozen.offer("A perfectly agreed task.", "feasible", 1.0, 1)
    assert len(frozen) == 0


def test_state_round_trip():
    pool = TaskPool(max_size=5, agreement_threshold=0.5)
    pool.offer("Count the vowels in 'banana'.", "feasible", 0.9, 3, type="skill")
    restored = TaskPool(max_size=5, agreement_threshold=0.5)
    restored.load_state_dict(pool.state_dict())
    assert restored.entries == pool.entries
