"""The projective likelihood against the exact likelihood ratio of Gaussian toys."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.metrics import roc_auc_score

from heplearn.errors import DataError
from heplearn.models.likelihood import ProjectiveLikelihood

N = 20_000  # events per class and split


def gaussian_toy(
    signal_mean: list[float],
    signal_cov: np.ndarray,
    background_mean: list[float],
    background_cov: np.ndarray,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.vstack(
        [
            rng.multivariate_normal(signal_mean, signal_cov, N),
            rng.multivariate_normal(background_mean, background_cov, N),
        ]
    )
    return X, np.repeat([1, 0], N)


def auc_gap(
    model: ProjectiveLikelihood,
    signal_mean: list[float],
    signal_cov: np.ndarray,
    background_mean: list[float],
    background_cov: np.ndarray,
) -> tuple[float, float]:
    """AUC of the exact likelihood ratio and of the model, on an independent test sample."""
    X, y = gaussian_toy(signal_mean, signal_cov, background_mean, background_cov, seed=1)
    X_test, y_test = gaussian_toy(signal_mean, signal_cov, background_mean, background_cov, seed=2)
    model.fit(X, y)
    exact = multivariate_normal(signal_mean, signal_cov).logpdf(X_test) - multivariate_normal(
        background_mean, background_cov
    ).logpdf(X_test)
    return roc_auc_score(y_test, exact), roc_auc_score(y_test, model.decision_function(X_test))


# independent variables: a shifted mean, a wider and a narrower signal (a non-linear ratio)
INDEPENDENT = ([0.5, 0.3, 0.0], np.diag([1.0, 1.3, 0.7]) ** 2, [0.0, 0.0, 0.0], np.eye(3))


@pytest.mark.parametrize(
    "model",
    [ProjectiveLikelihood(), ProjectiveLikelihood(n_bins=60), ProjectiveLikelihood(density="kde", kde_grid_size=256)],
    ids=["histogram", "histogram-60", "kde"],
)
def test_independent_variables_reach_the_exact_likelihood_ratio(model: ProjectiveLikelihood) -> None:
    exact, projective = auc_gap(model, *INDEPENDENT)
    assert exact > 0.7
    assert abs(exact - projective) < 0.005


def test_different_correlations_are_lost_by_the_projection() -> None:
    # signal correlated (+0.8), background anti-correlated (-0.8): the marginals barely differ
    signal_cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    background_cov = np.array([[1.0, -0.8], [-0.8, 1.0]])
    exact, projective = auc_gap(ProjectiveLikelihood(), [0.5, 0.5], signal_cov, [0.0, 0.0], background_cov)
    assert exact - projective > 0.15


def test_decorrelation_recovers_a_common_linear_correlation() -> None:
    # the same correlation in both classes and a mean shift along x0 only: the exact ratio (Fisher's
    # discriminant) uses x1 to cancel the correlated part of x0; the projection cannot, C^(-1/2) can
    covariance = np.array([[1.0, 0.8], [0.8, 1.0]])
    toy = ([1.0, 0.0], covariance, [0.0, 0.0], covariance)
    exact, projective = auc_gap(ProjectiveLikelihood(), *toy)
    _, decorrelated = auc_gap(ProjectiveLikelihood(decorrelate=True), *toy)
    _, decorrelated_signal = auc_gap(ProjectiveLikelihood(decorrelate=True, decorrelation_reference="signal"), *toy)
    assert exact - projective > 0.08
    assert decorrelated > projective + 0.08
    assert abs(exact - decorrelated) < 0.005
    assert abs(exact - decorrelated_signal) < 0.005


def test_decorrelation_matrix_is_the_inverse_square_root_of_the_covariance() -> None:
    covariance = np.array([[2.0, 0.9, 0.0], [0.9, 1.0, -0.3], [0.0, -0.3, 0.5]])
    X, y = gaussian_toy([1.0, 0.0, 0.0], covariance, [0.0, 0.0, 0.0], covariance, seed=3)
    model = ProjectiveLikelihood(decorrelate=True).fit(X, y)
    matrix = model.decorrelation_matrix_
    assert matrix is not None
    np.testing.assert_allclose(matrix, matrix.T)  # symmetric: the square root, not a Cholesky factor
    sample_cov = np.cov(X[y == 0], rowvar=False)
    np.testing.assert_allclose(matrix @ sample_cov @ matrix, np.eye(3), atol=1e-10)


def test_output_is_the_tmva_likelihood_ratio_of_the_histograms() -> None:
    # at bin centres the interpolated densities are the histogram contents: y_L = L_S / (L_S + L_B)
    rng = np.random.default_rng(4)
    n = 5000
    X = np.column_stack([rng.uniform(0, 4, 2 * n), rng.uniform(-1, 1, 2 * n)])
    X[:n, 0] = rng.triangular(0, 4, 4, n)
    X[:n, 1] = rng.triangular(-1, -1, 1, n)
    y = np.repeat([1, 0], n)
    weights = rng.uniform(0.5, 1.5, 2 * n)
    model = ProjectiveLikelihood(n_bins=8).fit(X, y, sample_weight=weights)

    probe, per_class = [], []
    for j in range(2):
        edges = np.linspace(X[:, j].min(), X[:, j].max(), 9)
        probe.append(0.5 * (edges[1:] + edges[:-1])[[1, 6]])
        per_class.append(
            [
                np.histogram(X[y == k, j], edges, weights=weights[y == k])[0][[1, 6]] / weights[y == k].sum()
                for k in (0, 1)
            ]
        )
    points = np.array([[probe[0][a], probe[1][b]] for a in range(2) for b in range(2)])
    signal = np.array([per_class[0][1][a] * per_class[1][1][b] for a in range(2) for b in range(2)])
    background = np.array([per_class[0][0][a] * per_class[1][0][b] for a in range(2) for b in range(2)])
    np.testing.assert_allclose(model.predict_proba(points)[:, 1], signal / (signal + background), rtol=1e-10)
    np.testing.assert_allclose(model.decision_function(points), np.log(signal / background), rtol=1e-10)


def test_integer_weights_equal_duplicated_events() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2000, 2))
    y = (rng.random(2000) < 0.5).astype(int)
    X[y == 1] += 0.7
    counts = rng.integers(1, 4, 2000)
    weighted = ProjectiveLikelihood().fit(X, y, sample_weight=counts.astype(float))
    duplicated = ProjectiveLikelihood().fit(np.repeat(X, counts, axis=0), np.repeat(y, counts))
    np.testing.assert_allclose(weighted.predict_proba(X), duplicated.predict_proba(X), rtol=1e-10)


def test_multiclass() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 6000)
    centres = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    X = rng.normal(size=(6000, 2)) + centres[y]
    model = ProjectiveLikelihood().fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (6000, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # the Bayes classifier for these toys is right ~80% of the time
    assert np.mean(model.predict(X) == y) > 0.75
    assert model.decision_function(X).shape == (6000, 3)
    decorrelated = ProjectiveLikelihood(decorrelate=True, decorrelation_reference="all").fit(X, y)
    assert np.mean(decorrelated.predict(X) == y) > 0.75


def test_singular_covariance_is_a_clear_error() -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(500, 2))
    X = np.column_stack([X, X[:, 0] + X[:, 1]])
    y = np.repeat([1, 0], 250)
    with pytest.raises(DataError, match="singular"):
        ProjectiveLikelihood(decorrelate=True).fit(X, y)


def test_events_outside_the_training_range_get_finite_scores() -> None:
    rng = np.random.default_rng(8)
    X = rng.normal(size=(2000, 2))
    y = np.repeat([1, 0], 1000)
    X[y == 1] += 1.0
    model = ProjectiveLikelihood().fit(X, y)
    far = np.array([[50.0, 50.0], [-50.0, -50.0], [50.0, -50.0]])
    assert np.all(np.isfinite(model.decision_function(far)))
    assert model.decision_function(far)[0] > 0 > model.decision_function(far)[1]
