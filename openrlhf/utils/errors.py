"""Deaths of Ray actors, as the controller sees them.

They are raised in more than one layer (the model groups in `trainer/`, the rollout engines in
`rollout/`, the weight transport that joins both) and handled on top (`knowrl/`, `cli/`), so they
live here, below all of them: every side imports them at module top.
"""

from __future__ import annotations


class EngineDied(RuntimeError):
    """A vLLM engine actor's process is gone; `index` says which engine (0-based), so the
    controller can restart that one."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


class EngineRestartsExhausted(RuntimeError):
    """An engine died and every restart --max_engine_restarts allows is used. The message is the
    death's line and the count, e.g. "vLLM engine 0 died while generating (ActorDiedError); 2
    restart(s) already used (--max_engine_restarts 2)"."""


class RankDied(RuntimeError):
    """A rank's process is gone (killed, out of memory). Its ZeRO shards went with it, so the run
    cannot save a new checkpoint: it stops, and can resume from the last complete one if there is
    one (the CLI adds that advice only then). `rank` is None when it could not be told which."""

    def __init__(self, group: str, rank: int | None, what: str):
        who = f"{group} rank {rank}" if rank is not None else f"a {group} rank"
        super().__init__(f"{who} died while {what} (its process exited: killed or out of memory?)")
