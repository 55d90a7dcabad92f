"""Every subpackage's curated API: ``__all__`` is what ``dir()`` lists, every name resolves to what its
module defines, and importing the packages loads none of the heavy libraries behind them."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

PACKAGES = [
    "heplearn",
    "heplearn.data",
    "heplearn.features",
    "heplearn.models",
    "heplearn.serving",
    "heplearn.methods",
    "heplearn.evaluation",
    "heplearn.stats",
    "heplearn.training",
    "heplearn.generate",
    "heplearn.analysis",
]
HEAVY = ["torch", "onnxruntime", "fastapi", "xgboost", "pyhf", "snakemake", "matplotlib", "dask"]


@pytest.mark.parametrize("name", PACKAGES)
def test_the_api_is_what_dir_lists_and_every_name_resolves(name: str) -> None:
    package = importlib.import_module(name)
    public = [entry for entry in package.__all__ if entry != "__version__"]
    assert public and len(set(public)) == len(public)
    assert sorted(set(dir(package)) - {"__version__"}) == sorted(public)
    for entry in public:
        value = getattr(package, entry)
        if inspect.isfunction(value) or inspect.isclass(value):
            # defined in heplearn, not re-exported from a dependency
            assert value.__module__.startswith("heplearn."), (name, entry, value.__module__)
    with pytest.raises(AttributeError, match=rf"module '{name}' has no attribute 'no_such_name'"):
        _ = package.no_such_name


def test_the_stage_entry_points_are_reachable_from_heplearn() -> None:
    import heplearn

    for stage in ("train", "evaluate_run", "export_run", "predict_files", "serve", "fit_inputs", "run_analysis"):
        assert callable(getattr(heplearn, stage)), stage
    assert callable(heplearn.generate.generate)  # the subpackage holds the name


def test_importing_the_packages_loads_no_heavy_library() -> None:
    code = f"import sys\nimport {', '.join(PACKAGES)}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
