"""ROC figures against independent computations: sklearn, brute-force threshold scans, resampling."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from heplearn.errors import DataError
from heplearn.evaluation.metrics import (
    auc_with_uncertainty,
    binomial_uncertainty,
    effective_count,
    fast_auc,
    rejection_table,
    roc,
    signal_efficiency_table,
    summary,
)


@pytest.fixture(scope="module")
def scores() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    is_signal = rng.integers(0, 2, 20_000).astype(bool)
    score = rng.normal(is_signal * 1.5, 1.0)
    weight = rng.uniform(0.5, 2.0, len(score))
    return is_signal, score, weight


def test_auc_equals_sklearn_weighted_and_unweighted(scores: tuple[np.ndarray, ...]) -> None:
    is_signal, score, weight = scores
    assert roc(is_signal, score).auc == pytest.approx(roc_auc_score(is_signal, score))
    assert roc(is_signal, score, weight).auc == pytest.approx(roc_auc_score(is_signal, score, sample_weight=weight))


@pytest.mark.parametrize("target", [0.3, 0.5, 0.7])
def test_rejection_equals_a_brute_force_threshold_scan(scores: tuple[np.ndarray, ...], target: float) -> None:
    is_signal, score, weight = scores
    thresholds = np.sort(score)[::-1]
    signal_total, background_total = weight[is_signal].sum(), weight[~is_signal].sum()
    # the loosest threshold at which the signal efficiency first reaches the target
    for threshold in thresholds:
        passed = score >= threshold
        if weight[passed & is_signal].sum() / signal_total >= target:
            brute_force = background_total / weight[passed & ~is_signal].sum()
            break
    figures = summary(is_signal, score, weight, (target,))
    assert figures[f"rejection_at_{round(target * 100)}"] == pytest.approx(brute_force, rel=2e-3)


def test_fast_auc_equals_sklearn_with_ties_and_weights(scores: tuple[np.ndarray, ...]) -> None:
    is_signal, score, weight = scores
    rounded = np.round(score, 1)  # many ties: they count one half
    assert fast_auc(is_signal, rounded, weight) == pytest.approx(
        roc_auc_score(is_signal, rounded, sample_weight=weight), rel=1e-12
    )
    assert fast_auc(is_signal, score) == pytest.approx(roc_auc_score(is_signal, score), rel=1e-12)


def test_bootstrap_uncertainty_is_seeded_and_matches_the_spread_of_independent_samples() -> None:
    rng = np.random.default_rng(7)
    is_signal = rng.integers(0, 2, 2000).astype(bool)
    score = rng.normal(is_signal * 1.0, 1.0)
    first = auc_with_uncertainty(is_signal, score, replicas=200, seed=3)
    assert first == auc_with_uncertainty(is_signal, score, replicas=200, seed=3)
    assert first.value == pytest.approx(roc_auc_score(is_signal, score))
    # the spread of the AUC over independent samples of the same size
    spread = []
    for _ in range(200):
        labels = rng.integers(0, 2, 2000).astype(bool)
        spread.append(roc_auc_score(labels, rng.normal(labels * 1.0, 1.0)))
    assert first.uncertainty == pytest.approx(np.std(spread), rel=0.25)


def test_signal_efficiency_at_background_efficiency_matches_a_threshold_scan(scores: tuple[np.ndarray, ...]) -> None:
    is_signal, score, weight = scores
    curve = roc(is_signal, score, weight)
    order = np.argsort(-score)
    background_passed = np.cumsum(weight[order] * ~is_signal[order]) / weight[~is_signal].sum()
    signal_passed = np.cumsum(weight[order] * is_signal[order]) / weight[is_signal].sum()
    for target in (0.01, 0.1, 0.3):
        index = int(np.searchsorted(background_passed, target))
        assert curve.signal_efficiency_at(target) == pytest.approx(signal_passed[index], abs=2e-3)
    rows = signal_efficiency_table(curve, effective_count(weight[is_signal]))
    assert [row[0] for row in rows] == [0.01, 0.1, 0.3]


def test_threshold_keeps_the_target_signal_efficiency(scores: tuple[np.ndarray, ...]) -> None:
    is_signal, score, weight = scores
    curve = roc(is_signal, score, weight)
    for target in (0.3, 0.5, 0.7):
        kept = weight[is_signal & (score >= curve.threshold_at(target))].sum() / weight[is_signal].sum()
        assert target <= kept < target + 1e-3


def test_binomial_uncertainties() -> None:
    assert effective_count(np.ones(100)) == pytest.approx(100)
    assert effective_count(np.array([1.0, 3.0])) == pytest.approx(16 / 10)
    assert binomial_uncertainty(0.2, 100) == pytest.approx(0.04)
    rng = np.random.default_rng(1)
    is_signal = rng.integers(0, 2, 5000).astype(bool)
    curve = roc(is_signal, rng.normal(is_signal * 2.0, 1.0))
    (row,) = rejection_table(curve, 2500, 2500, (0.5,))
    assert row.rejection == pytest.approx(1 / row.background_efficiency)
    assert row.rejection_uncertainty == pytest.approx(
        np.sqrt(row.background_efficiency * (1 - row.background_efficiency) / 2500) / row.background_efficiency**2
    )


def test_one_class_only_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="both signal and background"):
        roc(np.ones(10, bool), np.arange(10.0))
