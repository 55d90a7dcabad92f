"""The decorrelation scan: one tagger per strength λ, background rejection against mass sculpting.

``decorrelation_scan(config, strengths)`` trains the run config's tagger once per λ, either with
the DisCo term (``method="disco"``: cross entropy + λ·dCor²) or with the adversary
(``method="adversarial"``: learning to pivot, strength λ), and measures each on the test split
at a fixed signal efficiency (50% by default): the background rejection R = 1/ε_B and the mass
sculpting 1/JSD between the background mass distributions before and after the cut
(``heplearn.evaluation.sculpting``). A mass-window cut with the same signal efficiency is the
reference point. The standard figure of the decorrelation papers (Kasieczka & Shih,
arXiv:2001.05310, Fig. 2; ATL-PHYS-PUB-2018-014) plots R against 1/JSD: rejection falls as the
tagger sculpts less.

    heplearn decorrelate -c configs/top_qcd_mlp.yaml --observer jet_sdmass --lambdas 0,1,3,10,30
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from heplearn.data.files import write_json
from heplearn.errors import ConfigError
from heplearn.evaluation.metrics import roc
from heplearn.evaluation.plots import PlotStyle, experiment_label, plot_style, save_figure
from heplearn.evaluation.sculpting import jensen_shannon_divergence, mass_sculpting
from heplearn.progress import progress_bar
from heplearn.run_config import RunConfig, load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

METHODS = ("disco", "adversarial")


@dataclass(frozen=True)
class ScanPoint:
    """One tagger (or the mass window) at the scan's signal efficiency."""

    name: str
    strength: float | None
    rejection: float
    inverse_jsd: float
    run_dir: str | None = None


@dataclass(frozen=True)
class DecorrelationScan:
    """The trained taggers, the mass-window reference and where the figure went."""

    method: str
    observer: str
    signal_efficiency: float
    points: list[ScanPoint]
    window: ScanPoint
    figures: list[Path]


def decorrelated_config(config: RunConfig, method: str, observer: str, strength: float) -> RunConfig:
    """``config`` with the decorrelation of ``method`` at ``strength`` (λ = 0: the plain tagger)."""
    if method not in METHODS:
        raise ConfigError(f"decorrelation method {method!r}: choose one of {', '.join(METHODS)}")
    if strength < 0:
        raise ConfigError(f"decorrelation strength λ = {strength}: must be 0 or more")
    content = config.model_dump(mode="json")
    data = content["data"]
    data["observers"] = list(dict.fromkeys([*data.get("observers", []), observer]))
    training = content["training"]
    if method == "disco" and strength > 0:
        training["loss"] = [{"name": "cross_entropy"}, {"name": "disco", "weight": strength, "on": observer}]
    elif method == "adversarial" and strength > 0:
        training["step"] = {**training.get("step", {}), "name": "adversarial", "on": observer, "strength": strength}
    return load_run_config(content)


def window_point(
    mass: np.ndarray, is_signal: np.ndarray, weight: np.ndarray, signal_efficiency: float, edges: np.ndarray
) -> ScanPoint:
    """The central mass window around the signal that keeps ``signal_efficiency`` of it."""
    low, high = np.quantile(mass[is_signal], [(1 - signal_efficiency) / 2, (1 + signal_efficiency) / 2])
    inside = (mass >= low) & (mass <= high)
    background = ~is_signal
    passed = float(weight[background & inside].sum() / weight[background].sum())
    before, _ = np.histogram(mass[background], edges, weights=weight[background])
    after, _ = np.histogram(mass[background & inside], edges, weights=weight[background & inside])
    jsd = jensen_shannon_divergence(before, after)
    return ScanPoint(
        f"mass window [{low:.0f}, {high:.0f}]",
        None,
        1 / passed if passed > 0 else float("inf"),
        1 / jsd if jsd > 0 else float("inf"),
    )


def decorrelation_scan(
    config: RunConfig,
    strengths: list[float],
    observer: str,
    method: str = "disco",
    output: str | os.PathLike[str] = "decorrelation",
    signal_efficiency: float = 0.5,
    progress: bool = True,
    style: PlotStyle | None = None,
) -> DecorrelationScan:
    """Train one tagger per λ of ``strengths`` and measure rejection and sculpting on the test split."""
    style = style or PlotStyle()
    if not strengths:
        raise ConfigError("--lambdas: give at least one strength")
    if not 0 < signal_efficiency < 1:
        raise ConfigError(f"signal efficiency {signal_efficiency}: must be in (0, 1)")
    configs = [decorrelated_config(config, method, observer, strength) for strength in strengths]
    test_files = config.data.files("test")
    output = Path(output)
    points: list[ScanPoint] = []
    window: ScanPoint | None = None
    for strength, run_config in progress_bar(
        list(zip(strengths, configs, strict=True)), desc=f"{method} scan", disable=not progress
    ):
        result = train(run_config, name=f"{method}-lambda{strength:g}", runs_dir=output / "runs", progress=False)
        model = TrainedModel.load(result.run_dir)
        scores, arrays = model.predict_files(test_files)
        is_signal = arrays.label == model.task.signal_index  # type: ignore[attr-defined]
        mass = arrays.observers[observer].astype(np.float64)
        score = scores[:, model.task.signal_index].astype(np.float64)  # type: ignore[attr-defined]
        sculpting = mass_sculpting(mass, is_signal, score, arrays.weight, (signal_efficiency,), observer=observer)
        curve = roc(is_signal, score, arrays.weight)
        points.append(
            ScanPoint(
                f"λ = {strength:g}",
                strength,
                curve.rejection_at(signal_efficiency),
                sculpting.after[0].inverse_jsd,
                str(result.run_dir),
            )
        )
        if window is None:
            window = window_point(
                mass, is_signal, arrays.weight.astype(np.float64), signal_efficiency, sculpting.bin_edges
            )
    assert window is not None
    figure = plot_scan(points, window, method, signal_efficiency, style)
    figures = save_figure(figure, output, f"{method}_scan", style)
    scan = DecorrelationScan(method, observer, signal_efficiency, points, window, figures)
    write_json(output / "scan.json", scan)  # strict JSON: an unbounded rejection is null
    return scan


def plot_scan(
    points: list[ScanPoint], window: ScanPoint, method: str, signal_efficiency: float, style: PlotStyle | None = None
) -> Figure:
    """Background rejection against 1/JSD: one point per λ, and the mass-window cut."""
    style = style or PlotStyle()
    with plot_style():
        figure = Figure(figsize=(8, 7.5))
        ax = figure.add_subplot()
        finite = [point for point in points if np.isfinite(point.rejection) and np.isfinite(point.inverse_jsd)]
        ax.plot(
            [p.inverse_jsd for p in finite],
            [p.rejection for p in finite],
            "o-",
            label=f"{'DisCo' if method == 'disco' else 'adversary'} (λ scan)",
        )
        for point in finite:
            ax.annotate(
                f"{point.strength:g}",
                (point.inverse_jsd, point.rejection),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize="small",
            )
        if np.isfinite(window.rejection) and np.isfinite(window.inverse_jsd):
            ax.plot([window.inverse_jsd], [window.rejection], "s", color="black", label=window.name)
        if finite or (np.isfinite(window.rejection) and np.isfinite(window.inverse_jsd)):
            ax.set_xscale("log")
            ax.set_yscale("log")
        else:
            ax.text(
                0.5,
                0.5,
                "no background jet passes any cut: rejection is unbounded",
                ha="center",
                transform=ax.transAxes,
            )
        ax.set_xlabel(rf"1 / JSD at $\varepsilon_S$ = {signal_efficiency:.0%} (background mass)")
        ax.set_ylabel(rf"Background rejection $1/\varepsilon_B$ at $\varepsilon_S$ = {signal_efficiency:.0%}")
        ax.margins(0.15)
        ax.legend(fontsize="x-small")
        experiment_label(ax, style)
    return figure
