"""On a toy whose densities are known, the MLP reaches the Neyman–Pearson optimum (the exact
likelihood ratio) and the projective likelihood does so only for independent variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.metrics import roc_auc_score

import heplearn
from heplearn.data import io

DIMENSIONS = 4


def gaussian_toy(n: int, seed: int, correlated: bool) -> tuple[ak.Array, np.ndarray]:
    rng = np.random.default_rng(seed)
    rho = 0.7 if correlated else 0.0
    signal_cov = np.full((DIMENSIONS, DIMENSIONS), rho) + (1 - rho) * np.eye(DIMENSIONS)
    background_cov = np.eye(DIMENSIONS) * 1.5 if correlated else np.diag([1.5, 0.8, 1.2, 1.0])
    signal = multivariate_normal(np.full(DIMENSIONS, 0.6), signal_cov)
    background = multivariate_normal(np.zeros(DIMENSIONS), background_cov)
    is_signal = rng.integers(0, 2, n).astype(bool)
    x = np.where(is_signal[:, None], signal.rvs(n, random_state=rng), background.rvs(n, random_state=rng))
    log_lr = signal.logpdf(x) - background.logpdf(x)
    fields = {f"x{i}": x[:, i].astype(np.float32) for i in range(DIMENSIONS)}
    fields |= {"label_signal": is_signal.astype(np.int64), "label_background": (~is_signal).astype(np.int64)}
    return ak.zip(fields, depth_limit=1), log_lr


def auc_gap(tmp_path: Path, name: str, correlated: bool, **settings: Any) -> tuple[float, float]:
    splits = {}
    for split, n, seed in (("train", 30_000, 1), ("val", 5_000, 2), ("test", 30_000, 3)):
        jets, log_lr = gaussian_toy(n, seed, correlated)
        splits[split] = (io.write(jets, tmp_path / f"{split}.parquet"), log_lr)
    data = heplearn.load_data_config(
        {
            "inputs": {"jet": {"variables": [f"x{i}" for i in range(DIMENSIONS)]}},
            "labels": {"classes": ["label_signal", "label_background"]},
        }
    )
    train, val, test = (heplearn.load_jets([splits[s][0]], data) for s in ("train", "val", "test"))
    probabilities = heplearn.Classifier(name, **settings).fit(train, val).predict_proba(test)
    is_signal = test.arrays.label == 0
    return roc_auc_score(is_signal, probabilities[:, 0]), roc_auc_score(is_signal, splits["test"][1])


def test_mlp_reaches_the_exact_likelihood_ratio(tmp_path: Path) -> None:
    model_auc, optimal_auc = auc_gap(
        tmp_path,
        "mlp",
        correlated=True,
        model={"hidden": [64, 64], "dropout": 0.0},
        training={"epochs": 12, "batch_size": 256, "learning_rate": 3e-3},
    )
    assert optimal_auc - 0.005 <= model_auc <= optimal_auc + 0.002, (model_auc, optimal_auc)


@pytest.mark.parametrize(("correlated", "max_gap", "min_gap"), [(False, 0.005, -1.0), (True, 1.0, 0.02)])
def test_projective_likelihood_is_optimal_only_for_independent_variables(
    tmp_path: Path, correlated: bool, max_gap: float, min_gap: float
) -> None:
    model_auc, optimal_auc = auc_gap(tmp_path, "likelihood", correlated=correlated)
    assert min_gap <= optimal_auc - model_auc <= max_gap, (model_auc, optimal_auc)
