"""Check a prompts folder and report every problem in it, not just the first.

This module owns ``python -m openrlhf.knowrl.prompts validate [DIR] [--seeds PATH] [--strict]``
(also ``python -m openrlhf.knowrl.validate_prompts``). ``validate_prompts_dir`` reads the two
templates and the seed ``*.jsonl`` file(s) with the loaders' own readers and checks
(``prompts.read_template_text`` / ``template_problems``, ``prompts.seed_files`` /
``read_seed_lines``), but keeps going after a problem and returns a ``ValidationReport``:

* errors (the loaders in ``prompts.py`` would refuse the set): unreadable or non-UTF-8 files,
  bad JSON, a line that is not an object, every per-task check of ``load_seed_tasks``
  (unknown label/type/reason, reason of another type, infeasible without reason, exact
  duplicate, ...), a non-bool ``small_model``, an empty seed file, a missing or unknown
  template placeholder;
* warnings (the set loads, but is weaker than it should be): near-duplicates (ROUGE-L F > 0.7),
  task length outside 20-300 characters, labels less balanced than 40:60, a taxonomy reason
  with no infeasible task, fewer than 50 tasks of a label, a template without its answer marker.

Optional seed key ``"small_model": true`` marks tasks a 135M-parameter chat model can plausibly
judge; it is counted in the summary table. Only the standard library is used. This module
imports ``prompts``, never the other way round (``prompts``' own ``__main__`` block, the
``python -m openrlhf.knowrl.prompts validate`` script, is what calls ``main`` here).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from openrlhf.knowrl import prompts as P
from openrlhf.knowrl.taxonomy import LABELS, REASON_TO_TYPE, TAXONOMY

__all__ = ["Problem", "ValidationReport", "validate_prompts_dir", "main"]

MIN_CHARS, MAX_CHARS = 20, 300  # same bounds as filter_generated_tasks
NEAR_DUP_ROUGE = 0.7
MIN_LABEL_SHARE = 0.4
MIN_PER_LABEL = 50
SMALL_MODEL_KEY = "small_model"

TEMPLATES = {
    P.INTROSPECTION_FILE: (P.INTROSPECTION_PLACEHOLDERS, P.TASK_MARKER),
    P.CLASSIFICATION_FILE: (P.CLASSIFICATION_PLACEHOLDERS, P.ANSWER_MARKER),
}


@dataclass(frozen=True)
class Problem:
    """One finding of the prompt check: `severity` "error" or "warning", the file, its 1-based line (None: the
    whole file) and the message."""
    severity: str  # "error" or "warning"
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class ValidationReport:
    """All problems found, plus ``counts`` of the tasks that loaded.

    ``counts`` maps ``"label"``, ``"type"``, ``"reason"``, ``"small_model"`` (per label) to
    ``Counter``s, and ``"label_type"`` / ``"label_reason"`` to ``Counter``s keyed by
    ``(label, slug)``; a feasible task without a type/reason counts under ``None``.
    """

    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, Counter] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        """The problems of severity "error"."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """The problems of severity "warning"."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def format_problems(self) -> str:
        """One ``FILE:LINE: severity: message`` line per problem: errors first, then by file and line."""
        ordered = sorted(self.problems, key=lambda p: (p.severity != "error", p.path, p.line is None, p.line or 0))
        return "\n".join(str(p) for p in ordered)

    def format_table(self) -> str:
        """Tasks per type and reason (rows) and label (columns), then totals and small_model."""
        lt, lr = self.counts.get("label_type", Counter()), self.counts.get("label_reason", Counter())
        rows: list[tuple[str, int, int]] = []
        for kind, reasons in TAXONOMY.items():
            rows.append((kind, lt[("feasible", kind)], lt[("infeasible", kind)]))
            rows += [(f"  {r}", lr[("feasible", r)], lr[("infeasible", r)]) for r in reasons]
        if lt[("feasible", None)] or lt[("infeasible", None)]:
            rows.append(("(no type)", lt[("feasible", None)], lt[("infeasible", None)]))
        labels, small = self.counts.get("label", Counter()), self.counts.get("small_model", Counter())
        rows.append(("total", labels["feasible"], labels["infeasible"]))
        rows.append((SMALL_MODEL_KEY, small["feasible"], small["infeasible"]))
        width = max(len(r[0]) for r in rows) + 2
        head = f"{'type / reason':<{width}}{'feasible':>10}{'infeasible':>12}{'total':>8}"
        out = [head, "-" * len(head)]
        for i, (name, f, n) in enumerate(rows):
            if i == len(rows) - 2:
                out.append("-" * len(head))
            out.append(f"{name:<{width}}{f:>10}{n:>12}{f + n:>8}")
        return "\n".join(out)


@dataclass(frozen=True)
class _Entry:
    task: P.SeedTask
    path: str
    line: int
    small_model: bool


def _problem(severity: str, e: P.PromptFileError) -> Problem:
    return Problem(severity, e.path, e.line, e.what + (f" — {e.fix}" if e.fix else ""))


def _check_seed_file(f: Path, seen: dict[str, str], report: ValidationReport) -> list[_Entry]:
    """The per-line pass: every line's problems are recorded, then the next line is read."""
    entries: list[_Entry] = []
    try:
        for line in P.read_seed_lines(f, seen):
            small = False if line.obj is None else line.obj.get(SMALL_MODEL_KEY, False)
            if not isinstance(small, bool):
                report.problems.append(Problem("error", str(f), line.line,
                                               f"'{SMALL_MODEL_KEY}' must be true or false, got {small!r}"))
                small = False
            if line.error is not None:
                report.problems.append(_problem("error", line.error))
            else:
                entries.append(_Entry(line.task, str(f), line.line, small))
    except P.PromptFileError as e:  # unreadable or empty file: the lines read so far still count
        report.problems.append(_problem("error", e))
    return entries


def _check_set(entries: list[_Entry], where: str, report: ValidationReport) -> None:
    """Warnings about the tasks as a set: length, near-duplicates, balance, coverage."""
    def warn(path: str, line: int | None, msg: str) -> None:
        report.problems.append(Problem("warning", path, line, msg))

    pool: list[tuple[_Entry, list[str], dict[str, int]]] = []
    for e in entries:
        n = len(e.task.task)
        if not MIN_CHARS <= n <= MAX_CHARS:
            warn(e.path, e.line, f"task is {n} characters, outside {MIN_CHARS}-{MAX_CHARS}")
        toks = P.word_tokens(e.task.task)
        for other, otoks, omasks in pool:
            score = P.rouge_l_tokens(toks, otoks, omasks)
            if score > NEAR_DUP_ROUGE:
                warn(e.path, e.line, f"near-duplicate of {other.path}:{other.line} "
                                     f"(ROUGE-L F {score:.2f} > {NEAR_DUP_ROUGE})")
        pool.append((e, toks, P.token_masks(toks)))

    labels = report.counts["label"]
    total = sum(labels.values())
    if total:
        low = min(LABELS, key=lambda lab: labels[lab])
        if labels[low] / total < MIN_LABEL_SHARE:
            warn(where, None, f"labels unbalanced: {labels['feasible']} feasible vs {labels['infeasible']} "
                              f"infeasible (worse than 40:60)")
        for lab in LABELS:
            if labels[lab] < MIN_PER_LABEL:
                warn(where, None, f"only {labels[lab]} {lab} tasks, fewer than {MIN_PER_LABEL} "
                                  f"(a later issue asks for {MIN_PER_LABEL}+{MIN_PER_LABEL})")
        for reason in REASON_TO_TYPE:
            if not report.counts["label_reason"][("infeasible", reason)]:
                warn(where, None, f"no infeasible task for reason {reason!r}")


def _check_template(path: Path, required: tuple[str, ...], marker: str, report: ValidationReport) -> None:
    try:
        text = P.read_template_text(path)
    except P.PromptFileError as e:
        report.problems.append(_problem("error", e))
        return
    report.problems += [_problem("error", e) for e in P.template_problems(path, text, required)]
    if marker not in text:
        report.problems.append(Problem("warning", str(path), None,
                                       f"no {marker!r} in the template: the answer format the parser expects"))


def validate_prompts_dir(prompts_dir: str | Path = P.DEFAULT_PROMPTS_DIR,
                         seeds: str | Path | None = None) -> ValidationReport:
    """Check the templates in ``prompts_dir`` and the seed tasks in ``seeds`` (a ``.jsonl``
    file or a directory of them; default ``prompts_dir``). Never raises on bad content."""
    d = Path(prompts_dir)
    report = ValidationReport()
    for name, (required, marker) in TEMPLATES.items():
        _check_template(d / name, required, marker, report)

    seeds_path = Path(seeds) if seeds is not None else d
    try:
        files = P.seed_files(seeds_path)
    except P.PromptFileError as e:
        report.problems.append(_problem("error", e))
        files = []
    seen: dict[str, str] = {}
    entries = [e for f in files for e in _check_seed_file(f, seen, report)]
    c = report.counts
    c["label"] = Counter(e.task.label for e in entries)
    c["type"] = Counter(e.task.type for e in entries)
    c["reason"] = Counter(e.task.reason for e in entries)
    c["label_type"] = Counter((e.task.label, e.task.type) for e in entries)
    c["label_reason"] = Counter((e.task.label, e.task.reason) for e in entries)
    c["small_model"] = Counter(e.task.label for e in entries if e.small_model)
    if entries:
        _check_set(entries, str(seeds_path), report)
    return report


def main(argv: list[str] | None = None, prog: str = "python -m openrlhf.knowrl.prompts validate") -> int:
    """CLI: validate a prompts folder and its seed tasks, print every problem and the summary table. Returns 1
    on errors (or on warnings with --strict), else 0."""
    ap = argparse.ArgumentParser(prog=prog, description="Check prompt templates and seed tasks; "
                                 "print every problem and a summary table.")
    ap.add_argument("dir", nargs="?", default=str(P.DEFAULT_PROMPTS_DIR),
                    help="prompts folder with introspection.md and classification.md (default: %(default)s)")
    ap.add_argument("--seeds", default=None, help="seed .jsonl file or folder (default: DIR)")
    ap.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    args = ap.parse_args(argv)
    report = validate_prompts_dir(args.dir, args.seeds)
    if report.problems:
        print(report.format_problems())
        print()
    print(report.format_table())
    print(f"\n{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    return 1 if report.errors or (args.strict and report.warnings) else 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m openrlhf.knowrl.validate_prompts"))
