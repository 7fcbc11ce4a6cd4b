"""The import graph of trainwell's own modules has no cycle, and no trainwell import hides in a
function except where it keeps `trainwell --help` (or `import trainwell`) fast.

Every module under src/trainwell is parsed with `ast`; module-level and function-level imports
both count, relative imports are resolved, and `from . import x` counts as importing the
submodule x when x is one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "trainwell"

CLI = "the command line imports only the standard library at start-up, so --help and argument errors answer at once"
LIGHT_CONFIG = "`import trainwell.config` stays free of torch and pandas (the CLI's torchrun check imports it)"
LIGHT_EXPERIMENTS = "`import trainwell.experiments` (compare --list, the CLI's compare) stays free of torch and pandas"

# (module, imported module): a trainwell import inside a function, allowed because it keeps start-up fast
LAZY_FOR_STARTUP: dict[tuple[str, str], str] = {
    ("trainwell.cli", "trainwell.advice"): CLI,
    ("trainwell.cli", "trainwell.check_io"): CLI,
    ("trainwell.cli", "trainwell.compose"): CLI,
    ("trainwell.cli", "trainwell.distributed"): CLI,
    ("trainwell.cli", "trainwell.experiments"): CLI,
    ("trainwell.cli", "trainwell.inference"): CLI,
    ("trainwell.cli", "trainwell.layers"): CLI,
    ("trainwell.cli", "trainwell.loop"): CLI,
    ("trainwell.cli", "trainwell.lr_find"): CLI,
    ("trainwell.cli", "trainwell.paths"): CLI,
    ("trainwell.cli", "trainwell.presets"): CLI,
    ("trainwell.cli", "trainwell.rundir"): CLI,
    ("trainwell.cli", "trainwell.runner"): CLI,
    ("trainwell.cli", "trainwell.tune"): CLI,
    ("trainwell.run_config", "trainwell.data"): LIGHT_CONFIG,
    ("trainwell.run_config", "trainwell.models"): LIGHT_CONFIG,
    ("trainwell.run_config", "trainwell.optim"): LIGHT_CONFIG,
    ("trainwell.run_config", "trainwell.schedules"): LIGHT_CONFIG,
    ("trainwell.experiments.compare", "trainwell.data"): LIGHT_EXPERIMENTS,
    ("trainwell.experiments.compare", "trainwell.experiments.baselines"): LIGHT_EXPERIMENTS + " and numpy",
    ("trainwell.experiments.baselines", "trainwell.data"): LIGHT_EXPERIMENTS,
    ("trainwell.experiments.baselines", "trainwell.data.delivery"): LIGHT_EXPERIMENTS,
    ("trainwell.experiments.runner", "trainwell.checkpoint"): LIGHT_EXPERIMENTS,
    ("trainwell.experiments.runner", "trainwell.runner"): LIGHT_EXPERIMENTS,
    ("trainwell.experiments.runner", "trainwell.lr_find"): LIGHT_EXPERIMENTS,
}

# function-level imports in modules another branch is rewriting (issue 16's split of runner.py); each
# becomes a module-level import when that work lands, and its entry is deleted then. Excluded from
# both checks until then.
TO_MOVE_AT_MERGE: dict[tuple[str, str], str] = {}


def module_names() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported trainwell module, imported inside a function) for each import statement."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, inside) for a in child.names if a.name.split(".")[0] == PACKAGE)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(module, is_package, child)
                if target.split(".")[0] != PACKAGE:
                    continue
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in known else target, inside))
            visit(child, inside)

    visit(tree, False)
    return [(target, inside) for target, inside in found if target in known and target != module]


def graph() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    known = module_names()
    edges: dict[str, set[str]] = {m: set() for m in known}
    lazy = []
    for module, path in known.items():
        for target, inside in imports_of(module, path, known):
            if (module, target) in TO_MOVE_AT_MERGE:
                continue
            edges[module].add(target)
            if inside:
                lazy.append((module, target))
    return edges, lazy


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle() -> None:
    edges, _ = graph()
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_function_level_imports_only_for_startup() -> None:
    _, lazy = graph()
    hidden = sorted(set(lazy) - set(LAZY_FOR_STARTUP))
    assert not hidden, "trainwell imports inside functions that are not lazy-for-startup: " + ", ".join(
        f"{a} -> {b}" for a, b in hidden
    )


def test_every_allowed_site_exists() -> None:
    """An allow-list entry whose import has gone must go too, so the list stays a true account."""
    known = module_names()
    found = {(m, t) for m, p in known.items() for t, inside in imports_of(m, p, known) if inside}
    stale = sorted(set(LAZY_FOR_STARTUP) - found)
    assert not stale, f"allowed lazy imports that no longer exist: {stale}"


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
