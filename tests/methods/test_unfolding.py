"""OmniFold against known answers: the exact Gaussian recursion, trivial closure, 4-D closure,
acceptance effects, background subtraction and the bootstrap.

Sizes: the default suite unfolds 2×10⁴ events (tolerances scaled by the statistics: about 3× the
statistical error of a weighted mean, 0.007 here); ``@pytest.mark.slow`` repeats the Gaussian table
at 2×10⁵ events and 10 iterations within 0.005.
"""

from __future__ import annotations

import numpy as np
import pytest

from heplearn.methods.unfolding import OmniFoldSettings, level_arrays, omnifold
from heplearn.run_config import ModelConfig, TrainingConfig
from tests.gaussian_unfolding import GENERATOR, SMEARING, TABLE, TRUTH, gaussian_iterates, weighted_moments

MLP = ModelConfig(name="mlp", hidden=(32, 32), dropout=0.0, batch_norm=False)


def training(epochs: int = 10, batch_size: int = 1000) -> TrainingConfig:
    """A small, decaying-rate schedule: the last epochs average the classifier's noise away."""
    return TrainingConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=3e-3,
        weight_decay=0.0,
        threads=1,
        early_stopping_patience=None,
        seed=0,
    )


def gaussian_samples(
    n: int, seed: int, dims: int = 1, generator: tuple[float, float] = GENERATOR, truth: tuple[float, float] = TRUTH
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gen = rng.normal(generator[0], generator[1], (n, dims))
    reco = gen + rng.normal(0, SMEARING, (n, dims))
    truth_values = rng.normal(truth[0], truth[1], (n, dims))
    return gen, reco, truth_values, truth_values + rng.normal(0, SMEARING, (n, dims))


def unfold_gaussian(n: int, iterations: int, seed: int = 1, **settings: object) -> tuple[np.ndarray, object]:
    gen, reco, _, data = gaussian_samples(n, seed)
    result = omnifold(
        level_arrays({"jet": gen}),
        level_arrays({"jet": reco}),
        level_arrays({"jet": data}),
        model=MLP,
        training=training(),
        settings=OmniFoldSettings(iterations=iterations, validation_fraction=0.0, seed=seed, **settings),
        progress=False,
    )
    return gen[:, 0], result


def test_omnifold_follows_the_exact_gaussian_recursion() -> None:
    """2×10⁴ events per sample, 3 iterations: (mean, σ) of the unfolded generator within 0.02."""
    gen, result = unfold_gaussian(20_000, 3)
    expected = gaussian_iterates(3)
    for iteration in (1, 2, 3):
        measured = weighted_moments(gen, result.weights_at(iteration))
        assert measured == pytest.approx(expected[iteration - 1], abs=0.02), iteration
    # and the unfolding moved: the prior has mean 0 and σ 1
    assert weighted_moments(gen, result.weights_at(1))[0] > 0.13
    assert result.pull.shape == result.push.shape == (3, 20_000)
    assert np.sum(result.weights) == pytest.approx(20_000, rel=1e-6)  # a shape: Σ w ν = Σ w


@pytest.mark.slow
def test_omnifold_reproduces_the_gaussian_table_at_full_size() -> None:
    """2×10⁵ events per sample, 10 iterations: every row of the table within 0.005."""
    gen, result = unfold_gaussian(200_000, 10)
    for iteration, expected in TABLE.items():
        assert weighted_moments(gen, result.weights_at(iteration)) == pytest.approx(expected, abs=0.005), iteration


def test_data_equal_to_simulation_gives_unit_weights() -> None:
    """Data drawn from the simulation itself: ν ≈ 1 (std < 0.05) after every iteration."""
    gen, reco, _, _ = gaussian_samples(20_000, 3)
    _, _, _, data = gaussian_samples(20_000, 4, truth=GENERATOR)
    result = omnifold(
        level_arrays({"jet": gen}),
        level_arrays({"jet": reco}),
        level_arrays({"jet": data}),
        model=MLP,
        training=training(),
        settings=OmniFoldSettings(iterations=2, validation_fraction=0),
        progress=False,
    )
    for push in result.push:
        assert np.std(push) < 0.05 and np.mean(push) == pytest.approx(1, abs=0.01)


def effective_error(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The statistical error of weighted means: σ / √N_eff with N_eff = (Σw)² / Σw² (Kish)."""
    effective = weights.sum() ** 2 / np.sum(weights**2)
    mean = np.average(values, axis=0, weights=weights)
    return np.sqrt(np.average((values - mean) ** 2, axis=0, weights=weights) / effective)


def four_dimensional_closure(n: int, iterations: int) -> tuple[np.ndarray, object]:
    gen, reco, _, data = gaussian_samples(n, 5, dims=4, generator=(1.0, 1.0), truth=(0.0, 1.0))
    result = omnifold(
        level_arrays({"jet": gen}),
        level_arrays({"jet": reco}),
        level_arrays({"jet": data}),
        model=ModelConfig(name="mlp", hidden=(64, 64), dropout=0.0, batch_norm=False),
        training=training(epochs=12),
        settings=OmniFoldSettings(iterations=iterations, validation_fraction=0),
        progress=False,
    )
    return gen, result


def test_four_dimensional_gaussian_first_iteration() -> None:
    """Generator N(1, 1)⁴, data N(0, 1)⁴ smeared by 0.5, 2×10⁴ events: after one iteration every
    mean is at the recursion's 0.2, within 4 statistical errors of the weighted sample (N_eff ≈ 1500)."""
    gen, result = four_dimensional_closure(20_000, 1)
    means = np.average(gen, axis=0, weights=result.weights_at(1))
    expected = gaussian_iterates(1, (1.0, 1.0), (0.0, 1.0))[0][0]
    assert expected == pytest.approx(0.2)
    np.testing.assert_array_less(np.abs(means - expected), 4 * effective_error(gen, result.weights_at(1)) + 0.01)


@pytest.mark.slow
def test_four_dimensional_gaussian_closure() -> None:
    """The same at 2×10⁵ events and 5 iterations: every unfolded mean goes to 0 (the recursion: 3×10⁻⁴)."""
    gen, result = four_dimensional_closure(200_000, 5)
    means = np.average(gen, axis=0, weights=result.weights)
    np.testing.assert_array_less(np.abs(means), 4 * effective_error(gen, result.weights) + 0.01)
    np.testing.assert_array_less(np.abs(means), 0.05)


def acceptance_samples(n: int, seed: int) -> dict[str, np.ndarray]:
    """The Gaussian problem with 10% of events lost in reconstruction and 10% fakes (no generator
    level), in simulation and data alike; missing values are the dummy −10 (hep-lbdl's example)."""
    rng = np.random.default_rng(seed)
    gen, reco, _, data = gaussian_samples(n, seed)
    reco_pass, gen_pass = rng.random(n) > 0.1, rng.random(n) > 0.1
    reco = np.where(reco_pass[:, None], reco, -10.0)
    gen = np.where(gen_pass[:, None], gen, -10.0)
    reco = np.where(gen_pass[:, None], reco, rng.normal(0, 1.2, (n, 1)))  # fakes: detector level only
    reco_pass |= ~gen_pass
    data = data[rng.random(n) > 0.1]  # the data lose the same fraction
    fakes = rng.normal(0, 1.2, (int(0.1 * n), 1))
    return {
        "gen": gen,
        "reco": reco,
        "data": np.concatenate([data, fakes]),
        "reco_pass": reco_pass,
        "gen_pass": gen_pass,
    }


@pytest.mark.parametrize("no_reco", ["one", "previous"])
def test_events_without_reconstruction_or_generator_level(no_reco: str) -> None:
    """ω = 1 (or ν^{n−1}) without reco, ν = 1 for fakes; with ``previous`` the unfolding still reaches
    the truth (the lost events are a random 10%, so they carry no information)."""
    sample = acceptance_samples(20_000, 6)
    result = omnifold(
        level_arrays({"jet": sample["gen"]}),
        level_arrays({"jet": sample["reco"]}),
        level_arrays({"jet": sample["data"]}),
        model=MLP,
        training=training(),
        settings=OmniFoldSettings(iterations=4 if no_reco == "previous" else 2, validation_fraction=0, no_reco=no_reco),
        reco_pass=sample["reco_pass"],
        gen_pass=sample["gen_pass"],
        progress=False,
    )
    lost, fake = ~sample["reco_pass"], ~sample["gen_pass"]
    assert np.all(result.push[:, fake] == 1.0)
    if no_reco == "one":
        assert np.all(result.pull[:, lost] == 1.0)
    else:
        np.testing.assert_array_equal(result.pull[1:, lost], result.push[:-1, lost])
        gen, weights = sample["gen"][~fake, 0], result.weights[~fake]
        # 4 iterations at 90% of the gain each: the recursion's 4th iterate is (0.1993, 0.8075)
        assert weighted_moments(gen, weights) == pytest.approx((0.2, 0.81), abs=0.025)


def test_background_is_subtracted_with_negative_weights() -> None:
    """Data = signal + 20% background N(0, 1.5²) at detector level; the background simulation,
    subtracted, leaves the signal's unfolding (the table), which is biased without it."""
    gen, reco, _, signal = gaussian_samples(20_000, 8)
    rng = np.random.default_rng(9)
    data = np.concatenate([signal, rng.normal(0, 1.5, (4_000, 1))])
    background = rng.normal(0, 1.5, (8_000, 1))
    expected = gaussian_iterates(1)[-1]
    sigmas = {}
    for subtract in (True, False):
        result = omnifold(
            level_arrays({"jet": gen}),
            level_arrays({"jet": reco}),
            level_arrays({"jet": data}),
            model=MLP,
            training=training(),
            settings=OmniFoldSettings(iterations=1, validation_fraction=0),
            background=level_arrays({"jet": background}, weight=np.full(8_000, 0.5)) if subtract else None,
            progress=False,
        )
        moments = weighted_moments(gen[:, 0], result.weights)
        sigmas[subtract] = moments[1]
        if subtract:
            assert moments == pytest.approx(expected, abs=0.025)
    assert sigmas[False] > expected[1] + 0.05  # the background would widen the result


def test_bootstrap_replicas_spread_like_the_statistics() -> None:
    """The spread of the unfolded mean over Poisson(1) replicas of the data is the statistical
    error: about gain × σ_D / √N = 0.8 × 0.94 / √10⁴ ≈ 0.0075 after one iteration (± a factor 2.5
    for 6 replicas and the classifier's own noise)."""
    gen, result = unfold_gaussian(10_000, 1, bootstraps=6)
    means = np.array([np.average(gen, weights=weights) for weights in result.bootstrap_weights])
    assert result.bootstrap_weights.shape == (6, 10_000)
    assert 0.0075 / 2.5 < np.std(means, ddof=1) < 0.0075 * 2.5
    assert np.mean(means) == pytest.approx(np.average(gen, weights=result.weights), abs=0.02)


def particle_sets(values: np.ndarray, rng: np.random.Generator, smearing: float) -> tuple[np.ndarray, np.ndarray]:
    """Events of 4 particles (2 to 4 of them real) whose feature sums to ``values`` (+ Gaussian smearing of
    ``smearing`` on the sum); padded slots are zeros, masked out."""
    n = len(values)
    real = np.arange(4)[None, :] < rng.integers(2, 5, n)[:, None]
    shares = rng.dirichlet(np.ones(4), n) * real
    shares /= shares.sum(axis=1, keepdims=True)
    particles = values[:, None] * shares + rng.normal(0, smearing / np.sqrt(real.sum(1, keepdims=True)), (n, 4))
    return np.where(real, particles, 0.0)[..., None], real


def test_a_particle_network_unfolds_sets_of_particles() -> None:
    """Full OmniFold: a PFN on the particles at both levels; the sum of each event's particles is the
    Gaussian observable, so the first iteration must give the recursion's (0.1600, 0.8773)."""
    rng = np.random.default_rng(12)
    n = 12_000
    z = rng.normal(*GENERATOR, n)
    gen, gen_mask = particle_sets(z, rng, 0.0)
    reco = gen.copy()
    reco[gen_mask] += rng.normal(0, SMEARING / np.sqrt(gen_mask.sum(1, keepdims=True)), (n, 4))[gen_mask][:, None]
    truth = rng.normal(*TRUTH, n)
    data, data_mask = particle_sets(truth, rng, SMEARING)
    result = omnifold(
        level_arrays({"particles": gen}, mask=gen_mask),
        level_arrays({"particles": reco}, mask=gen_mask),
        level_arrays({"particles": data}, mask=data_mask),
        model=ModelConfig(name="pfn", phi_sizes=(32, 32), f_sizes=(32, 32)),
        training=training(epochs=6),
        settings=OmniFoldSettings(iterations=1, validation_fraction=0),
        progress=False,
    )
    measured = weighted_moments(z, result.weights)
    assert measured == pytest.approx(gaussian_iterates(1)[0], abs=0.03), measured
