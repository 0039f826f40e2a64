"""One training run's ``--log_dir`` read back, for the run report and the runs table.

What a KnowRL run leaves there (see ``openrlhf/knowrl/loop.py``):

    config.json                          every flag, "resolved_pretrain" and "argv"
    metrics.jsonl                        one object per iteration (train/* absent when nothing was kept)
    iterations/iter_NNNN.jsonl           one classified task per line, with its samples and votes
    iterations/iter_NNNN_introspection.jsonl   task-writing outputs, kept and dropped tasks (optional)
    placement.json                       Ray node ids per actor group (optional)

Torn or non-JSON lines are skipped and counted (``openrlhf.utils.jsonl.read_jsonl``); missing
values stay None so summaries can show them as ``n/a``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from openrlhf.utils.jsonl import read_jsonl


def num(v) -> float | None:
    """A finite float, or None for null / NaN / inf / non-numbers (bools are not numbers here)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def read_json(path: Path):
    """The JSON value in ``path``, or None when the file is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_run(log_dir) -> dict:
    """Everything report.md is built from: ``config``, ``metrics`` (one dict per iteration,
    ascending, the last line wins for a repeated iteration), ``records`` and ``introspection``
    ({iteration: rows}), ``placement`` (or None) and ``skipped_lines``."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise FileNotFoundError(f"{log_dir}: not a folder — pass the --log_dir of a KnowRL run")
    skipped = 0
    config = read_json(log_dir / "config.json")
    metrics: dict[int, dict] = {}
    if (log_dir / "metrics.jsonl").is_file():
        rows, bad = read_jsonl(log_dir / "metrics.jsonl")
        skipped += bad
        for row in rows:
            it = row.get("iteration")
            if isinstance(it, int) and not isinstance(it, bool):
                metrics[it] = row
    records: dict[int, list[dict]] = {}
    introspection: dict[int, list[dict]] = {}
    folder = log_dir / "iterations"
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            m = re.fullmatch(r"iter_(\d+)(_introspection)?\.jsonl", path.name)
            if not m or not path.is_file():
                continue
            rows, bad = read_jsonl(path)
            skipped += bad
            (introspection if m.group(2) else records)[int(m.group(1))] = rows
    if not metrics and not records:
        raise FileNotFoundError(f"{log_dir}: no metrics.jsonl and no iterations/iter_*.jsonl — "
                                "did the run finish an iteration? pass the --log_dir of a KnowRL run")
    placement = read_json(log_dir / "placement.json")
    return {"log_dir": log_dir, "config": config if isinstance(config, dict) else {},
            "metrics": [metrics[i] for i in sorted(metrics)], "records": dict(sorted(records.items())),
            "introspection": dict(sorted(introspection.items())),
            "placement": placement if isinstance(placement, dict) else None, "skipped_lines": skipped}
