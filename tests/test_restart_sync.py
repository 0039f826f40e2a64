"""An engine that dies in the post-update weight sync is restarted and re-synced; if it dies again
in that re-sync, the policy still holds this iteration's update, so the run must not checkpoint it
under the previous iteration's tag (a resume would then apply the update a second time).

The real `EnginePool.sync_weights`/`generate`/`replace` and `KnowRLTrainer.fit` run here. Faked, and why:
- the weight transport (`broadcast_policy_to_engines`) raises `EngineDied` on a script, because
  killing a real engine twice inside a sub-second sync cannot be timed reliably (tests/test_faults.py
  kills real engines, between syncs);
- engine creation, the sync group, `ray.kill` and the reseed talk to vLLM actors, which the
  scripted deaths make unnecessary;
- `save_checkpoint` only records the iteration it was asked to save (DeepSpeed state is not needed
  to see under which tag the run would save), and `run_iteration` (in the fit tests) raises what
  the engine pool raised at the point of the iteration the test names.
"""

from types import SimpleNamespace

import pytest
import ray

from openrlhf.knowrl.checkpoint import RunCheckpoints
from openrlhf.knowrl.config import KnowRLConfig
from openrlhf.knowrl.loop import StoppedAfterUpdate, KnowRLTrainer
from openrlhf.rollout import engine_pool
from openrlhf.rollout.engine_pool import EnginePool
from openrlhf.utils.errors import EngineDied, EngineRestartsExhausted


@pytest.fixture
def pool(monkeypatch):
    def make(max_restarts: int, deaths: int):
        p = EnginePool(["engine-0"], [{}], {"seed": 0}, max_restarts=max_restarts, timeout=10,
                       colocated=False, bucket_bytes=1)
        p.syncs, p.created, p.reseeded = 0, 0, []

        def sync(policy, engines, metadata, bucket_bytes, timeout):
            p.syncs += 1
            if p.syncs <= deaths:
                raise EngineDied(0, f"vLLM engine 0 died during the weight sync (death {p.syncs})")

        def create(n, launch_options, **kwargs):
            p.created += 1
            return [f"engine-0-restart-{p.created}"]

        monkeypatch.setattr(engine_pool, "broadcast_policy_to_engines", sync)
        monkeypatch.setattr(engine_pool, "create_vllm_engines", create)
        monkeypatch.setattr(p, "connect", lambda policy: None)
        monkeypatch.setattr(p, "reseed", lambda iteration, only=None: p.reseeded.append((iteration, only)))
        monkeypatch.setattr(ray, "kill", lambda actor, no_restart=True: None)
        return p
    return make


def test_second_death_in_resync_runs_out_of_restarts(pool):
    """Death in a sync, restart (the last one allowed), death again in the re-sync: the pool
    raises (it never saves; the caller decides what the policy holds)."""
    p = pool(max_restarts=1, deaths=2)
    with pytest.raises(EngineRestartsExhausted, match="death 2") as caught:
        p.sync_weights(3)
    assert p.syncs == 2 and p.restarts == 1
    assert str(caught.value).endswith("; 1 restart(s) already used (--max_engine_restarts 1)")


def test_repeated_deaths_in_sync_restart_until_synced(pool):
    p = pool(max_restarts=2, deaths=2)
    p.sync_weights(3)
    assert p.syncs == 3 and p.restarts == 2 and p.created == 2
    assert p.actors == ["engine-0-restart-2"]
    assert p.reseeded == [(3, 0), (3, 0)], "every new engine is reseeded for the iteration once synced"


def test_death_while_generating_restarts_syncs_and_retries(pool, monkeypatch):
    p = pool(max_restarts=1, deaths=0)
    calls = []

    def collect(pending, timeout):
        calls.append(pending)
        if len(calls) == 1:
            raise EngineDied(0, "vLLM engine 0 died while generating")
        return [["sample"]]

    monkeypatch.setattr(engine_pool, "collect_from_engines", collect)
    monkeypatch.setattr(p, "submit", lambda prompts, sampling, n: "pending")
    assert p.generate([[1, 2]], {}, 1, iteration=4) == [["sample"]]
    assert p.restarts == 1 and p.syncs == 1 and p.reseeded == [(4, 0)]


@pytest.fixture
def trainer(monkeypatch):
    """A trainer whose `run_iteration` raises `failure` in iteration `at` (completing the others)."""
    def make(failure: Exception, at: int):
        cfg = KnowRLConfig(num_iterations=5)
        tok = SimpleNamespace(pad_token_id=0, eos_token_id=0)
        t = KnowRLTrainer(cfg, "unused-model", tok, [], None, None, use_gpu=False)
        t.checkpoints = RunCheckpoints(cfg, "unused-model", policy=None, parts={})
        t.saved = []

        def run_iteration(iteration):
            if iteration == at:
                raise failure
            return {}

        def save(iteration, train_seconds):
            t.saved.append(iteration)
            t.checkpoints.last = iteration

        monkeypatch.setattr(t, "run_iteration", run_iteration)
        monkeypatch.setattr(t.checkpoints, "save", save)
        return t
    return make


def test_engines_lost_after_update_checkpoint_the_iteration_itself(trainer):
    """The post-update sync ran out of restarts in iteration 3: the policy holds iteration 3's
    update, so iteration 3 is checkpointed, never iteration 2."""
    t = trainer(StoppedAfterUpdate("vLLM engine 0 died during the weight sync (death 2); 1 restart(s) "
                                       "already used (--max_engine_restarts 1)"), at=3)
    with pytest.raises(RuntimeError) as caught:
        t.fit()
    assert t.saved == [3], "post-update weights were checkpointed under the previous iteration's tag"
    assert str(caught.value) == ("vLLM engine 0 died during the weight sync (death 2); 1 restart(s) already used "
                                 "(--max_engine_restarts 1); the last complete iteration is checkpointed: resume "
                                 "with --load_checkpoint")


def test_engines_lost_before_update_checkpoint_previous_iteration(trainer):
    """The contrast: deaths before the update (while sampling) checkpoint iteration - 1, which is
    what the policy holds then."""
    t = trainer(EngineRestartsExhausted("vLLM engine 0 died while generating; 1 restart(s) already used "
                                        "(--max_engine_restarts 1)"), at=3)
    with pytest.raises(RuntimeError, match="the last complete iteration is checkpointed: resume with "
                                           "--load_checkpoint"):
        t.fit()
    assert t.saved == [2]


def test_no_restarts_left_in_the_first_iteration_gives_no_resume_advice(trainer):
    """Deaths while generating in iteration 1: nothing has completed, so nothing is saved and the
    error says there is nothing to resume from (it used to advise --load_checkpoint)."""
    t = trainer(EngineRestartsExhausted("vLLM engine 0 died while generating; 0 restart(s) already used "
                                        "(--max_engine_restarts 0)"), at=1)
    with pytest.raises(RuntimeError) as caught:
        t.fit()
    assert t.saved == []
    assert "nothing to resume" in str(caught.value) and "--load_checkpoint" not in str(caught.value)
