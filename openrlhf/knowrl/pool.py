"""The task pool: generated tasks the model classified with high agreement.

Pool tasks join the seed set as few-shot examples for later introspection (with the majority
label as their label), so the examples grow with the model. The pool is bounded and FIFO.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from openrlhf.knowrl.prompts import SeedTask


@dataclass
class PoolEntry:
    task: str
    label: str          # the majority label the model gave it
    type: str | None
    reason: str | None
    agreement: float
    iteration: int

    def as_seed(self) -> SeedTask:
        return SeedTask(task=self.task, label=self.label, type=self.type, reason=self.reason, source="pool")


class TaskPool:
    def __init__(self, max_size: int, agreement_threshold: float):
        self.max_size = max_size
        self.agreement_threshold = agreement_threshold
        self.entries: list[PoolEntry] = []

    def __len__(self) -> int:
        return len(self.entries)

    def offer(self, task: str, majority: str | None, agreement: float, iteration: int,
              type: str | None = None, reason: str | None = None) -> bool:
        """Add the task if its agreement is high enough; returns whether it joined."""
        if self.max_size == 0 or majority is None or agreement < self.agreement_threshold:
            return False
        if any(e.task == task for e in self.entries):
            return False
        # The generation-time reason only describes the task if the model agreed it is infeasible.
        if majority == "feasible":
            reason = None
        self.entries.append(PoolEntry(task, majority, type, reason, agreement, iteration))
        del self.entries[:-self.max_size]
        return True

    def as_seeds(self) -> list[SeedTask]:
        return [e.as_seed() for e in self.entries]

    def state_dict(self) -> dict:
        return {"max_size": self.max_size, "agreement_threshold": self.agreement_threshold,
                "entries": [asdict(e) for e in self.entries]}

    def load_state_dict(self, state: dict) -> None:
        self.entries = [PoolEntry(**e) for e in state["entries"]]
