"""A cut on an anomaly score that keeps a constant background efficiency across m_jj (VAE-QR).

An anomaly score that grows with the resonant mass (the reconstruction error of a heavier dijet
system is larger) sculpts the background spectrum: a fixed cut keeps more events at high m_jj,
which fakes a bump or hides one. The CMS dijet anomaly search (VAE-QR, CMS-PAS-EXO-22-026;
arXiv:2205.06807 for the method) regresses the score's (1 − ε) quantile against m_jj on
background and cuts on score > q₁₋ε(m_jj): by construction a fraction ε of the background passes
in every mass bin, so the selected spectrum keeps the smooth shape the dijet fit expects.

``fit_quantile_cut`` trains the regression on the heplearn engine: a ``Regression`` task with
one quantile level and the pinball loss (``training.loss: quantile``), an MLP of m_jj.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from heplearn.data.in_memory import InMemoryJets
from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError, DataError
from heplearn.evaluation.metrics import clopper_pearson
from heplearn.models import registry
from heplearn.run_config import LossTermConfig, TrainingConfig
from heplearn.tasks import Regression
from heplearn.training.losses import TermContext, build_terms
from heplearn.training.trainer import InMemorySource, fit

__all__ = ["QuantileCut", "efficiency_by_bin", "fit_quantile_cut"]


@dataclass
class QuantileCut:
    """score > q(m): the regressed (1 − ε) quantile of the background score as a function of m."""

    efficiency: float
    network: torch.nn.Module = field(repr=False)
    mass_centre: float
    mass_scale: float
    score_centre: float
    score_scale: float

    def threshold(self, mass: np.ndarray) -> np.ndarray:
        """The cut at each mass."""
        scaled = ((np.asarray(mass, np.float64) - self.mass_centre) / self.mass_scale).astype(np.float32)
        self.network.eval()
        with torch.inference_mode():
            quantile = self.network({"jet": torch.from_numpy(scaled[:, None])})[:, 0].double().numpy()
        return quantile * self.score_scale + self.score_centre

    def accepts(self, score: np.ndarray, mass: np.ndarray) -> np.ndarray:
        """True for the events above the mass-dependent cut."""
        return np.asarray(score) > self.threshold(mass)


def fit_quantile_cut(
    score: np.ndarray,
    mass: np.ndarray,
    efficiency: float,
    *,
    hidden: Sequence[int] = (32, 32),
    training: TrainingConfig | None = None,
    seed: int = 0,
) -> QuantileCut:
    """Regress the (1 − ``efficiency``) quantile of the background ``score`` against ``mass``.

    Both are standardised on the sample; the regression is an MLP trained with the pinball loss
    of the one level 1 − ε (Koenker & Bassett 1978) through the engine's ``fit``.
    """
    score, mass = np.asarray(score, np.float64), np.asarray(mass, np.float64)
    if score.shape != mass.shape or score.ndim != 1:
        raise DataError(f"quantile cut: one score per mass expected, got {score.shape} and {mass.shape}")
    if not 0 < efficiency < 1:
        raise ConfigError(f"efficiency: a background efficiency lies in (0, 1), got {efficiency}")
    if efficiency * len(score) < 100:
        raise DataError(
            f"quantile cut: ε = {efficiency:g} of {len(score)} events is under 100 above the cut; "
            f"take at least {int(np.ceil(100 / efficiency))} background events"
        )
    training = training or TrainingConfig(
        epochs=30, batch_size=512, learning_rate=3e-3, early_stopping_patience=None, weight_decay=0.0
    )
    mass_centre, mass_scale = float(mass.mean()), float(mass.std() or 1.0)
    score_centre, score_scale = float(score.mean()), float(score.std() or 1.0)
    inputs = ((mass - mass_centre) / mass_scale).astype(np.float32)[:, None]
    targets = ((score - score_centre) / score_scale).astype(np.float32)[:, None]
    arrays = JetArrays({"jet": inputs}, None, targets, np.ones(len(score), np.float32))  # type: ignore[arg-type]
    task = Regression(["score"], quantiles=[1 - efficiency])
    task.terms = build_terms([LossTermConfig(name="quantile")], task, TermContext(training))
    torch.manual_seed(seed)
    network = registry.model_class("mlp")(1, {"jet": 1}, hidden=tuple(hidden))
    fit(network, task, InMemorySource(InMemoryJets(arrays, [], None), training.batch_size, True, seed), None, training)
    return QuantileCut(efficiency, network, mass_centre, mass_scale, score_centre, score_scale)


def efficiency_by_bin(
    passed: np.ndarray, mass: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fraction of events passing in each mass bin, with its Clopper–Pearson interval (one σ)."""
    passed, mass = np.asarray(passed, bool), np.asarray(mass, np.float64)
    totals, _ = np.histogram(mass, edges)
    kept, _ = np.histogram(mass[passed], edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(totals > 0, kept / np.maximum(totals, 1), np.nan)
    low = np.empty(len(totals))
    high = np.empty(len(totals))
    for index, (value, total) in enumerate(zip(fraction, totals, strict=True)):
        low[index], high[index] = clopper_pearson(0.0 if np.isnan(value) else value, float(total))
    return fraction, low, high
