"""The records every benchmark loader returns: ``EvalItem`` (one labelled task) and ``Benchmark``
(a loaded file or generated suite), plus duplicate counting. No I/O; shared by the file loaders
(``evaluation.benchmarks``) and the generated capability suite (``evaluation.capability``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EvalItem:
    """One labelled task. ``label`` is feasible/infeasible; ``source_id`` locates it in its file.
    ``answers``: the accepted gold answers (aliases) when the benchmark has them, else None; an
    item with answers can be answered by the model and graded (model-relative evaluation).
    ``difficulty``: a level (1 = easiest) where the benchmark grades its items, else None."""

    task: str
    label: str
    category: str | None = None
    source_id: str | None = None
    answers: tuple[str, ...] | None = None
    difficulty: int | None = None


@dataclass
class Benchmark:
    """A loaded benchmark: its items plus where they came from."""

    name: str
    path: str
    format: str
    sha256: str
    items: list[EvalItem] = field(default_factory=list)
    n_total: int = 0  # items in the file, before any --limit
    n_duplicates: int = 0  # items whose text an earlier item already has (up to case and spacing)


def count_duplicates(items: list[EvalItem]) -> tuple[int, int, str | None]:
    """Items whose text an earlier item already has, compared up to case and spacing.
    Returns (extra copies, texts whose copies disagree on the label, one duplicated text)."""
    labels: dict[str, set[str]] = {}
    copies, example = 0, None
    for it in items:
        key = " ".join(it.task.split()).casefold()
        if key in labels:
            copies += 1
            example = example or it.task
        labels.setdefault(key, set()).add(it.label)
    return copies, sum(len(seen) > 1 for seen in labels.values()), example
