"""DisCo's distance correlation against its analytic values, and the disco term in a real training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from heplearn.methods.decorrelation import distance_correlation


def analytic_dcor2(rho: float) -> float:
    """dCor² of a bivariate normal with correlation ρ (Székely, Rizzo & Bakirov 2007, Theorem 7)."""
    numerator = rho * math.asin(rho) + math.sqrt(1 - rho**2) - rho * math.asin(rho / 2) - math.sqrt(4 - rho**2) + 1
    return numerator / (1 + math.pi / 3 - math.sqrt(3))


def bivariate_normal(rho: float, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize(("rho", "expected"), [(0.3, 0.0724), (0.5, 0.2062), (0.8, 0.5699)])
def test_bivariate_normal_matches_the_analytic_value(rho: float, expected: float) -> None:
    assert analytic_dcor2(rho) == pytest.approx(expected, abs=1e-4)
    estimates = [float(distance_correlation(*bivariate_normal(rho, 3000, seed))) for seed in range(3)]
    assert np.mean(estimates) == pytest.approx(expected, abs=0.012)


def test_independent_and_identical_samples() -> None:
    x, y = bivariate_normal(0.0, 3000, 7)
    assert float(distance_correlation(x, y)) < 0.003  # the V-statistic's O(1/N) bias only
    assert float(distance_correlation(x, x)) == pytest.approx(1.0, abs=1e-12)


def test_invariant_under_affine_maps_and_permutations_and_symmetric() -> None:
    x, y = bivariate_normal(0.5, 1000, 3)
    reference = distance_correlation(x, y)
    torch.testing.assert_close(distance_correlation(-3 * x + 2, 0.5 * y - 7), reference)
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(distance_correlation(x[order], y[order]), reference)
    torch.testing.assert_close(distance_correlation(y, x), reference)


def test_importance_weights_reach_the_reweighted_correlation() -> None:
    """An independent sample reweighted to a ρ = 0.5 bivariate normal gives that normal's dCor²."""
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=4000), rng.normal(size=4000)
    rho = 0.5
    # target density N2(ρ) over the product of standard normals
    log_ratio = -(x**2 - 2 * rho * x * y + y**2) / (2 * (1 - rho**2)) + (x**2 + y**2) / 2 - 0.5 * math.log(1 - rho**2)
    weight = torch.from_numpy(np.exp(log_ratio))
    value = float(distance_correlation(torch.from_numpy(x), torch.from_numpy(y), weight))
    assert value == pytest.approx(analytic_dcor2(rho), abs=0.03)
    assert float(distance_correlation(torch.from_numpy(x), torch.from_numpy(y))) < 0.01


def test_gradients_flow_to_both_arguments() -> None:
    x, y = bivariate_normal(0.5, 200, 1)
    x.requires_grad_(True)
    y.requires_grad_(True)
    distance_correlation(x, y).backward()
    assert x.grad is not None and y.grad is not None
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_agrees_with_the_dcor_package() -> None:
    dcor = pytest.importorskip("dcor")
    x, y = bivariate_normal(0.4, 700, 5)
    y = y + 0.3 * x**2  # a non-linear dependence too
    reference = dcor.distance_correlation_sqr(x.numpy(), y.numpy())
    assert float(distance_correlation(x, y)) == pytest.approx(reference, rel=1e-10)
    assert float(distance_correlation(x.float(), y.float())) == pytest.approx(reference, rel=1e-4)  # the loss path
