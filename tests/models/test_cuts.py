"""Rectangular cuts against toys whose optimal cuts are known analytically."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from heplearn.errors import ConfigError, DataError
from heplearn.models.cuts import RectangularCuts, WorkingPoint

N = 20_000  # events per class


def gaussian_toy(
    n_features: int,
    *,
    signal_mean: float = 1.0,
    background_mean: float = -1.0,
    signal_sigma: float = 1.0,
    background_sigma: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Independent Gaussian variables, the same shape in every variable."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(signal_mean, signal_sigma, (N, n_features))
    background = rng.normal(background_mean, background_sigma, (N, n_features))
    return np.vstack([signal, background]), np.repeat([1, 0], N)


TARGETS = [0.05, 0.1, 0.2, 0.3, 0.5]


def test_one_dimensional_threshold_matches_the_analytic_cut() -> None:
    # signal N(1, 1) vs background N(-1, 1): the best cut x >= c at eps_B = t has c = Φ⁻¹(1 - t) - 1
    X, y = gaussian_toy(1)
    model = RectangularCuts(background_efficiencies=TARGETS, n_bins=400).fit(X, y)
    for wp, target in zip(model.working_points, TARGETS, strict=True):
        cut = norm.isf(target) - 1.0
        lower, upper = wp.cuts["x0"]
        assert upper == np.inf
        assert lower == pytest.approx(cut, abs=0.05)
        assert wp.background_efficiency <= target + 1e-9
        assert wp.background_efficiency >= target - 0.01  # the constraint is used, not wasted
        assert wp.signal_efficiency == pytest.approx(norm.sf(cut - 1.0), abs=0.01)
        # the empirical optimum: keep the background sample above its (1 - t) quantile
        best_empirical = np.mean(X[y == 1, 0] > np.quantile(X[y == 0, 0], 1 - target))
        assert wp.signal_efficiency >= best_empirical - 0.005


def test_auto_direction_puts_an_upper_bound_when_signal_sits_low() -> None:
    X, y = gaussian_toy(1)
    model = RectangularCuts(background_efficiencies=[0.1], n_bins=400).fit(-X, y)
    assert model.directions_ == ["upper"]
    lower, upper = model.working_points[0].cuts["x0"]
    assert lower == -np.inf
    assert upper == pytest.approx(-(norm.isf(0.1) - 1.0), abs=0.05)


def test_two_independent_variables_reach_the_analytic_optimum() -> None:
    # by symmetry (log-concave densities) both variables take the same cut, each passing sqrt(t)
    # of the background: eps_S = Φ̄(c - 1)² with c = Φ⁻¹(1 - sqrt(t)) - 1
    X, y = gaussian_toy(2)
    model = RectangularCuts(background_efficiencies=TARGETS, seed=1).fit(X, y)
    for wp, target in zip(model.working_points, TARGETS, strict=True):
        cut = norm.isf(np.sqrt(target)) - 1.0
        assert wp.background_efficiency <= target + 1e-9
        assert wp.signal_efficiency == pytest.approx(norm.sf(cut - 1.0) ** 2, abs=0.01)
        for lower, upper in wp.cuts.values():
            assert upper == np.inf
            assert lower == pytest.approx(cut, abs=0.4)  # eps_S is flat around the symmetric point


def test_both_sided_window() -> None:
    # narrow signal N(0, 0.5) in wide background N(0, 2): the best cut is a window |x| < a
    X, y = gaussian_toy(1, signal_mean=0.0, background_mean=0.0, signal_sigma=0.5, background_sigma=2.0)
    targets = [0.1, 0.2, 0.4]
    model = RectangularCuts(background_efficiencies=targets, directions="both", n_bins=400).fit(X, y)
    for wp, target in zip(model.working_points, targets, strict=True):
        half_width = 2.0 * norm.ppf((1 + target) / 2)
        lower, upper = wp.cuts["x0"]
        assert lower == pytest.approx(-half_width, abs=0.08)
        assert upper == pytest.approx(half_width, abs=0.08)
        assert wp.signal_efficiency == pytest.approx(2 * norm.cdf(half_width / 0.5) - 1, abs=0.015)


def test_working_points_are_feasible_and_monotone_and_generalise() -> None:
    # a mixed toy: x0 separates by its mean, x1 by its width (both-sided), x2 is noise
    rng = np.random.default_rng(5)
    n = 4000
    y = np.repeat([1, 0], n)
    X = rng.normal(size=(2 * n, 3))
    X[:, 0] += np.where(y == 1, 1.0, -0.5)
    X[:, 1] *= np.where(y == 1, 0.6, 1.5)
    X_val = rng.normal(size=(2 * n, 3))
    X_val[:, 0] += np.where(y == 1, 1.0, -0.5)
    X_val[:, 1] *= np.where(y == 1, 0.6, 1.5)
    weights = rng.uniform(0.5, 1.5, 2 * n)
    model = RectangularCuts(directions=["auto", "both", "auto"], maxiter=30).fit(
        X, y, sample_weight=weights, X_val=X_val, y_val=y
    )
    points = model.working_points
    assert len(points) == 99
    targets = np.array([wp.target_background_efficiency for wp in points])
    signal = np.array([wp.signal_efficiency for wp in points])
    background = np.array([wp.background_efficiency for wp in points])
    assert np.all(background <= targets + 1e-9)
    assert np.all(np.diff(signal) >= 0)
    assert signal[-1] > 0.99 and signal[0] > 0.1
    # the efficiencies reported are those of the cuts applied to the raw training events
    for wp in points[::7]:
        keep = wp.passes(X)
        assert np.sum(weights * keep * (y == 1)) / np.sum(weights * (y == 1)) == pytest.approx(wp.signal_efficiency)
        assert np.sum(weights * keep * (y == 0)) / np.sum(weights * (y == 0)) == pytest.approx(wp.background_efficiency)
        assert wp.validation_signal_efficiency == pytest.approx(wp.signal_efficiency, abs=0.03)
        assert wp.validation_background_efficiency == pytest.approx(wp.background_efficiency, abs=0.03)
    assert model.directions_ == ["lower", "both", model.directions_[2]]


def test_seed_makes_the_search_reproducible() -> None:
    X, y = gaussian_toy(2, seed=2)
    X, y = X[::10], y[::10]
    first = RectangularCuts(background_efficiencies=[0.1, 0.3], seed=7, maxiter=20).fit(X, y)
    second = RectangularCuts(background_efficiencies=[0.1, 0.3], seed=7, maxiter=20).fit(X, y)
    assert first.working_points == second.working_points


def test_cuts_at_and_decision_function() -> None:
    X, y = gaussian_toy(2, seed=3)
    X, y = X[::10], y[::10]
    model = RectangularCuts(background_efficiencies=[0.1, 0.3, 0.6], maxiter=20).fit(X, y)
    assert model.cuts_at(0.3).target_background_efficiency == 0.3
    assert model.cuts_at(0.5).target_background_efficiency == 0.3  # the loosest within the budget
    assert isinstance(model.cuts_at(1.0), WorkingPoint)
    with pytest.raises(ConfigError, match="tightest"):
        model.cuts_at(0.05)
    # score = 1 - target eps_B of the tightest working point passed, 0 when none is
    expected = np.zeros(len(X))
    for wp in reversed(model.working_points):
        expected[wp.passes(X)] = 1.0 - wp.target_background_efficiency
    np.testing.assert_array_equal(model.decision_function(X), expected)
    assert {0.0, 0.4, 0.7, 0.9} >= set(np.round(np.unique(expected), 12))


def test_multiclass_is_refused() -> None:
    X, y = gaussian_toy(2)
    y = y.copy()
    y[:100] = 2
    with pytest.raises(DataError, match="at most 2 classes"):
        RectangularCuts(background_efficiencies=[0.1]).fit(X, y)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"background_efficiencies": [0.0, 0.5]}, "background_efficiencies"),
        ({"background_efficiencies": []}, "background_efficiencies"),
        ({"directions": ["lower"]}, "directions"),
        ({"n_bins": 1}, "n_bins"),
        ({"popsize": 2.5}, "popsize"),
    ],
)
def test_invalid_hyperparameters(params: dict[str, object], message: str) -> None:
    X, y = gaussian_toy(2)
    with pytest.raises(ConfigError, match=message):
        RectangularCuts(**params).fit(X[::100], y[::100])  # type: ignore[arg-type]
