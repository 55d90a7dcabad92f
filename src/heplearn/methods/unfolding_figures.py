"""The unfolding comparison figure of the OmniFold PRL (arXiv:1911.09107, Fig. 3): per observable,
truth, generator, IBU and OmniFold as normalised histograms, their ratios to the truth, and the
triangular discriminator of each to the truth (×10³, the PRL's figure of merit).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from heplearn.errors import DataError
from heplearn.evaluation.plots import PlotStyle, plot_style, save_figure
from heplearn.stats.ibu import IBUResult

__all__ = [
    "ObservableComparison",
    "closure_chi2",
    "comparison_figure",
    "normalised_histogram",
    "triangular_discriminator",
]


def triangular_discriminator(p: ArrayLike, q: ArrayLike) -> float:
    """Δ(p, q) = ½ Σᵢ (pᵢ − qᵢ)² / (pᵢ + qᵢ) of two histograms, each normalised to unit sum.

    The binned form of ½ ∫ (p − q)² / (p + q) (OmniFold PRL, arXiv:1911.09107): 0 for equal
    histograms, 1 for disjoint ones; bins empty in both do not count.

    Example
    -------
    >>> round(triangular_discriminator([1, 1], [2, 0]), 4)
    0.3333
    """
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.shape != q.shape:
        raise DataError(f"triangular discriminator: histograms of {p.shape} and {q.shape} bins")
    if not (p.sum() > 0 and q.sum() > 0):
        raise DataError("triangular discriminator: a histogram with no positive total")
    p, q = p / p.sum(), q / q.sum()
    total = p + q
    filled = total > 0
    return float(0.5 * np.sum((p[filled] - q[filled]) ** 2 / total[filled]))


def normalised_histogram(
    values: ArrayLike, bins: ArrayLike, weights: ArrayLike | None = None, replicas: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A unit-area density and its per-bin uncertainty: the weighted-count error √Σw² (the sample's own
    statistics), and with ``replicas`` (``(B, n)`` weights, e.g. OmniFold on bootstrap replicas of the
    data) their spread added in quadrature (the data's statistics)."""
    bins = np.asarray(bins, np.float64)
    values = np.asarray(values, np.float64)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, np.float64)
    widths = np.diff(bins)
    counts, _ = np.histogram(values, bins, weights=weights)
    norm = counts.sum() * widths
    squares, _ = np.histogram(values, bins, weights=weights**2)
    error = np.sqrt(squares) / norm
    if replicas is not None and len(replicas) > 1:
        densities = np.stack([np.histogram(values, bins, weights=replica)[0] for replica in np.asarray(replicas)])
        densities /= densities.sum(axis=1, keepdims=True) * widths
        error = np.hypot(error, densities.std(axis=0, ddof=1))
    return counts / norm, error


@dataclass
class ObservableComparison:
    """One observable: ``label`` (axis title with units), the bins, truth and generator values (with
    weights), OmniFold's weights on the generator values (and bootstrap replicas), and IBU."""

    name: str
    label: str
    bins: np.ndarray
    truth: np.ndarray
    generator: np.ndarray
    omnifold_weights: np.ndarray
    truth_weights: np.ndarray | None = None
    generator_weights: np.ndarray | None = None
    omnifold_replicas: np.ndarray | None = None
    ibu: IBUResult | None = None


COLOURS = {"truth": "black", "generator": "tab:blue", "IBU": "tab:green", "OmniFold": "tab:red"}


def _curves(observable: ObservableComparison) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    bins = observable.bins
    curves = {
        "truth": normalised_histogram(observable.truth, bins, observable.truth_weights),
        "generator": normalised_histogram(observable.generator, bins, observable.generator_weights),
    }
    if observable.ibu is not None:
        if not np.allclose(observable.ibu.gen_bins, bins):
            raise DataError(f"{observable.name}: IBU was unfolded in other bins than the figure's")
        widths = np.diff(bins)
        total = observable.ibu.unfolded[-1].sum()
        curves["IBU"] = (
            observable.ibu.unfolded[-1] / (total * widths),
            observable.ibu.uncertainty[-1] / (total * widths),
        )
    curves["OmniFold"] = normalised_histogram(
        observable.generator, bins, observable.omnifold_weights, observable.omnifold_replicas
    )
    return curves


def closure_chi2(observable: ObservableComparison) -> dict[str, dict[str, float]]:
    """χ² of each unfolded (and the generator's) normalised histogram against the truth's.

    χ² = Σ_bins (p − t)² / (σ_p² + σ_t²) over the bins where either has an error, with the
    uncertainties of ``normalised_histogram`` (OmniFold: the simulation's √Σw², with the bootstrap
    replicas' spread in quadrature when there are replicas; IBU: its bootstrap spread; the truth:
    √Σw²), and
    ndf = bins − 1 (both are normalised to unit area). The bins are treated as independent.

    Returns
    -------
    dict
        Per curve (``generator``, ``IBU`` when present, ``OmniFold``): ``chi2``, ``ndf``, ``chi2_ndf``.
    """
    curves = _curves(observable)
    truth, truth_error = curves.pop("truth")
    result: dict[str, dict[str, float]] = {}
    for name, (density, error) in curves.items():
        variance = error**2 + truth_error**2
        used = variance > 0
        chi2 = float(np.sum((density[used] - truth[used]) ** 2 / variance[used]))
        ndf = max(int(used.sum()) - 1, 1)
        result[name] = {"chi2": chi2, "ndf": float(ndf), "chi2_ndf": chi2 / ndf}
    return result


def comparison_figure(
    observables: Sequence[ObservableComparison],
    directory: str | os.PathLike[str],
    stem: str = "unfolding",
    style: PlotStyle | None = None,
) -> tuple[list[Path], dict[str, dict[str, float]]]:
    """Draw every observable in a column (densities above, ratios to the truth below) and save it.

    Returns
    -------
    tuple
        The written paths, and per observable the triangular discriminator ×10³ of the generator,
        IBU and OmniFold to the truth (the numbers in the legends).
    """
    style = style or PlotStyle()
    discriminators: dict[str, dict[str, float]] = {}
    with plot_style():
        figure = Figure(figsize=(7.5 * len(observables), 9))
        grid = figure.add_gridspec(2, len(observables), height_ratios=(3, 1))
        for column, observable in enumerate(observables):
            top = figure.add_subplot(grid[0, column])
            bottom = figure.add_subplot(grid[1, column], sharex=top)
            curves = _curves(observable)
            truth = curves["truth"][0]
            discriminators[observable.name] = {}
            for name, (density, error) in curves.items():
                legend = name
                if name != "truth":
                    value = 1e3 * triangular_discriminator(density, truth)
                    discriminators[observable.name][name] = value
                    legend = rf"{name} ($\Delta = {value:.2f} \times 10^{{-3}}$)"
                kind = "fill" if name == "truth" else "step"
                top.stairs(
                    density,
                    observable.bins,
                    color=COLOURS[name],
                    label=legend,
                    fill=kind == "fill",
                    alpha=0.25 if kind == "fill" else 1.0,
                    linewidth=2,
                )
                centres = 0.5 * (observable.bins[1:] + observable.bins[:-1])
                ratio = np.divide(density, truth, out=np.full_like(density, np.nan), where=truth > 0)
                ratio_error = np.divide(error, truth, out=np.zeros_like(error), where=truth > 0)
                if name == "truth":
                    bottom.fill_between(centres, 1 - ratio_error, 1 + ratio_error, step="mid", color="grey", alpha=0.3)
                else:
                    bottom.errorbar(
                        centres,
                        ratio,
                        yerr=ratio_error,
                        color=COLOURS[name],
                        marker="o",
                        markersize=3,
                        linestyle="none",
                    )
            top.set_ylabel("Normalised density (per unit of x)", fontsize="small")
            top.legend(fontsize="xx-small", loc="upper left", frameon=False)
            top.set_ylim(0, 1.45 * max(density.max() for density, _ in curves.values()))
            top.tick_params(labelbottom=False)
            top.set_title(style.label, loc="left", fontsize="medium")
            bottom.axhline(1.0, color="black", linewidth=1)
            bottom.set_ylim(0.7, 1.3)
            bottom.set_xlabel(observable.label, fontsize="small")
            bottom.set_ylabel("Ratio to truth", fontsize="small")
        paths = save_figure(figure, directory, stem, style)
    return paths, discriminators
