"""The triangular discriminator's known values and the comparison figure (IBU and OmniFold on the
Gaussian problem, the PRL's layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from heplearn.methods.unfolding_figures import (
    ObservableComparison,
    closure_chi2,
    comparison_figure,
    normalised_histogram,
    triangular_discriminator,
)
from heplearn.stats.ibu import unfold_events


def test_triangular_discriminator_known_values() -> None:
    assert triangular_discriminator([1, 2, 3], [2, 4, 6]) == 0.0  # normalised first
    assert triangular_discriminator([1, 0], [0, 1]) == 1.0
    assert triangular_discriminator([1, 1], [2, 0]) == pytest.approx(1 / 3)
    # fine bins approach the integral ½ ∫ (p − q)² / (p + q) of two unit Gaussians one σ apart
    exact, _ = integrate.quad(
        lambda x: 0.5 * (norm.pdf(x) - norm.pdf(x, 1)) ** 2 / (norm.pdf(x) + norm.pdf(x, 1)), -12, 13
    )
    edges = np.linspace(-12, 13, 5001)
    binned = triangular_discriminator(np.diff(norm.cdf(edges)), np.diff(norm.cdf(edges, 1)))
    assert binned == pytest.approx(exact, rel=1e-4)


def test_the_comparison_figure_reports_what_it_draws(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 50_000
    gen = rng.normal(0, 1, n)
    reco = gen + rng.normal(0, 0.5, n)
    truth = rng.normal(0.2, 0.8, n)
    data = truth + rng.normal(0, 0.5, n)
    bins = np.linspace(-3, 3, 31)
    ibu = unfold_events(gen, reco, data, bins, bins, 5, bootstraps=5)
    # exact likelihood-ratio weights N(0.2, 0.8²) / N(0, 1) stand in for OmniFold's
    exact = norm.pdf(gen, 0.2, 0.8) / norm.pdf(gen)
    observable = ObservableComparison(
        "x", "x [GeV]", bins, truth, gen, exact, ibu=ibu, omnifold_replicas=exact * rng.poisson(1.0, (4, n))
    )
    paths, discriminators = comparison_figure([observable, observable], tmp_path)
    assert [path.name for path in paths] == ["unfolding.png", "unfolding.pdf"] and all(p.stat().st_size for p in paths)
    values = discriminators["x"]
    truth_density = normalised_histogram(truth, bins)[0]
    assert values["generator"] == pytest.approx(
        1e3 * triangular_discriminator(normalised_histogram(gen, bins)[0], truth_density)
    )
    # the generator is far off (≈ 10⁻² from the width alone); IBU and exact weights are at the noise level
    assert values["generator"] > 10 * values["OmniFold"] and values["generator"] > 5 * values["IBU"]
    assert values["OmniFold"] < 1.0 and values["IBU"] < 2.0


def test_closure_chi2_known_values() -> None:
    # truth 30 | 70 and generator 50 | 50 in two unit bins: densities (0.3, 0.7) and (0.5, 0.5) with
    # errors √n/100, so χ² = 0.2²/((30 + 50)/10⁴) + 0.2²/((70 + 50)/10⁴) = 5 + 10/3, ndf = 1
    truth = np.r_[np.full(30, 0.5), np.full(70, 1.5)]
    generator = np.r_[np.full(50, 0.5), np.full(50, 1.5)]
    bins = np.array([0.0, 1.0, 2.0])
    # OmniFold's weights move the generator onto the truth exactly: χ² = 0
    weights = np.where(generator < 1, 30 / 50, 70 / 50)
    chi2 = closure_chi2(ObservableComparison("x", "x", bins, truth, generator, weights))
    assert chi2["generator"]["chi2"] == pytest.approx(5 + 10 / 3) and chi2["generator"]["ndf"] == 1
    assert chi2["generator"]["chi2_ndf"] == pytest.approx(5 + 10 / 3)
    assert chi2["OmniFold"]["chi2"] == pytest.approx(0.0, abs=1e-12)
    assert "IBU" not in chi2


def test_closure_chi2_is_about_one_per_bin_for_a_statistically_equal_sample() -> None:
    rng = np.random.default_rng(11)
    bins = np.linspace(-3, 3, 31)
    values = [
        closure_chi2(
            ObservableComparison(
                "x", "x", bins, rng.normal(size=20_000), gen := rng.normal(size=20_000), np.ones_like(gen)
            )
        )["OmniFold"]["chi2_ndf"]
        for _ in range(20)
    ]
    assert np.mean(values) == pytest.approx(1.0, abs=0.15)


def test_replica_spread_adds_to_the_weighted_count_error() -> None:
    rng = np.random.default_rng(5)
    values, bins = rng.normal(size=5000), np.linspace(-2, 2, 9)
    weights = rng.uniform(0.5, 1.5, 5000)
    density, plain = normalised_histogram(values, bins, weights)
    # identical replicas have no spread: the √Σw² error alone
    same = normalised_histogram(values, bins, weights, np.stack([weights, weights, weights]))
    assert same[0] == pytest.approx(density) and same[1] == pytest.approx(plain)
    replicas = weights * rng.poisson(1.0, (50, 5000))
    spread = np.stack([normalised_histogram(values, bins, replica)[0] for replica in replicas]).std(axis=0, ddof=1)
    assert normalised_histogram(values, bins, weights, replicas)[1] == pytest.approx(np.hypot(plain, spread))
