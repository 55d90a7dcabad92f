"""The fit plots, in the conventions of ``heplearn.evaluation.plots`` (mplhep style, experiment label).

- ``plot_postfit``: the post-fit stacked templates with the data and a data / model ratio panel,
  the band the post-fit uncertainty of the model;
- ``plot_scan``: ΔNLL profiles of one parameter (several on one plot: with and without systematics);
- ``plot_scan_2d``: the 68% and 95% contours of a two-parameter profile (2ΔNLL = 2.30, 5.99);
- ``plot_pulls``: pulls and constraints of the nuisance parameters beside their impacts on the POI;
- ``plot_brazil``: CLs against the POI, observed and expected with the ±1σ / ±2σ bands;
- ``plot_templates``: the normalised templates of the fit, one line per sample;
- ``plot_scale_factors``: ε in data and simulation and their ratio SF per bin (of jet pT, say).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from heplearn.evaluation.plots import COLORS, PlotStyle, experiment_label, plot_style
from heplearn.stats.results import Impact, Pull, Scan, UpperLimit
from heplearn.stats.scale_factors import BinnedScaleFactor

STYLE = PlotStyle()


def _legend(ax: Axes, entries: int, title: str = "") -> None:
    """The legend over the axes, or beside them when there are many entries."""
    if entries > 4:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", title=title or None)
    else:
        ax.legend(loc="upper right", fontsize="x-small", title=title or None, title_fontsize="x-small")


CONTOURS_2D = {"68%": 2.30, "95%": 5.99}  # 2ΔNLL quantiles of χ² with two degrees of freedom


def plot_postfit(
    edges: np.ndarray,
    samples: Mapping[str, np.ndarray],
    data: np.ndarray,
    uncertainty: np.ndarray,
    style: PlotStyle = STYLE,
    xlabel: str = "Tagger score",
    title: str = "Post-fit",
) -> Figure:
    """Stacked post-fit yields per sample, the data with √n errors, and data / model below."""
    total = np.sum(list(samples.values()), axis=0)
    centers = 0.5 * (edges[1:] + edges[:-1])
    with plot_style():
        figure = Figure(figsize=(8, 8.5))
        main, lower = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        bottom = np.zeros_like(total)
        for index, (name, counts) in enumerate(samples.items()):
            main.stairs(
                bottom + counts, edges, baseline=bottom, fill=True, color=COLORS[index % len(COLORS)], label=name
            )
            bottom = bottom + counts
        main.stairs(
            total + uncertainty,
            edges,
            baseline=total - uncertainty,
            fill=True,
            hatch="///",
            facecolor="none",
            edgecolor="gray",
            linewidth=0,
            label="Uncertainty",
        )
        main.errorbar(centers, data, yerr=np.sqrt(data), fmt="o", color="black", markersize=4, label="Data")
        positive = total > 0
        main.set_yscale("log")
        main.set_ylim(
            max(0.5, 0.5 * float(np.min(total[positive], initial=1.0))), float(max(total.max(), data.max())) * 30
        )
        main.set_ylabel("Events / bin")
        _legend(main, len(samples) + 2, title=title)
        experiment_label(main, style)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(positive, data / total, np.nan)
            lower.errorbar(
                centers,
                ratio,
                yerr=np.where(positive, np.sqrt(data) / total, np.nan),
                fmt="o",
                color="black",
                markersize=4,
            )
            relative = np.where(positive, uncertainty / total, 0.0)
        lower.stairs(1 + relative, edges, baseline=1 - relative, fill=True, color="gray", alpha=0.4, linewidth=0)
        lower.axhline(1.0, color="gray", linewidth=1)
        lower.set_ylim(0.5, 1.5)
        lower.set_ylabel("Data / model", fontsize="small")
        lower.set_xlabel(xlabel)
        lower.set_xlim(edges[0], edges[-1])
        return figure


def plot_scan(scans: Mapping[str, Scan], style: PlotStyle = STYLE, xlabel: str | None = None) -> Figure:
    """ΔNLL against one parameter for each scan, with the 1σ (ΔNLL = ½) and 2σ (ΔNLL = 2) lines."""
    with plot_style():
        figure = Figure(figsize=(8, 7.5))
        ax = figure.subplots()
        for index, (name, scan) in enumerate(scans.items()):
            ax.plot(scan.values[0], scan.delta_nll, color=COLORS[index % len(COLORS)], label=name)
        for level, text in ((0.5, r"1$\sigma$"), (2.0, r"2$\sigma$")):
            ax.axhline(level, color="gray", linestyle="--", linewidth=1)
            ax.text(ax.get_xlim()[1], level, f" {text}", va="center", ha="left", fontsize="small", color="gray")
        first = next(iter(scans.values()))
        ax.set_xlabel(xlabel or first.parameters[0])
        ax.set_ylabel(r"$-\Delta \ln L$")
        ax.set_ylim(0, max(3.0, min(8.0, float(np.max([s.delta_nll.max() for s in scans.values()])))))
        _legend(ax, len(scans))
        experiment_label(ax, style)
        return figure


def plot_scan_2d(scan: Scan, style: PlotStyle = STYLE, labels: tuple[str, str] | None = None) -> Figure:
    """The 68% and 95% confidence contours of a two-parameter profile likelihood, and the best fit."""
    with plot_style():
        figure = Figure(figsize=(8, 7.5))
        ax = figure.subplots()
        x, y = scan.values
        contours = ax.contour(
            x, y, 2 * scan.delta_nll.T, levels=sorted(CONTOURS_2D.values()), colors=[COLORS[0], COLORS[1]]
        )
        ax.clabel(contours, fmt={level: name for name, level in CONTOURS_2D.items()}, fontsize="small")
        ax.plot(*scan.best, marker="P", color="black", linestyle="none", markersize=10, label="Best fit")
        xlabel, ylabel = labels or scan.parameters
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper right", fontsize="x-small")
        experiment_label(ax, style)
        return figure


def plot_pulls(
    pulls: Sequence[Pull], impacts: Sequence[Impact] = (), style: PlotStyle = STYLE, poi: str = "mu"
) -> Figure:
    """Pulls (θ̂ − θ₀)/σ with their post-fit constraint bars; the post-fit impacts on the POI beside them."""
    order = [impact.name for impact in impacts] + [p.name for p in pulls if p.name not in {i.name for i in impacts}]
    by_name = {p.name: p for p in pulls}
    rows = [by_name[name] for name in order if name in by_name][:30]
    height = max(4.0, 0.4 * len(rows) + 2.5)
    with plot_style():
        figure = Figure(figsize=(11 if impacts else 8, height))
        axes = figure.subplots(1, 2, sharey=True) if impacts else [figure.subplots()]
        positions = np.arange(len(rows))[::-1]
        ax = axes[0]
        ax.axvspan(-2, 2, color="#ffe680", alpha=0.5)
        ax.axvspan(-1, 1, color="#a6e3a1", alpha=0.6)
        ax.errorbar(
            [r.pull for r in rows], positions, xerr=[r.constraint for r in rows], fmt="o", color="black", markersize=5
        )
        ax.set_yticks(positions, [r.name for r in rows], fontsize="x-small")
        ax.set_xlim(-3, 3)
        ax.set_xlabel(r"$(\hat\theta - \theta_0) / \Delta\theta$")
        experiment_label(ax, style)
        if impacts:
            by_impact = {i.name: i for i in impacts}
            up = [by_impact[r.name].up if r.name in by_impact else 0.0 for r in rows]
            down = [by_impact[r.name].down if r.name in by_impact else 0.0 for r in rows]
            axes[1].barh(positions, up, color=COLORS[0], alpha=0.7, label=r"$\hat\theta + \Delta\hat\theta$")
            axes[1].barh(positions, down, color=COLORS[1], alpha=0.7, label=r"$\hat\theta - \Delta\hat\theta$")
            axes[1].axvline(0, color="gray", linewidth=1)
            axes[1].set_xlabel(rf"Post-fit impact $\Delta\hat\{poi}$" if poi == "mu" else f"Impact on {poi}")
            axes[1].legend(loc="lower right", fontsize="x-small")
        return figure


def plot_brazil(limit: UpperLimit, style: PlotStyle = STYLE, xlabel: str = r"Signal strength $\mu$") -> Figure:
    """CLs against the POI: observed, expected median, ±1σ (green) and ±2σ (yellow) bands, the CLs level."""
    with plot_style():
        figure = Figure(figsize=(8, 7.5))
        ax = figure.subplots()
        expected = limit.expected_cls
        ax.fill_between(limit.scan, expected[0], expected[4], color="#ffe680", label=r"Expected $\pm 2\sigma$")
        ax.fill_between(limit.scan, expected[1], expected[3], color="#a6e3a1", label=r"Expected $\pm 1\sigma$")
        ax.plot(limit.scan, expected[2], color="black", linestyle="--", label="Expected")
        ax.plot(limit.scan, limit.observed_cls, color="black", marker="o", markersize=3, label="Observed")
        ax.axhline(
            limit.level,
            color=COLORS[2],
            linewidth=1.5,
            label=f"CL$_s$ = {limit.level:g} ({limit.observed:.3g} observed, {limit.expected[2]:.3g} expected)",
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(r"CL$_s$")
        ax.set_ylim(0, 1.05)
        ax.set_xlim(limit.scan[0], limit.scan[-1])
        ax.legend(loc="upper right", fontsize="x-small")
        experiment_label(ax, style)
        return figure


def plot_templates(
    edges: np.ndarray, templates: Mapping[str, np.ndarray], style: PlotStyle = STYLE, xlabel: str = "Tagger score"
) -> Figure:
    """Each template normalised to unit area (the shapes the fit separates)."""
    widths = np.diff(edges)
    with plot_style():
        figure = Figure(figsize=(8, 7.5))
        ax = figure.subplots()
        for index, (name, counts) in enumerate(templates.items()):
            total = counts.sum()
            if total > 0:
                ax.stairs(counts / (total * widths), edges, color=COLORS[index % len(COLORS)], linewidth=2, label=name)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Normalised to unit area")
        ax.set_xlim(edges[0], edges[-1])
        _legend(ax, len(templates))
        experiment_label(ax, style)
        return figure


def plot_scale_factors(
    binned: Sequence[BinnedScaleFactor], style: PlotStyle = STYLE, xlabel: str = r"Jet $p_\mathrm{T}$ [GeV]"
) -> Figure:
    """ε in data and simulation per bin (top) and SF = ε_data / ε_sim with its uncertainty (bottom)."""
    lows = np.array([b.low for b in binned])
    highs = np.array([b.high for b in binned])
    centers, half = 0.5 * (lows + highs), 0.5 * (highs - lows)
    results = [b.result for b in binned]
    with plot_style():
        figure = Figure(figsize=(8, 8.5))
        top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (2, 1)})
        top.errorbar(
            centers,
            [r.efficiency_simulation for r in results],
            xerr=half,
            yerr=[r.efficiency_simulation_uncertainty for r in results],
            fmt="s",
            color=COLORS[0],
            label="Simulation",
        )
        top.errorbar(
            centers,
            [r.efficiency_data for r in results],
            xerr=half,
            yerr=[r.efficiency_data_uncertainty for r in results],
            fmt="o",
            color="black",
            label="Data (fit)",
        )
        top.set_ylabel(r"Signal efficiency $\varepsilon$")
        top.set_ylim(0, 1.2)
        _legend(top, 2)
        experiment_label(top, style)
        bottom.errorbar(
            centers,
            [r.scale_factor for r in results],
            xerr=half,
            yerr=[r.uncertainty for r in results],
            fmt="o",
            color="black",
        )
        bottom.axhline(1.0, color="gray", linewidth=1)
        bottom.set_ylabel("SF", fontsize="small")
        bottom.set_xlabel(xlabel)
        return figure
