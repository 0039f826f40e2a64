"""The import graph of our own code (openrlhf/, evaluation/) goes one way.

Every ``.py`` file under openrlhf/ and evaluation/ is parsed with ``ast`` (nothing is imported),
and each ``import`` / ``from ... import`` of a project module becomes an edge, whether it sits at
module level or inside a function. ``from package import name`` counts as an import of the
submodule ``package.name`` when that is a module, else of ``package``. Imports under a module's
``if __name__ == "__main__":`` belong to the script ``python -m`` runs, not to the module (that
code never runs on import): they are edges from a node ``<module>:__main__`` that nothing imports.

Rules enforced:

(a) no cycle among project modules;
(b) no import of a project module inside a function, except the few in ``ALLOWED_IN_FUNCTION``,
    each with its reason: only where a module-level import would more than double the time of a
    light command (``--help``, a usage error) that never needs what it loads. Third-party
    packages (ray, vllm, torch, deepspeed, transformers) may be imported inside functions for the
    same reason;
(c) the layers, lowest first: ``openrlhf.utils`` -> ``openrlhf.algorithms`` -> {``openrlhf.trainer``
    (the model workers and the weight transport), ``openrlhf.rollout`` (the engines)} ->
    ``openrlhf.knowrl`` (the method and its controller) -> ``openrlhf.cli``. A module imports only
    from its own layer or below:
      - utils imports nothing of algorithms, trainer, rollout, knowrl, cli;
      - algorithms nothing of trainer, rollout, knowrl, cli;
      - trainer nothing of rollout, knowrl, cli;
      - rollout nothing of knowrl or cli, and of trainer only the weight transport
        (``trainer.weight_sync``, ``trainer.rendezvous``), never the DeepSpeed workers;
      - nothing imports ``openrlhf.cli`` (the top), and nothing in openrlhf imports evaluation
        (the evaluation app sits on the library);
(d) evaluation's in-process engine does not load the training stack (the DeepSpeed worker).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("openrlhf", "evaluation")

# (importing module, imported module) pairs allowed inside a function, each with its reason.
ALLOWED_IN_FUNCTION: dict[tuple[str, str], str] = {
    # The engine module brings torch and Ray: at module level it took `run_eval.py --help` (and its
    # usage errors, and --rescore, which loads no model) from 2.1 s to 4.9 s of CPU. Only
    # prepare_env and Classifier.start, which run just before a model loads, import it.
    ("evaluation.engine", "openrlhf.rollout.vllm_engine"): "keeps run_eval's light paths free of torch and Ray",
}

# layer prefix -> prefixes it must not import
FORBIDDEN = {
    "openrlhf.utils": ("openrlhf.algorithms", "openrlhf.trainer", "openrlhf.rollout", "openrlhf.knowrl", "openrlhf.cli"),
    "openrlhf.algorithms": ("openrlhf.trainer", "openrlhf.rollout", "openrlhf.knowrl", "openrlhf.cli"),
    "openrlhf.trainer": ("openrlhf.rollout", "openrlhf.knowrl", "openrlhf.cli"),
    "openrlhf.rollout": ("openrlhf.knowrl", "openrlhf.cli"),
    "openrlhf": ("openrlhf.cli", "evaluation"),
    "evaluation": ("openrlhf.cli",),
}
# what the rollout layer may take from trainer: the weight transport, not the DeepSpeed workers
ROLLOUT_MAY_IMPORT_FROM_TRAINER = ("openrlhf.trainer.weight_sync", "openrlhf.trainer.rendezvous")
# the training stack evaluation's engine must not load
TRAINING_STACK = ("openrlhf.trainer.model_worker", "openrlhf.trainer.actor_group", "openrlhf.trainer.strategy",
                  "openrlhf.knowrl.loop", "deepspeed")


def _in_prefix(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the project packages."""
    mods = {}
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            parts = list(f.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def _is_main_guard(node: ast.AST) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    t = node.test
    return (isinstance(t.left, ast.Name) and t.left.id == "__name__" and len(t.comparators) == 1
            and isinstance(t.comparators[0], ast.Constant) and t.comparators[0].value == "__main__")


def import_edges(mods: dict[str, Path]) -> list[tuple[str, str, bool, int]]:
    """(importer, imported, inside_a_function, line) for every import of a project module."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges = []
    for module, path in mods.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]

        def visit(node: ast.AST, source: str, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import):
                    targets = [resolve(a.name) for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        parts = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                        base = ".".join(parts + ([base] if base else []))
                    targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else resolve(base)
                               for a in child.names]
                else:
                    targets = []
                for target in dict.fromkeys(t for t in targets if t):
                    edges.append((source, target, in_function, child.lineno))
                if not in_function and source == module and _is_main_guard(child):
                    visit(child, f"{module}:__main__", False)
                    continue
                visit(child, source, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                       ast.Lambda)))

        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), module, False)
    return edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def dfs(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = dfs(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = dfs(v)
            if found:
                return found
    return None


MODS = project_modules()
EDGES = import_edges(MODS)


def test_the_graph_sees_the_project():
    # guards against a parser that silently finds nothing
    assert {"openrlhf.knowrl.prompts", "openrlhf.rollout.vllm_engine", "evaluation.run_eval"} <= set(MODS)
    assert ("openrlhf.knowrl.validate_prompts", "openrlhf.knowrl.prompts") in {(a, b) for a, b, _, _ in EDGES}
    assert ("openrlhf.knowrl.prompts:__main__", "openrlhf.knowrl.validate_prompts") in {(a, b) for a, b, _, _ in EDGES}


def test_no_import_cycle():
    graph: dict[str, set[str]] = {}
    for a, b, _, _ in EDGES:
        if a != b:
            graph.setdefault(a, set()).add(b)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_project_import_inside_a_function():
    found = [f"{MODS[a.split(':')[0]].relative_to(REPO)}:{line} imports {b}" for a, b, inside, line in EDGES
             if inside and (a, b) not in ALLOWED_IN_FUNCTION]
    assert not found, "import these at module top:\n" + "\n".join(found)
    stale = set(ALLOWED_IN_FUNCTION) - {(a, b) for a, b, inside, _ in EDGES if inside}
    assert not stale, f"ALLOWED_IN_FUNCTION lists imports that are gone: {stale}"


def test_layers_go_one_way():
    wrong = []
    for a, b, _, line in EDGES:
        importer = a.split(":")[0]
        for layer, forbidden in FORBIDDEN.items():
            if _in_prefix(importer, layer) and any(_in_prefix(b, f) and not _in_prefix(importer, f) for f in forbidden):
                wrong.append(f"{MODS[importer].relative_to(REPO)}:{line} ({layer}) imports {b}")
        if (_in_prefix(importer, "openrlhf.rollout") and _in_prefix(b, "openrlhf.trainer")
                and b not in ROLLOUT_MAY_IMPORT_FROM_TRAINER):
            wrong.append(f"{MODS[importer].relative_to(REPO)}:{line} (rollout) imports {b}: "
                         f"only the weight transport {ROLLOUT_MAY_IMPORT_FROM_TRAINER} is below it")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_evaluation_engine_does_not_reach_the_training_stack():
    graph: dict[str, set[str]] = {}
    for a, b, _, _ in EDGES:
        graph.setdefault(a, set()).add(b)
    seen, todo = set(), ["evaluation.engine"]
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo += graph.get(v, ())
    assert "openrlhf.rollout.vllm_engine" in seen
    assert not seen & set(TRAINING_STACK), sorted(seen & set(TRAINING_STACK))


def test_evaluation_engine_imports_without_the_deepspeed_worker():
    # what the in-process engine imports, in a fresh interpreter: vLLM's engine actor, no DeepSpeed
    code = ("import sys, evaluation.engine, openrlhf.rollout.vllm_engine; "
            f"print(sorted(m for m in {TRAINING_STACK!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout
