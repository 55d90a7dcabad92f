"""The HTML reports of the anomaly commands: SIC curves, score distributions and trigger rates.

One self-contained page per result (``evaluation.report``: plots embedded, PNG and PDF beside it
in ``plots/``), written by ``heplearn anomaly threshold`` (the score of background and validation
events with the cut, the rate against the cut) and by the resonant benchmark
(``benchmarks/bench_lhco.py``: SIC = ε_S/√ε_B against ε_S of every method, and the max SIC table).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from heplearn.evaluation import plots
from heplearn.evaluation.figures import PlotSet
from heplearn.evaluation.report import environment, write_report
from heplearn.methods.weak_supervision import SicCurve

__all__ = ["plot_rate", "plot_scores", "plot_sic", "write_anomaly_report"]

STYLE = plots.PlotStyle()  # heplearn's default look


def plot_sic(curves: Mapping[str, SicCurve], style: plots.PlotStyle = STYLE) -> Figure:
    """SIC = ε_S/√ε_B against ε_S, one line per method (its max SIC in the legend)."""
    with plots.plot_style():
        figure = plots._figure()
        ax = figure.subplots()
        for name, curve in curves.items():
            ax.plot(curve.signal_efficiency, curve.sic, label=f"{name} (max {curve.max_sic:.1f})")
        ax.axhline(1.0, color="grey", linestyle=":", label="random cut")
        ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
        ax.set_ylabel(r"SIC = $\varepsilon_S/\sqrt{\varepsilon_B}$")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        plots._legend(ax, len(curves) + 1)
        plots.experiment_label(ax, style)
    return figure


def plot_scores(
    scores: Mapping[str, np.ndarray],
    threshold: float | None = None,
    xlabel: str = "Anomaly score",
    style: plots.PlotStyle = STYLE,
) -> Figure:
    """Normalised histograms of the score of each sample (log scale), with the cut as a line."""
    values = np.concatenate([np.asarray(score, np.float64) for score in scores.values()])
    low, high = np.quantile(values, [0.0, 0.999])
    if threshold is not None:
        high = max(high, threshold * 1.05)
    edges = np.linspace(low, high if high > low else low + 1.0, 61)
    with plots.plot_style():
        figure = plots._figure()
        ax = figure.subplots()
        for name, score in scores.items():
            ax.hist(
                np.clip(score, edges[0], edges[-1]),
                bins=edges.tolist(),
                density=True,
                histtype="step",
                linewidth=1.5,
                label=f"{name} ({len(score)} events)",
            )
        if threshold is not None:
            ax.axvline(threshold, color="black", linestyle="--", label=f"cut {threshold:.4g}")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Fraction of events / bin width")
        plots._legend(ax, len(scores) + 1)
        plots.experiment_label(ax, style)
    return figure


def plot_rate(
    score: np.ndarray,
    input_rate: float,
    threshold: float | None = None,
    weight: np.ndarray | None = None,
    target: float | None = None,
    style: plots.PlotStyle = STYLE,
) -> Figure:
    """The trigger rate (Hz) of the cut ``score > t`` on background against t: input rate × ε_B(t)."""
    score = np.asarray(score, np.float64)
    weight = np.ones_like(score) if weight is None else np.asarray(weight, np.float64)
    order = np.argsort(score)[::-1]
    passing = np.cumsum(weight[order]) / weight.sum()  # ε_B of the cut just below each score
    with plots.plot_style():
        figure = plots._figure()
        ax = figure.subplots()
        ax.step(score[order], input_rate * passing, where="post", label="background")
        if threshold is not None:
            ax.axvline(threshold, color="black", linestyle="--", label=f"cut {threshold:.4g}")
        if target is not None:
            ax.axhline(target, color="grey", linestyle=":", label=f"target {target:.4g} Hz")
        ax.set_yscale("log")
        ax.set_xlabel("Cut on the anomaly score")
        ax.set_ylabel("Rate [Hz]")
        plots._legend(ax, 3)
        plots.experiment_label(ax, style)
    return figure


def write_anomaly_report(
    directory: str | os.PathLike[str],
    title: str,
    subtitle: str,
    tables: Sequence[Mapping[str, Any]],
    figures: Sequence[tuple[Figure, str, str, str]],
    style: plots.PlotStyle = STYLE,
) -> Path:
    """``directory/report.html`` with ``tables`` ({title, header, rows of strings, note}) and ``figures``
    ((figure, stem, title, caption); written to ``directory/plots``)."""
    directory = Path(directory)
    plot_set = PlotSet(directory / "plots", style)
    (directory / "plots").mkdir(parents=True, exist_ok=True)
    for figure, stem, figure_title, caption in figures:
        plot_set.add(figure, stem, figure_title, caption)
    context = {
        "title": title,
        "plots": plot_set.for_report(),
        "m": {"subtitle": subtitle, "tables": list(tables), "environment": environment()},
    }
    return write_report(directory / "report.html", "anomaly.html.j2", context)
