"""The ABCD estimate against the correlated-Gaussian closure formula and the counting statistics."""

from __future__ import annotations

import numpy as np
import pytest

from heplearn.errors import DataError
from heplearn.stats.abcd import abcd_estimate, gaussian_closure, region_counts


@pytest.mark.parametrize(("rho", "expected"), [(0.0, 1.0), (0.1, 1.291), (0.3, 2.194)])
def test_gaussian_closure_formula(rho: float, expected: float) -> None:
    assert gaussian_closure(rho) == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize("rho", [0.0, 0.1, 0.3])
def test_correlated_background_fails_closure_as_predicted(rho: float) -> None:
    rng = np.random.default_rng(int(rho * 10))
    n = 400_000
    u = rng.normal(size=n)
    v = rho * u + np.sqrt(1 - rho**2) * rng.normal(size=n)
    estimate = abcd_estimate(region_counts(u, v, 0.0, 0.0))
    # N_A N_D / (N_B N_C) = N_A / N_A^pred = 1 / closure
    assert 1 / estimate.closure == pytest.approx(gaussian_closure(rho), rel=4 * estimate.closure_uncertainty)
    if rho == 0.0:
        assert abs(estimate.closure_pull) < 4


def test_uncertainty_is_the_counting_statistics() -> None:
    """Independent variables: over toys, the spread of N_A^pred matches its stated uncertainty."""
    rng = np.random.default_rng(3)
    predictions, stated = [], []
    for _ in range(400):
        u, v = rng.uniform(size=(2, 4000))
        estimate = abcd_estimate(region_counts(u, v, 0.5, 0.5))
        predictions.append(estimate.predicted)
        stated.append(estimate.uncertainty)
    assert np.mean(predictions) == pytest.approx(1000, rel=0.01)
    assert np.std(predictions) == pytest.approx(np.mean(stated), rel=0.1)


def test_weights_enter_sums_and_variances() -> None:
    u = np.array([1.0, 1.0, 1.0, -1.0, -1.0])
    v = np.array([1.0, -1.0, -1.0, 1.0, -1.0])
    counts = region_counts(u, v, 0.0, 0.0, weight=np.array([2.0, 1.0, 3.0, 0.5, 4.0]))
    assert counts.sums == {"A": 2.0, "B": 4.0, "C": 0.5, "D": 4.0}
    assert counts.sums_of_squares["B"] == 10.0
    estimate = abcd_estimate(counts)
    assert estimate.predicted == pytest.approx(4.0 * 0.5 / 4.0)
    relative = np.sqrt(10 / 16 + 0.25 / 0.25 + 16 / 16)
    assert estimate.uncertainty == pytest.approx(estimate.predicted * relative)


def test_bad_input_is_named() -> None:
    with pytest.raises(DataError, match="control region D"):
        abcd_estimate(region_counts(np.array([1.0, 1.0, -1.0]), np.array([1.0, -1.0, 1.0]), 0.0, 0.0))
    with pytest.raises(DataError, match="NaN"):
        region_counts(np.array([np.nan]), np.array([1.0]), 0.0, 0.0)
    with pytest.raises(DataError, match="one length"):
        region_counts(np.zeros(3), np.zeros(4), 0.0, 0.0)
