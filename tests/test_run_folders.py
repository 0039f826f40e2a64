"""A run's folders: a fresh run never lands in an earlier run's folders, rotation never deletes
the checkpoint just written, a torn metrics line or a damaged checkpoint does not stop a resume,
and a resume under other settings than the checkpoint's is refused before anything loads.
(The same on a real run, killed and resumed: tests/test_resume.py.)"""

import json
from types import SimpleNamespace

from openrlhf.knowrl.checkpoint import (
    STATE_FILE,
    checkpoint_problem,
    complete_checkpoints,
    find_resume_point,
    fresh_run_problem,
    move_earlier_run_aside,
    resume_check,
    rotate_checkpoints,
    write_state,
)
from openrlhf.utils.jsonl import read_jsonl, repair_jsonl
from openrlhf.utils.tracking import MetricsLogger


def fake_checkpoint(ckpt, iteration, payload=b"weights", settings=None):
    folder = ckpt / f"iter_{iteration:04d}"
    folder.mkdir(parents=True)
    (folder / "mp_rank_00_model_states.pt").write_bytes(payload)
    write_state(str(folder), {"iteration": iteration, "pool": {}, "settings": settings or {}})
    return folder


def folders(tmp_path, **flags):
    base = dict(ckpt_path=str(tmp_path / "ckpt"), log_dir=str(tmp_path / "logs"), save_path=str(tmp_path / "model"),
                load_checkpoint=False, overwrite=False, actor_world_size=1, zero_stage=2, bf16=False)
    return SimpleNamespace(**{**base, **flags})


def test_rotation_ranks_by_iteration_and_keeps_the_checkpoint_just_written(tmp_path):
    for it in (9998, 9999, 10000):
        fake_checkpoint(tmp_path, it)
    assert complete_checkpoints(str(tmp_path)) == ["iter_9998", "iter_9999", "iter_10000"]
    assert rotate_checkpoints(str(tmp_path), 2, current="iter_10000") == ["iter_9998"]
    # a lower-numbered checkpoint just written (an earlier run's higher tags around it) survives
    fake_checkpoint(tmp_path, 1)
    rotate_checkpoints(str(tmp_path), 2, current="iter_0001")
    assert complete_checkpoints(str(tmp_path)) == ["iter_0001", "iter_10000"]


def test_manifest_finds_missing_and_truncated_files_and_resume_skips_them(tmp_path):
    fake_checkpoint(tmp_path, 1)
    newest = fake_checkpoint(tmp_path, 2)
    state = json.loads((newest / STATE_FILE).read_text())
    assert state["files"] == {"mp_rank_00_model_states.pt": len(b"weights")}
    assert checkpoint_problem(str(newest)) is None
    (newest / "mp_rank_00_model_states.pt").write_bytes(b"")
    assert "mp_rank_00_model_states.pt has 0 bytes" in checkpoint_problem(str(newest))
    point = find_resume_point(str(tmp_path))
    assert point.tag == "iter_0001" and point.skipped[0][0] == "iter_0002"
    (newest / "mp_rank_00_model_states.pt").unlink()
    assert checkpoint_problem(str(newest)) == "mp_rank_00_model_states.pt is missing"


def test_resume_check_names_both_values_of_a_changed_setting(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    settings = {"model": str(model), "actor_world_size": 2, "zero_stage": 2, "bf16": False}
    fake_checkpoint(tmp_path / "ckpt", 1, settings=settings)
    cfg = folders(tmp_path, load_checkpoint=True, zero_stage=3)
    error, warnings = resume_check(cfg, str(model))
    assert "--zero_stage 2 in the checkpoint, 3 now" in error
    assert "policy ranks" in error and "2 in the checkpoint, 1 now" in error
    assert warnings == []
    error, _ = resume_check(folders(tmp_path, load_checkpoint=True, actor_world_size=2), str(model))
    assert error is None
    # a checkpoint saved before settings were recorded is compared on what its config says
    old = tmp_path / "old"
    folder = old / "iter_0001"
    folder.mkdir(parents=True)
    (folder / "mp_rank_00_model_states.pt").write_bytes(b"w")
    (folder / STATE_FILE).write_text(json.dumps({"iteration": 1, "pool": {}, "config": {
        "actor_num_nodes": 1, "actor_num_gpus_per_node": 1, "zero_stage": 0, "bf16": False}}))
    error, _ = resume_check(folders(tmp_path, ckpt_path=str(old), load_checkpoint=True), str(model))
    assert "--zero_stage 0 in the checkpoint, 2 now" in error


def test_fresh_run_into_an_earlier_runs_folders_is_refused_and_overwrite_moves_it_aside(tmp_path):
    cfg = folders(tmp_path)
    assert fresh_run_problem(cfg) is None
    fake_checkpoint(tmp_path / "ckpt", 4)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "metrics.jsonl").write_text('{"iteration": 1}\n')
    problem = fresh_run_problem(cfg)
    assert str(tmp_path / "ckpt" / "iter_0004") in problem
    assert "--load_checkpoint" in problem and "--overwrite" in problem and "--ckpt_path" in problem
    assert fresh_run_problem(folders(tmp_path, load_checkpoint=True)) is None
    moved = dict(move_earlier_run_aside(cfg, stamp="T"))
    assert moved == {str(tmp_path / "ckpt"): str(tmp_path / "ckpt.prev-T"),
                     str(tmp_path / "logs"): str(tmp_path / "logs.prev-T")}
    assert (tmp_path / "ckpt.prev-T" / "iter_0004" / STATE_FILE).is_file(), "moved, not deleted"
    assert fresh_run_problem(cfg) is None


def test_torn_metrics_line_is_dropped_with_a_warning(tmp_path, capsys):
    logger = MetricsLogger(str(tmp_path))
    for it in (1, 2, 3):
        logger.log(it, {"rollout/agreement": 0.5})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 4, "rollout/agr')           # killed mid-write
    logger.drop_after(2)
    assert "dropped 1 unreadable line" in capsys.readouterr().out
    logger.log(3, {"rollout/agreement": 0.6})
    rows, bad = read_jsonl(tmp_path / "metrics.jsonl")
    assert bad == 0 and [r["iteration"] for r in rows] == [1, 2, 3]
    assert repair_jsonl(tmp_path / "missing.jsonl") == 0
