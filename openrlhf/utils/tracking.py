"""Where a run's numbers go: metrics.jsonl always, TensorBoard and W&B when asked; phase timers."""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager


class PhaseTimer:
    """Wall time per named phase of one iteration (`timing/<phase>` in the metrics)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


class MetricsLogger:
    def __init__(self, log_dir: str, tensorboard_dir: str = "", wandb: str = "", wandb_project: str = "knowrl",
                 wandb_run_name: str = "", config: dict | None = None):
        os.makedirs(log_dir, exist_ok=True)
        self.path = os.path.join(log_dir, "metrics.jsonl")
        self.tb = None
        self.wandb = None
        if tensorboard_dir:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(tensorboard_dir)
        if wandb:
            import wandb as wandb_lib

            mode = "offline" if wandb == "offline" else "online"
            if mode == "online" and wandb not in ("1", "true", "True"):
                wandb_lib.login(key=wandb, relogin=True)
            self.wandb = wandb_lib.init(project=wandb_project, name=wandb_run_name or None, config=config,
                                        mode=mode, dir=log_dir)

    def drop_after(self, step: int) -> None:
        """Forget metrics of iterations after `step` (they are re-run after a resume), so every
        iteration appears in metrics.jsonl exactly once."""
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            kept = [line for line in f if line.strip() and json.loads(line)["iteration"] <= step]
        with open(self.path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(self.path + ".tmp", self.path)

    def log(self, step: int, metrics: dict) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps({"iteration": step, **clean}) + "\n")
        numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        if self.tb is not None:
            for k, v in numeric.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(numeric, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
