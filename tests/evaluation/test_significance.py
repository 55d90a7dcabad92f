"""Significance figures against closed formulae, a numerical profile likelihood and a brute-force scan."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import xlogy

from heplearn.errors import ConfigError
from heplearn.evaluation.significance import asimov_significance, best_cuts, s_over_sqrt_b, s_over_sqrt_s_plus_b


def profiled_asimov(s: float, b: float, sigma: float) -> float:
    """√q0 on the Asimov data set (n = s+b, m = τb) of the on/off problem, τ = b/σ², maximised numerically."""
    tau = b / sigma**2
    n, m = s + b, tau * b

    def log_likelihood(signal: float, background: float) -> float:
        mean_on, mean_off = signal + background, tau * background
        return float(xlogy(n, mean_on) - mean_on + xlogy(m, mean_off) - mean_off)

    best_background_only = minimize_scalar(
        lambda x: -log_likelihood(0.0, x), bounds=(1e-6, 10 * (s + b)), method="bounded", options={"xatol": 1e-10}
    )
    return float(np.sqrt(2 * (log_likelihood(s, b) + best_background_only.fun)))


def test_known_values() -> None:
    assert s_over_sqrt_b(10, 100) == pytest.approx(1.0)
    assert s_over_sqrt_s_plus_b(10, 90) == pytest.approx(1.0)
    # √(2(110 ln 1.1 - 10)) = √0.9682396 by hand
    assert asimov_significance(10.0, 100.0) == pytest.approx(0.983992, abs=1e-6)
    assert asimov_significance(1.0, 1e6) == pytest.approx(s_over_sqrt_b(1.0, 1e6), rel=1e-5)  # s << b limit


@pytest.mark.parametrize(("s", "b"), [(10.0, 100.0), (5.0, 1.0), (30.0, 4.0)])
def test_asimov_without_uncertainty_is_eq_97_of_cowan_et_al(s: float, b: float) -> None:
    expected = np.sqrt(2 * ((s + b) * np.log(1 + s / b) - s))
    assert asimov_significance(s, b) == pytest.approx(expected)
    assert asimov_significance(s, b, 1e-7 * b) == pytest.approx(expected, rel=1e-6)  # σ_b -> 0 limit


@pytest.mark.parametrize(("s", "b", "sigma"), [(10.0, 100.0, 10.0), (5.0, 2.0, 1.0), (50.0, 400.0, 80.0)])
def test_asimov_with_background_uncertainty_equals_the_profile_likelihood(s: float, b: float, sigma: float) -> None:
    assert asimov_significance(s, b, sigma) == pytest.approx(profiled_asimov(s, b, sigma), rel=1e-5)
    assert asimov_significance(s, b, sigma) < asimov_significance(s, b)


def test_best_cut_equals_a_brute_force_scan() -> None:
    rng = np.random.default_rng(9)
    is_signal = rng.random(4000) < 0.3
    score = np.round(rng.normal(is_signal * 1.5, 1.0), 3)
    weight = rng.uniform(0.5, 1.5, 4000)
    scan = best_cuts(
        is_signal,
        score,
        weight,
        signal_yield=50.0,
        background_yield=1000.0,
        relative_background_uncertainty=0.1,
        min_background=5.0,
    )
    signal_total, background_total = weight[is_signal].sum(), weight[~is_signal].sum()
    brute: dict[str, tuple[float, float]] = {}
    for threshold in np.unique(score):
        passed = score >= threshold
        s = 50.0 * weight[passed & is_signal].sum() / signal_total
        b = 1000.0 * weight[passed & ~is_signal].sum() / background_total
        if b < 5.0:
            continue
        for name, value in (
            ("s_over_sqrt_b", s / np.sqrt(b)),
            ("s_over_sqrt_s_plus_b", s / np.sqrt(s + b)),
            ("asimov", float(asimov_significance(s, b, 0.1 * b))),
        ):
            if value > brute.get(name, (-1.0, 0.0))[0]:
                brute[name] = (value, threshold)
    for name, (value, threshold) in brute.items():
        assert scan.best[name].significance == pytest.approx(value)
        assert scan.best[name].threshold == pytest.approx(threshold)
        assert scan.best[name].background >= 5.0
    with pytest.raises(ConfigError, match="expected background events"):
        best_cuts(is_signal, score, weight, 50.0, 1.0, min_background=5.0)
