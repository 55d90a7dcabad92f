"""VAE-QR: the regressed quantile cut keeps a constant background efficiency across m_jj."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from heplearn.errors import ConfigError, DataError
from heplearn.methods.quantile_cut import efficiency_by_bin, fit_quantile_cut
from heplearn.run_config import TrainingConfig


def sculpting_background(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """m_jj falling from 1.5 TeV; a score whose mean and width grow with m_jj (it sculpts)."""
    mass = 1500.0 + rng.exponential(600.0, n)
    scale = mass / 1500.0
    return rng.normal(scale, 0.5 * scale), mass


def test_the_quantile_cut_is_flat_in_mass_where_a_fixed_cut_sculpts() -> None:
    rng = np.random.default_rng(4)
    score, mass = sculpting_background(20_000, rng)
    cut = fit_quantile_cut(
        score,
        mass,
        0.1,
        seed=1,
        training=TrainingConfig(
            epochs=20, batch_size=2048, learning_rate=2e-2, threads=1, early_stopping_patience=None, weight_decay=0.0
        ),
    )
    check_score, check_mass = sculpting_background(60_000, rng)  # an independent sample
    edges = np.quantile(check_mass, np.linspace(0, 1, 9))  # 8 bins of equal population
    fraction, low, high = efficiency_by_bin(cut.accepts(check_score, check_mass), check_mass, edges)
    totals, _ = np.histogram(check_mass, edges)
    # flat: χ² of the bins against their common mean, with binomial errors, has a fair p-value ...
    sigma = np.sqrt(0.1 * 0.9 / totals)
    chi2 = float((((fraction - fraction.mean()) / sigma) ** 2).sum())
    assert stats.chi2(len(totals) - 1).sf(chi2) > 1e-3, (fraction, chi2)
    assert fraction.mean() == pytest.approx(0.1, abs=0.01)
    assert np.all(low <= fraction) and np.all(fraction <= high)
    # ... while the fixed cut of the same overall efficiency keeps three times as much at high mass
    fixed = np.quantile(score, 0.9)
    sculpted, _, _ = efficiency_by_bin(check_score > fixed, check_mass, edges)
    assert sculpted[-1] > 3 * sculpted[0]


def test_bad_inputs_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"lies in \(0, 1\)"):
        fit_quantile_cut(np.zeros(10), np.zeros(10), 1.0)
    with pytest.raises(DataError, match="take at least 10000"):
        fit_quantile_cut(np.zeros(500), np.zeros(500), 0.01)
    with pytest.raises(DataError, match="one score per mass"):
        fit_quantile_cut(np.zeros(500), np.zeros(400), 0.1)
