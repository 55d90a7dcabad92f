"""ABCDisCo (arXiv:2007.14400): two taggers made independent on the background close the ABCD estimate."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from heplearn.data import io
from heplearn.data.dataset import to_batch
from heplearn.errors import DataError
from heplearn.methods.decorrelation import second_network
from heplearn.run_config import load_run_config
from heplearn.stats.abcd import abcd_estimate, region_counts
from heplearn.trained import TrainedModel
from heplearn.training.run import train


def gaussian_events(path: Path, n: int, seed: int) -> Path:
    """Background N(0, I₄), signal N(1.2·(1, 1, 1, 1), I₄): every feature separates."""
    rng = np.random.default_rng(seed)
    signal = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4)) + 1.2 * signal[:, None]
    fields = {f"jet_x{i}": x[:, i].astype(np.float32) for i in range(4)}
    return io.write(ak.zip({**fields, "label_sig": signal.astype(np.int64),
                            "label_bkg": (1 - signal).astype(np.int64)}), path)


def test_double_disco_closes_the_abcd_estimate(tmp_path: Path) -> None:
    train_file = gaussian_events(tmp_path / "train.parquet", 8000, 1)
    test_file = gaussian_events(tmp_path / "test.parquet", 8000, 2)
    pulls = {}
    for strength in (0.0, 100.0):
        config = load_run_config({
            "data": {"train": str(train_file), "inputs": {"jet": {"variables": [f"jet_x{i}" for i in range(4)]}},
                     "labels": {"classes": ["label_sig", "label_bkg"]}},
            "model": {"name": "mlp", "preset": "small", "dropout": 0.0},
            "training": {"epochs": 5, "batch_size": 512, "seed": 2, "threads": 1, "learning_rate": 3e-3,
                         "step": {"name": "double_disco", "strength": strength}},
        })
        result = train(config, name=f"double{strength:g}", runs_dir=tmp_path / "runs", progress=False)
        assert (result.run_dir / "second.safetensors").is_file()
        assert {"train_loss_second", "train_disco_pair"} <= set(result.history[-1])
        first = TrainedModel.load(result.run_dir)
        scores, arrays = first.predict_files([test_file])
        second = second_network(result.run_dir)
        with torch.inference_mode():
            second_scores = torch.softmax(second(to_batch(first.preprocessing.apply(arrays))), -1)[:, 0].numpy()
        background = arrays.label == 1
        f, g = scores[background, 0], second_scores[background]
        estimate = abcd_estimate(region_counts(f, g, float(np.median(f)), float(np.median(g))))
        pulls[strength] = estimate.closure_pull
    assert pulls[0.0] < -10  # two taggers of the same inputs: B and C nearly empty, N_A underestimated
    assert abs(pulls[100.0]) < 3  # decorrelated on the background: the estimate closes


def test_a_run_without_a_second_network_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="double_disco"):
        second_network(tmp_path)
