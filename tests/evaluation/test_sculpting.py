"""Mass sculpting: JSD zero when the score ignores the mass, large when it learnt it; scipy's JSD."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from heplearn.evaluation.sculpting import jensen_shannon_divergence, mass_sculpting


def test_uncorrelated_score_does_not_sculpt() -> None:
    # every background mass value comes with the same set of scores: a cut keeps the same fraction
    # of every mass bin, so the shape after any cut is exactly the shape before
    masses = np.linspace(20, 300, 57)
    scores = np.linspace(0, 1, 40)
    mass = np.concatenate([np.repeat(masses, len(scores)), np.full(500, 172.0)])
    score = np.concatenate([np.tile(scores, len(masses)), np.linspace(0.3, 1, 500)])
    is_signal = np.arange(len(mass)) >= len(masses) * len(scores)
    sculpting = mass_sculpting(mass, is_signal, score, bins=20, histogram_range=(0, 320))
    for cut in sculpting.after:
        assert cut.jsd == pytest.approx(0.0, abs=1e-12)
        assert cut.background_efficiency < 1
    np.testing.assert_allclose(sculpting.after[0].density, sculpting.before)


def test_mass_correlated_score_sculpts_and_jsd_is_scipys() -> None:
    rng = np.random.default_rng(2)
    background_mass = 20 + rng.exponential(60, 20_000)
    signal_mass = rng.normal(172, 20, 5000)
    mass = np.concatenate([background_mass, signal_mass])
    is_signal = np.arange(len(mass)) >= len(background_mass)
    score = -np.abs(mass - 172) / 50 + rng.normal(0, 0.3, len(mass))  # a tagger that learnt the mass
    sculpting = mass_sculpting(mass, is_signal, score, signal_efficiencies=(0.5,), bins=30)
    (cut,) = sculpting.after
    assert cut.jsd > 0.2
    kept = ~is_signal & (score >= cut.threshold)
    before, _ = np.histogram(background_mass, sculpting.bin_edges)
    after, _ = np.histogram(mass[kept], sculpting.bin_edges)
    assert cut.jsd == pytest.approx(jensenshannon(before, after, base=2) ** 2)
    assert cut.inverse_jsd == pytest.approx(1 / cut.jsd)
    assert np.mean(score[is_signal] >= cut.threshold) == pytest.approx(0.5, abs=1e-3)
    assert jensen_shannon_divergence(before, before) == 0.0
