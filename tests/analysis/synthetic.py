"""A tiny analysis on synthetic JetClass-layout jets (no generator run): files, configs, known truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import yaml

from heplearn.data import io
from tests.conftest import make_jets

TRUE_FRACTION = 0.25
DATA_JETS = 1200


def _jets(n: int, seed: int, mass_shift: float = 0.0) -> ak.Array:
    """``make_jets`` with a soft-drop mass that overlaps between the classes (top 140 ± 25 GeV, QCD 100 ± 25)."""
    jets = make_jets(n, seed=seed, max_particles=20)
    rng = np.random.default_rng(seed + 100)
    is_top = ak.to_numpy(jets["label_top"]).astype(bool)
    mass = rng.normal(np.where(is_top, 140.0 + mass_shift, 100.0), 25.0).astype(np.float32)
    return ak.with_field(jets, mass, "jet_sdmass")


def _by_class(jets: ak.Array) -> dict[str, ak.Array]:
    is_top = ak.to_numpy(jets["label_top"]).astype(bool)
    return {"top": jets[is_top], "qcd": jets[~is_top]}


def write_analysis(folder: Path, **fit: Any) -> Path:
    """Write the samples, a data config, two model configs and the analysis config; returns the latter."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    training = _jets(600, seed=1)
    for split, rows in (("train", slice(0, 360)), ("val", slice(360, 480)), ("test", slice(480, 600))):
        files.setdefault("training", {})[split] = str(io.write(training[rows], folder / f"training_{split}.parquet"))
    for sample, seed, shift in (("templates", 2, 0.0), ("fsr_up", 3, 6.0)):
        for process, jets in _by_class(_jets(1200, seed, shift)).items():
            files.setdefault(sample, {})[process] = str(io.write(jets, folder / f"{sample}_{process}.parquet"))
    data = _by_class(_jets(3 * DATA_JETS, seed=4))
    n_top = round(TRUE_FRACTION * DATA_JETS)
    pseudo = {"top": data["top"][:n_top], "qcd": data["qcd"][: DATA_JETS - n_top]}
    for process, jets in pseudo.items():
        files.setdefault("pseudo_data", {})[process] = str(io.write(jets, folder / f"data_{process}.parquet"))
    (folder / "data.yaml").write_text(
        yaml.safe_dump(
            {
                "labels": {"classes": ["label_top", "label_qcd"]},
                "observers": ["jet_pt"],
                "inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles"]}},
            }
        )
    )
    (folder / "cuts.yaml").write_text(yaml.safe_dump({"data": "data.yaml", "model": {"name": "cuts", "n_bins": 10}}))
    (folder / "bdt.yaml").write_text(
        yaml.safe_dump(
            {
                "data": "data.yaml",
                "model": {
                    "name": "bdt",
                    "n_estimators": 20,
                    "max_depth": 2,
                    "learning_rate": 0.3,
                    "early_stopping_rounds": 5,
                },
            }
        )
    )
    config = {
        "name": "tiny",
        "output": str(folder / "analysis"),
        "samples": {
            "training": {"processes": ["top", "qcd"], "split": [0.6, 0.2, 0.2], "files": files["training"]},
            "templates": {"processes": ["top", "qcd"], "files": files["templates"]},
            "fsr_up": {"processes": ["top", "qcd"], "files": files["fsr_up"]},
        },
        "pseudo_data": {"fractions": {"top": TRUE_FRACTION, "qcd": 1 - TRUE_FRACTION}, "files": files["pseudo_data"]},
        "training": "training",
        "models": {"cuts": {"config": "cuts.yaml", "export": False}, "bdt": {"config": "bdt.yaml"}},
        "evaluation": {"overtraining": False},
        "fit": {
            "signal": "top",
            "background": "qcd",
            "templates": "templates",
            "systematics": {"fsr": "fsr_up"},
            "bins": 10,
            "limit": False,
            "scan_2d": False,
            "scan_points": 5,
            "unbinned": False,
            **fit,
        },
    }
    path = folder / "analysis.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_batch_profile(folder: Path) -> Path:
    """A Snakemake profile for a stand-in batch system: its "submit" starts the job script detached and
    prints a job id, as ``condor_submit``/``sbatch`` do, so each stage runs as Snakemake's cluster job
    (its job script, its finished/failed flag files), through the same executor interface as HTCondor's."""
    folder.mkdir(parents=True, exist_ok=True)
    submit = folder / "submit"
    submit.write_text(
        "#!/bin/sh\n# the job script is the last argument; the job id is the detached process id\n"
        'setsid sh "$@" </dev/null >/dev/null 2>&1 &\necho "$!"\n'
    )
    submit.chmod(0o755)
    (folder / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "executor": "cluster-generic",
                "cluster-generic-submit-cmd": str(submit),
                "jobs": 4,
                "latency-wait": 5,
                "max-status-checks-per-second": 10,
            }
        )
    )
    return folder
