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
