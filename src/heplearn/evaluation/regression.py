"""Evaluation of a regression: bias, resolution and, for quantile heads, the coverage of each quantile.

The figures of the CMS b-jet energy regression (arXiv:1912.06046): the residual's median (the
bias) and its robust width — half the 16–84% interquantile range, σ for a Gaussian — overall and
in bins of an observable; for a head with quantiles (Huber + pinball at τ = 0.25, 0.75) the
coverage P(y < q_τ), which must equal τ for every τ and in every bin, and the pull
(y − q₅₀)/σ̂ with σ̂ = (q₇₅ − q₂₅)/(2·0.6745), whose robust width is 1 when the predicted
resolution is honest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from heplearn.evaluation import plots
from heplearn.evaluation.binned import bulk_range
from heplearn.tasks import Regression

__all__ = [
    "BinnedResiduals",
    "TargetSummary",
    "binned_residuals",
    "plot_residuals",
    "plot_versus",
    "robust_width",
    "summarise_target",
]

QUARTILE = 0.6744897501960817  # Φ⁻¹(0.75): q75 − q25 = 2·0.6745 σ for a Gaussian


def robust_width(values: np.ndarray) -> float:
    """Half the 16–84% interquantile range: σ for a Gaussian, insensitive to tails."""
    if len(values) == 0:
        return float("nan")
    low, high = np.quantile(values, [0.15865525393145707, 0.8413447460685429])
    return float(0.5 * (high - low))


@dataclass(frozen=True)
class TargetSummary:
    """One target's figures over all events."""

    name: str
    bias: float  # median of (prediction − truth)
    resolution: float  # robust width of (prediction − truth)
    coverage: dict[str, float]  # quantile level -> P(y < q_τ)
    pull_width: float | None  # robust width of (y − q50)/σ̂: 1 for an honest resolution

    def as_json(self) -> dict[str, Any]:
        """Plain JSON types."""
        return {
            "name": self.name,
            "bias": self.bias,
            "resolution": self.resolution,
            "coverage": self.coverage,
            "pull_width": self.pull_width,
        }


@dataclass(frozen=True)
class BinnedResiduals:
    """Bias, resolution and coverage in bins of one variable."""

    variable: str
    edges: np.ndarray
    counts: np.ndarray
    bias: np.ndarray
    resolution: np.ndarray
    coverage: dict[str, np.ndarray]  # quantile level -> P(y < q_τ) per bin

    def as_json(self) -> dict[str, Any]:
        """Plain JSON types (NaN in empty bins become null when written)."""
        return {
            "variable": self.variable,
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "bias": self.bias.tolist(),
            "resolution": self.resolution.tolist(),
            "coverage": {level: values.tolist() for level, values in self.coverage.items()},
        }


def central_and_quantiles(
    task: Regression, outputs: np.ndarray, target: int
) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    """The central prediction of ``target`` (the median quantile, or the only output) and its quantiles."""
    if task.quantiles is None:
        return outputs[:, target], {}
    levels = task.quantiles
    columns = outputs[:, target * len(levels) : (target + 1) * len(levels)]
    central = columns[:, int(np.argmin(np.abs(np.asarray(levels) - 0.5)))]
    return central, {level: columns[:, index] for index, level in enumerate(levels)}


def summarise_target(
    name: str, truth: np.ndarray, central: np.ndarray, quantiles: dict[float, np.ndarray]
) -> TargetSummary:
    """The overall bias, resolution, coverage and pull width of one target."""
    residual = central - truth
    coverage = {f"{level:g}": float(np.mean(truth < values)) for level, values in quantiles.items()}
    pull_width = None
    if 0.25 in quantiles and 0.75 in quantiles:
        sigma = (quantiles[0.75] - quantiles[0.25]) / (2 * QUARTILE)
        good = sigma > 0
        pull_width = robust_width((truth[good] - central[good]) / sigma[good])
    return TargetSummary(name, float(np.median(residual)), robust_width(residual), coverage, pull_width)


def binned_residuals(
    variable: str,
    values: np.ndarray,
    truth: np.ndarray,
    central: np.ndarray,
    quantiles: dict[float, np.ndarray],
    bins: int = 12,
    value_range: tuple[float, float] | None = None,
) -> BinnedResiduals:
    """Bias, resolution and coverage of each quantile in ``bins`` equal bins of ``values``."""
    low, high = value_range or bulk_range(values)
    edges = np.linspace(low, high, bins + 1)
    index = np.clip(np.digitize(values, edges) - 1, 0, bins - 1)
    inside = (values >= low) & (values <= high)
    counts = np.zeros(bins, np.int64)
    bias, resolution = np.full(bins, np.nan), np.full(bins, np.nan)
    coverage = {f"{level:g}": np.full(bins, np.nan) for level in quantiles}
    residual = central - truth
    for bin_index in range(bins):
        chosen = inside & (index == bin_index)
        counts[bin_index] = int(chosen.sum())
        if counts[bin_index] < 2:
            continue
        bias[bin_index] = np.median(residual[chosen])
        resolution[bin_index] = robust_width(residual[chosen])
        for level, predicted in quantiles.items():
            coverage[f"{level:g}"][bin_index] = np.mean(truth[chosen] < predicted[chosen])
    return BinnedResiduals(variable, edges, counts, bias, resolution, coverage)


def plot_residuals(name: str, truth: np.ndarray, central: np.ndarray, style: plots.PlotStyle) -> Figure:
    """The distribution of prediction − truth, with its median and robust width."""
    residual = central - truth
    low, high = bulk_range(residual, (0.002, 0.998))
    with plots.plot_style():
        figure = plots._figure()
        ax = figure.subplots()
        ax.hist(
            np.clip(residual, low, high),
            bins=60,
            range=(low, high),
            histtype="stepfilled",
            alpha=0.4,
            color=plots.COLORS[0],
            label=f"median {np.median(residual):.3g}, width {robust_width(residual):.3g}",
        )
        ax.set_xlabel(f"Predicted − true {name}")
        ax.set_ylabel("Events")
        ax.legend(loc="upper right", fontsize="small")
        plots.experiment_label(ax, style)
        return figure


def plot_versus(binned: BinnedResiduals, name: str, levels: Sequence[str], style: plots.PlotStyle) -> Figure:
    """Bias and resolution (top) and the coverage of each quantile (bottom) in bins of a variable."""
    centers = 0.5 * (binned.edges[1:] + binned.edges[:-1])
    half_widths = 0.5 * np.diff(binned.edges)
    with plots.plot_style():
        figure = plots._figure((8, 8.5))
        top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (1, 1)})
        top.errorbar(centers, binned.bias, xerr=half_widths, fmt="o", color=plots.COLORS[0], label="bias (median)")
        top.errorbar(
            centers,
            binned.resolution,
            xerr=half_widths,
            fmt="s",
            color=plots.COLORS[1],
            label="resolution (robust width)",
        )
        top.axhline(0.0, color="gray", linewidth=1)
        top.set_ylabel(f"Predicted − true {name}")
        top.legend(loc="best", fontsize="small")
        plots.experiment_label(top, style)
        for index, level in enumerate(levels):
            color = plots.COLORS[(index + 2) % len(plots.COLORS)]
            bottom.errorbar(
                centers, binned.coverage[level], xerr=half_widths, fmt="o", color=color, label=f"τ = {level}"
            )
            bottom.axhline(float(level), color=color, linestyle="--", linewidth=1)
        bottom.set_ylim(0, 1)
        bottom.set_ylabel(r"Coverage $P(y < q_\tau)$")
        bottom.set_xlabel(binned.variable)
        if levels:
            bottom.legend(loc="best", fontsize="x-small")
        return figure


def evaluate_regression(
    model: Any, arrays: Any, outputs: np.ndarray, observers: Sequence[str], settings: Any, figures: Any
) -> dict[str, Any]:
    """The regression figures of ``outputs`` (the task's outputs for ``arrays``) for every target.

    Binned in the true value of each target and in each of ``observers`` present in the data.
    """
    task = model.task
    truth_columns = np.asarray(arrays.label, np.float64).reshape(len(arrays), -1)
    content: dict[str, Any] = {"targets": [], "binned": {}}
    for target, name in enumerate(task.targets):
        truth = truth_columns[:, target]
        central, quantiles = central_and_quantiles(task, outputs, target)
        summary = summarise_target(name, truth, central, quantiles)
        content["targets"].append(summary.as_json())
        figures.add(
            plot_residuals(name, truth, central, settings.style),
            f"residual_{name}",
            f"Residual of {name}",
            "Prediction minus truth over all events, with its median (bias) and robust width (half the 16–84% range).",
        )
        levels = [f"{level:g}" for level in quantiles]
        variables = {f"true {name}": truth} | {
            observer: arrays.observers[observer].astype(np.float64) for observer in observers
        }
        content["binned"][name] = []
        for variable, values in variables.items():
            binned = binned_residuals(variable, values, truth, central, quantiles, settings.bins)
            content["binned"][name].append(binned.as_json())
            stem = "".join(c if c.isalnum() else "_" for c in f"{name}_vs_{variable}")
            figures.add(
                plot_versus(binned, name, levels, settings.style),
                stem,
                f"{name} versus {variable}",
                "Bias and resolution of the prediction in bins of "
                + variable
                + (
                    "; below, the coverage P(y < q_τ) of each quantile, which should sit on its dashed line τ."
                    if levels
                    else "."
                ),
            )
    return content
