"""Small helpers around Ray: every wait has a timeout and names what it was waiting for."""

from __future__ import annotations

import ray


class RayWaitTimeout(RuntimeError):
    pass


def get_with_timeout(refs, timeout: float, what: str):
    """ray.get with a deadline; a stuck or unschedulable actor becomes a named error, not a hang."""
    try:
        return ray.get(refs, timeout=timeout)
    except ray.exceptions.GetTimeoutError as exc:
        raise RayWaitTimeout(
            f"timed out after {timeout:.0f}s {what}: an actor is stuck or could not be scheduled "
            f"(check `ray status` for free resources)"
        ) from exc
