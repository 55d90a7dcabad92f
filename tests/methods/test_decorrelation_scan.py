"""`heplearn decorrelate`: the λ scan trades background rejection for less mass sculpting."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import yaml

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.methods.decorrelation_scan import decorrelated_config, decorrelation_scan
from heplearn.run_config import load_run_config
from tests.conftest import make_jets
from tests.test_cli import run


def overlapping_jets(n: int, seed: int) -> ak.Array:
    """The test jets with a falling QCD mass spectrum under the top peak (they overlap, as in data)."""
    jets = make_jets(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    is_top = ak.to_numpy(jets["label_top"]) == 1
    mass = np.where(is_top, rng.normal(170, 25, n), 30 + rng.exponential(70, n))
    return ak.with_field(jets, mass.astype(np.float32), "jet_sdmass")


def write_config(folder: Path) -> Path:
    files = {
        split: io.write(overlapping_jets(n, seed), folder / f"{split}.parquet")
        for split, n, seed in (("train", 2500, 41), ("val", 800, 42), ("test", 1500, 43))
    }
    config = {
        "data": {
            **{split: str(path) for split, path in files.items()},
            "inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles"]}},
            "labels": {"classes": ["label_top", "label_qcd"]},
        },
        "model": {"name": "mlp", "preset": "small"},
        "training": {
            "epochs": 5,
            "batch_size": 256,
            "seed": 1,
            "threads": 1,
            "learning_rate": 3e-3,
            "early_stopping_patience": None,
        },
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_scan_trades_rejection_for_less_sculpting(tmp_path: Path) -> None:
    config = load_run_config(write_config(tmp_path))
    scan = decorrelation_scan(config, [0.0, 30.0], "jet_sdmass", "disco", tmp_path / "scan", progress=False)
    plain, decorrelated = scan.points
    assert decorrelated.inverse_jsd > 2 * plain.inverse_jsd  # sculpts less
    assert decorrelated.rejection < plain.rejection  # and rejects less: the mass was the best input
    assert scan.window.inverse_jsd < decorrelated.inverse_jsd  # a mass window sculpts by construction
    saved = json.loads((tmp_path / "scan" / "scan.json").read_text())
    assert [point["strength"] for point in saved["points"]] == [0.0, 30.0]
    assert all(path.is_file() for path in scan.figures)


def test_bad_scans_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = write_config(tmp_path)
    config = load_run_config(config_path)
    with pytest.raises(ConfigError, match="must be 0 or more"):
        decorrelated_config(config, "disco", "jet_sdmass", -1.0)
    with pytest.raises(ConfigError, match="choose one of disco, adversarial"):
        decorrelated_config(config, "planing", "jet_sdmass", 1.0)
    code, _, err = run(
        [
            "decorrelate",
            "-c",
            str(config_path),
            "--observer",
            "jet_sdmass",
            "--lambdas",
            "0,-3",
            "-o",
            str(tmp_path / "out"),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 2 and "must be 0 or more" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before anything is trained or written
