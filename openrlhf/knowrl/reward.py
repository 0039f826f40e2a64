"""Group-aware rewards for KnowRL's classification step.

Each generated task is classified ``n`` times by the policy ("is this task feasible for
you?"). There is no ground truth for a self-generated task, so the reward of one answer is
defined by the *group* of ``n`` answers to the same task: the majority label is the
pseudo-label, and an answer earns reward for agreeing with it (self-consistency). A reward
function therefore cannot score one sample in isolation: it receives a ``RewardGroup`` (the
task, the label the task was generated for, and all ``n`` parsed labels and raw texts) and
returns one float per sample, in the order of ``group.labels``.

Built-in functions live in ``REWARD_FUNCS`` (``consensus``, ``soft_consensus``,
``generation_label``, ``random``). ``get_reward_func`` takes one of those names or the path
of a local ``.py`` file that defines ``reward_func(group: RewardGroup) -> list[float]``.
``check_rewards`` validates what a reward function returned; ``compute_rewards`` calls one and
turns anything going wrong in it (an exception, NaN, the wrong length) into one
``RewardFunctionError`` naming the reward, the iteration and the task. Standard library only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import numbers
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from openrlhf.knowrl.prompts import parse_label
from openrlhf.knowrl.taxonomy import LABELS

__all__ = [
    "RewardGroup",
    "RewardFunc",
    "RewardFunctionError",
    "REWARD_FUNCS",
    "register_reward",
    "majority_label",
    "agreement",
    "consensus",
    "soft_consensus",
    "generation_label",
    "random_reward",
    "get_reward_func",
    "load_reward_file",
    "check_rewards",
    "compute_rewards",
]


@dataclass
class RewardGroup:
    """The ``n`` classification answers to one task.

    ``task``: the task text. ``gen_label``: the label the task was generated for
    (``"feasible"``/``"infeasible"``, or ``None`` when unknown). ``labels``: the parsed label of
    each sample (``None`` = unparseable). ``texts``: the raw answer of each sample.
    """

    task: str
    gen_label: str | None
    labels: list[str | None]
    texts: list[str]

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.texts):
            raise ValueError(f"RewardGroup: {len(self.labels)} labels but {len(self.texts)} texts — give one of each per sample")
        for lab in list(self.labels) + [self.gen_label]:
            if lab is not None and lab not in LABELS:
                raise ValueError(f"RewardGroup: unknown label {lab!r} — use one of {LABELS} or None")

    @property
    def n(self) -> int:
        return len(self.labels)

    @classmethod
    def from_texts(cls, task: str, gen_label: str | None, texts: list[str]) -> "RewardGroup":
        """Build a group by parsing each answer with ``parse_label``."""
        texts = list(texts)
        return cls(task=task, gen_label=gen_label, labels=[parse_label(t) for t in texts], texts=texts)


RewardFunc = Callable[[RewardGroup], list[float]]
REWARD_FUNCS: dict[str, RewardFunc] = {}


class RewardFunctionError(ValueError):
    """A reward function failed on one group: it raised, or returned something other than one
    finite number per sample.

    ``source``: the reward as the user named it (``--reward_func``: a built-in name or the
    ``.py`` path); ``iteration``: the training iteration (``None`` outside the loop); ``task``:
    the task of the group; ``problem``: what went wrong, one line. ``str()`` is one line.
    """

    def __init__(self, source: str, iteration: int | None, task: str, problem: str):
        self.source = source
        self.iteration = iteration
        self.task = task
        self.problem = problem
        where = f", iteration {iteration}" if iteration is not None else ""
        super().__init__(f"reward function {source}{where}, task {_shorten(task)!r}: {problem}")


def register_reward(name: str) -> Callable[[RewardFunc], RewardFunc]:
    """Decorator adding a reward function to ``REWARD_FUNCS`` under ``name``."""

    def deco(fn: RewardFunc) -> RewardFunc:
        if name in REWARD_FUNCS:
            raise ValueError(f"reward function {name!r} is already registered")
        REWARD_FUNCS[name] = fn
        return fn

    return deco


# --------------------------------------------------------------------------------------------
# Majority
# --------------------------------------------------------------------------------------------


def majority_label(labels: list[str | None]) -> tuple[str | None, int]:
    """The most common non-``None`` label and its count.

    A tie between ``feasible`` and ``infeasible`` gives ``(None, k)`` where ``k`` is the count
    each of them has: there is no pseudo-label, but the count tells a tie (``k > 0``) apart
    from a group with no parseable answer at all, which gives ``(None, 0)``. ``None``
    (unparseable) samples never vote, but they still count in ``n`` for ``agreement``.
    """
    counts = {lab: 0 for lab in LABELS}
    for lab in labels:
        if lab is not None:
            if lab not in counts:
                raise ValueError(f"unknown label {lab!r} — use one of {LABELS} or None")
            counts[lab] += 1
    (a, ca), (b, cb) = counts.items()
    if ca == cb:
        return None, ca
    return (a, ca) if ca > cb else (b, cb)


def agreement(labels: list[str | None]) -> float:
    """Majority count / n: the share of all samples (unparseable ones included) that hold the
    majority label; 0.0 when there is no majority (tie, all ``None``, or no samples)."""
    label, count = majority_label(labels)
    if label is None or not labels:
        return 0.0
    return count / len(labels)


# --------------------------------------------------------------------------------------------
# Built-in reward functions
# --------------------------------------------------------------------------------------------


@register_reward("consensus")
def consensus(group: RewardGroup) -> list[float]:
    """1.0 for a sample whose label is the majority label, else 0.0 (unparseable: 0.0).
    Without a majority (tie or nothing parseable) every sample gets 0.0."""
    maj, _ = majority_label(group.labels)
    if maj is None:
        return [0.0] * group.n
    return [1.0 if lab == maj else 0.0 for lab in group.labels]


@register_reward("soft_consensus")
def soft_consensus(group: RewardGroup) -> list[float]:
    """The share of the group (all n samples) that gives the same label as this sample;
    unparseable samples get 0.0."""
    n = group.n
    counts = {lab: sum(1 for x in group.labels if x == lab) for lab in LABELS}
    return [counts[lab] / n if lab is not None else 0.0 for lab in group.labels]


@register_reward("generation_label")
def generation_label(group: RewardGroup) -> list[float]:
    """1.0 when the sample's label equals the label the task was generated for, else 0.0;
    falls back to ``consensus`` when ``group.gen_label`` is ``None``."""
    if group.gen_label is None:
        return consensus(group)
    return [1.0 if lab == group.gen_label else 0.0 for lab in group.labels]


@register_reward("random")
def random_reward(group: RewardGroup) -> list[float]:
    """Control: a 0/1 coin flip per sample, seeded by sha256(task, sample index), so it is
    reproducible across processes and ignores the answers entirely."""
    out = []
    for i in range(group.n):
        digest = hashlib.sha256(f"{group.task}\x00{i}".encode("utf-8", "surrogatepass")).digest()
        out.append(float(digest[0] & 1))
    return out


# --------------------------------------------------------------------------------------------
# Lookup, user files and validation
# --------------------------------------------------------------------------------------------


def load_reward_file(path: str | Path) -> RewardFunc:
    """Import a local ``.py`` file and return its ``reward_func(group) -> list[float]``.

    Raises ``ValueError``, one line naming the file, when it is missing, not ``.py``, has no
    callable ``reward_func``, or raises anything while it is imported (any exception or
    ``sys.exit``: the exception's type, first message line and the line of the file)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: not a file — give the path of an existing .py file defining reward_func(group)")
    if p.suffix != ".py":
        raise ValueError(f"{p}: not a .py file — a custom reward must be a Python file defining reward_func(group)")
    digest = hashlib.sha256(str(p.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(f"knowrl_custom_reward_{digest}", p)
    if spec is None or spec.loader is None:
        raise ValueError(f"{p}: cannot be imported as a Python module — check the file name")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # lets dataclasses/pickle in the file resolve the module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:   # user code: whatever it raises becomes one line
        sys.modules.pop(spec.name, None)
        raise ValueError(f"{p}: importing it failed: {_describe_exception(e, p)} — fix the error in the file") from e
    if not hasattr(module, "reward_func"):
        raise ValueError(f"{p}: no reward_func defined — add def reward_func(group) -> list[float]")
    fn = module.reward_func
    if not callable(fn):
        raise ValueError(f"{p}: reward_func is a {type(fn).__name__}, not callable — make it a function of one RewardGroup")
    return fn


def get_reward_func(name_or_path: str | Path) -> RewardFunc:
    """A built-in reward by name (see ``REWARD_FUNCS``), or ``reward_func`` from a ``.py`` path."""
    key = str(name_or_path)
    if key in REWARD_FUNCS:
        return REWARD_FUNCS[key]
    if key.endswith(".py"):
        return load_reward_file(key)
    raise ValueError(f"unknown reward {key!r} — use one of {sorted(REWARD_FUNCS)} or the path of a .py file")


def _func_name(func) -> str:
    if isinstance(func, str):
        return func
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _describe_exception(exc: BaseException, user_file: str | Path | None = None) -> str:
    """``Type: first line of the message at file.py:LINE``, one line. The line is the deepest
    frame in ``user_file`` when it has one (where the user's code failed), else the deepest."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    if isinstance(exc, SyntaxError):   # its message already names the file and line
        return text
    frames = traceback.extract_tb(exc.__traceback__)
    if user_file is not None:
        target = os.path.realpath(user_file)
        frames = [f for f in frames if os.path.realpath(f.filename) == target] or frames
    if frames:
        text += f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}"
    return text


def _rewards_problem(group: RewardGroup, rewards) -> str | None:
    """What is wrong with ``rewards`` for ``group`` (one phrase with its fix), or ``None``."""
    if isinstance(rewards, (str, bytes)) or not hasattr(rewards, "__len__") or not hasattr(rewards, "__iter__"):
        return f"returned {type(rewards).__name__} — it must return a list of floats"
    if len(rewards) != group.n:
        return f"returned {len(rewards)} rewards for a group of {group.n} samples — return one float per sample"
    for i, r in enumerate(rewards):
        if isinstance(r, bool) or not isinstance(r, numbers.Real):
            return f"returned {_shorten(repr(r), 40)} ({type(r).__name__}) for sample {i} — rewards must be numbers"
        try:
            finite = math.isfinite(float(r))
        except OverflowError:   # an int too large for a float
            finite = False
        if not finite:
            return f"returned {_shorten(repr(r), 40)} for sample {i} — rewards must be finite"
    return None


def check_rewards(group: RewardGroup, rewards, func: str | Callable = "reward_func") -> list[float]:
    """Check that ``rewards`` holds one finite number per sample of ``group``; return them as
    floats. ``func`` (a name or the function) is named in the ``ValueError``."""
    problem = _rewards_problem(group, rewards)
    if problem is not None:
        raise ValueError(f"reward function {_func_name(func)!r} {problem}")
    return [float(r) for r in rewards]


def compute_rewards(func: RewardFunc, group: RewardGroup, *, source: str | None = None,
                    iteration: int | None = None) -> list[float]:
    """Call ``func(group)`` and check the result: one finite float per sample, in the order of
    ``group.labels``.

    ``source`` names the reward in errors (``--reward_func``: a built-in name or a ``.py`` path;
    default: the function's name); ``iteration`` is the training iteration, for the message.
    Raises ``RewardFunctionError`` (one line: reward, what went wrong and where in the file,
    iteration, task) when ``func`` raises any exception, calls ``sys.exit``, or returns a
    non-list, the wrong length, a non-number, NaN or infinity.
    """
    name = source if source is not None else _func_name(func)
    user_file = source if source is not None and source.endswith(".py") else getattr(
        getattr(func, "__code__", None), "co_filename", None)
    try:
        rewards = func(group)
        # still user code: len() and iteration of the returned object can raise too
        problem = _rewards_problem(group, rewards)
        values = [float(r) for r in rewards] if problem is None else []
    except (Exception, SystemExit) as e:   # whatever it raises becomes one line
        raise RewardFunctionError(name, iteration, group.task, f"raised {_describe_exception(e, user_file)}") from e
    if problem is not None:
        raise RewardFunctionError(name, iteration, group.task, problem)
    return values
