"""The layer rules of the architecture (flows -> tasks -> models/monitoring/serving; infra apart), read from the imports of the product code.

Every import counts, including those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# package -> top-level modules it must never import
FORBIDDEN = {
    "models": {"prefect", "flows", "tasks", "serving", "infra"},
    "monitoring": {"prefect", "flows", "tasks", "serving", "infra"},
    "serving": {"flows", "tasks", "prefect", "infra"},
    "tasks": {"flows"},
    "infra": {"flows", "tasks", "prefect", "mlflow", "torch", "lightning"},
    # flows wire tasks; the ML libraries stay below them (the CLI formats results only)
    "flows": {"numpy", "pandas", "torch", "lightning", "sklearn", "mlflow", "ray", "bentoml", "evidently"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_downward_only(package: str) -> None:
    assert _modules(package), f"{package}/ has no modules"
    violations = {
        str(path.relative_to(REPO)): sorted(_imports(path) & FORBIDDEN[package]) for path in _modules(package)
    }
    assert not {k: v for k, v in violations.items() if v}, f"{package}/ imports what its layer must not"


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    """The import reader finds lazy and dotted imports (else the rules above could not fail)."""
    module = tmp_path / "m.py"
    module.write_text(
        "import numpy.linalg\n\ndef f():\n    from prefect.flows import flow\n    return flow\n"
    )
    assert _imports(module) == {"numpy", "prefect"}


def test_training_flow_is_wiring_only() -> None:
    """The flow function reads top to bottom in under 50 statements, with no private helpers beside it.

    Statements, not lines: the formatter puts each argument of a long call on its own line."""
    path = REPO / "flows" / "training.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    assert [f.name for f in functions] == ["training_pipeline"]
    flow = functions[0]
    statements = sum(isinstance(node, ast.stmt) for node in ast.walk(flow)) - 1  # the def itself
    assert statements < 50


def test_flow_files_load_as_scripts_the_way_deployments_run_them() -> None:
    """Prefect runs a deployment's flow file as a script with its folder first on sys.path: a module in
    flows/ named like a top-level package (e.g. monitoring.py) would shadow it and crash every run."""
    from prefect.utilities.importtools import load_script_as_module

    top_level = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    flows = REPO / "flows"
    assert not {p.stem for p in flows.glob("*.py")} & top_level
    for script in ("training.py", "monitor.py"):
        load_script_as_module(str(flows / script))


PRODUCT_PACKAGES = ("flows", "tasks", "models", "monitoring", "serving", "infra")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, known: set[str]) -> set[str]:
    """The product modules ``path`` imports when it runs: every import, function-level ones included,
    except those under ``if TYPE_CHECKING:`` (never executed). ``from a.b import c`` counts as ``a.b.c``
    when that is a module, else as ``a.b`` (the module named, as import-linter counts: not the packages
    above it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in known else node.module)
    return names & known


def _import_graph() -> dict[str, set[str]]:
    paths = [p for package in PRODUCT_PACKAGES for p in _modules(package)]
    known = {_module_name(p) for p in paths}
    return {_module_name(p): _runtime_imports(p, known) - {_module_name(p)} for p in paths}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_product_modules() -> None:
    graph = _import_graph()
    assert len(graph) > 100 and graph["flows.training"], "the graph reader found too little"
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_a_cycle_and_ignores_type_checking(tmp_path: Path) -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import hidden\n"
        "def f():\n    from pkg.sub import thing\n"
    )
    assert _runtime_imports(module, {"pkg", "pkg.sub", "pkg.hidden"}) == {"pkg.sub"}


def test_monitoring_stays_free_of_torch_lightning_and_matplotlib() -> None:
    """The drift monitor runs without the training stack: importing every monitoring module (in a fresh
    interpreter) leaves torch, lightning and matplotlib unimported."""
    import subprocess
    import sys

    modules = sorted(_module_name(p) for p in _modules("monitoring"))
    heavy = ("torch", "lightning", "matplotlib")
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
