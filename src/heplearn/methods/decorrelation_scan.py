"""The decorrelation scan: one tagger per strength λ, background rejection against mass sculpting.

``decorrelation_scan(config, strengths, observer, methods)`` trains the run config's tagger without
decorrelation (λ = 0, the plain tagger) and, for each method, once per λ > 0: with the DisCo term
(``"disco"``: cross entropy + λ·dCor²), with the adversary (``"adversarial"``: learning to pivot,
strength λ) or, once and without a λ, with planing (``"planing"``: the planed cross entropy,
arXiv:1511.05190). Each is measured on the test split at a fixed signal efficiency (50% by
default): the background rejection R = 1/ε_B and the mass sculpting 1/JSD between the background
mass distributions before and after the cut (``heplearn.evaluation.sculpting``). A mass-window cut
with the same signal efficiency is the reference point. The standard figure of the decorrelation
papers (Kasieczka & Shih, arXiv:2001.05310, Fig. 2; ATL-PHYS-PUB-2018-014) plots R against 1/JSD:
rejection falls as the tagger sculpts less.

    heplearn decorrelate -c configs/top_qcd_mlp.yaml --observer jet_sdmass --lambdas 0,1,3,10,30 \
        --method disco,adversarial,planing --adversary pretrain_steps=150
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from heplearn.config import apply_overrides
from heplearn.data.files import write_json
from heplearn.errors import ConfigError
from heplearn.evaluation.metrics import roc
from heplearn.evaluation.plots import PlotStyle, experiment_label, plot_style, save_figure
from heplearn.evaluation.sculpting import jensen_shannon_divergence, mass_sculpting
from heplearn.progress import progress_bar
from heplearn.run_config import RunConfig, load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

METHODS = ("disco", "adversarial", "planing")
#: How the figure and the point names call each method.
LABELS = {"plain": "plain tagger", "disco": "DisCo", "adversarial": "adversary", "planing": "planing"}


@dataclass(frozen=True)
class ScanPoint:
    """One tagger (or the mass window) at the scan's signal efficiency."""

    method: str  # "plain", one of METHODS, or "mass window"
    name: str
    strength: float | None
    rejection: float
    inverse_jsd: float
    run_dir: str | None = None


@dataclass(frozen=True)
class DecorrelationScan:
    """The trained taggers (the plain one first), the mass-window reference and where the figure went."""

    methods: list[str]
    observer: str
    signal_efficiency: float
    points: list[ScanPoint]
    window: ScanPoint
    figures: list[Path]


def parse_methods(methods: str | Sequence[str]) -> list[str]:
    """``"disco,adversarial"`` or a list of names: the distinct methods, each one of ``METHODS``."""
    names = [name.strip() for name in (methods.split(",") if isinstance(methods, str) else methods)]
    names = [name for name in dict.fromkeys(names) if name]
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise ConfigError(
            f"decorrelation method {', '.join(map(repr, unknown)) or 'none given'}: choose from {', '.join(METHODS)}"
        )
    return names


def method_settings(assignments: Mapping[str, list[str]]) -> dict[str, dict[str, Any]]:
    """``{"adversarial": ["bins=20", ...]}`` (the CLI's ``--adversary``/``--planing``) as settings dicts.

    Values are read as YAML (``range=[0, 300]``); a method without assignments is left out.
    """
    option = {"adversarial": "--adversary", "planing": "--planing", "disco": "--disco"}
    settings: dict[str, dict[str, Any]] = {}
    for method, items in assignments.items():
        for item in items:
            key, separator, _ = item.partition("=")
            if not separator or not key.strip() or "." in key:
                raise ConfigError(f"{option.get(method, method)} {item!r}: expected KEY=VALUE, e.g. bins=20")
        if items:
            settings[method] = apply_overrides({}, list(items))
    return settings


def decorrelated_config(
    config: RunConfig,
    method: str,
    observer: str,
    strength: float,
    settings: Mapping[str, Any] | None = None,
) -> RunConfig:
    """``config`` with the decorrelation of ``method`` at ``strength`` (λ = 0: the plain tagger).

    ``settings`` are the method's own keys: the adversary's step settings (``bins``,
    ``adversary_steps``, ``pretrain_steps``, ...), the planing term's (``bins``, ``range``,
    ``classes``), or DisCo's (``background_class``). Planing has no strength: any λ > 0 planes.
    """
    if method not in METHODS:
        raise ConfigError(f"decorrelation method {method!r}: choose one of {', '.join(METHODS)}")
    if strength < 0:
        raise ConfigError(f"decorrelation strength λ = {strength}: must be 0 or more")
    extra = dict(settings or {})
    content = config.model_dump(mode="json")
    data = content["data"]
    data["observers"] = list(dict.fromkeys([*data.get("observers", []), observer]))
    training = content["training"]
    if method == "disco" and strength > 0:
        disco = {**extra, "name": "disco", "weight": strength, "on": observer}
        training["loss"] = [{"name": "cross_entropy"}, disco]
    elif method == "adversarial" and strength > 0:
        training["step"] = {**extra, "name": "adversarial", "on": observer, "strength": strength}
    elif method == "planing" and strength > 0:
        training["loss"] = [{**extra, "name": "planed_cross_entropy", "on": observer}]
    return load_run_config(content)


def scan_configs(
    config: RunConfig,
    strengths: Sequence[float],
    observer: str,
    methods: list[str],
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[tuple[str, float, RunConfig]]:
    """(method, λ, run config) of every tagger of the scan: the plain one, each method's λ > 0, planing once."""
    settings = settings or {}
    unused = sorted(set(settings) - set(methods))
    if unused:
        raise ConfigError(f"settings for {', '.join(unused)}: that method is not in the scan ({', '.join(methods)})")
    if any(strength < 0 for strength in strengths):
        bad = next(strength for strength in strengths if strength < 0)
        raise ConfigError(f"decorrelation strength λ = {bad}: must be 0 or more")
    positive = list(dict.fromkeys(strength for strength in strengths if strength > 0))
    if not positive and any(method != "planing" for method in methods):
        raise ConfigError("--lambdas: give at least one strength above 0 (λ = 0 is the plain tagger, always trained)")
    plan = [("plain", 0.0, decorrelated_config(config, methods[0], observer, 0.0))]
    for method in methods:
        for strength in [1.0] if method == "planing" else positive:
            plan.append(
                (method, strength, decorrelated_config(config, method, observer, strength, settings.get(method)))
            )
    return plan


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
        "mass window",
        f"mass window [{low:.0f}, {high:.0f}]",
        None,
        1 / passed if passed > 0 else float("inf"),
        1 / jsd if jsd > 0 else float("inf"),
    )


def point_name(method: str, strength: float) -> str:
    """``plain tagger``, ``planing``, or the method with its λ (``DisCo λ = 10``)."""
    if method in ("plain", "planing"):
        return LABELS[method]
    return f"{LABELS[method]} λ = {strength:g}"


def decorrelation_scan(
    config: RunConfig,
    strengths: Sequence[float],
    observer: str,
    method: str | Sequence[str] = "disco",
    output: str | os.PathLike[str] = "decorrelation",
    signal_efficiency: float = 0.5,
    progress: bool = True,
    style: PlotStyle | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> DecorrelationScan:
    """Train the plain tagger and each method's taggers; measure rejection and sculpting on the test split.

    ``method``: one name or several (``"disco,adversarial,planing"``), drawn in one figure; the plain
    tagger (λ = 0) is trained once for all of them. ``settings``: each method's own keys, e.g.
    ``{"adversarial": {"pretrain_steps": 150}}`` (``decorrelated_config``). Every config is built
    and checked before the first training.
    """
    style = style or PlotStyle()
    methods = parse_methods(method)
    if not 0 < signal_efficiency < 1:
        raise ConfigError(f"signal efficiency {signal_efficiency}: must be in (0, 1)")
    plan = scan_configs(config, strengths, observer, methods, settings)
    test_files = config.data.files("test")
    output = Path(output)
    points: list[ScanPoint] = []
    window: ScanPoint | None = None
    for name, strength, run_config in progress_bar(plan, desc=f"{'/'.join(methods)} scan", disable=not progress):
        run_name = name if name in ("plain", "planing") else f"{name}-lambda{strength:g}"
        result = train(run_config, name=run_name, runs_dir=output / "runs", progress=False)
        model = TrainedModel.load(result.run_dir)
        scores, arrays = model.predict_files(test_files)
        signal: int = model.task.signal_index  # type: ignore[attr-defined]
        is_signal = arrays.label == signal
        mass = arrays.observers[observer].astype(np.float64)
        score = scores[:, signal].astype(np.float64)
        sculpting = mass_sculpting(mass, is_signal, score, arrays.weight, (signal_efficiency,), observer=observer)
        curve = roc(is_signal, score, arrays.weight)
        points.append(
            ScanPoint(
                name,
                point_name(name, strength),
                None if name == "planing" else strength,
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
    figure = plot_scan(points, window, signal_efficiency, style)
    figures = save_figure(figure, output, f"{'_'.join(methods)}_scan", style)
    scan = DecorrelationScan(methods, observer, signal_efficiency, points, window, figures)
    write_json(output / "scan.json", scan)  # strict JSON: an unbounded rejection is null
    return scan


def _finite(point: ScanPoint) -> bool:
    return bool(np.isfinite(point.rejection) and np.isfinite(point.inverse_jsd))


def plot_scan(
    points: list[ScanPoint], window: ScanPoint, signal_efficiency: float, style: PlotStyle | None = None
) -> Figure:
    """Background rejection against 1/JSD: a line per λ family (from the plain tagger), planing, the mass window."""
    style = style or PlotStyle()
    with plot_style():
        figure = Figure(figsize=(8, 7.5))
        ax = figure.add_subplot()
        plain = [point for point in points if point.method == "plain" and _finite(point)]
        families = list(dict.fromkeys(p.method for p in points if p.method not in ("plain", "planing")))
        for method, marker in zip(families, "o^v<>", strict=False):
            family = plain + [point for point in points if point.method == method and _finite(point)]
            if not family:
                continue
            ax.plot(
                [p.inverse_jsd for p in family],
                [p.rejection for p in family],
                f"{marker}-",
                label=f"{LABELS[method]} (λ scan)",
            )
            for point in family[len(plain) :]:
                ax.annotate(
                    f"{point.strength:g}",
                    (point.inverse_jsd, point.rejection),
                    textcoords="offset points",
                    xytext=(6, 4),
                    fontsize="small",
                )
        markers = {"plain": ("*", "tab:red", 16), "planing": ("D", "tab:purple", 9)}
        for point in [*plain, *(p for p in points if p.method == "planing" and _finite(p))]:
            shape, colour, size = markers[point.method]
            ax.plot([point.inverse_jsd], [point.rejection], shape, color=colour, markersize=size, label=point.name)
        if _finite(window):
            ax.plot([window.inverse_jsd], [window.rejection], "s", color="black", label=window.name)
        if any(_finite(point) for point in [*points, window]):
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
