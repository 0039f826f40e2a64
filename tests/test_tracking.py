"""Loggers: metrics.jsonl, TensorBoard and W&B (offline: this machine reaches no W&B server) get
the same metric names; an unreachable W&B server falls back to offline instead of failing."""

import json
import struct
import time
from pathlib import Path

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


def wandb_history(run_dir: Path, timeout_s: float = 60.0) -> dict[int, dict]:
    """{step: {metric: value}} of a finished offline W&B run, read from its run-*.wandb file with
    W&B's own record schema (`wandb.proto`). W&B's service process may still be writing the file
    when `finish()` has returned, so this waits (up to `timeout_s`) for the run's exit record."""
    deadline = time.monotonic() + timeout_s
    while True:
        history, finished = read_wandb_log(next(run_dir.glob("run-*.wandb")).read_bytes())
        if finished or time.monotonic() > deadline:
            assert finished, f"W&B did not finish writing {run_dir} within {timeout_s:.0f}s"
            return history
        time.sleep(0.2)


def read_wandb_log(data: bytes) -> tuple[dict[int, dict], bool]:
    """The history rows of a run-*.wandb file, and whether its exit record is there. The file is a
    LevelDB-style log (W&B's header, then 32 KiB blocks of records, each with a 7-byte header:
    checksum, length, type; a record may span blocks as FIRST/MIDDLE/LAST pieces); this wandb
    release ships no Python reader for it."""
    from wandb.proto import wandb_internal_pb2

    assert data[:4] == b":W&B", f"not a W&B record log: {data[:7]!r}"
    block, pos, piece, history, finished = 32768, 7, b"", {}, False
    while pos + 7 <= len(data):
        if block - pos % block < 7:            # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 or pos + 7 + length > len(data):   # zero-filled tail, or a record still being written
            break
        piece += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):                     # FULL, or LAST piece of a record
            record = wandb_internal_pb2.Record.FromString(piece)
            piece = b""
            finished |= record.WhichOneof("record_type") == "exit"
            if record.WhichOneof("record_type") == "history":
                # a key with "/" is stored split into its parts
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                history[record.history.step.num] = {k: v for k, v in items.items() if not k.startswith("_")}
    return history, finished


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
    # every iteration reached W&B as one history row at its own step, numbers only
    assert wandb_history(runs[0]) == {step: {k: v for k, v in m.items() if k in numeric}
                                      for step, m in enumerate(METRICS, start=1)}


def test_unreachable_server_falls_back_to_offline(tmp_path, offline_wandb, capsys):
    assert not wandb_reachable(timeout_s=1.0)
    logger = MetricsLogger(str(tmp_path / "logs"), "", "online", "knowrl-test", "t2")
    log_three(logger)
    assert "logging offline" in capsys.readouterr().out
    assert list((tmp_path / "logs" / "wandb").glob("offline-run-*"))
