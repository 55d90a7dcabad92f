"""TMVA's overtraining check: KS tests equal scipy's, the efficiency table equals a direct scan."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

from heplearn.evaluation.overtraining import ks_test, overtraining_check


def test_unweighted_ks_is_scipy_ks_2samp() -> None:
    rng = np.random.default_rng(0)
    first, second = rng.normal(0, 1, 700), rng.normal(0.1, 1, 500)
    result = ks_test(first, second)
    expected = ks_2samp(first, second)
    assert (result.statistic, result.pvalue) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))


def test_weighted_ks_with_unit_weights_is_the_asymptotic_ks_2samp() -> None:
    rng = np.random.default_rng(1)
    first, second = rng.normal(0, 1, 3000), rng.normal(0.05, 1, 2000)
    result = ks_test(first, second, np.ones(3000), np.ones(2000))
    expected = ks_2samp(first, second, method="asymp")
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.pvalue == pytest.approx(expected.pvalue)


def test_weighted_ks_statistic_equals_duplicated_events() -> None:
    # integer weights act like repeated events in the distribution functions
    rng = np.random.default_rng(2)
    first, second = rng.normal(0, 1, 300), rng.normal(0.3, 1, 200)
    weight = rng.integers(1, 4, 300).astype(float)
    result = ks_test(first, second, weight, None)
    assert result.statistic == pytest.approx(ks_2samp(np.repeat(first, weight.astype(int)), second).statistic)


def test_efficiency_table_and_a_memorising_score_is_flagged() -> None:
    rng = np.random.default_rng(3)
    labels_test, labels_train = rng.integers(0, 2, 4000), rng.integers(0, 2, 4000)
    score_test = rng.normal(np.where(labels_test == 0, 1.0, 0.0), 1.0)
    honest = rng.normal(np.where(labels_train == 0, 1.0, 0.0), 1.0)
    memorised = rng.normal(np.where(labels_train == 0, 2.0, -0.5), 0.7)  # far better on the training jets
    check = overtraining_check(score_test, labels_test, honest, labels_train, ["signal", "background"])
    assert min(result.pvalue for result in check.ks.values()) > 1e-3
    for row in check.rows:  # direct computation: the cut keeping ε_B of the background
        cut = np.quantile(score_test[labels_test == 1], 1 - row.background_efficiency)
        assert row.signal_efficiency_test == pytest.approx(np.mean(score_test[labels_test == 0] > cut), abs=0.01)
        assert row.signal_efficiency_train == pytest.approx(row.signal_efficiency_test, abs=0.05)
    flagged = overtraining_check(score_test, labels_test, memorised, labels_train, ["signal", "background"])
    assert max(result.pvalue for result in flagged.ks.values()) < 1e-6
    assert all(r.signal_efficiency_train > r.signal_efficiency_test + 0.05 for r in flagged.rows)
    assert flagged.auc_train > flagged.auc_test
