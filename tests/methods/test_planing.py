"""Planing (arXiv:1511.05190): weights that make every class's mass distribution flat."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.methods.decorrelation import planing_histogram
from heplearn.run_config import load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train


def masses(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)  # 0: top (peaked), 1: QCD (falling)
    return np.where(labels == 0, rng.normal(170, 20, n), 30 + rng.exponential(60, n)), labels


def test_planed_histograms_are_flat_and_keep_each_class_total() -> None:
    values, labels = masses(200_000, 1)
    weights = np.random.default_rng(2).uniform(0.5, 1.5, len(values))
    histogram = planing_histogram(values, labels, weights, bins=20, value_range=(50, 250))
    planed = weights * histogram.weights(values, labels)
    clipped = np.clip(values, 50, 250)  # outside the range, events count in the edge bins
    for label in (0, 1):
        selected = labels == label
        counts, _ = np.histogram(clipped[selected], histogram.edges, weights=planed[selected])
        filled = counts > 0
        assert filled.sum() >= 14  # the top peak leaves the lowest bins empty
        expected = planed[selected].sum() / filled.sum()
        np.testing.assert_allclose(counts[filled], expected, rtol=1e-9)  # flat, by construction
        assert planed[selected].sum() == pytest.approx(weights[selected].sum(), rel=1e-9)


def test_only_the_chosen_classes_are_planed() -> None:
    values, labels = masses(10_000, 3)
    histogram = planing_histogram(values, labels, bins=10, planed_classes=[1])
    assert np.all(histogram.factors[0] == 1.0) and not np.all(histogram.factors[1] == 1.0)
    with pytest.raises(ConfigError, match="NaN"):
        planing_histogram(np.array([np.nan, 1.0]), np.array([0, 1]))


def test_a_tagger_on_the_planed_mass_alone_learns_nothing(tmp_path: Path) -> None:
    values, labels = masses(6000, 4)
    table = ak.zip(
        {
            "jet_sdmass": values.astype(np.float32),
            "label_top": (labels == 0).astype(np.int64),
            "label_qcd": (labels == 1).astype(np.int64),
        }
    )
    train_file = io.write(table, tmp_path / "train.parquet")
    spread = {}
    for name, loss in (
        ("plain", "cross_entropy"),
        ("planed", [{"name": "planed_cross_entropy", "on": "jet_sdmass", "bins": 30, "range": [40.0, 260.0]}]),
    ):
        config = load_run_config(
            {
                "data": {
                    "train": str(train_file),
                    "observers": ["jet_sdmass"],
                    "inputs": {"jet": {"variables": ["jet_sdmass"]}},
                    "labels": {"classes": ["label_top", "label_qcd"]},
                },
                "model": {"name": "mlp", "preset": "small", "dropout": 0.0},
                "training": {"epochs": 4, "batch_size": 128, "seed": 1, "threads": 1, "loss": loss},
            }
        )
        result = train(config, name=name, runs_dir=tmp_path / "runs", progress=False)
        scores, arrays = TrainedModel.load(result.run_dir).predict_files([train_file])
        # where both classes populate the mass (planing cannot flatten a class where it has no events)
        central = (arrays.observers["jet_sdmass"] > 130) & (arrays.observers["jet_sdmass"] < 210)
        spread[name] = float(np.percentile(np.abs(scores[central, 0] - 0.5), 90))
    assert spread["plain"] > 0.25  # the mass alone separates top from QCD (measured: 0.35)
    assert spread["planed"] < 0.1  # planed, it does not: the score stays near 1/2 (0.05)
