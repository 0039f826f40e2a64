"""Small helpers around Ray: every wait has a timeout and names what it was waiting for."""

from __future__ import annotations

import ray


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
