"""Small runs to evaluate: overlapping top / W / QCD jets in the JetClass layout, trained quickly.

The classes overlap on purpose (unlike ``tests.conftest.make_jets``), so that ROC curves, rejections
and the mass sculpting of a mass-using tagger are not degenerate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from heplearn.data import io
from heplearn.run_config import load_run_config
from heplearn.training.from_config import train

CLASS_MASS = {"top": (172.0, 25.0), "w": (85.0, 15.0)}  # (mean, width) of the soft-drop mass


def make_overlapping_jets(
    n: int, seed: int, classes: tuple[str, ...] = ("top", "qcd"), max_particles: int = 40
) -> ak.Array:
    """``n`` jets of ``classes`` (``qcd`` is the background) with overlapping features.

    Signal jets have a mass peak (70 % of them; the rest look like QCD), a few more and slightly
    wider-spread constituents; QCD has a falling mass spectrum. ``jet_phi`` carries no information.
    """
    rng = np.random.default_rng(seed)
    label = rng.integers(0, len(classes), n)
    is_qcd = np.array([classes[i] == "qcd" for i in label])
    counts = np.minimum(3 + rng.poisson(np.where(is_qcd, 12.0, 16.0)), max_particles)
    mass = 20 + rng.exponential(50.0, n)
    for index, name in enumerate(classes):
        if name in CLASS_MASS:
            peaked = (label == index) & (rng.random(n) < 0.7)
            mean, width = CLASS_MASS[name]
            mass[peaked] = rng.normal(mean, width, int(peaked.sum()))
    total = int(counts.sum())
    spread = np.repeat(0.15 + 0.04 * ~is_qcd, counts)
    deta, dphi = rng.normal(0, 1, total) * spread, rng.normal(0, 1, total) * spread
    pt = rng.exponential(20.0, total) + 0.5
    jet_eta, jet_phi = rng.uniform(-2, 2, n), rng.uniform(-np.pi, np.pi, n)
    eta, phi = np.repeat(jet_eta, counts) + deta, np.repeat(jet_phi, counts) + dphi
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2)

    def jagged(values: np.ndarray) -> ak.Array:
        return ak.unflatten(values.astype(np.float32), counts)

    fields: dict[str, Any] = {
        "part_px": jagged(px),
        "part_py": jagged(py),
        "part_pz": jagged(pz),
        "part_energy": jagged(energy),
        "part_deta": jagged(deta),
        "part_dphi": jagged(dphi),
        "jet_pt": rng.uniform(500, 1000, n).astype(np.float32),
        "jet_eta": jet_eta.astype(np.float32),
        "jet_phi": jet_phi.astype(np.float32),
        "jet_energy": ak.to_numpy(ak.sum(jagged(energy), axis=1)),
        "jet_nparticles": counts.astype(np.int64),
        "jet_sdmass": mass.astype(np.float32),
        "jet_mass": (mass + rng.exponential(10.0, n)).astype(np.float32),
    }
    # N-subjettiness: three-prong signal jets have a smaller τ3/τ2 than QCD (on average only)
    tau1 = rng.uniform(0.2, 0.5, n)
    tau2 = tau1 * rng.uniform(0.3, 0.9, n)
    tau3 = tau2 * np.clip(rng.normal(np.where(is_qcd, 0.75, 0.6), 0.12), 0.05, 1.0)
    fields |= {
        "jet_tau1": tau1.astype(np.float32),
        "jet_tau2": tau2.astype(np.float32),
        "jet_tau3": tau3.astype(np.float32),
        "jet_tau4": (0.8 * tau3).astype(np.float32),
    }
    for index, name in enumerate(classes):
        fields[f"label_{name}"] = (label == index).astype(np.int64)
    return ak.zip(fields, depth_limit=1)


def run_config(
    files: dict[str, str], model: dict[str, Any], classes: tuple[str, ...] = ("top", "qcd"), **training: Any
) -> dict[str, Any]:
    return {
        "data": {
            **files,
            "inputs": {
                "jet": {"variables": ["jet_sdmass", "jet_nparticles", "jet_phi"]},
                "particles": {"length": 24, "variables": ["part_deta", "part_dphi", "part_logpt"]},
            },
            "labels": {"classes": [f"label_{name}" for name in classes]},
            "observers": ["jet_pt"],
        },
        "model": model,
        "training": {"epochs": 1, "batch_size": 128, "seed": 3, **training},
    }


def write_splits(
    folder: Path, classes: tuple[str, ...], sizes: tuple[int, int, int] = (1500, 400, 1200), seed: int = 20
) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        split: str(io.write(make_overlapping_jets(n, seed + i, classes), folder / f"{split}.parquet"))
        for i, (split, n) in enumerate(zip(("train", "val", "test"), sizes, strict=True))
    }


@pytest.fixture(scope="session")
def tagging_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_splits(tmp_path_factory.mktemp("eval_data"), ("top", "qcd"))


@pytest.fixture(scope="session")
def tagging_runs(tmp_path_factory: pytest.TempPathFactory, tagging_files: dict[str, str]) -> dict[str, Path]:
    """A BDT on the jet features and a small particle-flow network on the constituents."""
    runs_dir = tmp_path_factory.mktemp("eval_runs")
    runs = {}
    # one XGBoost thread: on a busy machine OpenMP threads waiting for each other cost seconds
    models = {"bdt": {"name": "bdt", "n_estimators": 40, "n_jobs": 1}, "pfn": {"name": "pfn", "preset": "small"}}
    for name, model in models.items():
        config = load_run_config(run_config(tagging_files, model))
        runs[name] = train(config, name=name, runs_dir=runs_dir, progress=False).run_dir
    return runs


@pytest.fixture(scope="session")
def bdt_evaluation(tagging_runs: dict[str, Path], tagging_files: dict[str, str]) -> Any:
    """The full evaluation of the BDT (PNG and PDF, with the overtraining check) in its run folder."""
    from heplearn.evaluation.evaluate import EvaluationSettings, evaluate_run

    return evaluate_run(
        tagging_runs["bdt"],
        [tagging_files["test"]],
        train_files=[tagging_files["train"]],
        settings=EvaluationSettings(bootstrap=20, importance_repeats=1),
        progress=False,
    )
