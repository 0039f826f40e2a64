"""Labelled feasibility benchmarks: reading them into ``EvalItem`` lists and subsampling them.

Formats (the format of a file is sniffed from its content, so any file name works):

* ``knowrl`` JSONL: ``{"task": str, "label": "feasible"|"infeasible", "category"?: str, "id"?}``
  per line (seed-task files work too: ``reason``/``type`` become the category).
* ``selfaware``: SelfAware.json (Yin et al. 2023), items under the top-level ``"example"``
  list (indented or minified), or a JSONL export of those items, one per line;
  ``answerable: true`` = feasible; category = the question's source (squadqa, triviaqa,
  hotpot, selfaware).
* ``kuq``: Known-Unknown Questions JSONL (Amayuelas et al.), ``unknown: true`` = infeasible;
  category = the ``category`` of unknown rows, ``known`` for known rows.
* ``line_of_duty``: Line of Duty JSONL (Kale & Nadadur 2025). The label is ``gen_label``, the
  label the *generating model* gave its own task: NOT human gold. Category = the self-knowledge
  type, mapped onto the taxonomy types of ``openrlhf.knowrl.taxonomy``.

``load_benchmark(spec)`` takes a path or a name (``selfaware``, ``kuq``, ``line_of_duty``)
looked up under ``$KNOWRL_BENCHMARKS_DIR/<name>/``. Problems raise ``BenchmarkError`` whose
message is one line: ``FILE[:LINE]: what is wrong — how to fix``. Items whose text repeats
(up to case and spacing) are kept, counted in ``Benchmark.n_duplicates`` and warned about on
stderr. Infeasible (= unanswerable, unknown) is the positive class.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
from pathlib import Path

from openrlhf.knowrl.taxonomy import LABELS

from evaluation.capability import capability_benchmark
from evaluation.items import Benchmark, EvalItem, count_duplicates

BENCHMARKS_ENV = "KNOWRL_BENCHMARKS_DIR"
#: name -> file inside ``$KNOWRL_BENCHMARKS_DIR/<name>/``
NAMED_BENCHMARKS = {
    "selfaware": "SelfAware.json",
    "kuq": "knowns_unknowns.jsonl",
    "line_of_duty": "tasks.jsonl",
}
FORMATS = ("knowrl", "selfaware", "kuq", "line_of_duty")
_LOD_TYPES = {
    "functional_ceiling": "capability_boundary",
    "contextual_awareness": "contextual_awareness",
    "identification_of_ambiguity": "ambiguity",
    "ethical_integrity": "ethical_integrity",
    "temporal_perception": "temporal_perception",
}


class BenchmarkError(ValueError):
    """A benchmark cannot be found or read; the message names the file (and line) and a fix."""

    def __init__(self, path, line: int | None, what: str, fix: str | None = None):
        self.path, self.line, self.what, self.fix = str(path), line, what, fix
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {what}" + (f" — {fix}" if fix else ""))


def slug(text: str) -> str:
    """`text` lower-cased with every run of other characters than a-z and 0-9 turned into one "_"."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def sha256_file(path) -> str:
    """Hex SHA-256 of the file at `path`, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BenchmarkError(path, None, f"cannot read file ({e.strerror or e})", "check the path and permissions")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise BenchmarkError(path, line, "not valid UTF-8", "save the file as UTF-8")


def _jsonl_objects(path: Path):
    """Yield ``(line_number, dict)`` for each non-blank line."""
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchmarkError(path, lineno, f"bad JSON ({e.msg} at column {e.colno})",
                                 "write one complete JSON object per line")
        if not isinstance(obj, dict):
            raise BenchmarkError(path, lineno, f"expected a JSON object, got {type(obj).__name__}",
                                 "write one JSON object per line")
        yield lineno, obj


def _text_field(obj: dict, key: str, path, line, fix: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v.strip():
        what = f"missing '{key}'" if v is None else f"'{key}' must be a non-empty string, got {v!r}"[:200]
        raise BenchmarkError(path, line, what, fix)
    return v.strip()


def _bool_field(obj: dict, key: str, path, line, fix: str) -> bool:
    v = obj.get(key)
    if not isinstance(v, bool):
        what = f"missing '{key}'" if v is None else f"'{key}' must be true or false, got {v!r}"
        raise BenchmarkError(path, line, what, fix)
    return v


def _answers(value, path, line, key: str = "answer") -> tuple[str, ...] | None:
    """Gold answers as a tuple of aliases: a string or a list of strings; None when absent or
    empty. BenchmarkError (naming file:line) for any other value."""
    if value is None:
        return None
    aliases = [value] if isinstance(value, str) else value
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise BenchmarkError(path, line, f"'{key}' must be a string or a list of strings, got {value!r}"[:200],
                             "give the accepted answers as text, or drop the field")
    kept = tuple(dict.fromkeys(a.strip() for a in aliases if a.strip()))
    return kept or None


def load_knowrl_jsonl(path) -> list[EvalItem]:
    """``{"task", "label", "category"?, "answer"?}`` per line; ``reason``/``type`` also give the
    category; ``answer`` (a string or a list of accepted strings) lets the model's own answer be
    graded. An infeasible item's answers are ignored (no model can answer it)."""
    path = Path(path)
    items = []
    for lineno, obj in _jsonl_objects(path):
        task = _text_field(obj, "task", path, lineno, 'add "task": "<the task text>"')
        label = obj.get("label")
        if not isinstance(label, str) or label.strip().lower() not in LABELS:
            raise BenchmarkError(path, lineno, f"unknown label {label!r}", 'use "feasible" or "infeasible"')
        cat = obj.get("category") or obj.get("reason") or obj.get("type")
        if cat is not None and not isinstance(cat, str):
            raise BenchmarkError(path, lineno, f"'category' must be a string, got {cat!r}", "quote it or drop it")
        sid = obj.get("id")
        label = label.strip().lower()
        answers = _answers(obj.get("answer"), path, lineno)
        items.append(EvalItem(task, label, cat.strip() if cat else None,
                              str(sid) if sid is not None else f"L{lineno}",
                              answers=answers if label == "feasible" else None))
    return items


def _json_item_line(text: str, key: str, index: int) -> int | None:
    """Line number where element ``index`` of the top-level list ``key`` starts in ``text``."""
    m = re.search(r'"%s"\s*:\s*\[' % re.escape(key), text)
    if not m:
        return None
    dec, pos = json.JSONDecoder(), m.end()
    ws = re.compile(r"[\s,]*")
    for i in range(index + 1):
        pos = ws.match(text, pos).end()
        if i == index:
            return text.count("\n", 0, pos) + 1
        try:
            _, pos = dec.raw_decode(text, pos)
        except json.JSONDecodeError:
            return None
    return None


def _selfaware_item(ex, fallback_id: str) -> EvalItem:
    """One SelfAware item; BenchmarkError (without a location, the caller adds it) if malformed."""
    if not isinstance(ex, dict):
        raise BenchmarkError("", None, f"item is a {type(ex).__name__}, not an object")
    q = _text_field(ex, "question", "", None, "")
    ans = _bool_field(ex, "answerable", "", None, "")
    src = ex.get("source")
    cat = slug(re.sub(r"_(train|dev|test)$", "", src)) if isinstance(src, str) and src.strip() else None
    qid = ex.get("question_id")
    answers = _answers(ex.get("answer"), "", None) if ans else None
    return EvalItem(q, "feasible" if ans else "infeasible", cat, str(qid if qid is not None else fallback_id),
                    answers=answers)


def _is_selfaware_line(obj) -> bool:
    """A SelfAware item on its own (a line of a JSONL export), not the whole SelfAware.json."""
    return isinstance(obj, dict) and "question" in obj and "answerable" in obj and "example" not in obj


def _first_line_object(text: str):
    first = next((line for line in text.split("\n") if line.strip()), "")
    try:
        return json.loads(first)
    except json.JSONDecodeError:
        return None


def load_selfaware(path) -> list[EvalItem]:
    """SelfAware.json: ``{"example": [{"question_id", "question", "answerable", "source"}, ...]}``
    in any layout (indented or minified), or a JSONL export with one such item per line.
    Errors name the line where the bad item starts and, in SelfAware.json, the item as
    ``example[i]``."""
    path = Path(path)
    text = _read_text(path)
    if _is_selfaware_line(_first_line_object(text)):
        items = []
        for lineno, obj in _jsonl_objects(path):
            try:
                items.append(_selfaware_item(obj, f"L{lineno}"))
            except BenchmarkError as e:
                raise BenchmarkError(path, lineno, e.what, e.fix or 'each line needs "question": "<text>" and '
                                                                   '"answerable": true or false')
        return items
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BenchmarkError(path, e.lineno, f"bad JSON ({e.msg} at column {e.colno})", "fix the JSON syntax")
    if not isinstance(data, dict) or not isinstance(data.get("example"), list):
        raise BenchmarkError(path, None, "no top-level \"example\" list", "give the SelfAware.json file itself")
    items = []
    for i, ex in enumerate(data["example"]):
        try:
            items.append(_selfaware_item(ex, str(i)))
        except BenchmarkError as e:
            raise BenchmarkError(path, _json_item_line(text, "example", i), f"example[{i}]: {e.what}",
                                 "fix that item or drop it")
    return items


def load_kuq(path) -> list[EvalItem]:
    """KUQ JSONL: ``{"question", "unknown": bool, "category"?, "source"?}`` per line."""
    path = Path(path)
    items = []
    for lineno, obj in _jsonl_objects(path):
        q = _text_field(obj, "question", path, lineno, 'each KUQ line needs "question": "<text>"')
        unknown = _bool_field(obj, "unknown", path, lineno, 'each KUQ line needs "unknown": true or false')
        cat = obj.get("category")
        cat = slug(cat) if isinstance(cat, str) and cat.strip() else ("unknown" if unknown else "known")
        # an unknown question's "answer" explains why nobody knows: not a gold answer
        answers = None if unknown else _answers(obj.get("answer"), path, lineno)
        items.append(EvalItem(q, "infeasible" if unknown else "feasible", cat, f"L{lineno}", answers=answers))
    return items


def load_line_of_duty(path) -> list[EvalItem]:
    """Line of Duty JSONL: label = ``gen_label`` (the generating model's own label, not human gold)."""
    path = Path(path)
    items = []
    for lineno, obj in _jsonl_objects(path):
        task = _text_field(obj, "task", path, lineno, 'each line needs "task": "<text>"')
        gl = obj.get("gen_label")
        if not isinstance(gl, str) or gl.strip().lower() not in LABELS:
            raise BenchmarkError(path, lineno, f"unknown gen_label {gl!r}", 'use "Feasible" or "Infeasible"')
        typ = obj.get("gen_self_knowledge_type")
        cat = None
        if isinstance(typ, str) and typ.strip():
            cat = _LOD_TYPES.get(slug(typ), slug(typ))
        sid = obj.get("id")
        items.append(EvalItem(task, gl.strip().lower(), cat, str(sid) if sid is not None else f"L{lineno}"))
    return items


LOADERS = {"knowrl": load_knowrl_jsonl, "selfaware": load_selfaware, "kuq": load_kuq,
           "line_of_duty": load_line_of_duty}


def sniff_format(path) -> str:
    """Guess the format from the first non-blank characters / first JSON line of ``path``."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(1 << 16).decode("utf-8-sig", errors="replace")
    stripped = head.lstrip()
    if not stripped:
        raise BenchmarkError(path, None, "file is empty", "give a benchmark file with labelled tasks")
    first_line = stripped.split("\n", 1)[0].strip()
    try:
        obj = json.loads(first_line)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        if "gen_label" in obj:
            return "line_of_duty"
        if "unknown" in obj and "question" in obj:
            return "kuq"
        if isinstance(obj.get("example"), list) or _is_selfaware_line(obj):
            return "selfaware"  # a minified SelfAware.json that fits the head, or a JSONL export
        if "task" in obj or "label" in obj:
            return "knowrl"
    if stripped.startswith("{") and obj is None and re.search(r'"example"\s*:', head):
        return "selfaware"
    if stripped.startswith("{") and obj is None and len(head) >= 1 << 16 and _whole_file_is_selfaware(path):
        return "selfaware"  # one long line with "example" past the head
    if stripped.startswith("{") and obj is None and "selfaware" in path.name.lower():
        return "selfaware"
    raise BenchmarkError(path, 1, "unknown benchmark format",
                         "use JSONL lines {\"task\", \"label\"}, SelfAware.json, KUQ JSONL or Line of Duty JSONL")


def _whole_file_is_selfaware(path: Path) -> bool:
    try:
        data = json.loads(_read_text(path))
    except (json.JSONDecodeError, BenchmarkError):
        return False
    return isinstance(data, dict) and isinstance(data.get("example"), list)


def capability_size(spec: str) -> int | None:
    """N for a ``capability`` / ``capability:N`` spec (the generated suite of
    ``evaluation.capability``; N defaults to 200), None for any other spec or when a file of
    that name exists. BenchmarkError when N is not a whole number >= 1."""
    m = re.fullmatch(r"\s*capability\s*(?::(.*))?", spec, re.IGNORECASE)
    if m is None or Path(spec).expanduser().exists():
        return None
    size = (m.group(1) or "200").strip()
    if not size.isdigit() or int(size) < 1:
        raise BenchmarkError(spec, None, f"bad capability suite size {size!r}",
                             "write capability:N with N a whole number >= 1, e.g. capability:200")
    return int(size)


def resolve_spec(spec: str) -> tuple[str, Path]:
    """Map a ``--benchmark`` value to ``(name, path)``; raise ``BenchmarkError`` if not found."""
    p = Path(spec).expanduser()
    if p.is_file():
        return p.stem, p
    key = slug(spec)
    if key in NAMED_BENCHMARKS and not p.exists():
        root = os.environ.get(BENCHMARKS_ENV)
        if not root:
            raise BenchmarkError(spec, None, f"benchmark name '{key}' needs ${BENCHMARKS_ENV}",
                                 f"set {BENCHMARKS_ENV} to a folder holding {key}/{NAMED_BENCHMARKS[key]}, "
                                 "or pass the file's path")
        f = Path(root).expanduser() / key / NAMED_BENCHMARKS[key]
        if not f.is_file():
            raise BenchmarkError(f, None, f"benchmark '{key}' not found",
                                 f"put {NAMED_BENCHMARKS[key]} there or point {BENCHMARKS_ENV} at the right folder")
        return key, f
    if p.is_dir():
        raise BenchmarkError(p, None, "is a directory", "pass the benchmark file inside it")
    raise BenchmarkError(spec, None, "no such benchmark file",
                         "pass an existing file, one of the names " + ", ".join(NAMED_BENCHMARKS)
                         + f" with ${BENCHMARKS_ENV} set, or capability[:N] (generated)")


def load_benchmark(spec: str, fmt: str | None = None, seed: int = 0) -> Benchmark:
    """Load a benchmark by path or name (see module docstring); ``fmt`` overrides sniffing.
    ``capability`` / ``capability:N`` generates the capability suite (N items, default 200)
    from ``seed``; ``seed`` is unused for files."""
    n_capability = capability_size(spec)
    if n_capability is not None:
        if fmt not in (None, "capability"):
            raise BenchmarkError(spec, None, f"the generated capability suite has no format {fmt!r}",
                                 "drop --format for capability[:N]")
        return capability_benchmark(n_capability, seed)
    name, path = resolve_spec(spec)
    fmt = fmt or sniff_format(path)
    if fmt not in LOADERS:
        raise BenchmarkError(path, None, f"unknown format {fmt!r}", "use one of " + ", ".join(FORMATS))
    items = LOADERS[fmt](path)
    if fmt != "knowrl" and name == path.stem:  # SelfAware.json, tasks.jsonl, ...: name by format
        name = fmt
    if not items:
        raise BenchmarkError(path, None, "no items", "give a file with at least one labelled task")
    copies, conflicting, example = count_duplicates(items)
    if copies:
        clash = f"; {conflicting} of these texts carry both labels" if conflicting else ""
        print(f"[eval] warning: {path}: {copies} of {len(items)} items repeat an earlier item's text (up to case "
              f"and spacing{clash}), e.g. {example[:80]!r}: each copy is kept and scored", file=sys.stderr, flush=True)
    return Benchmark(name=name, path=str(path), format=fmt, sha256=sha256_file(path), items=items,
                     n_total=len(items), n_duplicates=copies)


def balanced_subsample(items: list[EvalItem], limit: int | None, seed: int = 0) -> list[EvalItem]:
    """Up to ``limit`` items, ``limit // 2`` feasible and the rest infeasible when both labels
    have enough; a label short of its share gives all it has and the other label fills in.
    Chosen with ``random.Random(seed)``; the chosen items keep their file order."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    idx = {lab: [i for i, it in enumerate(items) if it.label == lab] for lab in LABELS}
    want_f = limit // 2
    want_i = limit - want_f
    n_f, n_i = len(idx["feasible"]), len(idx["infeasible"])
    if n_f < want_f:
        want_f, want_i = n_f, limit - n_f
    elif n_i < want_i:
        want_f, want_i = limit - n_i, n_i
    rng = random.Random(seed)
    chosen = rng.sample(idx["feasible"], want_f) + rng.sample(idx["infeasible"], want_i)
    return [items[i] for i in sorted(chosen)]


__all__ = ["BENCHMARKS_ENV", "NAMED_BENCHMARKS", "FORMATS", "BenchmarkError", "EvalItem", "Benchmark",
           "load_knowrl_jsonl", "load_selfaware", "load_kuq", "load_line_of_duty", "sniff_format",
           "resolve_spec", "capability_size", "load_benchmark", "balanced_subsample", "sha256_file", "slug", "count_duplicates"]
