"""Small helpers around Ray: every wait has a timeout and names what it was waiting for."""

from __future__ import annotations

import re

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


class RayWaitTimeout(RuntimeError):
    pass


def get_with_timeout(refs, timeout: float, what: str):
    """ray.get with a deadline; a stuck or unschedulable actor becomes a named error, not a hang.

    Results are collected as they finish, so a failed task (a dead actor) raises at once even
    while others are still running, or blocked in a collective waiting for the dead one."""
    import time

    single = not isinstance(refs, list)
    pending = [refs] if single else list(refs)
    position = {ref: i for i, ref in enumerate(pending)}
    results: list = [None] * len(pending)
    deadline = time.monotonic() + timeout
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            raise RayWaitTimeout(
                f"timed out after {timeout:.0f}s {what}: an actor is stuck or could not be scheduled "
                f"(check `ray status` for free resources)"
            )
        for ref in ready:
            results[position[ref]] = ray.get(ref)
    return results[0] if single else results


def pin_to_node(node_id: str | None):
    """Ray scheduling strategy that holds an actor to the node the placement plan chose (None:
    let Ray choose)."""
    if not node_id:
        return None
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def remote_error_line(text: str) -> str:
    """The line naming the exception a remote call or actor constructor raised, e.g.
    "ValueError: max_model_len ... is too large", out of Ray's error text (a header, the remote
    traceback, then that exception; with chained exceptions, the last one). When that line only
    counts errors (pydantic: "1 validation error for ModelConfig"), its first detail is added.
    Falls back to the text's first line when it holds no traceback."""
    lines = text.strip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "')]
    if not lines:
        return ""
    if not frames:
        return lines[0].strip()
    after = lines[frames[-1] + 1:]
    # the frame's source line (and any ^^^ marker) is indented; the exception line is not
    for i, line in enumerate(after):
        if line.strip() and not line[0].isspace():
            header = line.strip()
            if re.search(r": \d+ validation errors? for ", header):
                detail = next((d.strip() for d in after[i + 1:] if d.strip()), "")
                header = f"{header}: {detail.split(' [type=')[0]}" if detail else header
            return header
    return lines[0].strip()
