"""The package's layering: imports between subpackages run one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "heplearn"
# (lower, upper): nothing in ``lower`` imports ``upper`` (``upper`` builds on ``lower``)
LAYERS = [("features", "heplearn.data"), ("expressions.py", "heplearn.data"), ("expressions.py", "heplearn.features")]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (at any depth of the file: lazy imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize(("lower", "upper"), LAYERS)
def test_imports_run_one_way(lower: str, upper: str) -> None:
    files = [SOURCE / lower] if lower.endswith(".py") else sorted((SOURCE / lower).rglob("*.py"))
    offending = {
        f"{path.relative_to(SOURCE)} imports {name}"
        for path in files
        for name in imported_modules(path)
        if name == upper or name.startswith(f"{upper}.")
    }
    assert not offending, sorted(offending)
