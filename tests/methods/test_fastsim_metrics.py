"""Known answers of the JetNet generation metrics (heplearn.methods.fastsim_metrics)."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from heplearn.errors import ConfigError, DataError
from heplearn.methods import fastsim_metrics as fm

DATA = Path(__file__).parent / "data"


def test_w1_of_shifted_gaussians_is_the_shift() -> None:
    rng = np.random.default_rng(0)
    first, second = rng.normal(0, 1, 200_000), rng.normal(0.7, 1, 200_000)
    assert fm.wasserstein1(first, second) == pytest.approx(0.7, abs=0.01)
    mean, spread = fm.w1_batches(first, second, num_batches=3, sample_size=50_000)
    assert mean[0] == pytest.approx(0.7, abs=0.02) and spread[0] < 0.02


def test_w1_of_gaussians_of_different_widths() -> None:
    # W1(N(0, σ1²), N(0, σ2²)) = |σ1 − σ2| √(2/π): the quantile functions differ by (σ2 − σ1) Φ⁻¹(u)
    rng = np.random.default_rng(1)
    value = fm.wasserstein1(rng.normal(0, 1, 200_000), rng.normal(0, 2, 200_000))
    assert value == pytest.approx(math.sqrt(2 / math.pi), abs=0.015)


def test_frechet_distance_closed_form_in_one_dimension() -> None:
    # for 1D Gaussians the Fréchet distance is (μ1 − μ2)² + (σ1 − σ2)²
    assert fm.frechet_distance(
        np.array([0.5]), np.array([[4.0]]), np.array([-1.0]), np.array([[1.0]])
    ) == pytest.approx(1.5**2 + 1.0**2)


def _gaussians(seed: int, n: int = 100_000) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    mean1, mean2 = np.zeros(3), np.array([0.3, -0.2, 0.1])
    cov1 = np.eye(3)
    cov2 = np.array([[1.5, 0.3, 0.0], [0.3, 0.8, 0.1], [0.0, 0.1, 1.0]])
    truth = {"mean1": mean1, "cov1": cov1, "mean2": mean2, "cov2": cov2}
    return rng.multivariate_normal(mean1, cov1, n), rng.multivariate_normal(mean2, cov2, n), truth


def test_fpd_of_two_gaussians_is_the_closed_form() -> None:
    first, second, truth = _gaussians(2)
    expected = fm.frechet_distance(truth["mean1"], truth["cov1"], truth["mean2"], truth["cov2"])
    value, error = fm.fpd(first, second, min_samples=5_000, max_samples=20_000, num_batches=10, normalise=False)
    assert abs(value - expected) < 3 * error + 0.02 * expected, (value, error, expected)


def test_fpd_and_kpd_of_identical_distributions_are_zero_within_three_sigma() -> None:
    rng = np.random.default_rng(3)
    first, second = rng.normal(0, 1, (30_000, 4)), rng.normal(0, 1, (30_000, 4))
    value, error = fm.fpd(first, second, min_samples=2_000, max_samples=10_000, num_batches=10)
    assert value <= 3 * error + 1e-5, (value, error)
    median, spread = fm.kpd(first, second, num_batches=10, batch_size=1_000)
    assert abs(median) < 3 * spread, (median, spread)


def test_kpd_and_fpd_see_a_shift() -> None:
    first, second, _ = _gaussians(4, 20_000)
    median, spread = fm.kpd(first, second, num_batches=10, batch_size=1_000)
    assert median > 5 * spread
    value, error = fm.fpd(first, second, min_samples=2_000, max_samples=5_000, num_batches=5)
    assert value > 5 * error


def test_efps_match_energyflow_reference_values() -> None:
    reference = json.loads((DATA / "energyflow_efps_d4.json").read_text())
    values = fm.efps(np.array(reference["clouds_deta_dphi_ptrel"]), np.array(reference["mask"]))
    assert values.shape == (3, 36)
    np.testing.assert_allclose(values, np.array(reference["efps"]), rtol=1e-9)


@pytest.mark.slow
def test_efps_match_energyflow_live(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against energyflow itself where it is installed (its EMD module needs ``wasserstein``, built for
    numpy < 2 only; EFPs never call it, so an empty stand-in lets the package import)."""
    monkeypatch.setitem(sys.modules, "wasserstein", types.ModuleType("wasserstein"))
    ef = pytest.importorskip("energyflow")
    rng = np.random.default_rng(5)
    clouds = np.stack([rng.normal(0, 0.3, (4, 12)), rng.normal(0, 0.3, (4, 12)), rng.exponential(0.1, (4, 12))], -1)
    mask = np.ones((4, 12), bool)
    mask[0, 7:] = False
    efp_set = ef.EFPSet(("d<=", 4), measure="hadr", beta=1, normed=None, coords="ptyphim")
    expected = [efp_set.compute(np.c_[c[m, 2], c[m, 0], c[m, 1]]) for c, m in zip(clouds, mask, strict=True)]
    assert [tuple(sorted(graph)) for graph in efp_set.graphs()] == [tuple(sorted(g)) for g in fm.EFP_GRAPHS]
    np.testing.assert_allclose(fm.efps(clouds, mask), np.array(expected), rtol=1e-9)


def test_efps_ignore_padding_and_order() -> None:
    rng = np.random.default_rng(6)
    clouds = rng.normal(0, 0.2, (2, 8, 3))
    clouds[..., 2] = rng.exponential(1, (2, 8))
    mask = np.ones((2, 8), bool)
    padded = np.concatenate([clouds, rng.normal(0, 1, (2, 4, 3))], 1)
    padded_mask = np.concatenate([mask, np.zeros((2, 4), bool)], 1)
    np.testing.assert_allclose(fm.efps(padded, padded_mask), fm.efps(clouds, mask), rtol=1e-12)
    permuted = clouds[:, rng.permutation(8)]
    np.testing.assert_allclose(fm.efps(permuted, mask), fm.efps(clouds, mask), rtol=1e-12)


def _point_clouds(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    clouds = rng.normal(0, 1, (n, 1, 3)).astype(np.float32)
    clouds[..., 0] += shift
    clouds[..., 2] = np.exp(clouds[..., 2])  # the test takes log pT_rel: a N(0, 1) feature again
    return clouds, np.ones((n, 1), bool)


def test_classifier_test_of_identical_small_samples_is_near_one_half() -> None:
    # 2000 test jets per sample: σ(AUC) = √((n1 + n2 + 1) / (12 n1 n2)) = 0.0065
    rng = np.random.default_rng(10)
    result = fm.classifier_test(
        *_point_clouds(rng, 4_000), *_point_clouds(rng, 4_000), epochs=1, hidden=8, batch_size=512
    )
    assert result.test_jets == 4_000 and result.train_jets == 4_000
    assert abs(result.auc - 0.5) < 0.025, result


@pytest.mark.slow
def test_classifier_test_of_identical_distributions_gives_auc_one_half() -> None:
    # 20000 test jets per sample: σ(AUC) = 0.0029, so 0.01 is 3.5σ
    rng = np.random.default_rng(7)
    result = fm.classifier_test(
        *_point_clouds(rng, 40_000), *_point_clouds(rng, 40_000), epochs=1, hidden=8, batch_size=1024
    )
    assert result.test_jets == 40_000
    assert abs(result.auc - 0.5) < 0.01, result
    assert abs(result.jsd) < 0.01, result


@pytest.mark.slow
def test_classifier_test_reaches_the_bayes_auc_of_shifted_gaussians() -> None:
    # N(0, 1) vs N(0.5, 1): the likelihood ratio is monotone in x, AUC = Φ(0.5 / √2) = 0.638
    rng = np.random.default_rng(8)
    result = fm.classifier_test(
        *_point_clouds(rng, 20_000), *_point_clouds(rng, 20_000, 0.5), epochs=4, hidden=16, batch_size=128
    )
    assert result.auc == pytest.approx(norm.cdf(0.5 / math.sqrt(2)), abs=0.015)
    assert 0.0 < result.jsd < 0.06  # the true JSD of the pair is 0.044 bits; a classifier estimates it from below


def _prong_clouds(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    clouds = rng.normal(0, 0.2, (n, 6, 3)).astype(np.float32)
    clouds[..., 0] += shift
    clouds[..., 2] = rng.dirichlet(np.ones(6), n)
    return clouds, np.ones((n, 6), bool)


def test_particlenet_classifier_test_sees_a_shift_and_not_identical_samples() -> None:
    # 500 test jets per sample: σ(AUC) = √((n1 + n2 + 1) / (12 n1 n2)) = 0.018 for identical samples
    rng = np.random.default_rng(11)
    same = fm.classifier_test(
        *_prong_clouds(rng, 1_000), *_prong_clouds(rng, 1_000), epochs=1, batch_size=256, network="particlenet"
    )
    assert same.test_jets == 1_000 and abs(same.auc - 0.5) < 0.055, same
    # every particle moved by 1.5σ in Δη: the mean of 6 moves by 3.7σ (Bayes AUC Φ(3.67 / √2) = 0.995)
    shifted = fm.classifier_test(
        *_prong_clouds(rng, 1_000), *_prong_clouds(rng, 1_000, 0.3), epochs=1, batch_size=256, network="particlenet"
    )
    assert shifted.auc > 0.9, shifted


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(DataError, match="clouds"):
        fm.efps(np.zeros((3, 4)), np.ones((3, 4), bool))
    with pytest.raises(DataError, match="same features"):
        fm.fpd(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(DataError, match="NaN"):
        fm.kpd(np.full((10, 2), np.nan), np.zeros((10, 2)))
    with pytest.raises(DataError, match="at least 20"):
        fm.classifier_test(np.zeros((5, 2, 3)), np.ones((5, 2), bool), np.zeros((5, 2, 3)), np.ones((5, 2), bool))
    with pytest.raises(ConfigError, match="unknown network 'bdt'"):
        fm.classifier_test(
            *_point_clouds(np.random.default_rng(0), 30), *_point_clouds(np.random.default_rng(1), 30), network="bdt"
        )


def test_comparison_plot_is_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    observables = {
        "mass": rng.normal(170, 20, 500),
        "tau21": rng.uniform(0, 1, 500),
        "tau32": rng.uniform(0, 1, 500),
        "multiplicity": rng.integers(10, 60, 500),
        "particle_pt": rng.exponential(20, 5000),
    }
    path = fm.plot_comparison(observables, {"model": observables}, tmp_path / "top.png", title="top")
    assert path.stat().st_size > 10_000


def test_substructure_metrics_of_three_prong_jets_against_spread_jets() -> None:
    rng = np.random.default_rng(4)
    # 3 particles per jet: three N-subjettiness axes on them leave nothing, so τ3 = 0 and τ32 = 0 exactly
    angles = rng.uniform(0, 2 * np.pi, 60)[:, None] + np.array([0.0, 2.1, 4.2])
    prongs = np.stack([0.3 * np.cos(angles), 0.3 * np.sin(angles), np.full((60, 3), 1 / 3)], -1)
    three = fm.jet_observables(prongs, np.ones((60, 3), bool), np.full(60, 600.0))
    assert np.abs(three["tau32"]).max() < 1e-9 and (three["tau21"] > 0.1).all()
    spread = np.concatenate([rng.normal(0, 0.2, (60, 12, 2)), np.full((60, 12, 1), 1 / 12)], -1)
    even = fm.jet_observables(spread, np.ones((60, 12), bool), np.full(60, 600.0))
    metrics = fm.substructure_metrics(three, even)
    # against a point mass at 0, W1 is the mean of the other sample
    assert metrics["w1_tau32_e3"] == pytest.approx(1e3 * even["tau32"].mean(), rel=1e-9)
    assert metrics["reference_median_tau32"] == 0.0 and metrics["median_tau32"] > 0.3
    assert fm.substructure_metrics(even, even)["w1_tau21_e3"] == 0.0
