"""A regression that knows its resolution: Huber on the central value, pinball on q25 and q75."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplearn.data import io
from heplearn.run_config import load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

QUARTILE = 0.6745  # Φ⁻¹(0.75): the quartiles of N(μ, σ) are μ ± 0.6745 σ


def sigma_of(x: np.ndarray) -> np.ndarray:
    return 0.3 + 0.2 * x**2


def heteroscedastic(path: Path, n: int, seed: int) -> Path:
    """y ~ N(μ(x), σ(x)) with μ = 2x and σ = 0.3 + 0.2x², x ~ U(−2, 2)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    y = 2 * x + sigma_of(x) * rng.normal(size=n)
    return io.write(ak.zip({"jet_x": x.astype(np.float32), "jet_y": y.astype(np.float32)}), path)


def test_quartiles_cover_their_levels(tmp_path: Path) -> None:
    train_file = heteroscedastic(tmp_path / "train.parquet", 40_000, 1)
    test_file = heteroscedastic(tmp_path / "test.parquet", 20_000, 2)
    config = load_run_config(
        {
            "data": {
                "train": str(train_file),
                "val": str(test_file),
                "inputs": {"jet": {"variables": ["jet_x"]}},
                "labels": {"type": "regression", "targets": {"y": "jet_y"}},
            },
            "model": {"name": "mlp", "preset": "small", "dropout": 0.0, "batch_norm": False},
            "training": {
                "epochs": 8,
                "batch_size": 256,
                "seed": 0,
                "threads": 1,
                "learning_rate": 3e-3,
                "weight_decay": 0.0,
                "quantiles": [0.25, 0.5, 0.75],
                "loss": "huber_quantiles",
            },
        }
    )
    result = train(config, name="calibrated", runs_dir=tmp_path / "runs", progress=False)
    model = TrainedModel.load(result.run_dir)
    assert model.output_names == ["output_y_q0.25", "output_y_q0.5", "output_y_q0.75"]
    predicted, arrays = model.predict_files([test_file])
    x, y = arrays.inputs["jet"][:, 0], arrays.label[:, 0]
    low, central, high = predicted.T
    coverage_low, coverage_high = np.mean(y < low), np.mean(y < high)
    print(f"coverage q25 {coverage_low:.4f}, q75 {coverage_high:.4f}")
    assert coverage_low == pytest.approx(0.25, abs=0.015)
    assert coverage_high == pytest.approx(0.75, abs=0.015)
    sigma = sigma_of(x)
    inner = np.abs(x) < 1.8  # away from the edges of the training range
    np.testing.assert_allclose(np.median((central - 2 * x)[inner]), 0.0, atol=0.05)
    resolution = (high - low) / 2
    assert np.median((resolution / (QUARTILE * sigma))[inner]) == pytest.approx(1.0, abs=0.08)
    # the resolution follows σ(x), which is 2.5 times wider at |x| = 1.5 than at x = 0
    for centre in (0.0, 0.75, 1.5):
        near = np.abs(np.abs(x) - centre) < 0.1
        assert np.median(resolution[near]) == pytest.approx(QUARTILE * (0.3 + 0.2 * centre**2), rel=0.15)
