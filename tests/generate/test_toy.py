"""The Neyman–Pearson toy: the stored log-likelihood ratio equals the closed-form densities."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.generate.toy import generate_toy, write_toy


def independent_log_lr(x: np.ndarray) -> np.ndarray:
    """The toy's densities written out again from its documentation."""
    d = x.shape[1]
    distance = np.abs(np.arange(d)[:, None] - np.arange(d)[None, :])
    background = multivariate_normal(np.zeros(d), 0.3**distance).pdf(x)
    signal_covariance = 0.7 * 0.6**distance
    mean_one = np.full(d, 0.8)
    mean_two = 0.8 * np.array([(-1) ** i for i in range(d)], dtype=float)
    signal = 0.5 * multivariate_normal(mean_one, signal_covariance).pdf(x) + 0.5 * multivariate_normal(
        mean_two, signal_covariance
    ).pdf(x)
    return np.log(signal / background)


def features(data: ak.Array) -> np.ndarray:
    names = sorted((name for name in data.fields if name.startswith("x")), key=lambda name: int(name[1:]))
    return np.stack([ak.to_numpy(data[name]) for name in names], axis=1)


@pytest.mark.parametrize("dimensions", [1, 4, 7])
def test_stored_log_lr_equals_density_ratio(dimensions: int) -> None:
    data = generate_toy(2_000, dimensions, seed=3)
    x = features(data)
    assert x.shape == (2_000, dimensions)
    np.testing.assert_allclose(ak.to_numpy(data.aux_log_lr), independent_log_lr(x), rtol=1e-9, atol=1e-9)


def test_labels_balanced_and_informative() -> None:
    data = generate_toy(4_000, 4, seed=1)
    signal = ak.to_numpy(data.label_signal)
    assert signal.sum() == 2_000
    assert np.all(signal != ak.to_numpy(data.label_background))
    log_lr = ak.to_numpy(data.aux_log_lr)
    assert log_lr[signal].mean() > log_lr[~signal].mean() + 1.0


def test_samples_follow_the_densities() -> None:
    # Check sampling against the densities: the signal mean is 0.8 (mixture of ±0.8 on odd axes).
    data = generate_toy(20_000, 2, seed=4)
    x = features(data)
    signal = ak.to_numpy(data.label_signal)
    np.testing.assert_allclose(x[signal].mean(axis=0), [0.8, 0.0], atol=0.04)
    np.testing.assert_allclose(np.cov(x[~signal].T), [[1.0, 0.3], [0.3, 1.0]], atol=0.05)


def test_reproducible() -> None:
    assert ak.array_equal(generate_toy(100, 3, seed=9), generate_toy(100, 3, seed=9))
    assert not ak.array_equal(generate_toy(100, 3, seed=9), generate_toy(100, 3, seed=10))


def test_write_toy(tmp_path: Path) -> None:
    paths = write_toy(tmp_path, 1_000, 3, seed=2)
    assert set(paths) == {"train", "val", "test"}
    train = io.open_source(paths["train"])
    assert train.num_entries == 800
    assert train.provenance()["dimensions"] == 3
    data = train.read()
    np.testing.assert_allclose(ak.to_numpy(data.aux_log_lr), independent_log_lr(features(data)), rtol=1e-9)


@pytest.mark.parametrize(("events", "dimensions"), [(1, 4), (100, 0), (100, 1000)])
def test_bad_toy_arguments(events: int, dimensions: int) -> None:
    with pytest.raises(ConfigError):
        generate_toy(events, dimensions)
