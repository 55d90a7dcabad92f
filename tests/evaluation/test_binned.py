"""Reliability curves against sklearn, efficiencies versus an observable against a loop over bins."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from heplearn.evaluation.binned import efficiency_versus, reliability_curve


def test_reliability_curve_equals_sklearn_and_is_diagonal_for_a_calibrated_model() -> None:
    rng = np.random.default_rng(4)
    probability = rng.random(20_000)
    truth = rng.random(20_000) < probability  # calibrated by construction
    curve = reliability_curve(truth, probability, bins=10)
    observed, predicted = calibration_curve(truth, probability, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(curve.observed_fraction, observed)
    np.testing.assert_allclose(curve.mean_predicted, predicted)
    assert np.all(np.abs(curve.observed_fraction - curve.mean_predicted) < 4 * curve.uncertainty + 1e-3)
    weight = rng.uniform(0.5, 2, 20_000)
    weighted = reliability_curve(truth, probability, weight, bins=10)
    inside = (probability > 0.3) & (probability <= 0.4)
    assert weighted.observed_fraction[3] == pytest.approx(np.average(truth[inside], weights=weight[inside]))


def test_efficiency_versus_observable_equals_a_loop_over_bins() -> None:
    rng = np.random.default_rng(6)
    n = 10_000
    pt = rng.uniform(500, 1000, n)
    is_signal = rng.random(n) < 0.5
    score = rng.normal(is_signal * 1.0 + (pt - 750) / 500, 1.0)  # efficiency rises with pT
    weight = rng.uniform(0.5, 2, n)
    binned = efficiency_versus(pt, is_signal, score, 0.5, weight, bins=5, histogram_range=(500, 1000))
    for index, (low, high) in enumerate(zip(binned.bin_edges[:-1], binned.bin_edges[1:], strict=True)):
        inside = (pt >= low) & ((pt < high) if index < 4 else (pt <= high))
        for selected, efficiency, error in (
            (inside & is_signal, binned.signal_efficiency, binned.signal_uncertainty),
            (inside & ~is_signal, binned.background_efficiency, binned.background_uncertainty),
        ):
            passed = score[selected] >= 0.5
            expected = np.average(passed, weights=weight[selected])
            assert efficiency[index] == pytest.approx(expected)
            w = weight[selected]
            assert error[index] == pytest.approx(np.sqrt(np.sum(w**2 * (passed - expected) ** 2)) / w.sum())
    assert np.all(np.diff(binned.signal_efficiency) > 0)
    unit = efficiency_versus(pt, is_signal, score, 0.5, bins=5)  # unit weights: the binomial σ
    n_signal = np.histogram(pt[is_signal], unit.bin_edges)[0]
    np.testing.assert_allclose(
        unit.signal_uncertainty, np.sqrt(unit.signal_efficiency * (1 - unit.signal_efficiency) / n_signal)
    )
