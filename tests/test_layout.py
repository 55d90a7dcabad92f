"""The package's layout: imports between subpackages run one way, and each concept has its own module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "heplearn"
# (lower, upper): nothing in ``lower`` imports ``upper`` (``upper`` builds on ``lower``)
LAYERS = [
    ("features", "heplearn.data"),
    ("expressions.py", "heplearn.data"),
    ("expressions.py", "heplearn.features"),
    ("data/jets.py", "heplearn.data.transform"),  # the containers know nothing of how files become jets
    ("data/handover.py", "heplearn.data.stream"),  # the hand-over moves any padded jets, not the stream's alone
    ("data/in_memory.py", "heplearn.data.stream"),  # in memory and streamed are two ways, side by side
    ("serving/repository.py", "heplearn.serving.server"),  # the models, whatever the transport
    ("serving/repository.py", "fastapi"),
    ("serving/grpc_service.py", "heplearn.serving.server"),  # gRPC shares the repository, not the HTTP app
]


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


def defined_names(path: Path) -> set[str]:
    """The names a module defines at its top level (classes, functions, assignments)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


# One concept per module: each name is defined in its concept's module, and nowhere else in the
# package (merging the modules back, or a second copy, fails).
CONCEPTS = {
    "data/jets.py": {"JetArrays", "RaggedJets", "observer_key", "OBSERVER_PREFIX", "particle_rows"},
    "data/transform.py": {"ChunkTransformer", "Scaler", "NonFiniteError", "descending_order"},
    "data/pieces.py": {"Piece", "plan_pieces", "shard_pieces", "PieceReader"},
    "data/batches.py": {"to_batch", "batch_observers", "trim_padding", "PARTICLE_AXIS_KEYS"},
    "data/in_memory.py": {"InMemoryJets", "load_arrays", "load_with_variations", "fit_preprocessing"},
    "data/stream.py": {"JetStream"},
    "data/handover.py": {"Handover", "SharedBlock", "HANDOVER_ALIGNMENT"},
    "data/stream_loader.py": {"StreamLoader", "stream_loader"},
    "models/part_export.py": {
        "Packing",
        "biased_attention",
        "fused_attention",
        "full_pair_bias",
        "folded_pair_bias",
        "exported_attention",
        "attend_packed",
        "forward_exported",
    },
    "models/particlenet_export.py": {"gather_neighbours", "aggregate_padded", "forward_folded"},
    "serving/repository.py": {"ServedModel", "load_models", "find_model", "choose_engines"},
}


@pytest.fixture(scope="module")
def definitions() -> dict[str, set[str]]:
    """Every top-level name of the package and the modules that define it."""
    where: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        for name in defined_names(path):
            where.setdefault(name, set()).add(str(path.relative_to(SOURCE)))
    return where


@pytest.mark.parametrize("module", sorted(CONCEPTS))
def test_each_concept_lives_in_its_own_module(module: str, definitions: dict[str, set[str]]) -> None:
    misplaced = {name: sorted(definitions.get(name, ())) for name in CONCEPTS[module]}
    misplaced = {name: paths for name, paths in misplaced.items() if paths != [module]}
    assert not misplaced, f"defined elsewhere than {module}: {misplaced}"


# The export-only paths as they were once written inside the paper's models (as methods).
EXPORT_ONLY = {
    "models/part.py": {"_forward_exported", "_folded_matrix", "_full_matrix", "_exported", "attend_packed"},
    "models/particlenet.py": {"_forward_folded", "_aggregate_padded", "gather_neighbours"},
}


@pytest.mark.parametrize("module", sorted(EXPORT_ONLY))
def test_the_papers_models_hold_no_export_only_path(module: str) -> None:
    """The models read as the paper's: their export paths live in ``*_export.py`` and are only called."""
    functions = {
        node.name
        for node in ast.walk(ast.parse((SOURCE / module).read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assert not functions & EXPORT_ONLY[module]
    export_module = Path(module).stem + "_export"
    assert f"{export_module}." in (SOURCE / module).read_text(), f"{module} does not dispatch to {export_module}"
