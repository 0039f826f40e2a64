"""Prompt files and text parsing for KnowRL's self-play loop.

This module owns everything between the editable prompt files in ``knowrl_prompts/`` and the
plain strings that go to (and come back from) the policy model:

* seed tasks: ``load_seed_tasks`` reads the JSONL seed file(s) into ``SeedTask`` records and
  rejects malformed lines with ``FILE:LINE: what is wrong — how to fix`` messages;
* templates: ``load_templates`` reads ``introspection.md`` and ``classification.md`` and checks
  their ``{placeholders}``; ``build_introspection_prompt`` / ``build_classification_prompt``
  fill them in (one pass over known names only, never ``str.format``);
* the readers and checks under both loaders (``seed_files``, ``read_seed_lines``,
  ``read_template_text``, ``template_problems``) are the ones ``validate_prompts.py`` runs too:
  the loaders stop at the first problem, the validator lists them all;
* generated tasks: ``parse_generated_tasks`` pulls ``Task:`` lines out of an introspection
  answer, ``split_truncated_task`` sets apart the task an answer cut at the length limit
  ended in, and ``filter_generated_tasks`` drops short, long, templated, garbled and
  duplicate ones (duplicates by ``rouge_l_f``); ``tasks_from_answer`` does all three;
* labels: ``parse_label`` / ``parse_answer`` turn a classification answer into
  ``"feasible"``, ``"infeasible"`` or ``None`` (a cut answer only when its label came first);
* thinking: ``strip_think_blocks`` removes ``<think>…</think>`` before any parsing, and
  ``chat_prompt`` asks templates that think aloud (Qwen3-style) not to.

Only the standard library is used. Chat templates are applied by the caller: every
``build_*`` function returns the text of one user message.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from openrlhf.knowrl.taxonomy import LABELS, REASON_TO_TYPE, TAXONOMY
from openrlhf.utils.paths import default_prompts_dir

__all__ = [
    "DEFAULT_PROMPTS_DIR",
    "INTROSPECTION_FILE",
    "CLASSIFICATION_FILE",
    "SEED_TASKS_FILE",
    "PH_EXAMPLES",
    "PH_NUM_TASKS",
    "PH_TARGET",
    "PH_TASK",
    "INTROSPECTION_PLACEHOLDERS",
    "CLASSIFICATION_PLACEHOLDERS",
    "ANSWER_MARKER",
    "TASK_MARKER",
    "PromptFileError",
    "SeedTask",
    "PromptTemplates",
    "load_seed_tasks",
    "seed_files",
    "SeedLine",
    "read_seed_lines",
    "load_templates",
    "read_template_text",
    "template_problems",
    "describe_reason",
    "build_introspection_prompt",
    "build_classification_prompt",
    "parse_generated_tasks",
    "split_truncated_task",
    "filter_generated_tasks",
    "tasks_from_answer",
    "strip_think_blocks",
    "rouge_l_f",
    "rouge_l_tokens",
    "word_tokens",
    "token_masks",
    "parse_label",
    "DEFAULT_ANSWER_PREFIX",
    "DEFAULT_INTROSPECTION_PREFIX",
    "chat_prompt",
    "parse_answer",
    "prompt_token_count",
    "prompt_lengths",
]

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

#: ``<checkout>/knowrl_prompts``, or the copy a wheel installs inside the package.
DEFAULT_PROMPTS_DIR: Path = default_prompts_dir()
INTROSPECTION_FILE = "introspection.md"
CLASSIFICATION_FILE = "classification.md"
ANSWER_FILE = "answer.md"  # evaluation only: the model answers a question itself (model-relative labels)
SEED_TASKS_FILE = "seed_tasks.jsonl"

# Placeholder names. A template must contain each of its names at least once and no other
# ``{identifier}``.
PH_EXAMPLES = "examples"  # introspection: the few-shot example tasks with their labels
PH_NUM_TASKS = "num_tasks"  # introspection: how many new tasks to write (a number)
PH_TARGET = "target"  # introspection: "feasible for you: ..." / "infeasible for you ... reason"
PH_TASK = "task"  # classification: the task to judge, inside a code fence
PH_QUESTION = "question"  # answer: the question the model answers itself

INTROSPECTION_PLACEHOLDERS: tuple[str, ...] = (PH_EXAMPLES, PH_NUM_TASKS, PH_TARGET)
CLASSIFICATION_PLACEHOLDERS: tuple[str, ...] = (PH_TASK,)
ANSWER_PLACEHOLDERS: tuple[str, ...] = (PH_QUESTION,)
_ALL_PLACEHOLDERS = frozenset(INTROSPECTION_PLACEHOLDERS + CLASSIFICATION_PLACEHOLDERS)

#: The first line of a classification answer is ``Label: feasible`` or ``Label: infeasible``.
ANSWER_MARKER = "Label:"
#: Every generated task starts its own line with ``Task:``.
TASK_MARKER = "Task:"

_SEED_KEYS = ("task", "label", "type", "reason", "source")
_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HTML_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)

# --------------------------------------------------------------------------------------------
# Errors and records
# --------------------------------------------------------------------------------------------


class PromptFileError(ValueError):
    """A prompt or seed file is malformed.

    The message reads ``FILE:LINE: what is wrong — how to fix`` (``FILE: ...`` when no single
    line is to blame); ``path`` and ``line`` are kept as attributes.
    """

    def __init__(self, path: str | Path, line: int | None, what: str, fix: str | None = None):
        self.path = str(path)
        self.line = line
        self.what = what
        self.fix = fix
        where = f"{self.path}:{line}" if line is not None else self.path
        msg = f"{where}: {what}"
        if fix:
            msg += f" — {fix}"
        super().__init__(msg)


@dataclass(frozen=True)
class SeedTask:
    """One labelled example task.

    ``type``/``reason`` are slugs from ``taxonomy.py``; for an infeasible task ``reason`` is
    why it is infeasible, for a feasible one the boundary it sits next to (optional).
    ``source`` says where it came from: ``"seed"`` or e.g. ``"generated"``.
    """

    task: str
    label: str
    type: str | None = None
    reason: str | None = None
    source: str = "seed"


@dataclass(frozen=True)
class PromptTemplates:
    """The two prompt templates, as text with ``{placeholders}`` (HTML comments removed)."""

    introspection: str
    classification: str


# --------------------------------------------------------------------------------------------
# Seed tasks
# --------------------------------------------------------------------------------------------


def _suggest(value: str, choices) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else "use one of: " + ", ".join(sorted(choices))


def _norm_task_key(task: str) -> str:
    return " ".join(task.casefold().split())


def seed_files(path: str | Path) -> list[Path]:
    """The seed files ``path`` names: itself if it is a file, else its ``*.jsonl`` files sorted by
    name. Raises ``PromptFileError`` when it does not exist or is a directory without any."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.glob("*.jsonl") if f.is_file())
        if not files:
            raise PromptFileError(p, None, "no *.jsonl seed files in this directory",
                                  "add a seed file with one JSON task per line")
        return files
    if p.is_file():
        return [p]
    raise PromptFileError(p, None, "no such seed file or directory",
                          "pass a .jsonl seed file or a directory of them")


@dataclass(frozen=True)
class SeedLine:
    """One non-blank line of a seed file, read: ``task`` when it is a valid task, else ``error``.

    ``obj`` is the line's JSON object (``None`` when the line is not one), so a caller can check
    keys the loader ignores (the validator's ``small_model``).
    """

    line: int
    obj: dict | None
    task: SeedTask | None
    error: PromptFileError | None


def read_seed_lines(f: Path, seen: dict[str, str]) -> Iterator[SeedLine]:
    """Read one seed file line by line (a UTF-8 BOM is skipped, blank lines too), checking each
    line with every rule of ``load_seed_tasks``; a bad line is yielded with its ``error`` and the
    next one is read. ``seen`` maps normalised task text to ``FILE:LINE`` across files (updated
    here) for the duplicate check. Raises ``PromptFileError`` when the file cannot be read, or
    after the last line when it held no non-blank line."""
    try:
        raw = f.read_bytes()
    except OSError as e:
        raise PromptFileError(f, None, f"cannot read file ({e.strerror or e})", "check the path and permissions") from e
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    non_blank = 0
    for lineno, braw in enumerate(raw.split(b"\n"), start=1):
        try:
            line = braw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            non_blank += 1
            yield SeedLine(lineno, None, None, PromptFileError(
                f, lineno, f"not valid UTF-8 (byte {e.start + 1} of the line)", "save the file as UTF-8"))
            continue
        if not line:
            continue
        non_blank += 1
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield SeedLine(lineno, None, None, PromptFileError(
                f, lineno, f"bad JSON ({e.msg} at column {e.colno})",
                "write one complete JSON object per line, with double quotes"))
            continue
        if not isinstance(obj, dict):
            yield SeedLine(lineno, None, None, PromptFileError(
                f, lineno, f"expected a JSON object, got {type(obj).__name__}",
                'write {"task": ..., "label": ...} on each line'))
            continue
        try:
            yield SeedLine(lineno, obj, _seed_from_obj(obj, f, lineno, seen), None)
        except PromptFileError as e:
            yield SeedLine(lineno, obj, None, e)
    if not non_blank:
        raise PromptFileError(f, None, "no tasks (empty file)",
                              'add one JSON object per line, e.g. {"task": "...", "label": "feasible", "type": "..."}')


def load_seed_tasks(path: str | Path) -> list[SeedTask]:
    """Read seed tasks from a ``.jsonl`` file, or from every ``*.jsonl`` in a directory (sorted).

    One JSON object per line with keys ``task`` (non-empty string), ``label``
    (``feasible``/``infeasible``, case-insensitive), optional ``type`` and ``reason`` (slugs
    from ``taxonomy.py``; ``reason`` is required for infeasible tasks and ``type`` is inferred
    from it when omitted) and optional ``source``. Other keys are ignored unless they look
    like a misspelt known key. Blank lines are allowed. Raises ``PromptFileError`` naming the
    file and line on the first problem; a task that repeats an earlier one (ignoring case and
    whitespace, across all files) is an error.
    """
    tasks: list[SeedTask] = []
    seen: dict[str, str] = {}
    for f in seed_files(path):
        for line in read_seed_lines(f, seen):
            if line.error is not None:
                raise line.error
            tasks.append(line.task)
    return tasks


def _seed_from_obj(obj: dict, f: Path, lineno: int, seen: dict[str, str]) -> SeedTask:
    def err(what: str, fix: str) -> PromptFileError:
        return PromptFileError(f, lineno, what, fix)

    for key in obj:
        if key not in _SEED_KEYS:
            close = difflib.get_close_matches(str(key), _SEED_KEYS, n=1, cutoff=0.75)
            if close:
                raise err(f"unknown key {key!r}", f"did you mean {close[0]!r}?")

    task = obj.get("task")
    if task is None:
        raise err("missing 'task'", 'add "task": "<the task text>"')
    if not isinstance(task, str):
        raise err(f"'task' must be a string, got {type(task).__name__}", "quote the task text")
    task = task.strip()
    if not task:
        raise err("empty 'task'", "write the task text, or delete the line")

    label = obj.get("label")
    if not isinstance(label, str) or label.strip().lower() not in LABELS:
        raise err(f"unknown label {label!r}", 'use "feasible" or "infeasible"')
    label = label.strip().lower()

    def slug(key: str, choices) -> str | None:
        v = obj.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if not isinstance(v, str) or v.strip() not in choices:
            raise err(f"unknown {key} {v!r}", _suggest(str(v), choices))
        return v.strip()

    kind = slug("type", TAXONOMY)
    reason = slug("reason", REASON_TO_TYPE)
    if reason is not None:
        if kind is None:
            kind = REASON_TO_TYPE[reason]
        elif REASON_TO_TYPE[reason] != kind:
            raise err(f"reason {reason!r} does not belong to type {kind!r}",
                      f"use type {REASON_TO_TYPE[reason]!r} or one of its reasons: " + ", ".join(TAXONOMY[kind]))
    if label == "infeasible" and reason is None:
        raise err("infeasible task without 'reason'",
                  'add "reason": one of ' + ", ".join(REASON_TO_TYPE))

    source = obj.get("source", "seed")
    if not isinstance(source, str) or not source.strip():
        raise err(f"bad source {source!r}", "use a non-empty string or drop the key")

    key = _norm_task_key(task)
    if key in seen:
        raise err(f"duplicate task (same as {seen[key]})", "delete one of the two lines")
    seen[key] = f"{f}:{lineno}"
    return SeedTask(task=task, label=label, type=kind, reason=reason, source=source.strip())


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------


def read_template_text(path: Path) -> str:
    """A template file's text with its ``<!-- HTML comments -->`` (notes for editors) blanked out,
    their newlines kept so line numbers stay right. Raises ``PromptFileError`` when the file is
    missing, unreadable or not UTF-8 (a UTF-8 BOM is allowed)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise PromptFileError(path, None, "template file not found", "create it (see knowrl_prompts/README.md)") from e
    except OSError as e:
        raise PromptFileError(path, None, f"cannot read template ({e.strerror or e})",
                              "check the path and permissions") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise PromptFileError(path, line, "not valid UTF-8", "save the file as UTF-8") from e
    return _HTML_COMMENT_RE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def template_problems(path: Path, text: str, required: tuple[str, ...]) -> list[PromptFileError]:
    """Every placeholder problem of a template's ``text`` (from ``read_template_text``): each
    ``{identifier}`` not in ``required``, with its line, in line order, then each required name
    that never occurs. Empty when the template is usable."""
    problems = []
    present = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        for m in _PLACEHOLDER_RE.finditer(line):
            present.add(m.group(1))
            if m.group(1) not in required:
                problems.append(PromptFileError(path, lineno, f"unknown placeholder {{{m.group(1)}}}",
                                                "use only " + ", ".join("{" + r + "}" for r in required)))
    for name in required:
        if name not in present:
            problems.append(PromptFileError(path, None, f"missing placeholder {{{name}}}",
                                            f"put {{{name}}} where it should be filled in"))
    return problems


def _read_template(path: Path, required: tuple[str, ...]) -> str:
    text = read_template_text(path)
    problems = template_problems(path, text, required)
    if problems:
        raise problems[0]
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def load_templates(prompts_dir: str | Path = DEFAULT_PROMPTS_DIR) -> PromptTemplates:
    """Read ``introspection.md`` and ``classification.md`` from ``prompts_dir``.

    ``<!-- HTML comments -->`` are removed (they are notes for editors). Each template must
    contain all of its placeholders and no other ``{identifier}``; otherwise
    ``PromptFileError`` names the file (and line) and the placeholder.
    """
    d = Path(prompts_dir)
    return PromptTemplates(
        introspection=_read_template(d / INTROSPECTION_FILE, INTROSPECTION_PLACEHOLDERS),
        classification=_read_template(d / CLASSIFICATION_FILE, CLASSIFICATION_PLACEHOLDERS),
    )


def _fill(template: str, values: dict[str, str]) -> str:
    """One pass over ``{name}`` for the given names; inserted text is never re-scanned."""
    pattern = re.compile(r"\{(" + "|".join(re.escape(k) for k in values) + r")\}")
    return pattern.sub(lambda m: values[m.group(1)], template)


def describe_reason(reason: str) -> str:
    """The taxonomy description of ``reason``, addressed to the model ("you"/"your")."""
    desc = TAXONOMY[REASON_TO_TYPE[reason]][reason]
    return desc.replace("the model's", "your").replace("the model does", "you do").replace("the model", "you")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _format_example(ex: SeedTask) -> str:
    label = ex.label
    if ex.label == "infeasible" and ex.reason in REASON_TO_TYPE:
        label += f" ({describe_reason(ex.reason)})"
    return f"{TASK_MARKER} {_one_line(ex.task)}\n{ANSWER_MARKER} {label}"


def _target_text(target_label: str, reason: str | None) -> str:
    if target_label == "feasible":
        text = "feasible for you: tasks you can do completely and correctly on your own"
        if reason is not None:
            text += f", even though they come close to this limit: {describe_reason(reason)}"
        return text + "."
    if reason is None:
        return "infeasible for you: tasks you cannot do well."
    return f"infeasible for you because of this reason: {describe_reason(reason)}."


def build_introspection_prompt(templates: PromptTemplates, examples: list[SeedTask], target_label: str,
                               reason: str | None, num_tasks: int) -> str:
    """The user message asking the model to write ``num_tasks`` new tasks of ``target_label``.

    ``examples`` are shown as ``Task: ...`` / ``Label: ...`` pairs (infeasible ones with their
    reason). ``reason`` (a taxonomy slug) names why the new tasks should be infeasible, or for
    feasible tasks the limit they should come close to; ``None`` asks for any such task.
    """
    if target_label not in LABELS:
        raise ValueError(f"target_label must be one of {LABELS}, got {target_label!r}")
    if reason is not None and reason not in REASON_TO_TYPE:
        raise ValueError(f"unknown reason {reason!r}: {_suggest(str(reason), REASON_TO_TYPE)}")
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive int, got {num_tasks!r}")
    block = "\n\n".join(_format_example(ex) for ex in examples)
    return _fill(templates.introspection, {
        PH_EXAMPLES: block,
        PH_NUM_TASKS: str(num_tasks),
        PH_TARGET: _target_text(target_label, reason),
    })


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def load_answer_template(prompts_dir: str | Path = DEFAULT_PROMPTS_DIR) -> str:
    """``answer.md`` from ``prompts_dir``: the plain QA prompt with which evaluation has the model
    answer a question itself, so that its answer can be graded (model-relative labels).
    ``PromptFileError`` as for ``load_templates``."""
    return _read_template(Path(prompts_dir) / ANSWER_FILE, ANSWER_PLACEHOLDERS)


def build_answer_prompt(template: str, question: str) -> str:
    """The user message asking the model to answer ``question`` (inserted as it is)."""
    return _fill(template, {PH_QUESTION: question.strip()})


def build_classification_prompt(templates: PromptTemplates, task: str) -> str:
    """The user message asking whether ``task`` is feasible for the model.

    The task is inserted verbatim inside a code fence longer than any backtick run in it, so
    it cannot close the fence and pose as the instruction.
    """
    if not isinstance(task, str):
        raise TypeError(f"task must be a str, got {type(task).__name__}")
    return _fill(templates.classification, {PH_TASK: _fence(task)})


# --------------------------------------------------------------------------------------------
# Generated tasks
# --------------------------------------------------------------------------------------------

_THINK_PAIR_RE = re.compile(r"<\s*(think|thinking)\s*>.*?<\s*/\s*\1\s*>", re.I | re.S)
_THINK_CLOSE_RE = re.compile(r"<\s*/\s*think(?:ing)?\s*>", re.I)
_THINK_OPEN_RE = re.compile(r"<\s*think(?:ing)?\s*>", re.I)


def strip_think_blocks(text: str) -> str:
    """``text`` without its thinking: every ``<think>…</think>`` (or ``<thinking>``) block is
    removed; everything up to a ``</think>`` with no opening tag (the chat template opened the
    block in the prompt) is removed; everything from an ``<think>`` that never closes (the
    answer ended while thinking) is removed. Case-insensitive; text without tags is returned
    unchanged. A thinking-only answer gives ``""``: no task, no label.
    """
    if "<" not in text:
        return text
    text = _THINK_PAIR_RE.sub("", text)
    closes = list(_THINK_CLOSE_RE.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    opening = _THINK_OPEN_RE.search(text)
    return text[:opening.start()] if opening else text


_BULLET = r"(?:[-*+•·>]\s*|\(?\d{1,3}[.):]\s*|#{1,6}\s*)"
_TASK_LINE_RE = re.compile(
    r"^\s*" + _BULLET + r"*(?:\*\*|__|\*|_)?\s*task\s*#?\s*\d{0,3}\s*(?:\*\*|__)?\s*[:：]\s*(?:\*\*|__)?\s*(.*)$",
    re.I,
)
_LIST_LINE_RE = re.compile(r"^\s*(?:[-*+•·]|\(?\d{1,3}[.)])\s+(.*)$")
_QUOTES = "\"'“”‘’`«»"


_BOLD_RE = re.compile(r"\*\*(.+?)\*\*")
_LABEL_NOTE_RE = re.compile(r"\s*[(\[]\s*(?:label\s*:\s*)?(?:in|un|not\s+)?feasible\s*[)\]]\s*$", re.I)


def _clean_task(text: str) -> str:
    text = _one_line(_BOLD_RE.sub(r"\1", text))
    text = _LABEL_NOTE_RE.sub("", text)
    prev = None
    while prev != text:
        prev = text
        text = text.strip().strip(_QUOTES).strip()
        text = text.strip("*").strip()
    return text


def parse_generated_tasks(text: str) -> list[str]:
    """Extract task strings from an introspection answer.

    Takes lines starting with ``Task:`` (any case; ``Task 2:`` too; markdown bullets, numbering
    or bold allowed before it; when the line holds only the marker, the next line is the
    task). If there are none, takes numbered/bulleted lines instead. Quotes and markdown are
    stripped, whitespace collapsed, empty results dropped. Thinking (``strip_think_blocks``)
    is removed first.
    """
    if not isinstance(text, str):
        return []
    lines = strip_think_blocks(text).splitlines()
    tasks: list[str] = []
    found_marker = False
    i = 0
    while i < len(lines):
        m = _TASK_LINE_RE.match(lines[i])
        if m:
            found_marker = True
            body = m.group(1)
            if not _clean_task(body) and i + 1 < len(lines) and lines[i + 1].strip() \
                    and not _TASK_LINE_RE.match(lines[i + 1]):
                i += 1
                body = lines[i]
            cleaned = _clean_task(body)
            if cleaned:
                tasks.append(cleaned)
        i += 1
    if found_marker:
        return tasks
    for line in lines:
        m = _LIST_LINE_RE.match(line)
        if m:
            cleaned = _clean_task(m.group(1))
            if cleaned:
                tasks.append(cleaned)
    return tasks


def split_truncated_task(text: str, finished: bool = True) -> tuple[list[str], str | None]:
    """The tasks of an introspection answer, and apart from them the task the answer was cut
    in when generation stopped at the length limit (``finished`` false), or ``None``.

    A task is one line, so a cut answer's last task is cut exactly when it comes from the
    answer's unterminated last line: the tasks of the text before that line are complete. A
    half sentence must not pass the filters and be trained on as a task.
    """
    tasks = parse_generated_tasks(text)
    if finished or not tasks or not isinstance(text, str):
        return tasks, None
    head, _, tail = text.rpartition("\n")
    if not tail.strip() or parse_generated_tasks(head) == tasks:
        return tasks, None
    return tasks[:-1], tasks[-1]


_TOKEN_RE = re.compile(r"[^\W_]+")


def word_tokens(text: str) -> list[str]:
    """The lowercased alphanumeric words ROUGE-L compares (``rouge_l_f``)."""
    return _TOKEN_RE.findall(text.lower())


def token_masks(tokens: list[str]) -> dict[str, int]:
    """Per distinct token, a bit mask of its positions in ``tokens`` (bit i: position i): the
    form of the second sequence ``rouge_l_tokens`` reads; build it once for a text compared often."""
    masks: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    return masks


def _lcs_len(a: list[str], b_masks: dict[str, int], b_len: int) -> int:
    """Length of the longest common subsequence of ``a`` and the ``b_len`` tokens whose
    ``token_masks`` are ``b_masks``, bit-parallel (Hyyro 2004): one big-int step per token of
    ``a``, so the ~10k pairs of a 150-task seed set take milliseconds even when all are similar."""
    full = (1 << b_len) - 1
    v = full
    for tok in a:
        u = v & b_masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return b_len - v.bit_count()


def rouge_l_tokens(a: list[str], b: list[str], b_masks: dict[str, int] | None = None) -> float:
    """ROUGE-L F1 of two token lists: ``2 * LCS / (len(a) + len(b))``, 0.0 when either is empty.
    ``b_masks`` (``token_masks(b)``) may be passed to save rebuilding it."""
    if not a or not b:
        return 0.0
    lcs = _lcs_len(a, token_masks(b) if b_masks is None else b_masks, len(b))
    return 2.0 * lcs / (len(a) + len(b))  # F1 of P = lcs/len(a), R = lcs/len(b)


def rouge_l_f(a: str, b: str) -> float:
    """ROUGE-L F1 between two strings on lowercased alphanumeric word tokens.

    ``2 * LCS / (len_a + len_b)``; 0.0 when either side has no tokens.
    """
    return rouge_l_tokens(word_tokens(a), word_tokens(b))


_NON_PRINTABLE_OK = {"\t", "\n", "\r", " "}
_ANSWER_START_RE = re.compile(
    r"^\W*(?:(?:label|answer|reason|response|solution|output|feasible|infeasible|not\s+feasible)\b\s*[:.,!\-]|"
    r"(?:feasible|infeasible)\W*$|i\s+(?:cannot|can't|can\s+not|am\s+unable|am\s+not\s+able)\b|as\s+an\s+ai\b)",
    re.I,
)
_TEMPLATE_MARKERS_RE = re.compile(
    r"\{(?:" + "|".join(sorted(_ALL_PLACEHOLDERS)) + r")\}|\blabel\s*[:：]", re.I
)


def _is_non_printable(text: str) -> bool:
    for ch in text:
        if ch == "\ufffd":
            return True
        if ch not in _NON_PRINTABLE_OK and unicodedata.category(ch).startswith("C"):
            return True
    return False


def _multiset_overlap(a: dict[str, int], b: dict[str, int]) -> int:
    if len(a) > len(b):
        a, b = b, a
    return sum(min(c, b.get(t, 0)) for t, c in a.items())


def _counts(tokens: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tokens:
        out[t] = out.get(t, 0) + 1
    return out


def filter_generated_tasks(candidates: list[str], existing: list[str], min_chars: int = 20, max_chars: int = 300,
                           rouge_threshold: float = 0.7) -> tuple[list[str], list[tuple[str, str]]]:
    """Keep the usable generated tasks.

    Returns ``(kept, dropped)`` where ``dropped`` holds ``(task, why)`` with ``why`` one of
    ``too_short`` / ``too_long`` (stripped length outside ``[min_chars, max_chars]``),
    ``non_printable`` (control/format characters or U+FFFD), ``contains_template`` (a
    ``{placeholder}``, the answer marker ``Label:``, or text that reads like an answer rather
    than a task) and ``duplicate`` (ROUGE-L F above ``rouge_threshold`` against ``existing``
    or an earlier kept task of this batch, or the same text ignoring case and spacing).
    Checks run in that order; the first failing one is reported.
    """
    kept: list[str] = []
    dropped: list[tuple[str, str]] = []
    pool: list[tuple[list[str], dict[str, int], dict[str, int]]] = []  # tokens, counts, masks
    seen_text: set[str] = set()

    def remember(text: str) -> None:
        toks = word_tokens(text)
        pool.append((toks, _counts(toks), token_masks(toks)))
        seen_text.add(_norm_task_key(text))

    for e in existing:
        remember(e.task if isinstance(e, SeedTask) else e)

    for cand in candidates:
        task = cand.strip() if isinstance(cand, str) else ""
        why = None
        if len(task) < min_chars:
            why = "too_short"
        elif len(task) > max_chars:
            why = "too_long"
        elif _is_non_printable(task):
            why = "non_printable"
        elif _TEMPLATE_MARKERS_RE.search(task) or _ANSWER_START_RE.search(task):
            why = "contains_template"
        else:
            toks = word_tokens(task)
            cnt = _counts(toks)
            if _norm_task_key(task) in seen_text:
                why = "duplicate"
            else:
                for otoks, ocnt, omasks in pool:
                    if not toks or not otoks:
                        continue
                    # Cheap upper bound first: LCS <= multiset overlap.
                    if 2.0 * _multiset_overlap(cnt, ocnt) / (len(toks) + len(otoks)) <= rouge_threshold:
                        continue
                    if rouge_l_tokens(toks, otoks, omasks) > rouge_threshold:
                        why = "duplicate"
                        break
        if why is None:
            kept.append(task)
            remember(task)
        else:
            dropped.append((cand, why))
    return kept, dropped


def tasks_from_answer(text: str, finished: bool, existing: list, min_chars: int = 20, max_chars: int = 300,
                      rouge_threshold: float = 0.7) -> tuple[list[str], list[tuple[str, str]]]:
    """The usable tasks of one introspection answer (``text`` with its prefill), as training and
    evaluation both read them: ``split_truncated_task`` then ``filter_generated_tasks``.

    Returns ``(kept, dropped)`` like ``filter_generated_tasks``; a task cut by the length
    limit (``finished`` false) comes last in ``dropped`` with why ``truncated``.
    """
    tasks, cut = split_truncated_task(text, finished)
    kept, dropped = filter_generated_tasks(tasks, existing, min_chars, max_chars, rouge_threshold)
    if cut is not None:
        dropped.append((cut, "truncated"))
    return kept, dropped


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------

#: Only this many leading characters of an answer are examined (answers are label-first).
PARSE_LABEL_MAX_CHARS = 16384

_NEG_FEASIBLE = r"(?:\bnot|n't|\bnever|\bnon|\bno\s+longer)[\s\-]*(?:(?:be|really|quite|entirely|truly|actually|currently|fully|very|even)\s+)?feasible"
_INF_WORD = r"(?:in|un)[\-]?feasible"
# After an explicit marker, "possible"/"impossible" are read as the two labels: small models
# often answer with the everyday word.
_NEG_POSSIBLE = r"(?:\bnot[\s\-]+|\bim)possible"
_VALUE = rf"(?P<val>{_NEG_FEASIBLE}|{_INF_WORD}|feasible|{_NEG_POSSIBLE}|possible)(?![a-z0-9])"
_AFTER_VALUE_ECHO = r"(?!\s*(?:or|/|\||,)\s*(?:not\s+|in|un|im)?[\-]?(?:feasible|possible))"
_PRE = r"[\s*_\"'`\[(]{0,8}"
_MARKER_RE = re.compile(
    r"(?:"
    r"[\"']?\b(?:label|answer|classification|verdict|prediction)\b[\"']?\s*(?:\*\*|__|\*|_)?\s*"
    r"(?:[:=\-–—]|\bis\b\s*:?)"
    r"|<\s*label\s*>"
    r")" + _PRE + _VALUE + _AFTER_VALUE_ECHO,
    re.I,
)
_WORD_RE = re.compile(
    rf"(?:(?P<neg>{_NEG_FEASIBLE})|(?<![a-z0-9\-])(?P<inf>{_INF_WORD})|(?<![a-z0-9\-])(?P<pos>feasible))(?![a-z0-9])",
    re.I,
)
_LEAD_JUNK_RE = re.compile(r"^[\W_]*")
_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")


def _value_to_label(val: str) -> str:
    return "feasible" if val.lower() in ("feasible", "possible") else "infeasible"


#: A word the answer was cut in (at its very end), e.g. ``infeas`` or ``not``.
_CUT_WORD_RE = re.compile(r"[\w\-']*$")


def parse_label(text: str, finished: bool = True) -> str | None:
    """Read ``"feasible"``/``"infeasible"`` from a classification answer, or ``None``.

    1. Explicit markers win, the first in the text: ``Label: X``, ``label - X``,
       ``**Label:** X``, ``"label": "X"`` (JSON), ``<label>X</label>`` (also ``Answer:``,
       ``Verdict:``, ``Classification:``); ``not feasible``/``unfeasible``/``infeasible``
       all mean infeasible. A format echo such as ``Label: feasible or infeasible`` is not a
       marker.
    2. Otherwise, if the answer starts with a label word (after markdown/punctuation), that.
    3. Otherwise, if only one of the two labels occurs as a whole word (``not feasible``
       counts as infeasible), that one; both or neither give ``None``.

    Thinking (``strip_think_blocks``) is removed first. ``finished`` false means generation
    stopped at the length limit: the word the answer was cut in is dropped (``Label: infeas``
    or ``Label: not`` are no label yet) and only 1. and 2. apply, since a word after the cut
    could have changed the reading of 3. Case-insensitive; only the first
    ``PARSE_LABEL_MAX_CHARS`` characters are read; never raises (non-str input gives ``None``).
    """
    if not isinstance(text, str):
        return None
    try:
        t = strip_think_blocks(unicodedata.normalize("NFKC", text[:PARSE_LABEL_MAX_CHARS]))
        t = _INVISIBLE_RE.sub("", t).replace("’", "'")
        if not finished:
            t = _CUT_WORD_RE.sub("", t)
        m = _MARKER_RE.search(t)
        if m:
            return _value_to_label(m.group("val"))
        words = list(_WORD_RE.finditer(t))
        if not words:
            return None
        lead = _LEAD_JUNK_RE.match(t).end()
        first = words[0]
        if first.start() == lead:
            return "feasible" if first.group("pos") else "infeasible"
        if not finished:
            return None
        kinds = {"feasible" if w.group("pos") else "infeasible" for w in words}
        return kinds.pop() if len(kinds) == 1 else None
    except Exception:  # pragma: no cover - defensive: a parser must never crash a rollout
        return None


# --------------------------------------------------------------------------------------------
# Chat formatting shared by training and evaluation
# --------------------------------------------------------------------------------------------

#: Default assistant prefill for classification answers: the model continues after "Label:",
#: so even a small model's first sampled tokens are the label (see README.md).
DEFAULT_ANSWER_PREFIX = ANSWER_MARKER
#: Default assistant prefill for introspection answers: the first line is already a task.
DEFAULT_INTROSPECTION_PREFIX = TASK_MARKER


def chat_prompt(tokenizer, user_text: str, assistant_prefix: str = "") -> str:
    """The model's chat template around one user message, opened for the assistant's answer,
    with ``assistant_prefix`` already written as the start of that answer.

    ``enable_thinking=False`` goes to the template: templates that think aloud (Qwen3-style)
    then open the answer without a thinking block, so the prefill and the length limit are
    spent on the answer; templates without that variable ignore it."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": user_text}], tokenize=False,
                                         add_generation_prompt=True, enable_thinking=False)
    return text + assistant_prefix


def parse_answer(completion: str, assistant_prefix: str = "", finished: bool = True) -> str | None:
    """The label of a classification answer whose prompt ended with ``assistant_prefix``;
    ``finished`` false (cut at the length limit): a label only if it was complete before the
    cut (see ``parse_label``)."""
    if not isinstance(completion, str):
        return None
    return parse_label(assistant_prefix + completion, finished)


def prompt_token_count(tokenizer, prompts: list[str]) -> list[int]:
    """Token counts of chat-formatted prompts, counted as the loop encodes them (no special
    tokens added: the chat template already wrote any BOS). Over-long prompts are what the caller
    is measuring, so the tokenizer's own too-long warning is silenced (verbose=False)."""
    if not prompts:
        return []
    return [len(ids) for ids in tokenizer(prompts, add_special_tokens=False, verbose=False).input_ids]


def prompt_lengths(tokenizer, templates: PromptTemplates, seeds: list[SeedTask], *, answer_prefix: str,
                   introspection_prefix: str, few_shot_examples: int, tasks_per_introspection: int) -> dict:
    """How long, in tokens, the loop's prompts are with these seed tasks, before any pool growth.

    Returns a dict of ints:

    * ``classification``: the classification prompt of the longest seed task (chat template +
      task + ``answer_prefix``); ``classification_shortest`` the same for the shortest one;
    * ``introspection_longest``: a task-writing prompt whose ``few_shot_examples // 2``
      examples per label are the longest seed tasks, with the longest target wording;
    * ``introspection_shortest``: the same with the shortest examples and target wording, the
      least any task-writing prompt of the first iteration can take.

    The loop drops a prompt longer than ``--prompt_max_len``; these bounds say up front
    whether some or every prompt of a kind would be dropped. ``seeds`` must not be empty.
    """
    lengths = prompt_token_count(tokenizer, [chat_prompt(tokenizer, build_classification_prompt(templates, s.task),
                                                         answer_prefix) for s in seeds])
    per_label = max(1, few_shot_examples // 2)
    example_tokens = dict(zip((s.task for s in seeds),
                              prompt_token_count(tokenizer, [_format_example(s) for s in seeds])))
    shortest, longest = [], []
    for label in LABELS:
        same = sorted((s for s in seeds if s.label == label), key=lambda s: example_tokens[s.task])
        shortest += same[:per_label]
        longest += same[::-1][:per_label]
    targets = [("feasible", None)] + [("infeasible", reason) for reason in sorted(REASON_TO_TYPE)]

    def introspection(examples: list[SeedTask]) -> list[int]:
        return prompt_token_count(tokenizer, [chat_prompt(tokenizer, build_introspection_prompt(
            templates, examples, label, reason, tasks_per_introspection), introspection_prefix)
            for label, reason in targets])

    return {"classification": max(lengths), "classification_shortest": min(lengths),
            "introspection_longest": max(introspection(longest)),
            "introspection_shortest": min(introspection(shortest))}


if __name__ == "__main__":  # python -m openrlhf.knowrl.prompts validate [DIR] [--seeds PATH] [--strict]
    import sys

    if sys.argv[1:2] != ["validate"]:
        print("usage: python -m openrlhf.knowrl.prompts validate [DIR] [--seeds PATH] [--strict]", file=sys.stderr)
        sys.exit(2)
    from openrlhf.knowrl.validate_prompts import main as _validate_main

    sys.exit(_validate_main(sys.argv[2:]))
