"""Small trained and exported runs shared by the serving tests (trained once per session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from heplearn.data import io
from heplearn.run_config import load_run_config
from heplearn.serving.export import ExportResult, export_run
from heplearn.training.from_config import train
from tests.conftest import make_jets

LENGTH = 24
SELECTION = "jet_nparticles > 8"


def run_config(files: dict[str, str], model: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {
            **files,
            "selection": SELECTION,
            "inputs": {
                "particles": {"length": LENGTH, "variables": ["part_deta", "part_dphi", "part_logpt"]},
                "vectors": {
                    "length": LENGTH,
                    "variables": ["part_px", "part_py", "part_pz", "part_energy"],
                    "standardize": False,
                },
                "jet": {"variables": ["jet_sdmass", "jet_nparticles"]},
            },
            "labels": {"classes": ["label_top", "label_qcd"]},
            "observers": ["jet_pt", "jet_sdmass"],
        },
        "model": model,
        "training": {"epochs": 1, "batch_size": 128, "seed": 1},
    }


@pytest.fixture(scope="session")
def split_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("serving-data")
    return {
        split: str(io.write(make_jets(n, seed=seed), folder / f"{split}.parquet", row_group_size=150))
        for split, n, seed in (("train", 600, 21), ("val", 200, 22), ("test", 300, 23))
    }


def _train(files: dict[str, str], folder: Path, model: dict[str, Any]) -> Path:
    return train(load_run_config(run_config(files, model)), name=model["name"], runs_dir=folder, progress=False).run_dir


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving-runs")


@pytest.fixture(scope="session")
def pfn_export(split_files: dict[str, str], runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    """A PFN run exported to ONNX and into a Triton repository."""
    run = _train(split_files, runs_dir, {"name": "pfn", "preset": "small"})
    repository = tmp_path_factory.mktemp("triton")
    return export_run(run, triton_repository=repository)


@pytest.fixture(scope="session")
def mlp_export(split_files: dict[str, str], runs_dir: Path) -> ExportResult:
    run = _train(split_files, runs_dir, {"name": "mlp", "preset": "small"})
    return export_run(run)


@pytest.fixture(scope="session")
def cuts_run(split_files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(split_files, tmp_path_factory.mktemp("classical"), {"name": "cuts", "background_efficiencies": [0.3]})
