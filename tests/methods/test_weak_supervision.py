"""SIC curves, and CATHODE against the idealised detector on the correlated resonant toy."""

from __future__ import annotations

import numpy as np
import pytest

from heplearn.errors import ConfigError, DataError
from heplearn.methods.weak_supervision import cwola_scores, sic_curve, vae_scores

SR = (3.3, 3.7)


def test_a_perfect_score_reaches_the_background_statistics_floor() -> None:
    # every signal event above every background one: the best cut keeps all signal and exactly
    # the floor of 20 of 2000 background events, SIC = 1 / √(20/2000) = 10
    is_signal = np.r_[np.ones(500, bool), np.zeros(2000, bool)]
    score = np.r_[np.linspace(2, 3, 500), np.linspace(0, 1, 2000)]
    curve = sic_curve(is_signal, score)
    assert curve.max_sic == pytest.approx(10.0)
    assert curve.auc == 1.0
    assert curve.background_efficiency.min() == pytest.approx(20 / 2000)
    # a score blind to the labels: ε_S = ε_B along the curve, so SIC = √ε_S ≤ 1 (up to fluctuations)
    rng = np.random.default_rng(0)
    blind = sic_curve(rng.random(40_000) < 0.5, rng.random(40_000))
    assert blind.max_sic < 1.1
    assert blind.at(0.25) == pytest.approx(0.5, abs=0.05)
    with pytest.raises(DataError, match="background test events"):
        sic_curve(is_signal[:510], score[:510])


def test_overlapping_regions_and_a_bad_beta_are_errors() -> None:
    x, mass = np.zeros((400, 2)), np.linspace(3.0, 4.0, 400)
    with pytest.raises(ConfigError, match="must enclose the signal region"):
        cwola_scores(x, mass, SR, (3.4, 5.0))
    with pytest.raises(ConfigError, match="β must lie in"):
        vae_scores(x, x, beta=2.0)


def correlated_toy(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The research toy of ``test_cathode``: m ~ 2.5 + exponential(1) TeV, x | m ~ N(0.3 m, 1), 4 features."""
    mass = 2.5 + rng.exponential(1.0, n)
    return rng.normal(size=(n, 4)) + 0.3 * mass[:, None], mass


def signal_toy(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The toy's signal: m ~ N(3.5, 0.1) TeV, x ~ N(2, 0.3)."""
    return rng.normal(2.0, 0.3, (n, 4)), rng.normal(3.5, 0.1, n)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_cathode_reaches_most_of_the_idealised_max_sic_at_one_percent_injection() -> None:
    """S/B = 1% in the SR (arXiv:2109.00546's toy check): CATHODE's max SIC ≥ 0.8 × the idealised one."""
    from heplearn.methods.cathode import cathode_scores
    from heplearn.methods.cwola import default_training
    from heplearn.methods.weak_supervision import ensemble_score, idealised_scores, in_window
    from heplearn.run_config import TrainingConfig

    rng = np.random.default_rng(21)
    x, mass = correlated_toy(80_000, rng)
    n_signal = int(0.01 * in_window(mass, SR).sum())
    signal_x, signal_mass = signal_toy(n_signal, rng)
    x, mass = np.r_[x, signal_x], np.r_[mass, signal_mass]
    classifier = default_training(epochs=8, batch_size=512, threads=1)
    kfold = {"folds": 3, "hidden": (64, 64), "training": classifier, "seed": 4}
    cathode, in_sr = cathode_scores(
        x,
        mass,
        SR,
        (2.5, 10.0),
        oversampling=4,
        folds=3,
        transforms=3,
        hidden=(64, 64),
        flow_training=TrainingConfig(
            epochs=3, batch_size=1024, learning_rate=2e-3, threads=1, early_stopping_patience=None
        ),
        classifier_training=classifier,
        seed=4,
    )
    extra_x, extra_mass = correlated_toy(160_000, rng)
    extra = extra_x[in_window(extra_mass, SR)][: 4 * in_sr.sum()]
    idealised = idealised_scores(x[in_sr], extra, **kfold)
    test_background, test_background_mass = correlated_toy(100_000, rng)
    test_background = test_background[in_window(test_background_mass, SR)]
    test_signal = signal_toy(5000, rng)[0]
    test = np.r_[test_signal, test_background]
    is_signal = np.r_[np.ones(len(test_signal), bool), np.zeros(len(test_background), bool)]
    ours = sic_curve(is_signal, ensemble_score(cathode, test)).max_sic
    ideal = sic_curve(is_signal, ensemble_score(idealised, test)).max_sic
    assert ours >= 0.8 * ideal, (ours, ideal)
