"""The evaluation plots, in the style of the LHC experiments' publications (mplhep).

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global state, no
GUI backend: figures render with Agg), under the mplhep style and with an experiment label such
as "heplearn Simulation"; ``save_figure`` writes it as PNG and PDF, atomically.

- ROC curves are drawn as background rejection 1/ε_B (log scale) against signal efficiency ε_S,
  the convention of the top-tagging comparison (arXiv:1902.09914), with binomial (Clopper–Pearson,
  68%) uncertainty bands on ε_B and a ratio panel to a reference model.
- Score distributions follow TMVA's overtraining plot: test jets as filled histograms, training
  jets as points, normalised to unit area, with the KS p-values in the legend.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import mplhep as hep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from heplearn.data.files import atomic_path
from heplearn.evaluation.agreement import Agreement
from heplearn.evaluation.binned import BinnedEfficiency, ReliabilityCurve
from heplearn.evaluation.importance import FeatureRanking
from heplearn.evaluation.metrics import Roc, clopper_pearson
from heplearn.evaluation.sculpting import MassSculpting
from heplearn.evaluation.significance import SignificanceScan

DEFAULT_LABEL = "heplearn Simulation"
EFFICIENCY_GRID = np.linspace(0.05, 1.0, 191)  # ε_S points of ROC plots: small files, smooth lines
COLORS = (
    "#3f90da",
    "#ffa90e",
    "#bd1f01",
    "#94a4a2",
    "#832db6",
    "#a96b59",
    "#e76300",
    "#b9ac70",
    "#717581",
    "#92dadd",
)  # the CMS 10-colour palette (Petroff, arXiv:2107.02270)


@dataclass(frozen=True)
class PlotStyle:
    """The look of every plot: experiment label ("heplearn Simulation"), right label, formats."""

    label: str = DEFAULT_LABEL
    right_label: str = ""
    formats: tuple[str, ...] = ("png", "pdf")
    dpi: int = 100


@dataclass(frozen=True)
class RocLine:
    """One curve of a ROC plot; ``effective_background`` (N_eff of the background) sets its band."""

    name: str
    roc: Roc
    effective_background: float | None = None
    dashed: bool = False


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """mplhep's CMS-like style for the duration of a plot (the global rcParams are left alone)."""
    with mpl.rc_context(), mpl.style.context(hep.style.CMS):
        mpl.rcParams["figure.constrained_layout.use"] = True
        yield


def _figure(size: tuple[float, float] = (8, 7.5)) -> Figure:
    return Figure(figsize=size)


MANY_LINES = 4  # beyond this many entries a legend goes beside the axes instead of over the curves


def _legend(ax: Axes, entries: int, loc: str = "upper right", title: str = "") -> None:
    if entries > MANY_LINES:
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            fontsize="x-small",
            title=title or None,
            title_fontsize="x-small",
        )
    else:
        ax.legend(loc=loc, fontsize="x-small", title=title or None, title_fontsize="x-small")


def _width(entries: int) -> float:
    return 11.0 if entries > MANY_LINES else 8.0


def experiment_label(ax: Axes, style: PlotStyle) -> None:
    """The experiment label above the axes, mplhep's layout: bold name, italic text, right label.

    The italic text is placed relative to the drawn name (not at a precomputed offset, as
    ``mplhep.label.exp_label`` does), so it stays put when the layout engine resizes the axes.
    """
    experiment, _, text = style.label.partition(" ")
    name = ax.text(
        0.0, 1.012, experiment, transform=ax.transAxes, ha="left", va="bottom", fontsize="x-large", fontweight="bold"
    )
    if text:
        ax.annotate(
            text,
            xy=(1.0, 0.0),
            xycoords=name,
            xytext=(6, 0),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize="large",
            fontstyle="italic",
        )
    if style.right_label:
        ax.text(1.0, 1.012, style.right_label, transform=ax.transAxes, ha="right", va="bottom", fontsize="medium")


def save_figure(
    figure: Figure, directory: str | os.PathLike[str], stem: str, style: PlotStyle = PlotStyle()
) -> list[Path]:
    """Write ``directory/stem.<format>`` for each format of ``style``; returns the paths."""
    paths = []
    with plot_style():
        for kind in style.formats:
            destination = Path(directory) / f"{stem}.{kind}"
            with atomic_path(destination) as temporary:
                figure.savefig(temporary, format=kind, dpi=style.dpi)
            paths.append(destination)
    return paths


# -- ROC -------------------------------------------------------------------------------------------


def _rejection_on_grid(curve: Roc) -> np.ndarray:
    background = np.interp(EFFICIENCY_GRID, curve.signal_efficiency, curve.background_efficiency)
    with np.errstate(divide="ignore"):
        return np.where(background > 0, 1.0 / np.maximum(background, 1e-300), np.nan)


def _rejection_band(line: RocLine) -> tuple[np.ndarray, np.ndarray]:
    """1/ε_B from the 68% Clopper–Pearson interval of ε_B (open above where no background passes)."""
    background = np.interp(EFFICIENCY_GRID, line.roc.signal_efficiency, line.roc.background_efficiency)
    low, high = clopper_pearson(background, float(line.effective_background or 0))
    with np.errstate(divide="ignore"):
        return 1.0 / high, np.where(low > 0, 1.0 / np.maximum(low, 1e-300), np.nan)


def plot_roc(lines: Sequence[RocLine], style: PlotStyle = PlotStyle(), ratio: bool = True, title: str = "") -> Figure:
    """1/ε_B versus ε_S for every line, with a ratio panel to the first line."""
    with plot_style():
        figure = _figure((_width(len(lines)), 8.5 if ratio and len(lines) > 1 else 7))
        if ratio and len(lines) > 1:
            main, lower = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        else:
            main, lower = figure.subplots(), None
        reference = _rejection_on_grid(lines[0].roc)
        highest = 1.0
        for index, line in enumerate(lines):
            color = "black" if line.dashed else COLORS[index % len(COLORS)]
            rejection = _rejection_on_grid(line.roc)
            highest = max(highest, float(np.nanmax(rejection, initial=1.0)))
            linestyle = "--" if line.dashed else "-"
            main.plot(
                EFFICIENCY_GRID,
                rejection,
                color=color,
                linestyle=linestyle,
                label=f"{line.name} (AUC {line.roc.auc:.4f})",
            )
            band = _rejection_band(line) if line.effective_background else None
            if band is not None:
                main.fill_between(EFFICIENCY_GRID, *band, color=color, alpha=0.25, linewidth=0)
            if lower is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    lower.plot(EFFICIENCY_GRID, rejection / reference, color=color, linestyle=linestyle)
                    if band is not None:
                        lower.fill_between(
                            EFFICIENCY_GRID,
                            band[0] / reference,
                            band[1] / reference,
                            color=color,
                            alpha=0.25,
                            linewidth=0,
                        )
        main.set_yscale("log")
        main.set_ylim(0.8, highest * 3)  # the curves set the range, not the bands where few jets pass
        main.set_xlim(0, 1)
        main.set_ylabel(r"Background rejection $1/\varepsilon_\mathrm{B}$")
        _legend(main, len(lines), title=title)
        experiment_label(main, style)
        bottom = lower if lower is not None else main
        bottom.set_xlabel(r"Signal efficiency $\varepsilon_\mathrm{S}$")
        if lower is not None:
            lower.set_ylabel(f"Ratio to\n{lines[0].name}", fontsize="small")
            lower.axhline(1.0, color="gray", linewidth=1)
            lower.set_ylim(0, min(lower.get_ylim()[1], 3.0))  # poorly known ratios at tiny ε_B stay readable
        return figure


# -- score distributions ----------------------------------------------------------------------------


def plot_score_distributions(
    test_scores: Mapping[str, tuple[np.ndarray, np.ndarray]],
    train_scores: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ks_pvalues: Mapping[str, float] | None = None,
    style: PlotStyle = PlotStyle(),
    bins: int = 40,
    xlabel: str = "Tagger score",
    score_range: tuple[float, float] | None = None,
) -> Figure:
    """Per class (name -> (scores, weights)): test filled, train as points, both normalised."""
    everything = np.concatenate(
        [scores for scores, _ in test_scores.values()] + [scores for scores, _ in (train_scores or {}).values()]
    )
    low, high = score_range or (float(everything.min()), float(everything.max()))
    if not high > low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    centers, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    with plot_style():
        figure = _figure()
        ax = figure.subplots()
        for index, (name, (scores, weight)) in enumerate(test_scores.items()):
            color = COLORS[index % len(COLORS)]
            counts, _ = np.histogram(np.clip(scores, low, high), edges, weights=weight)
            total = counts.sum()
            if total > 0:
                ax.stairs(counts / (total * widths), edges, fill=True, alpha=0.35, color=color, label=f"{name} (test)")
                ax.stairs(counts / (total * widths), edges, color=color, linewidth=1.5)
            if train_scores and name in train_scores:
                train, train_weight = train_scores[name]
                counts, _ = np.histogram(np.clip(train, low, high), edges, weights=train_weight)
                squares, _ = np.histogram(np.clip(train, low, high), edges, weights=train_weight**2)
                total = counts.sum()
                if total > 0:
                    pvalue = (ks_pvalues or {}).get(name)
                    note = f", KS p = {pvalue:.3f}" if pvalue is not None else ""
                    ax.errorbar(
                        centers,
                        counts / (total * widths),
                        yerr=np.sqrt(squares) / (total * widths),
                        fmt="o",
                        markersize=4,
                        color=color,
                        label=f"{name} (train{note})",
                    )
        ax.set_xlim(low, high)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.4)  # room for the legend above the histograms
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Normalised to unit area")
        ax.legend(loc="upper center", fontsize="x-small")
        experiment_label(ax, style)
        return figure


# -- efficiency versus an observable -----------------------------------------------------------------


def _steps_with_errors(
    ax: Axes, edges: np.ndarray, values: np.ndarray, errors: np.ndarray, color: str, label: str
) -> None:
    centers, half_widths = 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges)
    good = np.isfinite(values) & np.isfinite(errors)
    ax.errorbar(
        centers[good],
        values[good],
        xerr=half_widths[good],
        yerr=errors[good],
        fmt="o",
        markersize=4,
        color=color,
        label=label,
    )


def plot_efficiency_versus(
    binned: Sequence[tuple[str, BinnedEfficiency]], xlabel: str, style: PlotStyle = PlotStyle(), working_point: str = ""
) -> Figure:
    """Signal efficiency (top) and background rejection (bottom) in bins of an observable."""
    with plot_style():
        figure = _figure((_width(len(binned)), 9))
        top, bottom = figure.subplots(2, 1, sharex=True)
        for index, (name, curve) in enumerate(binned):
            color = COLORS[index % len(COLORS)]
            _steps_with_errors(top, curve.bin_edges, curve.signal_efficiency, curve.signal_uncertainty, color, name)
            rejection, error = curve.rejection, curve.rejection_uncertainty
            finite = np.isfinite(rejection)
            _steps_with_errors(
                bottom,
                curve.bin_edges,
                np.where(finite, rejection, np.nan),
                np.where(finite, error, np.nan),
                color,
                name,
            )
        top.set_ylabel(r"Signal efficiency $\varepsilon_\mathrm{S}$")
        top.set_ylim(0, 1.15)
        bottom.set_ylabel(r"Background rejection $1/\varepsilon_\mathrm{B}$")
        bottom.set_xlabel(xlabel)
        _legend(top, len(binned), title=working_point)
        experiment_label(top, style)
        return figure


# -- agreement of two samples ----------------------------------------------------------------------


def plot_agreement(
    result: Agreement, reference_label: str, other_label: str, xlabel: str, style: PlotStyle = PlotStyle()
) -> Figure:
    """Two normalised histograms of one variable (reference filled, other as points) and their ratio."""
    edges = result.edges
    widths = np.diff(edges)
    (reference, reference_squares), (other, other_squares) = result.reference, result.other
    reference_total, other_total = reference.sum(), other.sum()
    with plot_style():
        figure = _figure((8, 8.5))
        main, lower = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        density = reference / (reference_total * widths)
        main.stairs(density, edges, fill=True, alpha=0.35, color=COLORS[0], label=reference_label)
        main.stairs(density, edges, color=COLORS[0], linewidth=1.5)
        centers = 0.5 * (edges[1:] + edges[:-1])
        other_density = other / (other_total * widths)
        main.errorbar(
            centers,
            other_density,
            yerr=np.sqrt(other_squares) / (other_total * widths),
            fmt="o",
            markersize=4,
            color="black",
            label=f"{other_label}: χ²/ndf {result.chi2_ndf:.2f}, KS p {result.ks.pvalue:.3g}, "
            f"AUC {result.separation_auc:.3f} (classifier {result.classifier_auc:.3f})",
        )
        main.set_ylim(0, main.get_ylim()[1] * 1.4)  # room for the legend
        main.set_ylabel("Normalised to unit area")
        main.legend(loc="upper center", fontsize="x-small")
        experiment_label(main, style)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (other / other_total) / (reference / reference_total)
            error = ratio * np.sqrt(
                other_squares / np.maximum(other, 1e-300) ** 2 + reference_squares / np.maximum(reference, 1e-300) ** 2
            )
        good = np.isfinite(ratio) & np.isfinite(error)
        lower.errorbar(
            centers[good], ratio[good], yerr=error[good], xerr=0.5 * widths[good], fmt="o", markersize=3, color="black"
        )
        lower.axhline(1.0, color="gray", linewidth=1)
        lower.set_ylim(0.5, 1.5)
        lower.set_ylabel(f"{other_label} /\n{reference_label}", fontsize="small")
        lower.set_xlabel(xlabel)
        lower.set_xlim(edges[0], edges[-1])
        return figure


# -- mass sculpting ----------------------------------------------------------------------------------


def plot_mass_sculpting(sculpting: MassSculpting, xlabel: str, style: PlotStyle = PlotStyle()) -> Figure:
    """Background mass shape before and after the score cuts, with 1/JSD of each."""
    with plot_style():
        figure = _figure()
        ax = figure.subplots()
        ax.stairs(sculpting.before, sculpting.bin_edges, color="black", linewidth=2, label="background, no cut")
        for index, cut in enumerate(sculpting.after):
            inverse = "∞" if not np.isfinite(cut.inverse_jsd) else f"{cut.inverse_jsd:.3g}"
            ax.stairs(
                cut.density,
                sculpting.bin_edges,
                color=COLORS[index % len(COLORS)],
                linewidth=1.8,
                label=rf"$\varepsilon_\mathrm{{S}}$ = {cut.signal_efficiency:.0%}: 1/JSD = {inverse}",
            )
        ax.set_xlim(sculpting.bin_edges[0], sculpting.bin_edges[-1])
        ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # room for the legend
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Background, normalised to unit area")
        ax.legend(loc="upper right", fontsize="x-small")
        experiment_label(ax, style)
        return figure


# -- confusion matrix, feature ranking, calibration, significance, history -------------------------------


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], style: PlotStyle = PlotStyle()) -> Figure:
    """Fraction of each true class (rows) assigned to each class (columns) by the largest probability."""
    size = max(6.0, 1.2 * len(class_names) + 4)
    with plot_style():
        figure = _figure((size + 1.5, size))
        ax = figure.subplots()
        image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1, origin="upper")
        for (row, column), value in np.ndenumerate(matrix):
            ax.text(
                column,
                row,
                f"{value:.3f}",
                ha="center",
                va="center",
                fontsize="small",
                color="white" if value > 0.6 else "black",
            )
        ticks = np.arange(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=45 if len(class_names) > 4 else 0)
        ax.set_yticks(ticks, class_names)
        ax.minorticks_off()
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        figure.colorbar(image, ax=ax, label="Fraction of the true class")
        experiment_label(ax, style)
        return figure


def plot_feature_ranking(ranking: FeatureRanking, style: PlotStyle = PlotStyle(), top: int = 25) -> Figure:
    """Permutation importance (AUC drop) per feature; XGBoost gain beside it when known."""
    features = ranking.features[:top][::-1]
    names = [f"{f.name} ({f.kind})" if f.kind == "particle" else f.name for f in features]
    gains = [f.gain for f in features]
    with_gain = any(gain is not None for gain in gains)
    height = max(5.0, 0.45 * len(features) + 2.5)
    with plot_style():
        figure = _figure((12 if with_gain else 9, height))
        axes = figure.subplots(1, 2, sharey=True) if with_gain else [figure.subplots()]
        positions = np.arange(len(features))
        axes[0].barh(positions, [f.auc_drop for f in features], xerr=[f.uncertainty for f in features], color=COLORS[0])
        axes[0].set_yticks(positions, names, fontsize="x-small")
        axes[0].minorticks_off()
        axes[0].set_xlabel("AUC drop when permuted")
        axes[0].axvline(0, color="gray", linewidth=1)
        if with_gain:
            values = np.array([0.0 if gain is None else gain for gain in gains])
            total = values.sum()
            axes[1].barh(positions, values / total if total > 0 else values, color=COLORS[1])
            axes[1].set_xlabel("XGBoost gain (fraction)")
        experiment_label(axes[0], style)
        return figure


def plot_reliability(curves: Mapping[str, ReliabilityCurve], style: PlotStyle = PlotStyle()) -> Figure:
    """Observed class fraction versus predicted probability; the diagonal is perfect calibration."""
    with plot_style():
        figure = _figure()
        ax = figure.subplots()
        ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfectly calibrated")
        for index, (name, curve) in enumerate(curves.items()):
            good = np.isfinite(curve.mean_predicted) & np.isfinite(curve.observed_fraction)
            ax.errorbar(
                curve.mean_predicted[good],
                curve.observed_fraction[good],
                yerr=curve.uncertainty[good],
                fmt="o-",
                markersize=4,
                color=COLORS[index % len(COLORS)],
                label=name,
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.1)
        ax.set_xlabel("Predicted probability")
        ax.set_ylabel("Observed fraction")
        ax.legend(loc="upper left", fontsize="x-small", bbox_to_anchor=(0.02, 0.95))
        experiment_label(ax, style)
        return figure


SIGNIFICANCE_LABELS = {
    "s_over_sqrt_b": "s/√b",
    "s_over_sqrt_s_plus_b": "s/√(s+b)",
    "asimov": r"$Z_\mathrm{A}$ (Asimov)",
}


def plot_significance(scan: SignificanceScan, style: PlotStyle = PlotStyle(), xlabel: str = "Score cut") -> Figure:
    """Each significance figure versus the score cut, the best cut marked."""
    with plot_style():
        figure = _figure()
        ax = figure.subplots()
        for index, (name, values) in enumerate(scan.figures.items()):
            color = COLORS[index % len(COLORS)]
            finite = np.isfinite(values)
            ax.plot(scan.thresholds[finite], values[finite], color=color, label=SIGNIFICANCE_LABELS.get(name, name))
            best = scan.best[name]
            ax.plot([best.threshold], [best.significance], marker="*", markersize=14, color=color)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Significance")
        ax.set_ylim(bottom=0)
        note = f"s = {scan.signal_yield:.4g}, b = {scan.background_yield:.4g} before the cut" + (
            f", σ_b/b = {scan.relative_background_uncertainty:.0%}" if scan.relative_background_uncertainty else ""
        )
        ax.legend(loc="upper left", fontsize="x-small", title=note, title_fontsize="xx-small")
        experiment_label(ax, style)
        return figure


def plot_training_history(history: Sequence[Mapping[str, Any]], style: PlotStyle = PlotStyle()) -> Figure:
    """Training and validation loss per epoch (from ``metrics.jsonl``)."""
    with plot_style():
        figure = _figure()
        ax = figure.subplots()
        epochs = np.arange(1, len(history) + 1)
        for index, key in enumerate(("train_loss", "val_loss")):
            values = np.array([float(record.get(key, np.nan)) for record in history])
            if np.isfinite(values).any():
                ax.plot(epochs, values, marker="o", color=COLORS[index], label=key.replace("_", " "))
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Loss")
        ax.legend(loc="upper right", fontsize="x-small")
        experiment_label(ax, style)
        return figure
