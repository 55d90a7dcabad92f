"""Scale factors with a known answer: pseudo-data whose signal efficiency is 0.9× the simulation's."""

from __future__ import annotations

import numpy as np
import pytest

from heplearn.stats.scale_factors import Category, measure_scale_factor, scale_factors_in_bins
from heplearn.stats.templates import Binning, make_template

MASS = Binning(25, 50.0, 300.0)  # soft-drop mass [GeV]
SIM_EFFICIENCY, BACKGROUND_EFFICIENCY = 0.6, 0.1


Jets = tuple[np.ndarray, np.ndarray]  # masses, and whether each passes the working point


def sample(rng: np.random.Generator, signal: int, background: int, efficiency: float) -> tuple[Jets, Jets]:
    """Jet masses (top: N(172, 15) GeV, QCD: 50 + Exp(60) GeV) split by a tagger that passes signal
    with ``efficiency`` and background with 10%, independently of the mass."""
    top = rng.normal(172.0, 15.0, signal)
    qcd = 50.0 + rng.exponential(60.0, background)
    top_pass, qcd_pass = rng.random(signal) < efficiency, rng.random(background) < BACKGROUND_EFFICIENCY
    return (top, top_pass), (qcd, qcd_pass)


def categories(rng: np.random.Generator, data_efficiency: float) -> tuple[Category, Category]:
    (top, top_pass), (qcd, qcd_pass) = sample(rng, 20_000, 40_000, SIM_EFFICIENCY)
    (data_top, data_top_pass), (data_qcd, data_qcd_pass) = sample(rng, 4_000, 8_000, data_efficiency)
    made = []
    for selected in (True, False):
        data = np.concatenate([data_top[data_top_pass == selected], data_qcd[data_qcd_pass == selected]])
        made.append(
            Category(
                make_template(top[top_pass == selected], binning=MASS, name="top"),
                make_template(qcd[qcd_pass == selected], binning=MASS, name="qcd"),
                make_template(data, binning=MASS, name="data"),
            )
        )
    return made[0], made[1]


def test_a_ten_percent_lower_efficiency_gives_sf_0_90() -> None:
    result = measure_scale_factor(*categories(np.random.default_rng(1), 0.9 * SIM_EFFICIENCY))
    assert result.efficiency_simulation == pytest.approx(SIM_EFFICIENCY, abs=0.01)
    assert abs(result.scale_factor - 0.90) < 2 * result.uncertainty
    # ε_data = 0.54 from 4000 signal jets: the binomial σ √(ε(1−ε)/N) = 0.0079 is a floor for the fit's
    assert 0.0079 < result.efficiency_data_uncertainty < 0.02
    assert result.uncertainty > result.fit_uncertainty


def test_equal_efficiencies_give_sf_1_in_every_pt_bin() -> None:
    rng = np.random.default_rng(2)
    binned = scale_factors_in_bins(
        [300, 500, 800], [categories(rng, SIM_EFFICIENCY), categories(rng, 0.8 * SIM_EFFICIENCY)]
    )
    assert [(b.low, b.high) for b in binned] == [(300, 500), (500, 800)]
    assert abs(binned[0].result.scale_factor - 1.0) < 2 * binned[0].result.uncertainty
    assert abs(binned[1].result.scale_factor - 0.8) < 2 * binned[1].result.uncertainty
