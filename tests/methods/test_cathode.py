"""CATHODE: a conditional flow trained on the sidebands reproduces the SR background it never saw."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from heplearn.errors import ConfigError, DataError
from heplearn.methods.cathode import sample_background, train_flow
from heplearn.methods.cwola import default_training, kfold_scores
from heplearn.run_config import TrainingConfig

pytest.importorskip("zuko")
SR = (3.3, 3.7)


def correlated_background(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The research toy: m ~ 2.5 + exponential(1) (TeV), x | m ~ N(0.3 m, 1) in 4 features."""
    mass = 2.5 + rng.exponential(1.0, n)
    return rng.normal(size=(n, 4)) + 0.3 * mass[:, None], mass


def test_sideband_flow_samples_match_the_true_signal_region_background() -> None:
    rng = np.random.default_rng(12)
    x, mass = correlated_background(60_000, rng)
    in_sr = (mass > SR[0]) & (mass < SR[1])
    flow = train_flow(
        x[~in_sr],
        mass[~in_sr],
        transforms=2,
        hidden=(32, 32),
        seed=1,
        training=TrainingConfig(
            epochs=6, batch_size=512, learning_rate=3e-3, threads=1, early_stopping_patience=None, weight_decay=0.0
        ),
    )
    samples, sampled_mass = sample_background(flow, mass[in_sr], oversampling=2, seed=2)
    assert samples.shape == (2 * in_sr.sum(), 4)
    assert sampled_mass.mean() == pytest.approx(mass[in_sr].mean(), abs=0.02)
    # the flow interpolates the correlation into the SR: mean 0.3 m̄ ≈ 1.05 in every feature
    np.testing.assert_allclose(samples.mean(axis=0), 0.3 * mass[in_sr].mean(), atol=0.05)
    true_x, true_mass = correlated_background(400_000, rng)  # an independent sample's SR background
    truth = true_x[(true_mass > SR[0]) & (true_mass < SR[1])][: len(samples)]
    # a classifier of synthetic against true SR background finds nothing to tell them apart
    kfold = kfold_scores(
        np.r_[samples, truth],
        np.r_[np.ones(len(samples), bool), np.zeros(len(truth), bool)],
        folds=2,
        hidden=(32, 32),
        seed=3,
        training=default_training(epochs=5, batch_size=512, threads=1),
    )
    auc = roc_auc_score(np.r_[np.ones(len(samples)), np.zeros(len(truth))], kfold.scores)
    assert auc < 0.52, auc


def test_bad_flow_settings_are_errors() -> None:
    with pytest.raises(ConfigError, match="transforms"):
        train_flow(np.zeros((200, 2)), np.zeros(200), transforms=0)
    with pytest.raises(DataError, match="at least 100 events"):
        train_flow(np.zeros((20, 2)), np.zeros(20))


def test_cathode_scores_rank_an_injected_signal_above_the_sr_background() -> None:
    """10% signal (m ~ N(3.5, 0.1), x ~ N(2, 0.3)) in the SR of the correlated toy: the out-of-fold
    score of SR data against the flow's samples separates signal from SR background."""
    from heplearn.methods.cathode import cathode_scores

    rng = np.random.default_rng(5)
    x, mass = correlated_background(40_000, rng)
    n_signal = int(0.1 * ((mass > SR[0]) & (mass < SR[1])).sum())
    x = np.r_[x, rng.normal(2.0, 0.3, (n_signal, 4))]
    mass = np.r_[mass, rng.normal(3.5, 0.1, n_signal)]
    is_signal = np.r_[np.zeros(40_000, bool), np.ones(n_signal, bool)]
    scores, in_sr = cathode_scores(
        x,
        mass,
        SR,
        (2.5, 10.0),
        oversampling=2,
        folds=2,
        transforms=2,
        hidden=(32, 32),
        flow_training=TrainingConfig(
            epochs=5, batch_size=512, learning_rate=3e-3, threads=1, early_stopping_patience=None
        ),
        classifier_training=default_training(epochs=6, batch_size=512, threads=1),
        seed=1,
    )
    data_scores = scores.scores[: in_sr.sum()]
    assert roc_auc_score(is_signal[in_sr], data_scores) > 0.8
