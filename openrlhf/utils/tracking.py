"""Where a run's numbers go: metrics.jsonl always, TensorBoard and W&B when asked; phase timers."""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager

from openrlhf.utils.jsonl import repair_jsonl


class PhaseTimer:
    """Wall time per named phase of one iteration (`timing/<phase>` in the metrics)."""

    def __init__(self, on_phase=None):
        self.seconds: dict[str, float] = {}
        self.on_phase = on_phase

    @contextmanager
    def __call__(self, phase: str):
        if self.on_phase is not None:
            self.on_phase(phase)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


def wandb_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the W&B server answers a TCP connection (WANDB_BASE_URL, else api.wandb.ai)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class MetricsLogger:
    """Writes each iteration's metrics to metrics.jsonl and, when asked, TensorBoard and W&B under the same
    names."""
    def __init__(self, log_dir: str, tensorboard_dir: str = "", wandb: str = "", wandb_project: str = "knowrl",
                 wandb_run_name: str = "", config: dict | None = None):
        """Metrics go to ``log_dir/metrics.jsonl`` always, to TensorBoard under ``tensorboard_dir``
        when set, and to W&B when ``wandb`` is 'online' (or '1'/'true'; the key comes from
        WANDB_API_KEY or `wandb login`, W&B reads it itself) or 'offline'. An unreachable W&B
        server turns online into offline with one printed line."""
        os.makedirs(log_dir, exist_ok=True)
        self.path = os.path.join(log_dir, "metrics.jsonl")
        self.tb = None
        self.wandb = None
        if tensorboard_dir:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(tensorboard_dir)
        if wandb:
            import wandb as wandb_lib

            mode = "offline" if wandb == "offline" or not wandb_reachable() else "online"
            if mode == "offline" and wandb != "offline":
                print("[knowrl] W&B is not reachable from here: logging offline into "
                      f"{log_dir}/wandb (upload later with `wandb sync`)", flush=True)
            self.wandb = wandb_lib.init(project=wandb_project, name=wandb_run_name or None, config=config,
                                        mode=mode, dir=log_dir)

    def drop_after(self, step: int) -> None:
        """Forget metrics of iterations after `step` (they are re-run after a resume), so every
        iteration appears in metrics.jsonl exactly once. A torn line (a run killed mid-write) is
        dropped with a one-line warning instead of stopping the resume."""
        torn = repair_jsonl(self.path, keep=lambda row: row.get("iteration", step + 1) <= step)
        if torn:
            print(f"[knowrl] warning: {self.path}: dropped {torn} unreadable line(s) (a write cut short by an "
                  f"earlier kill or a full disk); those iterations are re-run", flush=True)

    def log(self, step: int, metrics: dict) -> None:
        """Append iteration `step`'s `metrics` to metrics.jsonl (non-finite floats as null) and log the finite
        numeric ones to TensorBoard and W&B at that step; text values go to the JSONL only."""
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
        """Flush and close TensorBoard and finish the W&B run."""
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


class RunProgress:
    """One progress bar per run (iterations, ETA, current phase, last iteration's numbers) on a
    terminal; without one, it stays silent and the per-iteration lines are the progress."""

    def __init__(self, total: int, done: int = 0):
        import sys

        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, desc="knowrl", unit="iter", dynamic_ncols=True,
                        disable=not sys.stderr.isatty())
        self.last = ""

    def phase(self, name: str) -> None:
        """Show the current phase (e.g. "sampling") beside the bar."""
        self.bar.set_postfix_str(f"{name} | {self.last}" if self.last else name)

    def finish_iteration(self, line: str, metrics: dict, kept: int, classified: int) -> None:
        """Print the iteration's console `line` above the bar and advance it, showing the iteration's
        agreement, reward, KL and groups kept (`kept` of `classified`)."""
        self.last = (f"agree {metrics['rollout/agreement']:.2f} reward {metrics['rollout/reward']:.2f} "
                     f"kl {metrics.get('train/kl', 0.0):.1e} kept {kept}/{classified}")
        if self.bar.disable:
            print(line, flush=True)
        else:
            self.bar.write(line)
        self.bar.update(1)
        self.bar.set_postfix_str(self.last)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()
