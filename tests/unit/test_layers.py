"""The layer rules of DESIGN.md, read from the imports of the product code.

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
