"""IBU against the exact Gaussian recursion, in expectation (fine bins) and with events (bootstrap)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from heplearn.errors import ConfigError, DataError
from heplearn.stats.ibu import iterative_bayesian_unfolding, response_matrix, unfold_events
from tests.gaussian_unfolding import GENERATOR, SMEARING, TABLE, TRUTH, gaussian_iterates, weighted_moments


def test_the_closed_form_recursion_gives_the_table() -> None:
    """The table of issue 19, re-derived: the recursion (tests/gaussian_unfolding.py) at 4 decimals."""
    iterates = gaussian_iterates(10)
    for iteration, (mean, sigma) in TABLE.items():
        assert iterates[iteration - 1] == pytest.approx((mean, sigma), abs=5e-5)
    # the fixed point is the truth
    assert gaussian_iterates(200)[-1] == pytest.approx(TRUTH, abs=1e-6)


def test_fine_binned_ibu_in_expectation_follows_the_recursion() -> None:
    """Expected histograms (Gaussian CDFs, 0.02-wide bins): IBU is the EM recursion to 1e-4."""
    edges = np.linspace(-6, 6, 601)
    centres = 0.5 * (edges[1:] + edges[:-1])
    # P(reco bin | gen bin centre): smearing 0.5
    response = norm.cdf(edges[1:, None], centres, SMEARING) - norm.cdf(edges[:-1, None], centres, SMEARING)
    prior = np.diff(norm.cdf(edges, *GENERATOR))
    data = np.diff(norm.cdf(edges, TRUTH[0], np.hypot(TRUTH[1], SMEARING)))
    unfolded = iterative_bayesian_unfolding(data, response, prior, 10)
    width = edges[1] - edges[0]
    for iteration, (mean, sigma) in TABLE.items():
        m, s = weighted_moments(centres, unfolded[iteration - 1])
        # Sheppard's correction for the bin width
        assert (m, np.sqrt(s**2 - width**2 / 12)) == pytest.approx((mean, sigma), abs=1e-4)


def test_ibu_with_events_follows_the_recursion_within_statistics() -> None:
    """2×10⁵ simulated and 2×10⁵ data events, 0.05 bins: within 4 bootstrap standard deviations."""
    rng = np.random.default_rng(11)
    n = 200_000
    gen = rng.normal(*GENERATOR, n)
    reco = gen + rng.normal(0, SMEARING, n)
    data = rng.normal(*TRUTH, n) + rng.normal(0, SMEARING, n)
    bins = np.linspace(-5, 5, 201)
    result = unfold_events(gen, reco, data, bins, bins, 10, bootstraps=20, seed=3)
    centres = 0.5 * (bins[1:] + bins[:-1])
    replica_moments = np.array(
        [[weighted_moments(centres, replica[i]) for i in range(10)] for replica in result.replicas]
    )  # (bootstraps, iterations, 2)
    spread = replica_moments.std(axis=0, ddof=1)
    for iteration, expected in TABLE.items():
        m, s = weighted_moments(centres, result.unfolded[iteration - 1])
        measured = np.array([m, np.sqrt(s**2 - 0.05**2 / 12)])
        tolerance = 4 * spread[iteration - 1] + 0.002  # + the simulation's own statistics
        assert np.all(np.abs(measured - expected) < tolerance), (iteration, measured, expected, tolerance)
        assert np.all(np.abs(measured - expected) < 0.01)
    assert result.uncertainty.shape == result.unfolded.shape and (result.uncertainty[-1][90:110] > 0).all()
    # the unfolded total is the data's (full efficiency)
    assert result.unfolded[-1].sum() == pytest.approx(np.histogram(data, bins)[0].sum(), rel=1e-3)


def test_efficiency_is_corrected() -> None:
    """Half the simulated events of z > 0 fail reconstruction, in data too: IBU returns the truth."""
    rng = np.random.default_rng(4)
    n = 100_000
    gen = rng.normal(0, 1, n)
    passed = ~((gen > 0) & (rng.random(n) < 0.5))
    truth = rng.normal(0.3, 1, n)
    data = (truth + rng.normal(0, 0.3, n))[~((truth > 0) & (rng.random(n) < 0.5))]
    bins = np.linspace(-4, 4, 41)
    response = response_matrix(gen, gen + rng.normal(0, 0.3, n), bins, bins, reco_pass=passed)
    assert response[:, 30].sum() == pytest.approx(0.5, abs=0.03) and response[:, 10].sum() == pytest.approx(1.0)
    result = unfold_events(gen, gen + rng.normal(0, 0.3, n), data, bins, bins, 10, reco_pass=passed)
    centres = 0.5 * (bins[1:] + bins[:-1])
    # the lost events are restored: the unfolded total is the truth's, and so is the mean
    assert result.unfolded[-1].sum() == pytest.approx(n, rel=0.01)
    assert weighted_moments(centres, result.unfolded[-1])[0] == pytest.approx(np.mean(truth), abs=0.01)
    assert weighted_moments(centres, np.histogram(data, bins)[0])[0] < 0.15  # the data alone are biased


def test_bad_input_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        iterative_bayesian_unfolding([1.0], [[1.0]], [1.0], 0)
    with pytest.raises(DataError, match="total weight is 0"):
        unfold_events([0.0], [0.0], [0.0], [-1, 1], [-1, 1], 1, data_weight=[0.0])
    with pytest.raises(DataError, match="does not match"):
        iterative_bayesian_unfolding([1.0, 2.0], [[1.0]], [1.0], 1)
