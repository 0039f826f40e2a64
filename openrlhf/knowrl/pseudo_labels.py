"""Label-free targets that a consensus reward cannot satisfy with a constant answer.

With two labels and a model biased towards one of them, the majority of almost every group is
that label, so "agree with your majority" is maximised by answering it everywhere: the
collapse seen in every consensus run. This module owns the alternatives, as pure functions over
the parsed labels of a batch of groups (no model, no I/O):

* **targets** (``--pseudo_label``): ``majority`` (today's), ``aligned`` (distribution
  alignment: the group's smoothed feasible share is corrected by the running prior of the
  model's feasible rate towards ``--target_prior``, as in ReMixMatch, Berthelot et al. 2020, and
  batch calibration, Zhou et al. 2023), ``median`` (the batch's tasks above the median share
  are feasible). The consensus then ranks tasks instead of rewarding the bias.
* **group filter** (``--group_filter``): ``band`` (today's mean-reward band) or
  ``nondegenerate`` (keep a group unless all its rewards are equal).
* **class balance** (``--class_balance groups``): each update takes equally many kept groups
  per target label; the surplus waits in a queue for the next iteration.
* **intent weight** (``--intent_weight w``): reward (1-w)*[agrees with target] +
  w*[agrees with the label the task was written for].
* **monitors** and **early stopping** on them.

Shapes: a batch is ``labels[g][s]``, the parsed label (``"feasible"``, ``"infeasible"`` or
``None``) of sample s of group g; targets are one label (or None) per group.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from openrlhf.knowrl.reward import agreement, majority_label

FEASIBLE, INFEASIBLE = "feasible", "infeasible"
PSEUDO_LABELS = ("majority", "aligned", "median")
GROUP_FILTERS = ("band", "nondegenerate")
CLASS_BALANCE = ("none", "groups")

Labels = Sequence[str | None]
T = TypeVar("T")


# ------------------------------------------------------------------------------------ targets


def smoothed_feasible_share(labels: Labels) -> float:
    """q = (n_F + 1/2) / (n + 1) over the parseable samples (Jeffreys-style smoothing, so a group
    of 4 "infeasible" gets q = 0.1, not 0, and shares of groups of different sizes compare).
    Unparseable samples (None) are left out; no parseable sample gives 0.5."""
    parsed = [lab for lab in labels if lab is not None]
    return (parsed.count(FEASIBLE) + 0.5) / (len(parsed) + 1)


def prior_corrected(q: float, prior: float, target_prior: float = 0.5) -> float:
    """Distribution alignment of one share: q * t/pi, renormalised over the two labels
    (ReMixMatch, Berthelot et al. 2020): ``q t / pi / (q t / pi + (1-q)(1-t)/(1-pi))``.
    With ``target_prior`` 0.5 the result exceeds 0.5 exactly when q > prior. ``prior`` and
    ``target_prior`` must lie in (0, 1): ValueError otherwise."""
    for name, v in (("prior", prior), ("target_prior", target_prior)):
        if not 0.0 < v < 1.0:
            raise ValueError(f"{name} {v} must lie strictly between 0 and 1")
    pos = q * target_prior / prior
    neg = (1.0 - q) * (1.0 - target_prior) / (1.0 - prior)
    return pos / (pos + neg)


@dataclass
class FeasiblePrior:
    """Running estimate pi of the model's overall feasible rate: the mean smoothed share of a
    batch, folded in with momentum m (``pi <- m*pi + (1-m)*batch mean``); the first batch sets
    it. Clipped to [0.01, 0.99] so that the correction stays finite. ``state_dict`` /
    ``load_state_dict`` carry it over a resume."""

    momentum: float = 0.9
    value: float | None = None

    def update(self, shares: Sequence[float]) -> float:
        if shares:
            mean = sum(shares) / len(shares)
            self.value = mean if self.value is None else self.momentum * self.value + (1 - self.momentum) * mean
        return self.current

    @property
    def current(self) -> float:
        return min(0.99, max(0.01, 0.5 if self.value is None else self.value))

    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.momentum, self.value = float(state["momentum"]), state["value"]


def majority_targets(batch: Sequence[Labels]) -> list[str | None]:
    """Today's pseudo-label: each group's majority (None on a tie or nothing parseable)."""
    return [majority_label(list(labels))[0] for labels in batch]


def aligned_targets(batch: Sequence[Labels], prior: float, target_prior: float = 0.5) -> list[str | None]:
    """Feasible where the prior-corrected smoothed share exceeds 1/2, infeasible otherwise;
    None for a group without any parseable sample (it carries no evidence)."""
    out: list[str | None] = []
    for labels in batch:
        if all(lab is None for lab in labels):
            out.append(None)
            continue
        corrected = prior_corrected(smoothed_feasible_share(labels), prior, target_prior)
        out.append(FEASIBLE if corrected > 0.5 else INFEASIBLE)
    return out


def median_targets(batch: Sequence[Labels]) -> list[str | None]:
    """Feasible for the groups whose smoothed share is strictly above the batch median, else
    infeasible (ties with the median go to infeasible); None for groups without any parseable
    sample, which are also left out of the median."""
    shares = [None if all(lab is None for lab in labels) else smoothed_feasible_share(labels) for labels in batch]
    present = [q for q in shares if q is not None]
    if not present:
        return [None] * len(batch)
    median = statistics.median(present)
    return [None if q is None else (FEASIBLE if q > median else INFEASIBLE) for q in shares]


def batch_targets(mode: str, batch: Sequence[Labels], prior: FeasiblePrior | None = None,
                  target_prior: float = 0.5) -> list[str | None]:
    """Targets of one batch for ``--pseudo_label mode``. ``aligned`` first folds the batch into
    ``prior`` (required) and then corrects against the updated value. ValueError on an unknown
    mode or a missing prior."""
    if mode == "majority":
        return majority_targets(batch)
    if mode == "median":
        return median_targets(batch)
    if mode == "aligned":
        if prior is None:
            raise ValueError("--pseudo_label aligned needs a FeasiblePrior")
        pi = prior.update([smoothed_feasible_share(labels) for labels in batch if any(lab is not None for lab in labels)])
        return aligned_targets(batch, pi, target_prior)
    raise ValueError(f"unknown --pseudo_label {mode!r}: use one of {', '.join(PSEUDO_LABELS)}")


# ------------------------------------------------------------------------------------ rewards and filter


def target_rewards(labels: Labels, target: str | None, intended: str | None = None,
                   intent_weight: float = 0.0) -> list[float]:
    """Per sample: (1-w)*[label == target] + w*[label == intended] with w = ``intent_weight``
    (the intent term counts only when ``intended`` is known). No target: every sample gets only
    the intent term. Unparseable samples get 0."""
    if not 0.0 <= intent_weight <= 1.0:
        raise ValueError(f"intent_weight {intent_weight} must lie in [0, 1]")
    w = intent_weight if intended is not None else 0.0
    return [(1 - w) * float(target is not None and lab == target) + w * float(lab == intended)
            for lab in labels]


def keep_group(rewards: Sequence[float], mode: str, band: tuple[float, float] = (0.0, 1.0)) -> bool:
    """``band``: the mean reward lies in [low, high] (today's rule). ``nondegenerate``: the rewards
    are not all equal, i.e. the group has something to teach (1 <= agreeing samples <= n-1 for
    a 0/1 reward); never filters on agreement with the written-for label."""
    if not rewards:
        return False
    if mode == "band":
        mean = sum(rewards) / len(rewards)
        return band[0] <= mean <= band[1]
    if mode == "nondegenerate":
        return max(rewards) > min(rewards)
    raise ValueError(f"unknown --group_filter {mode!r}: use one of {', '.join(GROUP_FILTERS)}")


# ------------------------------------------------------------------------------------ class balance


@dataclass
class BalancedQueue:
    """Equal numbers of kept groups per target label in every update (``--class_balance groups``).

    ``take(groups, target_of)`` adds this iteration's kept groups to one queue per label and
    returns k groups of each, k = the smaller queue's length (capped by ``max_per_label`` when
    set); the surplus stays queued for the next iteration (oldest first, at most
    ``max_waiting`` per label, older ones dropped). k = 0 means the update is starved."""

    max_per_label: int | None = None
    max_waiting: int = 256
    queues: dict[str, deque] = field(default_factory=lambda: {FEASIBLE: deque(), INFEASIBLE: deque()})

    def take(self, groups: Sequence[T], target_of: Callable[[T], str | None]) -> list[T]:
        for g in groups:
            label = target_of(g)
            if label in self.queues:
                q = self.queues[label]
                q.append(g)
                while len(q) > self.max_waiting:
                    q.popleft()
        k = min(len(q) for q in self.queues.values())
        if self.max_per_label is not None:
            k = min(k, self.max_per_label)
        out: list[T] = []
        for q in self.queues.values():
            out += [q.popleft() for _ in range(k)]
        return out

    def waiting(self) -> dict[str, int]:
        return {label: len(q) for label, q in self.queues.items()}


# ------------------------------------------------------------------------------------ monitors


def collapse_monitors(batch: Sequence[Labels], targets: Sequence[str | None], kept: Sequence[bool],
                      intended: Sequence[str | None]) -> dict[str, float | None]:
    """Per-iteration signs of collapse, logged as ``monitor/*``:

    * ``predicted_feasible_rate``: share of parseable samples saying feasible;
    * ``self_agreement``: mean agreement (majority count / n) over groups;
    * ``kept_share``: share of groups kept;
    * ``target_feasible_share``: share of targeted groups whose target is feasible;
    * ``intent_agreement``: share of groups whose target equals the label the task was written
      for (groups with both known).
    None where the denominator is 0."""
    parsed = [lab for labels in batch for lab in labels if lab is not None]
    targeted = [t for t in targets if t is not None]
    pairs = [(t, i) for t, i in zip(targets, intended) if t is not None and i is not None]
    ratio = (lambda a, b: a / b if b else None)
    return {
        "predicted_feasible_rate": ratio(parsed.count(FEASIBLE), len(parsed)),
        "self_agreement": ratio(sum(agreement(list(labels)) for labels in batch), len(batch)),
        "kept_share": ratio(sum(bool(k) for k in kept), len(kept)),
        "target_feasible_share": ratio(targeted.count(FEASIBLE), len(targeted)),
        "intent_agreement": ratio(sum(t == i for t, i in pairs), len(pairs)),
    }


def distance_to_band(rate: float, band: tuple[float, float]) -> float:
    """How far `rate` lies outside [low, high] (0 inside)."""
    return max(band[0] - rate, rate - band[1], 0.0)


@dataclass
class EarlyStop:
    """``--early_stop`` on the held-out self-written tasks, checked once per iteration.

    A run must not stop merely because the starting model is biased (SmolLM2-135M says
    "feasible" to ~4 % of tasks, outside the default band), so the band rule compares with the
    start (``start(rate)``, the check before any update): a check counts when the
    predicted-feasible rate lies outside ``band`` by more than ``tolerance`` *and* either farther
    from it than at the start (same side) or on the other side of the band than the start (a
    model that starts below the band and ends answering "feasible" to everything has collapsed
    the other way, however far below it started: the full-budget run of
    docs/results/collapse_experiment.md). A check also counts when mean self-agreement exceeds
    ``max_agreement``.
    ``check`` returns the reason to stop once either condition has held for ``patience`` checks
    in a row, else None. ``score`` ranks checkpoints: closeness of the rate to the band's middle."""

    band: tuple[float, float] = (0.2, 0.8)
    max_agreement: float = 0.95
    patience: int = 3
    tolerance: float = 0.02
    start_distance: float = 0.0
    # -1 below the band at the start, +1 above, 0 inside or unknown; None: not recorded (a
    # checkpoint from before the side rule), so only the distance counts, as it did then
    start_side: int | None = 0
    drift_checks: int = 0
    high_agreement_checks: int = 0

    def side(self, rate: float) -> int:
        """-1 when `rate` lies below the band, +1 above, 0 inside."""
        return -1 if rate < self.band[0] else (1 if rate > self.band[1] else 0)

    def start(self, feasible_rate: float | None) -> None:
        """Record the starting model's rate (None: unknown, treated as inside the band)."""
        self.start_distance = 0.0 if feasible_rate is None else distance_to_band(feasible_rate, self.band)
        self.start_side = 0 if feasible_rate is None else self.side(feasible_rate)

    def drifted(self, feasible_rate: float | None) -> bool:
        """Whether one check at `feasible_rate` counts towards a stop (the band rule above)."""
        if feasible_rate is None:
            return False
        distance = distance_to_band(feasible_rate, self.band)
        if self.start_side is None or self.side(feasible_rate) == self.start_side:
            return distance > self.start_distance + self.tolerance
        return distance > self.tolerance

    def check(self, feasible_rate: float | None, self_agreement: float | None) -> str | None:
        drifted = self.drifted(feasible_rate)
        self.drift_checks = self.drift_checks + 1 if drifted else 0
        high = self_agreement is not None and self_agreement > self.max_agreement
        self.high_agreement_checks = self.high_agreement_checks + 1 if high else 0
        if self.drift_checks >= self.patience:
            crossed = self.start_side is not None and self.side(feasible_rate) != self.start_side
            where = "on its other side than at the start" if crossed else "farther from it than at the start"
            return (f"predicted-feasible rate {feasible_rate:.2f} has been outside the band "
                    f"[{self.band[0]:.2f}, {self.band[1]:.2f}] and {where} for {self.patience} checks in a row")
        if self.high_agreement_checks >= self.patience:
            return (f"self-agreement above {self.max_agreement:.2f} for {self.patience} checks in a row "
                    f"({self_agreement:.2f})")
        return None

    def score(self, feasible_rate: float | None) -> float:
        """The label-free monitor that picks the best checkpoint: 1 - |rate - middle| / half-width
        of the band (1 at the middle, 0 at the band's edges, negative outside; -inf unknown)."""
        if feasible_rate is None:
            return float("-inf")
        middle, half = (self.band[0] + self.band[1]) / 2, (self.band[1] - self.band[0]) / 2
        return 1.0 - abs(feasible_rate - middle) / half

    def state_dict(self) -> dict:
        return {"start_distance": self.start_distance, "start_side": self.start_side,
                "drift_checks": self.drift_checks, "high_agreement_checks": self.high_agreement_checks}

    def load_state_dict(self, state: dict) -> None:
        self.start_distance = float(state["start_distance"])
        self.start_side = state.get("start_side")
        self.drift_checks, self.high_agreement_checks = int(state["drift_checks"]), int(state["high_agreement_checks"])
