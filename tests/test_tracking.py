"""Loggers: metrics.jsonl, TensorBoard and W&B (offline: this machine reaches no W&B server) get
the same metric names; an unreachable W&B server falls back to offline instead of failing."""

import json

import pytest

from openrlhf.utils.tracking import MetricsLogger, wandb_reachable

METRICS = [{"rollout/agreement": 0.5 + 0.1 * i, "train/policy_loss": -0.01 * i, "timing/update": 1.0 + i,
            "knowrl/groups_kept": 3 + i, "note": "text is kept out of TensorBoard and W&B"} for i in range(3)]


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    # a port nothing listens on: the server is unreachable at once
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")


def log_three(logger):
    for step, metrics in enumerate(METRICS, start=1):
        logger.log(step, metrics)
    logger.close()


def test_same_names_in_jsonl_tensorboard_and_wandb(tmp_path, offline_wandb):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = MetricsLogger(str(tmp_path / "logs"), str(tmp_path / "tb"), "offline", "knowrl-test", "t1",
                           config={"seed": 1})
    log_three(logger)
    rows = [json.loads(line) for line in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    numeric = {k for k, v in METRICS[0].items() if isinstance(v, (int, float))}
    tb = EventAccumulator(str(tmp_path / "tb"))
    tb.Reload()
    assert set(tb.Tags()["scalars"]) == numeric
    assert [e.value for e in tb.Scalars("knowrl/groups_kept")] == [3, 4, 5]
    runs = list((tmp_path / "logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "W&B should have written one offline run under the log dir"
    # the run file is W&B's binary record log; history keys are stored as plain strings in it
    record_log = next(runs[0].glob("run-*.wandb")).read_bytes()
    for name in numeric:
        assert name.encode() in record_log, name
    assert b"text is kept out" not in record_log


def test_unreachable_server_falls_back_to_offline(tmp_path, offline_wandb, capsys):
    assert not wandb_reachable(timeout_s=1.0)
    logger = MetricsLogger(str(tmp_path / "logs"), "", "online", "knowrl-test", "t2")
    log_three(logger)
    assert "logging offline" in capsys.readouterr().out
    assert list((tmp_path / "logs" / "wandb").glob("offline-run-*"))
