from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from heplearn.evaluation.metrics import roc, summary


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
