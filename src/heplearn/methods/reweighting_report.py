"""The closure report of a reweighting: does the reweighted source look like the target?

For every observable (each per-jet input variable, each observer, the particle multiplicity and
each per-particle variable over all particles) the source, the reweighted source and the target are
overlaid, normalised to the target, with a ratio panel to the target and χ²/ndf of each against
it; beside them Σw·f/(1 − f) against N_target, the effective number of events, the weight
distribution and the largest weights. DCTR's closure test (arXiv:1907.08209, figs. 2–3): a good
classifier gives χ²/ndf ≈ 1 after reweighting. One self-contained HTML file (plots embedded, PDFs
in ``plots/``), rendered with ``heplearn.evaluation.report``'s templates.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from heplearn.data.config import DataConfig
from heplearn.evaluation.agreement import binned, chi2_ndf
from heplearn.evaluation.plots import COLORS, PlotStyle, plot_style, save_figure
from heplearn.evaluation.report import embed_png, environment, write_json, write_report
from heplearn.progress import progress_bar

BINS = 30
QUANTILES = (0.005, 0.995)  # the histogram range: the central 99% of source and target together
DEFAULT_STYLE = PlotStyle()


@dataclass(frozen=True)
class Histograms:
    """One observable binned three ways: Σw per bin and its variance (summed over jets for the
    per-particle observables, whose particles fluctuate together with their jet)."""

    name: str
    edges: np.ndarray
    source: tuple[np.ndarray, np.ndarray]
    reweighted: tuple[np.ndarray, np.ndarray]
    target: tuple[np.ndarray, np.ndarray] | None


def observables(data: DataConfig, arrays: Any) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Per observable: its values and, for per-particle ones, the event each value belongs to."""
    result: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for group_name, group in data.inputs.items():
        if group.image is not None:
            continue
        values = arrays.inputs[group_name]
        if group.per_particle:
            mask = arrays.mask
            result[f"{group_name} multiplicity"] = (mask.sum(axis=1).astype(np.float64), None)
            events = np.broadcast_to(np.arange(len(mask))[:, None], mask.shape)[mask]
            for index, variable in enumerate(group.variables):
                result.setdefault(variable, (values[..., index][mask].astype(np.float64), events))
        else:
            for index, variable in enumerate(group.variables):
                result.setdefault(variable, (values[:, index].astype(np.float64), None))
    for name, values in arrays.observers.items():
        result.setdefault(name, (np.asarray(values, np.float64), None))
    return result


def bin_edges(values: np.ndarray) -> np.ndarray:
    """About ``BINS`` bins over the central 99% of ``values``; counts (integers) get bins of a whole
    number of integers over their full range, so that no bin holds one integer more than its neighbour.

    Example:
    >>> bin_edges(np.arange(100.0))[:3].tolist()
    [-0.5, 3.5, 7.5]
    """
    if np.allclose(values, np.round(values)):
        low, high = float(values.min()), float(values.max())
        width = max(1, math.ceil((high - low + 1) / BINS))
        return np.arange(low - 0.5, high + 0.5 + width, width)
    low, high = np.quantile(values, QUANTILES)
    if not high > low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, BINS + 1)


def closure_histograms(data: DataConfig, source: Any, target: Any | None, weights: np.ndarray) -> list[Histograms]:
    """Source, reweighted source and target (``None``: none to compare) binned per observable."""
    base = source.arrays.weight.astype(np.float64)
    mine = observables(data, source.arrays)
    theirs = observables(data, target.arrays) if target is not None else {}
    result = []
    for name, (values, events) in mine.items():
        if target is not None and name not in theirs:
            continue
        source_weight = base if events is None else base[events]
        reweighted_weight = base * weights if events is None else (base * weights)[events]
        pooled = values if target is None else np.concatenate([values, theirs[name][0]])
        edges = bin_edges(pooled)
        target_histogram = None
        if target is not None:
            target_values, target_events = theirs[name]
            target_base = target.arrays.weight.astype(np.float64)
            target_histogram = binned(
                target_values,
                target_base if target_events is None else target_base[target_events],
                edges,
                target_events,
            )
        result.append(
            Histograms(
                name,
                edges,
                binned(values, source_weight, edges, events),
                binned(values, reweighted_weight, edges, events),
                target_histogram,
            )
        )
    return result


GEV_WORDS = ("pt", "mass", "energy", "px", "py", "pz", "met", "ht")  # schema names measured in GeV


def axis_label(name: str) -> str:
    """An observable's axis title: its name, with [GeV] for the schema's momenta, masses and energies.

    Example:
    >>> axis_label("jet_sdmass"), axis_label("jet_tau21")
    ('jet_sdmass [GeV]', 'jet_tau21')
    """
    words = name.lower().replace("_", " ").split()
    return (
        f"{name} [GeV]"
        if any(word.startswith(GEV_WORDS) or word.endswith(GEV_WORDS) for word in words) and "multiplicity" not in words
        else name
    )


def plot_closure(histograms: Histograms, style: PlotStyle = DEFAULT_STYLE) -> Figure:
    """Source, reweighted source and target normalised to the target, with ratios to the target."""
    with plot_style():
        figure = Figure(figsize=(8, 8))
        top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        edges = histograms.edges
        centres = 0.5 * (edges[1:] + edges[:-1])
        reference = histograms.target or histograms.source
        total = reference[0].sum()
        lines = [
            ("source", histograms.source, COLORS[0], "--"),
            ("reweighted source", histograms.reweighted, COLORS[2], "-"),
        ]
        for label, (sums, squares), color, dash in lines:
            scale = total / sums.sum() if sums.sum() > 0 else 1.0
            top.stairs(sums * scale, edges, color=color, linestyle=dash, label=label, linewidth=1.8)
            if histograms.target is not None:
                target_sums = histograms.target[0]
                filled = target_sums > 0  # an empty target bin has no ratio (inf ± inf warns in errorbar)
                ratio = np.full(len(sums), np.nan)
                error = np.full(len(sums), np.nan)
                ratio[filled] = sums[filled] * scale / target_sums[filled]
                error[filled] = np.sqrt(squares[filled]) * scale / target_sums[filled]
                bottom.errorbar(
                    centres,
                    ratio,
                    yerr=error,
                    color=color,
                    marker="o" if dash == "-" else "s",
                    markersize=3,
                    linestyle="none",
                )
        if histograms.target is not None:
            sums, squares = histograms.target
            top.errorbar(
                centres,
                sums,
                yerr=np.sqrt(squares),
                color="black",
                marker="o",
                markersize=4,
                linestyle="none",
                label="target",
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                relative = np.sqrt(squares) / sums
            bottom.fill_between(
                edges,
                np.append(1 - relative, 1 - relative[-1]),
                np.append(1 + relative, 1 + relative[-1]),
                step="post",
                color="grey",
                alpha=0.3,
                label="target stat.",
            )
        bottom.axhline(1.0, color="black", linewidth=0.8)
        bottom.set_ylim(0.75, 1.25)
        bottom.set_ylabel("ratio", fontsize="small")
        bottom.set_xlabel(axis_label(histograms.name))
        top.set_ylabel("events / bin", fontsize="small")
        figure.align_ylabels([top, bottom])
        top.legend(fontsize="x-small")
        top.text(0.0, 1.012, style.label, transform=top.transAxes, ha="left", va="bottom", fontsize="large")
    return figure


def plot_weights(weights: np.ndarray, style: PlotStyle = DEFAULT_STYLE) -> Figure:
    """The distribution of the per-event weights (log y), with their mean and largest value."""
    with plot_style():
        figure = Figure(figsize=(8, 6))
        ax = figure.subplots()
        positive = weights[weights > 0]
        high = float(np.max(weights)) if len(weights) else 1.0
        edges = np.linspace(0.0, max(high, 1e-9) * 1.02, 61)
        ax.hist(weights, edges, color=COLORS[0], histtype="stepfilled", alpha=0.6)
        ax.axvline(float(np.mean(weights)), color="black", linestyle="--", label=f"mean {np.mean(weights):.3g}")
        ax.axvline(high, color=COLORS[2], linestyle=":", label=f"largest {high:.3g}")
        ax.set_yscale("log")
        ax.set_xlabel("event weight w (clipped, normalised)")
        ax.set_ylabel("source events per bin")
        ax.legend(fontsize="x-small", title=f"{len(positive)} positive of {len(weights)}", title_fontsize="x-small")
        ax.text(0.0, 1.012, style.label, transform=ax.transAxes, ha="left", va="bottom", fontsize="large")
    return figure


def closure_report(
    directory: str | os.PathLike[str],
    data: DataConfig,
    source: Any,
    target: Any | None,
    weights: np.ndarray,
    summary: Mapping[str, Any],
    title: str = "Reweighting closure",
    progress: bool = False,
    style: PlotStyle = DEFAULT_STYLE,
) -> Path:
    """Write ``directory/report.html`` (and ``closure.json``, ``plots/``); returns the report's path.

    Parameters
    ----------
    directory : path-like
        Where the report goes.
    data : DataConfig
        The config both samples were read with (its observables are compared).
    source, target : Sample
        The samples (``heplearn.methods.reweighting.Sample``); ``target=None`` draws no comparison.
    weights : numpy.ndarray
        The source's per-event weights.
    summary : mapping
        ``weight_summary``'s figures (Σw, N_eff, the largest weights).
    """
    directory = Path(directory)
    plots_dir = directory / "plots"
    rows, plots = [], []
    histograms = closure_histograms(data, source, target, weights)
    for index, histogram in enumerate(
        progress_bar(histograms, desc="closure plots", unit="plot", disable=not progress, leave=False)
    ):
        stem = f"closure_{index:02d}"
        files = save_figure(plot_closure(histogram, style), plots_dir, stem, style)
        before = chi2_ndf(histogram.source, histogram.target) if histogram.target is not None else None
        after = chi2_ndf(histogram.reweighted, histogram.target) if histogram.target is not None else None
        rows.append(
            {
                "observable": histogram.name,
                "chi2_ndf_source": before,
                "chi2_ndf_reweighted": after,
                "bins": len(histogram.edges) - 1,
            }
        )
        plots.append(
            _plot_entry(
                files,
                stem,
                histogram.name,
                "Source (dashed), reweighted source (solid) and target (points), each normalised "
                "to the target; below, the ratios to the target with its statistical band.",
            )
        )
    files = save_figure(plot_weights(weights, style), plots_dir, "weights", style)
    plots.append(
        _plot_entry(
            files,
            "weights",
            "Weight distribution",
            "Per-event weights of the source; a long tail means few events carry the target's "
            "phase space and the reweighted sample has few effective events.",
        )
    )
    content = {"summary": dict(summary), "observables": rows}
    write_json(directory / "closure.json", content)
    classes = [
        {
            "name": "source",
            "jets": len(source),
            "weight": source.total_weight,
            "effective_jets": _effective(source.arrays.weight),
        },
        {
            "name": "reweighted source",
            "jets": len(source),
            "weight": float(np.sum(source.arrays.weight * weights)),
            "effective_jets": _effective(source.arrays.weight * weights),
        },
    ]
    if target is not None:
        classes.append(
            {
                "name": "target",
                "jets": len(target),
                "weight": target.total_weight,
                "effective_jets": _effective(target.arrays.weight),
            }
        )
    model = {
        "environment": environment(),
        "summary": dict(summary),
        "observables": rows,
        "plots": plots,
        "data": {
            "classes": classes,
            "jets": len(source) + (len(target) if target is not None else 0),
            "files": [str(f) for f in source.files] + ([str(f) for f in target.files] if target else []),
            "selection": data.selection,
            "weights": data.weights,
            "observers": {},
            "inputs": {name: {"length": g.length, "variables": g.variables} for name, g in data.inputs.items()},
        },
    }
    return write_report(directory / "report.html", "reweighting.html.j2", {"m": model, "title": title})


def _effective(weights: np.ndarray) -> float:
    weights = np.asarray(weights, np.float64)
    squares = float(np.sum(weights**2))
    return float(np.sum(weights) ** 2 / squares) if squares > 0 else 0.0


def _plot_entry(files: list[Path], stem: str, title: str, caption: str) -> dict[str, Any]:
    png = next(path for path in files if path.suffix == ".png")
    return {
        "stem": stem,
        "title": title,
        "caption": caption,
        "uri": embed_png(png),
        "files": [f"plots/{path.name}" for path in files],
    }
