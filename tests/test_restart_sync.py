"""An engine that dies in the post-update weight sync is restarted and re-synced; if it dies again
in that re-sync, the policy still holds this iteration's update, so the run must not checkpoint it
under the previous iteration's tag (a resume would then apply the update a second time).

The real `KnowRLTrainer.sync_weights` and `restart_engine` run here. Faked, and why:
- the weight transport (`broadcast_policy_to_engines`) raises `EngineDied` on a script, because
  killing a real engine twice inside a sub-second sync cannot be timed reliably (tests/test_faults.py
  kills real engines, between syncs);
- engine creation, the sync group, `ray.kill` and the reseed talk to vLLM actors, which the
  scripted deaths make unnecessary;
- `save_checkpoint` only records the iteration it was asked to save (DeepSpeed state is not needed
  to see under which tag the run would save).
"""

from types import SimpleNamespace

import pytest
import ray

from openrlhf.knowrl import loop
from openrlhf.knowrl.config import KnowRLConfig
from openrlhf.knowrl.loop import KnowRLTrainer
from openrlhf.rollout.vllm_engine import EngineDied


@pytest.fixture
def trainer(monkeypatch):
    def make(max_engine_restarts: int, deaths: int):
        cfg = KnowRLConfig(max_engine_restarts=max_engine_restarts)
        tok = SimpleNamespace(pad_token_id=0, eos_token_id=0)
        t = KnowRLTrainer(cfg, "unused-model", tok, [], None, None, use_gpu=False)
        t.engines, t.engine_nodes, t.weight_metadata = ["engine-0"], [None], []
        t.engine_args = {"seed": 0}
        t.stop_after_iteration = None
        t.syncs, t.saved, t.created = 0, [], 0

        def sync(policy, engines, metadata, bucket_bytes, timeout):
            t.syncs += 1
            if t.syncs <= deaths:
                raise EngineDied(0, f"vLLM engine 0 died during the weight sync (death {t.syncs})")

        def create(n, node_ids, **kwargs):
            t.created += 1
            return [f"engine-0-restart-{t.created}"]

        monkeypatch.setattr(loop, "broadcast_policy_to_engines", sync)
        monkeypatch.setattr(loop, "create_vllm_engines", create)
        monkeypatch.setattr(t, "connect_engines", lambda: [])
        monkeypatch.setattr(t, "reseed_engines", lambda iteration, only=None: None)
        monkeypatch.setattr(t, "save_checkpoint", t.saved.append)
        monkeypatch.setattr(ray, "kill", lambda actor, no_restart=True: None)
        return t
    return make


def test_second_death_in_post_update_resync_never_saves_under_previous_tag(trainer):
    """Death in the post-update sync, restart (the last one allowed), death again in the re-sync:
    no checkpoint of iteration 2 (the policy holds iteration 3's update); the run finishes
    iteration 3 and stops after checkpointing it (fit does that on stop_after_iteration)."""
    t = trainer(max_engine_restarts=1, deaths=2)
    t.sync_weights(3, updated=True)
    assert t.syncs == 2 and t.engine_restarts == 1
    assert t.saved == [], "post-update weights were checkpointed under the previous iteration's tag"
    assert t.stop_after_iteration and "death 2" in t.stop_after_iteration


def test_death_before_update_checkpoints_previous_iteration(trainer):
    """The contrast: deaths in a sync before the update (a resume's sync) may checkpoint
    iteration - 1, which is what the policy holds then."""
    t = trainer(max_engine_restarts=1, deaths=2)
    with pytest.raises(RuntimeError, match="--load_checkpoint"):
        t.sync_weights(3, updated=False)
    assert t.saved == [2]


def test_repeated_deaths_in_post_update_sync_restart_until_synced(trainer):
    t = trainer(max_engine_restarts=2, deaths=2)
    t.sync_weights(3, updated=True)
    assert t.syncs == 3 and t.engine_restarts == 2 and t.created == 2
    assert t.engines == ["engine-0-restart-2"]
    assert t.saved == [] and t.stop_after_iteration is None


def test_no_restarts_left_in_the_first_iteration_gives_no_resume_advice(trainer):
    """Deaths while generating in iteration 1: nothing has completed, so nothing is saved and the
    error says there is nothing to resume from (it used to advise --load_checkpoint)."""
    t = trainer(max_engine_restarts=0, deaths=1)
    with pytest.raises(RuntimeError) as caught:
        t.restart_engine(EngineDied(0, "vLLM engine 0 died while generating"), 1)
    assert t.saved == []
    assert "nothing to resume" in str(caught.value) and "--load_checkpoint" not in str(caught.value)
