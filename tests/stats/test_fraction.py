"""Signal-fraction fits with known answers (research notes §9a).

f_S = N(1, 1), f_B = N(−1, 1), α = 0.2, N = 10⁴: the estimator is unbiased, its pulls are standard
normal over 300 toys, and its spread equals the Fisher (Cramér–Rao) value σ(α) = 0.0057.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from heplearn.errors import ConfigError, DataError
from heplearn.stats.fraction import binned_fisher_uncertainty, fisher_uncertainty, fit_fraction, fit_fraction_binned
from heplearn.stats.templates import Binning, histogram_density, make_template

ALPHA, EVENTS = 0.2, 10_000
SIGNAL, BACKGROUND = norm(1, 1), norm(-1, 1)


def mixture(rng: np.random.Generator, events: int = EVENTS, alpha: float = ALPHA) -> np.ndarray:
    signal_events = rng.binomial(events, alpha)
    return np.concatenate([rng.normal(1, 1, signal_events), rng.normal(-1, 1, events - signal_events)])


def fisher_sigma() -> float:
    """σ² = 1 / (N ∫ (f_S − f_B)² / f dx), integrated here independently of the library."""

    def integrand(x: float) -> float:
        s, b = SIGNAL.pdf(x), BACKGROUND.pdf(x)
        return (s - b) ** 2 / (ALPHA * s + (1 - ALPHA) * b)

    information = quad(integrand, -30, 30, limit=200)[0]
    return 1 / np.sqrt(EVENTS * information)


def test_the_fisher_value_is_0_0057() -> None:
    sigma = fisher_sigma()
    assert sigma == pytest.approx(0.00571, abs=0.00001)
    assert fisher_uncertainty(SIGNAL.pdf, BACKGROUND.pdf, ALPHA, EVENTS) == pytest.approx(sigma, rel=1e-6)


def test_300_toys_are_unbiased_with_standard_normal_pulls_and_the_fisher_width() -> None:
    rng = np.random.default_rng(20)
    fits = [fit_fraction(mixture(rng), SIGNAL.pdf, BACKGROUND.pdf) for _ in range(300)]
    fractions = np.array([f.fraction for f in fits])
    sigmas = np.array([f.uncertainty for f in fits])
    pulls = (fractions - ALPHA) / sigmas
    fisher = fisher_sigma()
    assert fractions.mean() == pytest.approx(0.200, abs=3 * fisher / np.sqrt(300))  # 0.200 ± 0.001
    assert abs(pulls.mean()) < 0.1
    assert pulls.std(ddof=1) == pytest.approx(1.0, abs=0.1)
    assert fractions.std(ddof=1) == pytest.approx(fisher, rel=0.10)
    assert np.median(sigmas) == pytest.approx(fisher, rel=0.03)  # HESSE's σ is the Cramér–Rao one


def test_minos_interval_matches_hesse_for_a_near_gaussian_likelihood() -> None:
    result = fit_fraction(mixture(np.random.default_rng(3)), SIGNAL.pdf, BACKGROUND.pdf, minos=True)
    assert result.lower == pytest.approx(result.uncertainty, rel=0.02)
    assert result.upper == pytest.approx(result.uncertainty, rel=0.02)


def test_fine_histogram_templates_give_the_same_estimate() -> None:
    rng = np.random.default_rng(7)
    # fine bins where the densities live, one wide bin on each side for the far tails
    binning = Binning(edges=(-12.0, *np.linspace(-4, 4, 101), 12.0))
    signal = histogram_density(make_template(rng.normal(1, 1, 400_000), binning=binning, name="signal"))
    background = histogram_density(make_template(rng.normal(-1, 1, 400_000), binning=binning, name="background"))
    fits = [fit_fraction(mixture(rng), signal, background) for _ in range(60)]
    fractions = np.array([f.fraction for f in fits])
    assert fractions.mean() == pytest.approx(ALPHA, abs=3 * fisher_sigma() / np.sqrt(60))
    assert np.median([f.uncertainty for f in fits]) == pytest.approx(fisher_sigma(), rel=0.05)


def test_binned_fit_with_barlow_beeston_terms() -> None:
    rng = np.random.default_rng(11)
    binning = Binning(edges=(-12.0, *np.linspace(-4, 4, 25), 12.0))
    signal = make_template(rng.normal(1, 1, 200_000), binning=binning, name="signal")
    background = make_template(rng.normal(-1, 1, 200_000), binning=binning, name="background")
    data = make_template(mixture(rng), binning=binning, name="data")
    expected = binned_fisher_uncertainty(signal, background, ALPHA, EVENTS)
    assert expected > fisher_sigma()  # binning loses information
    result, pyhf_fit = fit_fraction_binned(data, signal, background, "staterror")
    assert abs(result.fraction - ALPHA) < 3 * expected
    # the templates hold 20× the data: MC statistics widen σ(α) by a few per cent at most
    assert expected <= result.uncertainty < 1.06 * expected
    assert pyhf_fit.value("signal_yield") * EVENTS == pytest.approx(result.fraction * data.total, rel=0.02)
    shapesys, _ = fit_fraction_binned(data, signal, background, "shapesys")
    assert shapesys.fraction == pytest.approx(result.fraction, abs=0.2 * expected)


def test_small_templates_widen_the_binned_uncertainty() -> None:
    rng = np.random.default_rng(12)
    binning = Binning(12, -5.0, 5.0)
    signal = make_template(rng.normal(1, 1, 2_000), binning=binning, name="signal")
    background = make_template(rng.normal(-1, 1, 2_000), binning=binning, name="background")
    data = make_template(mixture(rng), binning=binning, name="data")
    with_mc, _ = fit_fraction_binned(data, signal, background, "staterror")
    without, _ = fit_fraction_binned(data, signal, background, "none")
    assert with_mc.uncertainty > 1.2 * without.uncertainty


def test_no_signal_puts_about_half_the_toys_on_the_bound() -> None:
    rng = np.random.default_rng(5)
    fits = [fit_fraction(mixture(rng, 2_000, 0.0), SIGNAL.pdf, BACKGROUND.pdf) for _ in range(60)]
    on_bound = np.mean([f.at_bound for f in fits])
    assert on_bound == pytest.approx(0.5, abs=3 * np.sqrt(0.25 / 60))
    assert all(f.fraction >= 0 for f in fits)


def test_bad_input_is_refused() -> None:
    binning = Binning(10, -3.0, 3.0)
    rng = np.random.default_rng(0)
    signal = histogram_density(make_template(rng.normal(1, 1, 1000), binning=binning, name="signal"))
    background = histogram_density(make_template(rng.normal(-1, 1, 1000), binning=binning))
    with pytest.raises(DataError, match="2 of 3 data values lie where both templates vanish"):
        fit_fraction(np.array([0.0, 5.0, -9.0]), signal, background)
    with pytest.raises(DataError, match="empty"):
        fit_fraction(np.array([]), signal, background)
    with pytest.raises(ConfigError, match="inside bounds"):
        fit_fraction(np.array([0.0]), signal, background, start=1.5)
    with pytest.raises(DataError, match=r"'signal'.*is empty"):  # noqa: PT012 - the template is the bad input
        empty = make_template(np.array([10.0]), binning=binning, name="signal")
        fit_fraction_binned(
            make_template(np.zeros(5), binning=binning),
            empty,
            make_template(np.zeros(5), binning=binning, name="background"),
        )
    with pytest.raises(ConfigError, match="other binning"):
        fit_fraction_binned(
            make_template(np.zeros(5), binning=binning),
            make_template(np.zeros(5), binning=Binning(5, -3.0, 3.0), name="signal"),
            make_template(np.zeros(5), binning=binning, name="background"),
        )
