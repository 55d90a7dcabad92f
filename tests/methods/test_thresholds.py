"""Thresholds at a trigger rate: the efficiency they keep, its uncertainty, and the pure rate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from heplearn.errors import ConfigError, DataError
from heplearn.methods.thresholds import (
    parse_rate,
    pure_rate,
    target_efficiency,
    threshold_at_efficiency,
    threshold_at_rate,
)


def test_rates_parse_with_their_units_and_a_rate_above_the_input_is_an_error() -> None:
    assert parse_rate("1kHz") == 1e3 and parse_rate("40 MHz") == 4e7 and parse_rate("2.5e3Hz") == 2500.0
    assert target_efficiency("1kHz", "40MHz") == pytest.approx(2.5e-5, rel=1e-12)
    with pytest.raises(ConfigError, match="above the input rate"):
        target_efficiency("50MHz", "40MHz")
    with pytest.raises(ConfigError, match="is not a rate"):
        parse_rate("1 kiloherz")
    with pytest.raises(ConfigError, match="must be positive"):
        parse_rate(0)


def test_a_one_khz_threshold_keeps_its_efficiency_on_an_independent_sample() -> None:
    """2.5 × 10⁻⁵ of 4 × 10⁶ Gaussian background scores: the cut is the normal quantile, and an
    independent sample keeps 2.5 × 10⁻⁵ within the uncertainty."""
    rng = np.random.default_rng(11)
    calibration, validation = rng.normal(size=4_000_000), rng.normal(size=4_000_000)
    threshold = threshold_at_rate(calibration, "1kHz", "40MHz")
    assert threshold.target == pytest.approx(2.5e-5) and threshold.passing_events == pytest.approx(100)
    low, high = threshold.interval
    assert low < 2.5e-5 < high and (high - low) / 2 == pytest.approx(np.sqrt(100) / 4e6, rel=0.1)
    # the cut sits at the true quantile within the spread its interval of cuts says
    exact = stats.norm.isf(2.5e-5)
    assert threshold.value_interval[0] < exact < threshold.value_interval[1]
    check = threshold.validate(validation)
    assert check.agrees and check.interval[0] < check.efficiency < check.interval[1]
    assert threshold.rate_hz == 1e3 and threshold.input_rate_hz == 4e7


def test_the_validation_pulls_are_standard_normal() -> None:
    """Over 300 calibrations (10⁴ events, ε = 1%) the pull (measured − target)/σ has mean 0, width 1."""
    rng = np.random.default_rng(5)
    pulls = []
    for _ in range(300):
        threshold = threshold_at_efficiency(rng.exponential(size=10_000), 0.01)
        pulls.append(threshold.validate(rng.exponential(size=10_000)).pull)
    pulls = np.asarray(pulls)
    assert abs(pulls.mean()) < 3 / np.sqrt(300) and abs(pulls.std() - 1) < 0.15


def test_weighted_background_is_counted_by_weight() -> None:
    rng = np.random.default_rng(2)
    score = rng.normal(size=20_000)
    weight = np.where(score > 0, 3.0, 1.0)  # the upper half counts three times
    threshold = threshold_at_efficiency(score, 0.05, weight)
    kept = weight[score > threshold.value].sum() / weight.sum()
    assert kept == pytest.approx(0.05, abs=1e-3)
    # the mean weight is ½·1 + ½·3 = 2 and the kept share 3 P(Z > t) / 2 = 5%: P(Z > t) = 1/30
    assert threshold.value == pytest.approx(stats.norm.isf(0.05 * 2 / 3), abs=0.03)


def test_too_few_events_for_the_target_is_an_error() -> None:
    with pytest.raises(DataError, match="take at least 40000 background events"):
        threshold_at_rate(np.zeros(1000), "1kHz")
    with pytest.raises(ConfigError, match=r"lies in \(0, 1\)"):
        threshold_at_efficiency(np.zeros(10), 1.5)


def test_the_pure_rate_counts_what_no_other_trigger_keeps() -> None:
    rng = np.random.default_rng(3)
    n = 1_000_000
    met = rng.exponential(50, n)
    score = rng.normal(size=n) + 0.01 * met  # the anomaly score is partly the missing energy
    threshold = threshold_at_rate(score, "10kHz")
    accepted = threshold.accepts(score)
    rates = pure_rate(accepted, {"MET_pt > 300": met > 300}, "40MHz")
    assert rates.total == pytest.approx(1e4, rel=0.01)
    expected_pure = (accepted & ~(met > 300)).mean() * 4e7
    assert rates.pure == pytest.approx(expected_pure) and rates.pure < rates.total
    assert rates.others["MET_pt > 300"] == pytest.approx(np.exp(-6) * 4e7, rel=0.05)
    assert rates.pure_interval[0] < rates.pure < rates.pure_interval[1]
