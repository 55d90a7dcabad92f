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

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

__all__ = ["QuantileCut", "efficiency_by_bin", "fit_quantile_cut", "plot_efficiency_by_bin", "quantile_cut_files"]


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


def _scores_and_masses(
    files: Sequence[str | os.PathLike[str]], mass: str, score: str | None, run: str | os.PathLike[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The anomaly score (a field of the files, or the trained run's first output) and the mass of each event."""
    from heplearn.methods.cwola import read_columns

    if (score is None) == (run is None):
        raise ConfigError("quantile cut: give either a trained anomaly run or the name of a score field, not both")
    columns = read_columns(files, [mass] if score is None else [score, mass])
    masses = columns[:, -1]
    if score is not None:
        return columns[:, 0], masses
    from heplearn.trained_model import TrainedModel

    predictions, _ = TrainedModel.load(run).predict_files(list(files))  # type: ignore[arg-type]
    if len(predictions) != len(masses):
        raise DataError(
            f"quantile cut: run {run} scores {len(predictions)} of the {len(masses)} events of the files (its "
            f"data selection drops some), so its scores do not line up with the field {mass!r}; write the "
            "scores into the files and give the score field instead"
        )
    return predictions[:, 0].astype(np.float64), masses


def quantile_cut_files(
    files: Sequence[str | os.PathLike[str]],
    mass: str,
    efficiency: float,
    output: str | os.PathLike[str],
    *,
    score: str | None = None,
    run: str | os.PathLike[str] | None = None,
    bins: int = 20,
    training: TrainingConfig | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """VAE-QR on background event files: fit the cut, write ``quantile_cut.json`` and ``efficiency_by_bin.png``.

    The score is the field ``score`` of the files or the first output of the trained anomaly ``run``
    on them; ``mass`` is the resonant variable's field. The report holds, per mass bin (``bins``
    bins of equal population), the cut at the bin centre and the fraction
    of events above the mass-dependent cut with its Clopper–Pearson interval, beside the fraction
    a single cut at the inclusive (1 − ε) quantile keeps, which the regression is there to flatten.
    """
    from heplearn.data.files import jsonable, write_json

    if not 0 < efficiency < 1:
        raise ConfigError(f"efficiency: a background efficiency lies in (0, 1), got {efficiency}")
    if bins < 1:
        raise ConfigError(f"bins: at least one mass bin, got {bins}")
    values, masses = _scores_and_masses(files, mass, score, run)
    cut = fit_quantile_cut(values, masses, efficiency, training=training, seed=seed)
    edges = np.unique(np.quantile(masses, np.linspace(0, 1, bins + 1)))  # bins of equal population
    passed = cut.accepts(values, masses)
    fraction, low, high = efficiency_by_bin(passed, masses, edges)
    flat_cut = float(np.quantile(values, 1 - efficiency))
    flat, flat_low, flat_high = efficiency_by_bin(values > flat_cut, masses, edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    counts, _ = np.histogram(masses, edges)
    report = {
        "files": [str(path) for path in files],
        "score": score if score is not None else f"run {run}",
        "mass": mass,
        "efficiency": efficiency,
        "events": len(values),
        "passed": float(passed.mean()),
        "inclusive_cut": flat_cut,
        "bins": [
            {
                "low": float(edges[i]),
                "high": float(edges[i + 1]),
                "events": int(counts[i]),
                "cut": float(value),
                "efficiency": fraction[i],
                "interval": [low[i], high[i]],
                "inclusive_cut_efficiency": flat[i],
                "inclusive_cut_interval": [flat_low[i], flat_high[i]],
            }
            for i, value in enumerate(cut.threshold(centres))
        ],
    }
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "quantile_cut.json", jsonable(report))
    plot_efficiency_by_bin(report, values, masses, cut, folder / "efficiency_by_bin.png")
    return report


def plot_efficiency_by_bin(
    report: dict[str, Any], score: np.ndarray, mass: np.ndarray, cut: QuantileCut, path: str | os.PathLike[str]
) -> Path:
    """Left: the score against the mass with the regressed cut; right: the efficiency per mass bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from heplearn.data.files import atomic_path

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.hist2d(mass, score, bins=60, cmap="Greys", norm=matplotlib.colors.LogNorm())
    grid = np.linspace(mass.min(), mass.max(), 200)
    left.plot(grid, cut.threshold(grid), color="C3", label=f"regressed cut (ε = {cut.efficiency:g})")
    left.axhline(report["inclusive_cut"], color="C0", linestyle="--", label="one inclusive cut")
    left.set_xlabel(f"{report['mass']} [GeV]")
    left.set_ylabel("anomaly score")
    left.legend(fontsize="small")
    rows = report["bins"]
    centres = np.array([0.5 * (row["low"] + row["high"]) for row in rows])
    widths = np.array([0.5 * (row["high"] - row["low"]) for row in rows])  # the bins' extent as x error bars
    for key, label, colour in (
        ("", "regressed cut (VAE-QR)", "C3"),
        ("inclusive_cut_", "one inclusive cut", "C0"),
    ):
        value = np.array([np.nan if row[f"{key}efficiency"] is None else row[f"{key}efficiency"] for row in rows])
        interval = np.array([row[f"{key}interval"] for row in rows], dtype=np.float64)
        errors = np.abs(np.stack([value - interval[:, 0], interval[:, 1] - value]))
        right.errorbar(centres, value, np.nan_to_num(errors), widths, fmt="o", markersize=3, color=colour, label=label)
    right.axhline(cut.efficiency, color="grey", linestyle=":", label="target ε")
    right.set_xlabel(f"{report['mass']} [GeV]")
    right.set_ylabel("background efficiency per bin")
    right.legend(fontsize="small")
    figure.suptitle("Quantile-regressed cut on the anomaly score (VAE-QR)")
    figure.tight_layout()
    destination = Path(path)
    with atomic_path(destination) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    plt.close(figure)
    return destination
