"""The normalized autoencoder on the toy where a plain autoencoder fails (Dillon et al., arXiv:2206.14225).

Background lies on a ring of radius 1 in the first two of eight coordinates, with N(0, 0.1²) noise
in all eight; the anomaly is a low-complexity cloud near zero, N(0, 0.05²). The inputs are not
standardised (standardising would blow the noise up to the ring's size). An autoencoder with a
two-dimensional latent learns (nearly) the identity on the ring's plane and cannot rebuild the
noise: it rebuilds the anomaly, which sits in that plane, better than the background it was
trained on. The NAE raises the energy wherever its Langevin samples find a low error that the data
do not populate, the ring's inside among them, and ranks the anomaly anomalous.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from heplearn.data import io
from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError
from heplearn.run_config import load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

DIMENSIONS = 8


def write_table(path: Path, x: np.ndarray) -> Path:
    import awkward as ak

    return io.write(ak.zip({f"x{i}": np.ascontiguousarray(x[:, i]) for i in range(x.shape[1])}), path)


def ring(n: int, rng: np.random.Generator) -> np.ndarray:
    """Background: the unit circle in (x0, x1), N(0, 0.1²) noise in every coordinate."""
    angle = rng.uniform(0, 2 * np.pi, n)
    x = 0.1 * rng.normal(size=(n, DIMENSIONS))
    x[:, 0] += np.cos(angle)
    x[:, 1] += np.sin(angle)
    return x.astype(np.float32)


def near_zero(n: int, rng: np.random.Generator) -> np.ndarray:
    """The anomaly: a low-complexity cloud N(0, 0.05²) in every coordinate."""
    return (0.05 * rng.normal(size=(n, DIMENSIONS))).astype(np.float32)


def config(train_file: Path, step: dict[str, object] | None) -> dict[str, object]:
    training: dict[str, object] = {
        "epochs": 9,
        "batch_size": 128,
        "seed": 2,
        "threads": 1,
        "learning_rate": 3e-3,
        "early_stopping_patience": None,
        "weight_decay": 0.0,
        "schedule": "constant",
        "warmup_fraction": 0.0,
        "gradient_clip": None,
    }
    if step:
        training["step"] = step
    return {
        "data": {
            "train": str(train_file),
            "labels": {"type": "none"},
            "inputs": {"jet": {"variables": [f"x{i}" for i in range(DIMENSIONS)], "standardize": False}},
        },
        "model": {"name": "autoencoder", "hidden": [32, 32], "latent": 2},
        "training": training,
    }


def auc(run: Path, background: np.ndarray, anomaly: np.ndarray) -> tuple[float, float, float]:
    """AUC of the anomaly against background, and the two mean scores."""
    model = TrainedModel.load(run)
    scores = []
    for x in (background, anomaly):
        arrays = JetArrays({"jet": x}, None, np.zeros(len(x), np.int64), np.ones(len(x), np.float32))
        scores.append(model.predict(arrays)[:, 0])
    value = roc_auc_score(np.r_[np.zeros(len(background)), np.ones(len(anomaly))], np.r_[scores[0], scores[1]])
    return float(value), float(scores[0].mean()), float(scores[1].mean())


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    folder = tmp_path_factory.mktemp("nae")
    rng = np.random.default_rng(4)
    return write_table(folder / "train.parquet", ring(2000, rng)), ring(1000, rng), near_zero(1000, rng)


def test_a_plain_autoencoder_rebuilds_the_simple_anomaly_better_than_background(
    toy: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    train_file, background, anomaly = toy
    plain = config(train_file, None)
    plain["training"]["epochs"] = 5  # type: ignore[index]
    run = train(load_run_config(plain), name="ae", runs_dir=tmp_path, progress=False).run_dir
    value, background_mse, anomaly_mse = auc(run, background, anomaly)
    assert anomaly_mse < background_mse and value < 0.5, (value, background_mse, anomaly_mse)


def test_the_normalized_autoencoder_ranks_it_anomalous(
    toy: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    train_file, background, anomaly = toy
    step = {
        "name": "normalized_autoencoder",
        "pretrain_steps": 5 * 16,
        "temperature": 0.03,
        "x_step_size": 0.01,
        "x_noise": 0.005,
        "x_steps": 10,
        "latent_steps": 5,
        "gamma": 1.0,
    }
    run = train(load_run_config(config(train_file, step)), name="nae", runs_dir=tmp_path, progress=False).run_dir
    value, background_mse, anomaly_mse = auc(run, background, anomaly)
    assert value > 0.8, (value, background_mse, anomaly_mse)


def test_the_step_needs_a_reconstruction_task(tmp_path: Path) -> None:
    bad = config(tmp_path / "x.parquet", {"name": "normalized_autoencoder", "init": "latent"})
    bad["model"] = {"name": "mlp"}
    bad["data"]["labels"] = {"type": "regression", "targets": {"y": "x0"}}  # type: ignore[index]
    rng = np.random.default_rng(0)
    write_table(tmp_path / "x.parquet", ring(300, rng))
    with pytest.raises(ConfigError, match="normalized_autoencoder trains an autoencoder"):
        train(load_run_config(bad), runs_dir=tmp_path / "runs", progress=False)
    with pytest.raises(ConfigError, match="temperature"):
        load_run_config(config(tmp_path / "x.parquet", {"name": "normalized_autoencoder", "temperature": 0}))
