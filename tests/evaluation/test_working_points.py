"""Discrete scores: the reported working points are cuts that exist (issue 15, item 12).

Before: for rectangular cuts the rejections at ε_S = 30% and 50% were linear interpolations
between distant cuts (towards (0, 0)): no cut had them, and 1/JSD at both used one threshold.
"""

from __future__ import annotations

import numpy as np
import pytest

from heplearn.evaluation.metrics import effective_count, rejection_table, roc, summary
from heplearn.evaluation.sculpting import mass_sculpting


def _three_level_tagger() -> tuple[np.ndarray, np.ndarray]:
    """Scores 1, 0.5, 0 for 40/30/30% of 1000 signal jets and 1/9/90% of 1000 background jets.

    Its cuts: score >= 1 (ε_S 0.4, ε_B 0.01), >= 0.5 (0.7, 0.10), >= 0 (1, 1); nothing between.
    """
    signal = np.repeat([1.0, 0.5, 0.0], [400, 300, 300])
    background = np.repeat([1.0, 0.5, 0.0], [10, 90, 900])
    return np.r_[np.ones(1000, bool), np.zeros(1000, bool)], np.r_[signal, background]


def test_discrete_scores_report_the_nearest_cut_and_say_so() -> None:
    is_signal, score = _three_level_tagger()
    curve = roc(is_signal, score)
    at_30, at_50, at_60 = (curve.working_point(target) for target in (0.3, 0.5, 0.6))
    assert (at_30.signal_efficiency, at_30.rejection, at_30.threshold) == (0.4, pytest.approx(100.0), 1.0)
    assert not at_30.interpolated and not at_30.achieved  # the old figure, 1/0.0075 = 133, has no cut
    assert (at_50.signal_efficiency, at_50.rejection) == (0.4, pytest.approx(100.0))  # 0.4 is nearer than 0.7
    assert (at_60.signal_efficiency, at_60.rejection, at_60.threshold) == (0.7, pytest.approx(10.0), 0.5)
    figures = summary(is_signal, score, signal_efficiencies=(0.3, 0.7))
    assert figures["rejection_at_30"] == pytest.approx(100.0) and figures["signal_efficiency_at_30"] == 0.4
    assert figures["rejection_at_70"] == pytest.approx(10.0) and "signal_efficiency_at_70" not in figures
    rows = rejection_table(curve, effective_count(np.ones(1000)), effective_count(np.ones(1000)), (0.3, 0.7))
    assert [row.achieved_signal_efficiency for row in rows] == [0.4, None]
    assert rows[0].background_efficiency == pytest.approx(0.01)


def test_signal_efficiency_at_a_background_efficiency_is_a_cuts_too() -> None:
    is_signal, score = _three_level_tagger()
    curve = roc(is_signal, score)
    assert curve.signal_efficiency_at(0.02) == 0.4  # nearest cut in ε_B: (0.4, 0.01); not 0.43 between cuts
    assert curve.signal_efficiency_at(0.08) == 0.7
    assert curve.signal_efficiency_at(0.1) == 0.7


def test_sculpting_uses_the_cut_of_the_reported_working_point() -> None:
    is_signal, score = _three_level_tagger()
    mass = np.random.default_rng(0).uniform(50, 250, len(score))
    sculpted = mass_sculpting(mass, is_signal, score, signal_efficiencies=(0.3, 0.6))
    assert [row.threshold for row in sculpted.after] == [1.0, 0.5]
    assert sculpted.after[0].background_efficiency == pytest.approx(0.01)  # the cut whose rejection is reported


def test_continuous_scores_keep_the_interpolation_convention() -> None:
    rng = np.random.default_rng(1)
    is_signal = np.r_[np.ones(5000, bool), np.zeros(5000, bool)]
    score = np.r_[rng.normal(1, 1, 5000), rng.normal(-1, 1, 5000)]
    curve = roc(is_signal, score)
    expected = 1 / np.interp(0.5, curve.signal_efficiency, curve.background_efficiency)
    point = curve.working_point(0.5)
    assert point.interpolated and point.achieved and curve.rejection_at(0.5) == pytest.approx(expected)
